//! The engine's section of the configuration, as written by operators. [`crate::EngineSpec`]
//! is its validated, compiled form.

use crate::config::analytics::{
    default_time_horizon, ChurnConfig, ClvConfig, RfmConfig, SegmentConfig, SurveyConfig,
};
use pulse_events::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A configured duration in milliseconds, saturating: the unit every compiled section
/// (the spec, funnels, segment rules) keeps time in.
pub(crate) fn ms(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// A duration written the human way (`90s`, `30m`, `7d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HumanDuration(#[serde(with = "humantime_serde")] pub Duration);

/// `[engine]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// How far behind the highest event time seen an event may arrive and still count.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Events further ahead of the worker's wall clock than this are rejected (dead-lettered
    /// `validation`); a bound no other record can raise, so one bad clock cannot make the
    /// records after it late.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// The earliest event time accepted (RFC 3339, or a date): older events are rejected as a
    /// producer's broken clock, unless history that old is replayed on purpose.
    #[serde(default = "default_earliest_event_time")]
    pub earliest_event_time: String,
    /// Inactivity gap that ends a session, in event time.
    #[serde(with = "humantime_serde")]
    pub session_gap: Duration,
    pub windows: WindowConfig,
    #[serde(default)]
    pub funnels: Vec<FunnelConfig>,
    /// After a customer's last event, how long time-driven changes (recency, P(alive),
    /// inactivity segments) are still re-evaluated.
    #[serde(default = "default_time_horizon", with = "humantime_serde")]
    pub time_horizon: Duration,
    /// Event time jumping further than this past a customer's pending recheck (or the RFM
    /// refresh) fires it once, at the last daily slot before the new time, instead of once per
    /// day skipped. 0 fires every day.
    #[serde(default = "default_max_recheck_gap", with = "humantime_serde")]
    pub max_recheck_gap: Duration,
    /// A customer with no event for this long (event time) is evicted: dropped from memory
    /// and tombstoned in the changelog, leaving every segment. 0 keeps customers for ever.
    /// At least `time_horizon`, so nothing time-driven is still to come for them.
    #[serde(default = "default_evict_after", with = "humantime_serde")]
    pub evict_after: Duration,
    /// How far after a cohort's first period retention is counted (`/v1/cohorts`' rows); 0
    /// counts every period for ever.
    #[serde(default = "default_cohort_retention", with = "humantime_serde")]
    pub cohort_retention: Duration,
    #[serde(default)]
    pub clv: ClvConfig,
    #[serde(default)]
    pub rfm: RfmConfig,
    #[serde(default)]
    pub churn: ChurnConfig,
    #[serde(default)]
    pub surveys: SurveyConfig,
    #[serde(default)]
    pub segments: Vec<SegmentConfig>,
}

fn default_cohort_retention() -> Duration {
    Duration::from_secs(730 * 86_400)
}

fn default_evict_after() -> Duration {
    Duration::from_secs(800 * 86_400)
}

fn default_max_recheck_gap() -> Duration {
    Duration::from_secs(7 * 86_400)
}

fn default_earliest_event_time() -> String {
    "2000-01-01T00:00:00Z".to_owned()
}

/// `[engine.windows]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Rolling windows over which every metric is kept.
    pub durations: Vec<HumanDuration>,
    /// Event types counted per window, besides the built-in `events`, `sessions`, `orders`
    /// and `revenue`.
    pub event_types: Vec<String>,
    /// Event types renamed since profiles were stored, new name = old name: their counts are
    /// kept under the new name.
    #[serde(default)]
    pub renamed_from: BTreeMap<String, String>,
}

/// `[[engine.funnels]]`: an ordered list of steps a customer goes through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelConfig {
    pub name: String,
    /// Bumped by the operator when the definition changes; carried in output events.
    #[serde(default = "one")]
    pub version: u32,
    /// Time from the step-1 event that opened an attempt to conversion.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub steps: Vec<StepConfig>,
    /// Event types that end an attempt as `excluded`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The funnel's name when profiles were stored, if it was renamed since: its attempts are
    /// kept under the new name.
    #[serde(default)]
    pub renamed_from: Option<String>,
}

fn one() -> u32 {
    1
}

/// One funnel step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// The event type that completes this step.
    pub event: String,
    /// Readable step name for outputs; defaults to the event type.
    #[serde(default)]
    pub name: Option<String>,
    /// An optional step may be skipped; the first and last steps cannot be optional.
    #[serde(default)]
    pub optional: bool,
    /// Deadline for this step, measured from the previous step reached.
    #[serde(default, with = "humantime_serde")]
    pub within: Option<Duration>,
}
