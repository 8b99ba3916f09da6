//! Output events: what product teams and in-app messaging systems consume.

use crate::hash::IdHasher;
use crate::output_id::OutputId;
use crate::time::{rfc3339, Millis};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// The output event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OutputKind {
    #[serde(rename = "segment.entered")]
    SegmentEntered,
    #[serde(rename = "segment.exited")]
    SegmentExited,
    #[serde(rename = "churn_risk.changed")]
    ChurnRiskChanged,
    #[serde(rename = "milestone.reached")]
    MilestoneReached,
    #[serde(rename = "funnel.converted")]
    FunnelConverted,
    #[serde(rename = "funnel.abandoned")]
    FunnelAbandoned,
}

/// The output topics, by what they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputTopic {
    Segments,
    ChurnRisk,
    Milestones,
}

impl OutputKind {
    pub const ALL: [OutputKind; 6] = [
        Self::SegmentEntered,
        Self::SegmentExited,
        Self::ChurnRiskChanged,
        Self::MilestoneReached,
        Self::FunnelConverted,
        Self::FunnelAbandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SegmentEntered => "segment.entered",
            Self::SegmentExited => "segment.exited",
            Self::ChurnRiskChanged => "churn_risk.changed",
            Self::MilestoneReached => "milestone.reached",
            Self::FunnelConverted => "funnel.converted",
            Self::FunnelAbandoned => "funnel.abandoned",
        }
    }

    pub fn topic(self) -> OutputTopic {
        match self {
            Self::SegmentEntered | Self::SegmentExited => OutputTopic::Segments,
            Self::ChurnRiskChanged => OutputTopic::ChurnRisk,
            Self::MilestoneReached | Self::FunnelConverted | Self::FunnelAbandoned => {
                OutputTopic::Milestones
            }
        }
    }
}

impl fmt::Display for OutputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What caused an output: an input record, or a timer firing as the watermark passed it. The
/// strings are shared: the outputs of one record share its id, and every output of a topic
/// shares its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    Event {
        event_id: Arc<str>,
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
    Timer {
        #[serde(with = "rfc3339")]
        due: Millis,
    },
}

impl Cause {
    /// Feeds what identifies the cause into an output event id.
    fn hash_into(&self, h: IdHasher) -> IdHasher {
        match self {
            Self::Event {
                topic,
                partition,
                offset,
                ..
            } => h
                .part(topic.as_bytes())
                .int(i64::from(*partition))
                .int(*offset),
            Self::Timer { due } => h.part(b"timer").int(*due),
        }
    }
}

/// Why a funnel attempt ended without converting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbandonReason {
    /// The conversion window or a step deadline passed (fired by a timer).
    Expired,
    /// An exclusion event ended the attempt.
    Excluded,
}

impl AbandonReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Excluded => "excluded",
        }
    }
}

/// The kind-specific part of an output event. Names of rules, funnels and steps are the
/// configuration's, shared (`Arc<str>`); levels and driver names are static.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OutputData {
    /// `milestone.reached`: a funnel step was reached.
    Milestone {
        funnel: Arc<str>,
        attempt: u32,
        /// 1-based index of the step reached.
        step_index: u32,
        step: Arc<str>,
        steps_total: u32,
        /// Milliseconds since the step-1 event that opened the attempt.
        since_entry_ms: i64,
    },
    /// `funnel.abandoned`.
    Abandoned {
        funnel: Arc<str>,
        attempt: u32,
        reason: AbandonReason,
        /// 1-based index of the last step reached.
        last_step_index: u32,
        since_entry_ms: i64,
    },
    /// `funnel.converted`.
    Converted {
        funnel: Arc<str>,
        attempt: u32,
        duration_ms: i64,
    },
    /// `segment.entered` / `segment.exited`.
    Segment { segment: Arc<str> },
    /// `churn_risk.changed`: the new level, the one before, the score and the drivers that
    /// contribute most, largest first.
    ChurnRisk {
        level: Cow<'static, str>,
        previous_level: Cow<'static, str>,
        score: f64,
        drivers: Vec<Driver>,
    },
}

impl OutputData {
    /// The rule instance an output's id is built from: the funnel with its attempt and step,
    /// the segment, or churn risk with the level reached. With the kind, the customer and the
    /// cause it determines the id, so a consumer (or a test) can recompute it from content.
    pub fn rule(&self) -> (&str, Vec<i64>) {
        match self {
            Self::Milestone {
                funnel,
                attempt,
                step_index,
                ..
            } => (funnel, vec![i64::from(*attempt), i64::from(*step_index)]),
            Self::Converted {
                funnel, attempt, ..
            }
            | Self::Abandoned {
                funnel, attempt, ..
            } => (funnel, vec![i64::from(*attempt), 0]),
            Self::Segment { segment } => (segment, vec![]),
            Self::ChurnRisk { level, .. } => {
                let l = ["low", "medium", "high"]
                    .iter()
                    .position(|x| x == level)
                    .map_or(-1, |l| l as i64);
                ("churn_risk", vec![l])
            }
        }
    }
}

/// One churn-risk driver and its contribution to the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Driver {
    pub name: Cow<'static, str>,
    pub value: f64,
    pub contribution: f64,
}

/// A small excerpt of the customer's profile so a consumer can act without a lookup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileExcerpt {
    #[serde(with = "rfc3339")]
    pub first_seen: Millis,
    #[serde(with = "rfc3339")]
    pub last_seen: Millis,
    pub events_total: u64,
    pub sessions_total: u32,
    pub orders_total: u32,
    pub revenue_total: f64,
    /// BG/NBD frequency: repeat purchase days.
    pub frequency: u32,
    /// RFM segment (`champions`, `at_risk`, …), absent before the customer has RFM scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfm_segment: Option<Cow<'static, str>>,
    /// Churn risk level: `low`, `medium` or `high`.
    #[serde(default)]
    pub churn_level: Cow<'static, str>,
    #[serde(default)]
    pub p_alive: f64,
}

/// One output event, keyed by customer id on its topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputEvent {
    pub event_id: OutputId,
    #[serde(rename = "type")]
    pub kind: OutputKind,
    pub customer_id: String,
    /// Event time of the cause.
    #[serde(with = "rfc3339")]
    pub at: Millis,
    pub cause: Cause,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_version: Option<u32>,
    pub data: OutputData,
    pub profile: ProfileExcerpt,
}

impl OutputEvent {
    /// Builds an output event with its deterministic id. `rule` names the rule instance that
    /// produced it: the rule's name, then numbers such as the funnel attempt and step.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: OutputKind,
        customer_id: &str,
        rule: (&str, &[i64]),
        at: Millis,
        cause: Cause,
        rule_version: Option<u32>,
        data: OutputData,
        profile: ProfileExcerpt,
    ) -> Self {
        let h = IdHasher::default()
            .part(customer_id.as_bytes())
            .part(kind.as_str().as_bytes())
            .part(rule.0.as_bytes());
        let h = rule.1.iter().fold(h, |h, n| h.int(*n));
        let event_id = cause.hash_into(h).finish_id();
        Self {
            event_id,
            kind,
            customer_id: customer_id.to_owned(),
            at,
            cause,
            rule_version,
            data,
            profile,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data into memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// MessagePack with field names, so consumers need no schema to read it.
    pub fn to_msgpack(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    pub fn encode(&self, encoding: crate::Encoding) -> Vec<u8> {
        match encoding {
            crate::Encoding::Json => self.to_json(),
            crate::Encoding::Msgpack => self.to_msgpack(),
        }
    }

    pub fn decode(bytes: &[u8], encoding: crate::Encoding) -> Result<Self, String> {
        match encoding {
            crate::Encoding::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            crate::Encoding::Msgpack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }
}
