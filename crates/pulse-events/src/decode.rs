//! Decoding and validating one input record: bytes in, a validated [`InputEvent`] or a typed
//! [`EventError`] out. The happy path borrows from the record and allocates only for purchase
//! items; the error path re-reads the record to name the offending field.

use crate::encoding::Encoding;
use crate::error::EventError;
use crate::input::{EventBody, InputEvent, Item, SurveyKind, TopicRole};
use crate::time::{format_rfc3339, Millis, MIN_EVENT_TIME};
use crate::wire::{RawEvent, RawItem};
use crate::SCHEMA_VERSION;
use serde::Deserialize;
use std::borrow::Cow;

/// Size limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted record value, in bytes.
    pub max_payload_bytes: usize,
    pub max_event_id_bytes: usize,
    pub max_customer_id_bytes: usize,
    /// Events before this are rejected as a broken clock (`engine.earliest_event_time`).
    pub earliest_event_time: Millis,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 64 * 1024,
            max_event_id_bytes: 128,
            max_customer_id_bytes: 256,
            earliest_event_time: MIN_EVENT_TIME,
        }
    }
}

/// Decodes and validates one record value read from a topic with the given role.
///
/// Checks that need the partition's watermark (too far ahead, late) are the engine's.
pub fn decode<'a>(
    bytes: &'a [u8],
    encoding: Encoding,
    role: TopicRole,
    limits: &Limits,
) -> Result<InputEvent<'a>, EventError> {
    if bytes.len() > limits.max_payload_bytes {
        return Err(EventError::Oversized {
            size: bytes.len(),
            limit: limits.max_payload_bytes,
        });
    }
    let raw = parse(bytes, encoding)?;
    validate(raw, role, limits)
}

/// What a partition task reads of a record before decoding it: whose it is, which decides
/// whether it must go round to the partition that owns the customer, and its event time, which
/// orders the task's inputs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Peeked<'a> {
    pub customer_id: Option<Cow<'a, str>>,
    pub timestamp: Option<Millis>,
}

/// The customer and event time of a record, read without decoding or validating the rest of
/// it. Empty when there is nothing to read (the record will be dead-lettered when decoded).
pub fn peek(bytes: &[u8], encoding: Encoding) -> Peeked<'_> {
    #[derive(Deserialize)]
    struct Routing<'a> {
        #[serde(borrow, default)]
        customer_id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        timestamp: Option<crate::time::RawTimestamp<'a>>,
    }
    let routing: Option<Routing<'_>> = match encoding {
        Encoding::Json => serde_json::from_slice(bytes).ok(),
        Encoding::Msgpack => rmp_serde::from_slice(bytes).ok(),
    };
    routing.map_or_else(Peeked::default, |r| Peeked {
        customer_id: r.customer_id,
        timestamp: r.timestamp.and_then(|t| t.to_millis()),
    })
}

fn parse(bytes: &[u8], encoding: Encoding) -> Result<RawEvent<'_>, EventError> {
    match encoding {
        Encoding::Json if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') => {
            Err(EventError::Decode {
                encoding,
                message: "the top level is not a JSON object".into(),
            })
        }
        Encoding::Json => serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                schema_error(bytes, encoding, e.to_string())
            } else {
                EventError::Decode {
                    encoding,
                    message: e.to_string(),
                }
            }
        }),
        Encoding::Msgpack => {
            // Any byte is a valid MessagePack marker, so a top level that is not a map means the
            // bytes are not a MessagePack event at all (JSON text, say), not a schema mismatch.
            // JSON is held to the same rule so both encodings classify alike.
            if !matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf)) {
                return Err(EventError::Decode {
                    encoding,
                    message: "the top level is not a MessagePack map".into(),
                });
            }
            let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
            RawEvent::deserialize(&mut de).map_err(|e| {
                use rmp_serde::decode::Error as E;
                match e {
                    E::InvalidMarkerRead(_)
                    | E::InvalidDataRead(_)
                    | E::Utf8Error(_)
                    | E::DepthLimitExceeded => EventError::Decode {
                        encoding,
                        message: e.to_string(),
                    },
                    _ => schema_error(bytes, encoding, e.to_string()),
                }
            })
        }
    }
}

/// Builds the error for a record that decoded but did not fit the event shape. A record that
/// declares a future `schema_version` is reported as unsupported rather than as malformed: its
/// shape is not ours to judge. Otherwise the record is read again with path tracking, so the
/// message names the field (`items[0].price`), a cost paid only on this path.
fn schema_error(bytes: &[u8], encoding: Encoding, fallback: String) -> EventError {
    #[derive(Deserialize)]
    struct VersionProbe {
        #[serde(default)]
        schema_version: Option<u64>,
    }
    let probe = match encoding {
        Encoding::Json => serde_json::from_slice::<VersionProbe>(bytes).ok(),
        Encoding::Msgpack => rmp_serde::from_slice::<VersionProbe>(bytes).ok(),
    };
    if let Some(v) = probe
        .and_then(|p| p.schema_version)
        .filter(|v| *v != SCHEMA_VERSION)
    {
        return EventError::UnsupportedVersion(v);
    }
    let tracked = match encoding {
        Encoding::Json => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            serde_path_to_error::deserialize::<_, RawEvent<'_>>(&mut de)
                .err()
                .map(|e| (e.path().to_string(), e.into_inner().to_string()))
        }
        Encoding::Msgpack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
            serde_path_to_error::deserialize::<_, RawEvent<'_>>(&mut de)
                .err()
                .map(|e| (e.path().to_string(), e.into_inner().to_string()))
        }
    };
    match tracked {
        Some((field, message)) => EventError::WrongType { field, message },
        None => EventError::WrongType {
            field: ".".into(),
            message: fallback,
        },
    }
}

fn required<'a>(v: Option<Cow<'a, str>>, field: &'static str) -> Result<Cow<'a, str>, EventError> {
    match v {
        None => Err(EventError::MissingField(Cow::Borrowed(field))),
        Some(s) if s.is_empty() => Err(EventError::EmptyField(Cow::Borrowed(field))),
        Some(s) => Ok(s),
    }
}

fn bounded<'a>(
    v: Option<Cow<'a, str>>,
    field: &'static str,
    max: usize,
) -> Result<Cow<'a, str>, EventError> {
    let s = required(v, field)?;
    if s.len() > max {
        return Err(EventError::TooLong {
            field,
            len: s.len(),
            max,
        });
    }
    Ok(s)
}

fn amount(v: Option<f64>, field: &'static str) -> Result<f64, EventError> {
    let v = v.ok_or(EventError::MissingField(Cow::Borrowed(field)))?;
    if !v.is_finite() || v < 0.0 {
        return Err(EventError::InvalidAmount {
            field: Cow::Borrowed(field),
            value: v,
        });
    }
    Ok(v)
}

fn currency(v: Option<Cow<'_, str>>) -> Result<Cow<'_, str>, EventError> {
    let c = required(v, "currency")?;
    if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(EventError::BadCurrency(c.into_owned()));
    }
    Ok(c)
}

fn is_event_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn item(i: usize, raw: RawItem<'_>) -> Result<Item<'_>, EventError> {
    let sku = match raw.sku {
        None => {
            return Err(EventError::MissingField(Cow::Owned(format!(
                "items[{i}].sku"
            ))))
        }
        Some(s) if s.is_empty() => {
            return Err(EventError::EmptyField(Cow::Owned(format!(
                "items[{i}].sku"
            ))))
        }
        Some(s) => s,
    };
    let quantity = raw
        .quantity
        .ok_or_else(|| EventError::MissingField(Cow::Owned(format!("items[{i}].quantity"))))?;
    if quantity == 0 {
        return Err(EventError::InvalidQuantity {
            field: format!("items[{i}].quantity"),
            value: 0,
        });
    }
    let price = raw
        .price
        .ok_or_else(|| EventError::MissingField(Cow::Owned(format!("items[{i}].price"))))?;
    if !price.is_finite() || price < 0.0 {
        return Err(EventError::InvalidAmount {
            field: Cow::Owned(format!("items[{i}].price")),
            value: price,
        });
    }
    Ok(Item {
        sku,
        category: raw.category,
        quantity,
        price,
    })
}

fn timestamp(raw: &RawEvent<'_>, earliest: Millis) -> Result<Millis, EventError> {
    let ts = raw
        .timestamp
        .as_ref()
        .ok_or(EventError::MissingField(Cow::Borrowed("timestamp")))?;
    let t = ts
        .to_millis()
        .ok_or_else(|| EventError::BadTimestamp(ts.display()))?;
    if t < earliest {
        return Err(EventError::TimestampTooOld {
            timestamp: format_rfc3339(t),
            earliest: format_rfc3339(earliest),
        });
    }
    Ok(t)
}

fn validate<'a>(
    mut raw: RawEvent<'a>,
    role: TopicRole,
    limits: &Limits,
) -> Result<InputEvent<'a>, EventError> {
    if let Some(v) = raw.schema_version.filter(|v| *v != SCHEMA_VERSION) {
        return Err(EventError::UnsupportedVersion(v));
    }
    let event_id = bounded(raw.event_id.take(), "event_id", limits.max_event_id_bytes)?;
    let customer_id = bounded(
        raw.customer_id.take(),
        "customer_id",
        limits.max_customer_id_bytes,
    )?;
    let kind = required(raw.kind.clone(), "type")?;
    let timestamp = timestamp(&raw, limits.earliest_event_time)?;
    let body = body(raw, &kind, role)?;
    Ok(InputEvent {
        event_id,
        customer_id,
        timestamp,
        body,
    })
}

fn body<'a>(raw: RawEvent<'a>, kind: &str, role: TopicRole) -> Result<EventBody<'a>, EventError> {
    let unknown = || EventError::UnknownType {
        role,
        kind: kind.to_owned(),
    };
    Ok(match (role, kind) {
        (TopicRole::Clickstream, "page_view") => EventBody::PageView {
            url: required(raw.url, "url")?,
            referrer: raw.referrer,
            channel: raw.channel,
            device: raw.device,
        },
        (TopicRole::Clickstream, "session_start") => EventBody::SessionStart,
        (TopicRole::Clickstream, "session_end") => EventBody::SessionEnd,
        (TopicRole::Clickstream, "feature_used") => EventBody::FeatureUsed {
            feature: required(raw.feature, "feature")?,
        },
        (TopicRole::Clickstream, "search") => EventBody::Search {
            query: required(raw.query, "query")?,
        },
        (TopicRole::Clickstream, "signup") => EventBody::Signup,
        (TopicRole::Clickstream, "purchase" | "refund" | "survey_response") => {
            return Err(unknown())
        }
        (TopicRole::Clickstream, _) => {
            if !is_event_name(kind) {
                return Err(EventError::BadEventName(kind.to_owned()));
            }
            // `kind` borrows from `raw.kind`; take ownership of that field instead of copying.
            EventBody::Custom {
                name: raw.kind.unwrap_or_default(),
            }
        }
        (TopicRole::Purchases, "purchase") => {
            let items = raw
                .items
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, it)| item(i, it))
                .collect::<Result<Vec<_>, _>>()?;
            EventBody::Purchase {
                order_id: required(raw.order_id, "order_id")?,
                amount: amount(raw.amount, "amount")?,
                currency: currency(raw.currency)?,
                items,
            }
        }
        (TopicRole::Purchases, "refund") => EventBody::Refund {
            order_id: required(raw.order_id, "order_id")?,
            amount: amount(raw.amount, "amount")?,
            currency: currency(raw.currency)?,
        },
        (TopicRole::Surveys, "survey_response") => {
            let survey = SurveyKind::parse(required(raw.survey, "survey")?);
            let score = raw
                .score
                .ok_or(EventError::MissingField(Cow::Borrowed("score")))?;
            if !score.is_finite() {
                return Err(EventError::ScoreNotFinite(score));
            }
            if let Some((min, max)) = survey.range() {
                if score.fract() != 0.0 {
                    return Err(EventError::ScoreNotInteger {
                        survey: survey.name().into(),
                        score,
                    });
                }
                if score < min || score > max {
                    return Err(EventError::ScoreOutOfRange {
                        survey: survey.name().into(),
                        score,
                        min,
                        max,
                    });
                }
            }
            EventBody::SurveyResponse {
                survey,
                score,
                comment: raw.comment,
            }
        }
        _ => return Err(unknown()),
    })
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
