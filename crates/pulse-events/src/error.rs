//! Every way an input record can be wrong, and the bounded set of dead-letter kinds they map to.

use crate::encoding::Encoding;
use crate::input::TopicRole;
use std::borrow::Cow;
use std::fmt;

/// The dead-letter reason kind: a bounded set, safe to use as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    Decode,
    Schema,
    Validation,
    Late,
    Oversized,
    UnsupportedVersion,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        Self::Decode,
        Self::Schema,
        Self::Validation,
        Self::Late,
        Self::Oversized,
        Self::UnsupportedVersion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Schema => "schema",
            Self::Validation => "validation",
            Self::Late => "late",
            Self::Oversized => "oversized",
            Self::UnsupportedVersion => "unsupported_version",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an input record was rejected. None of these is retryable: the same bytes fail the same
/// way, so the record goes to the dead-letter topic and processing moves on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("payload is {size} bytes, over the {limit}-byte limit")]
    Oversized { size: usize, limit: usize },
    #[error("not valid {encoding}: {message}")]
    Decode { encoding: Encoding, message: String },
    #[error("field `{field}` has the wrong type: {message}")]
    WrongType { field: String, message: String },
    #[error("missing required field `{0}`")]
    MissingField(Cow<'static, str>),
    #[error("event type `{kind}` is not accepted on the {role} topic")]
    UnknownType { role: TopicRole, kind: String },
    #[error("field `{0}` must not be empty")]
    EmptyField(Cow<'static, str>),
    #[error("field `{field}` is {len} bytes, over the {max}-byte limit")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "custom event name `{0}` must be 1-64 characters of A-Z, a-z, 0-9, `_`, `.`, `:` or `-`"
    )]
    BadEventName(String),
    #[error("field `{field}` must be a finite number >= 0, got {value}")]
    InvalidAmount {
        field: Cow<'static, str>,
        value: f64,
    },
    #[error("field `{field}` must be an integer >= 1, got {value}")]
    InvalidQuantity { field: String, value: u32 },
    #[error("currency must be a three-letter ISO 4217 code such as `EUR`, got `{0}`")]
    BadCurrency(String),
    #[error("{survey} score {score} is outside {min}..={max}")]
    ScoreOutOfRange {
        survey: String,
        score: f64,
        min: f64,
        max: f64,
    },
    #[error("{survey} score {score} must be a whole number")]
    ScoreNotInteger { survey: String, score: f64 },
    #[error("survey score must be a finite number, got {0}")]
    ScoreNotFinite(f64),
    #[error("timestamp `{0}` is neither RFC 3339 nor integer epoch milliseconds")]
    BadTimestamp(String),
    #[error("timestamp {timestamp} is before {earliest}, the earliest accepted (engine.earliest_event_time)")]
    TimestampTooOld { timestamp: String, earliest: String },
    #[error(
        "timestamp {timestamp} is more than {max_ahead_hours} h ahead of the wall clock {clock} (engine.max_future_skew)"
    )]
    TimestampTooFarAhead {
        timestamp: String,
        clock: String,
        max_ahead_hours: i64,
    },
    #[error("schema_version {0} is not supported (this build reads version {max})", max = crate::SCHEMA_VERSION)]
    UnsupportedVersion(u64),
    #[error("event time {timestamp} is older than the partition watermark {watermark}")]
    Late {
        timestamp: String,
        watermark: String,
    },
}

impl EventError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Oversized { .. } => ErrorKind::Oversized,
            Self::Decode { .. } => ErrorKind::Decode,
            Self::WrongType { .. } | Self::MissingField(_) | Self::UnknownType { .. } => {
                ErrorKind::Schema
            }
            Self::UnsupportedVersion(_) => ErrorKind::UnsupportedVersion,
            Self::Late { .. } => ErrorKind::Late,
            Self::EmptyField(_)
            | Self::TooLong { .. }
            | Self::BadEventName(_)
            | Self::InvalidAmount { .. }
            | Self::InvalidQuantity { .. }
            | Self::BadCurrency(_)
            | Self::ScoreOutOfRange { .. }
            | Self::ScoreNotInteger { .. }
            | Self::ScoreNotFinite(_)
            | Self::BadTimestamp(_)
            | Self::TimestampTooOld { .. }
            | Self::TimestampTooFarAhead { .. } => ErrorKind::Validation,
        }
    }
}
