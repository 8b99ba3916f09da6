//! The analytics sections of `[engine]` as operators write them: lifetime-value model
//! parameters, RFM, churn risk, surveys and segments. Every section has a documented default
//! (config/default.toml), so a configuration that leaves one out still runs.

use serde::{Deserialize, Serialize};
use std::time::Duration;

const DAY: u64 = 86_400;

/// `[engine.clv]`: BG/NBD and Gamma-Gamma parameters with time in days (`pulse fit` writes
/// this section), and how predicted lifetime value is discounted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClvConfig {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    pub p: f64,
    pub q: f64,
    pub v: f64,
    /// Months of future purchases counted in predicted CLV.
    pub horizon_months: u32,
    /// Discount rate per month applied to predicted CLV.
    pub monthly_discount: f64,
}

impl ClvConfig {
    /// Fader, Hardie & Lee's estimates on the CDNOW sample (2,357 customers, 1997-98), with α
    /// converted from the paper's weeks to days; the models (`BgNbd::CDNOW`) and the demo's
    /// generator take theirs from here.
    pub const CDNOW: Self = Self {
        r: 0.243,
        alpha: 4.414 * 7.0,
        a: 0.793,
        b: 2.426,
        p: 6.25,
        q: 3.74,
        v: 15.44,
        horizon_months: 12,
        monthly_discount: 0.01,
    };
}

impl Default for ClvConfig {
    fn default() -> Self {
        Self::CDNOW
    }
}

/// `[engine.rfm]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RfmConfig {
    /// Purchases older than this count for neither F nor M.
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
    /// How often (event time) the quintile cut-points are recomputed from the population.
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
}

impl Default for RfmConfig {
    fn default() -> Self {
        Self {
            lookback: Duration::from_secs(365 * DAY),
            refresh: Duration::from_secs(DAY),
        }
    }
}

/// `[engine.churn]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnConfig {
    pub weights: ChurnWeights,
    /// Score at which the level rises to medium, and to high.
    pub medium: f64,
    pub high: f64,
    /// A level falls only once the score is this far below the threshold that raised it.
    pub hysteresis: f64,
    /// How long a detractor answer counts toward churn risk.
    #[serde(with = "humantime_serde")]
    pub detractor_window: Duration,
    /// Inactivity counts fully once it reaches this many of the customer's usual gaps
    /// between active days.
    pub inactivity_saturation: f64,
}

/// `[engine.churn.weights]`: how much each driver contributes. Drivers that do not apply to a
/// customer (P(alive) before a first purchase) are left out and the rest re-weighted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnWeights {
    pub p_dead: f64,
    pub engagement_drop: f64,
    pub inactivity: f64,
    pub detractor: f64,
}

impl Default for ChurnWeights {
    fn default() -> Self {
        Self {
            p_dead: 0.35,
            engagement_drop: 0.2,
            inactivity: 0.3,
            detractor: 0.15,
        }
    }
}

impl Default for ChurnConfig {
    fn default() -> Self {
        Self {
            weights: ChurnWeights::default(),
            medium: 0.4,
            high: 0.7,
            hysteresis: 0.05,
            detractor_window: Duration::from_secs(90 * DAY),
            inactivity_saturation: 4.0,
        }
    }
}

/// `[engine.surveys]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SurveyConfig {
    /// The rolling window of the population NPS and CSAT.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for SurveyConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(30 * DAY),
        }
    }
}

/// `[[engine.segments]]`: a named CEL rule over the profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentConfig {
    pub name: String,
    /// Bumped by the operator when the rule changes; carried in output events.
    #[serde(default = "one")]
    pub version: u32,
    /// A CEL expression over the profile's fields (docs/segments.md) that yields a bool.
    pub rule: String,
    /// Once entered, a customer stays in the segment at least this long.
    #[serde(default, with = "humantime_serde")]
    pub min_dwell: Option<Duration>,
    /// After an entry, no new entry into this segment for this long.
    #[serde(default, with = "humantime_serde")]
    pub cooldown: Option<Duration>,
    /// The segment's name when profiles were stored, if it was renamed since: memberships
    /// are kept under the new name.
    #[serde(default)]
    pub renamed_from: Option<String>,
}

fn one() -> u32 {
    1
}

/// How long after a customer's last event time-driven changes (recency, P(alive), inactivity
/// segments) are still re-evaluated.
pub(crate) fn default_time_horizon() -> Duration {
    Duration::from_secs(400 * DAY)
}
