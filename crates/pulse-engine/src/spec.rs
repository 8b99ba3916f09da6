//! The validated, compiled engine configuration: durations in milliseconds, metric indices
//! resolved, funnels checked. Compiling reports every problem at once, each naming its key.
//!
//! The segment rules are not here: they compile against this spec (a rule names its metrics,
//! windows and funnels), so they sit above it, in [`crate::engine::Engine`]. Everything a
//! customer's state and the read model need is in the spec alone.

pub mod funnel;
pub mod layout;

use crate::config::engine::{ms, EngineConfig};
use crate::models::churn::ChurnSpec;
use crate::models::clv::ClvSpec;
use funnel::FunnelSpec;
use layout::{Layout, Renames};
use pulse_events::time::{Millis, DAY};
use std::fmt;

/// A built-in or configured per-window metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    Events,
    Sessions,
    Orders,
    /// Gross purchase amount, kept in cents.
    Revenue,
    EventType(String),
}

impl Metric {
    pub fn name(&self) -> &str {
        match self {
            Self::Events => "events",
            Self::Sessions => "sessions",
            Self::Orders => "orders",
            Self::Revenue => "revenue",
            Self::EventType(t) => t,
        }
    }
}

/// Index of each built-in metric in a bucket.
pub(crate) const M_EVENTS: usize = 0;
pub(crate) const M_SESSIONS: usize = 1;
pub(crate) const M_ORDERS: usize = 2;
pub(crate) const M_REVENUE: usize = 3;
pub(crate) const BUILTIN_METRICS: usize = 4;

/// A configuration problem: the key it concerns and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for SpecError {}

/// The compiled engine configuration shared by every partition.
#[derive(Debug, Clone)]
pub struct EngineSpec {
    pub allowed_lateness: Millis,
    pub max_future_skew: Millis,
    /// Events before this are rejected (`engine.earliest_event_time`).
    pub earliest_event_time: Millis,
    /// How far event time may jump past a pending recheck before the days between are
    /// skipped (`engine.max_recheck_gap`; 0: never).
    pub max_recheck_gap: Millis,
    pub session_gap: Millis,
    /// Window lengths, ascending.
    pub windows: Vec<Millis>,
    pub metrics: Vec<Metric>,
    /// The longest window: buckets older than this (plus one coarse bucket) are dropped.
    pub(crate) retention: Millis,
    pub(crate) funnels: Vec<FunnelSpec>,
    /// How long after a customer's last event time-driven changes are re-evaluated.
    pub(crate) time_horizon: Millis,
    /// Inactivity after which a customer is evicted (`engine.evict_after`); 0: never.
    pub(crate) evict_after: Millis,
    /// `engine.cohort_retention` in days; 0: unbounded.
    pub(crate) cohort_retention_days: i64,
    pub(crate) clv: ClvSpec,
    pub(crate) churn: ChurnSpec,
    pub(crate) rfm_lookback_days: i64,
    /// RFM refresh interval; 0 turns refreshing off.
    pub(crate) rfm_refresh: Millis,
    pub(crate) survey_window_days: i64,
    /// What a profile's positions name under this configuration (the `spec::layout` module).
    pub layout: Layout,
    /// Entries the configuration says were renamed, to carry profiles over by their old names.
    pub renames: Renames,
}

impl EngineSpec {
    /// Days in the rolling window of population NPS and CSAT.
    pub fn survey_window_days(&self) -> i64 {
        self.survey_window_days
    }

    /// The configured funnels by name, each with its step names in order.
    pub fn funnel_steps(&self) -> Vec<(&str, Vec<&str>)> {
        self.funnels
            .iter()
            .map(|f| {
                let steps = f.steps.iter().map(|s| &*s.name).collect();
                (&*f.name, steps)
            })
            .collect()
    }

    /// `engine.evict_after`; zero: customers are never evicted.
    pub fn evict_after(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.evict_after.max(0) as u64)
    }

    /// The configured segment names, by rule index (a membership's bit): the layout's.
    pub fn segment_names(&self) -> impl Iterator<Item = &str> {
        self.layout.segments.iter().map(String::as_str)
    }

    pub fn compile(cfg: &EngineConfig) -> Result<Self, Vec<SpecError>> {
        let mut errors = Vec::new();
        let mut err = |key: String, message: &str| {
            errors.push(SpecError {
                key,
                message: message.to_owned(),
            });
        };
        if cfg.session_gap.is_zero() {
            err("engine.session_gap".into(), "must be greater than zero");
        }
        if cfg.max_future_skew.is_zero() {
            err("engine.max_future_skew".into(), "must be greater than zero");
        }
        let earliest = parse_time_or_date(&cfg.earliest_event_time);
        if earliest.is_none() {
            err(
                "engine.earliest_event_time".into(),
                &format!(
                    "`{}` is not an RFC 3339 time or a date such as 1997-01-01",
                    cfg.earliest_event_time
                ),
            );
        }
        let mut windows: Vec<Millis> = cfg.windows.durations.iter().map(|d| ms(d.0)).collect();
        windows.sort_unstable();
        windows.dedup();
        if windows.is_empty() {
            err(
                "engine.windows.durations".into(),
                "needs at least one window",
            );
        }
        if windows.first().is_some_and(|w| *w < 5 * 60_000) {
            err(
                "engine.windows.durations".into(),
                "windows must be at least 5m (the finest bucket)",
            );
        }
        if windows.last().is_some_and(|w| *w > 400 * 86_400_000) {
            err(
                "engine.windows.durations".into(),
                "windows longer than 400d are not supported",
            );
        }
        let mut metrics = vec![
            Metric::Events,
            Metric::Sessions,
            Metric::Orders,
            Metric::Revenue,
        ];
        for (i, t) in cfg.windows.event_types.iter().enumerate() {
            if t.is_empty() {
                err(
                    format!("engine.windows.event_types[{i}]"),
                    "must not be empty",
                );
            } else if metrics.iter().any(|m| m.name() == t) {
                err(
                    format!("engine.windows.event_types[{i}]"),
                    "is listed twice",
                );
            } else {
                metrics.push(Metric::EventType(t.clone()));
            }
        }
        let mut funnels = Vec::new();
        for (i, f) in cfg.funnels.iter().enumerate() {
            let key = if f.name.is_empty() {
                format!("engine.funnels[{i}]")
            } else {
                format!("engine.funnels[{i}] ({})", f.name)
            };
            if let Some(spec) = FunnelSpec::compile(f, &key, &mut err) {
                if funnels.iter().any(|g: &FunnelSpec| g.name == spec.name) {
                    err(format!("{key}.name"), "another funnel has the same name");
                }
                funnels.push(spec);
            }
        }
        if !cfg.cohort_retention.is_zero()
            && cfg.cohort_retention < std::time::Duration::from_secs(31 * 86_400)
        {
            err(
                "engine.cohort_retention".into(),
                "must be 0s (unbounded) or at least 31d (a month's row)",
            );
        }
        if !cfg.evict_after.is_zero() && cfg.evict_after < cfg.time_horizon {
            err(
                "engine.evict_after".into(),
                &format!(
                    "must be 0s (never) or at least engine.time_horizon ({}): a customer is \
                     rechecked until then",
                    humantime::format_duration(cfg.time_horizon)
                ),
            );
        }
        check_renames(cfg, &mut err);
        check_analytics(cfg, &mut err);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut spec = Self {
            allowed_lateness: ms(cfg.allowed_lateness),
            max_future_skew: ms(cfg.max_future_skew),
            earliest_event_time: earliest.unwrap_or(pulse_events::time::MIN_EVENT_TIME),
            max_recheck_gap: ms(cfg.max_recheck_gap),
            session_gap: ms(cfg.session_gap),
            retention: windows.last().copied().unwrap_or(0),
            windows,
            metrics,
            funnels,
            time_horizon: ms(cfg.time_horizon),
            evict_after: ms(cfg.evict_after),
            cohort_retention_days: ms(cfg.cohort_retention) / DAY,
            clv: ClvSpec::new(&cfg.clv),
            churn: ChurnSpec::new(&cfg.churn),
            rfm_lookback_days: (ms(cfg.rfm.lookback) / DAY).max(1),
            rfm_refresh: ms(cfg.rfm.refresh),
            survey_window_days: (ms(cfg.surveys.window) / DAY).max(1),
            layout: Layout {
                metrics: Vec::new(),
                funnels: Vec::new(),
                segments: Vec::new(),
            },
            renames: renames(cfg),
        };
        spec.layout = Layout {
            metrics: spec.metrics.iter().map(|m| m.name().to_owned()).collect(),
            funnels: spec
                .funnels
                .iter()
                .map(|f| {
                    (
                        f.name.to_string(),
                        u8::try_from(f.steps.len()).unwrap_or(u8::MAX),
                    )
                })
                .collect(),
            // The rules compiled from these (crate::engine) keep their names and order, and a
            // configuration with a rule that does not compile is refused whole.
            segments: cfg.segments.iter().map(|s| s.name.clone()).collect(),
        };
        Ok(spec)
    }

    /// Index of a metric in a bucket, for reading windows.
    pub fn metric_index(&self, name: &str) -> Option<usize> {
        self.metrics.iter().position(|m| m.name() == name)
    }
}

/// The `renamed_from` of the windows' event types, the funnels and the segments.
fn renames(cfg: &EngineConfig) -> Renames {
    let pairs =
        |it: &mut dyn Iterator<Item = (&String, &Option<String>)>| -> Vec<(String, String)> {
            it.filter_map(|(n, from)| Some((n.clone(), from.clone()?)))
                .collect()
        };
    Renames {
        metrics: cfg
            .windows
            .renamed_from
            .iter()
            .map(|(n, from)| (n.clone(), from.clone()))
            .collect(),
        funnels: pairs(&mut cfg.funnels.iter().map(|f| (&f.name, &f.renamed_from))),
        segments: pairs(&mut cfg.segments.iter().map(|s| (&s.name, &s.renamed_from))),
    }
}

/// A rename names an entry that is configured under its new name, and an old name that no
/// configured entry still has (it would keep its state under that name instead).
fn check_renames(cfg: &EngineConfig, err: &mut impl FnMut(String, &str)) {
    let types = &cfg.windows.event_types;
    for (to, from) in &cfg.windows.renamed_from {
        let key = format!("engine.windows.renamed_from.{to}");
        if !types.contains(to) {
            err(
                key,
                "renames an event type that engine.windows.event_types does not list",
            );
        } else if types.contains(from) {
            err(key, "names an event type that is still listed");
        } else if cfg
            .windows
            .renamed_from
            .values()
            .filter(|f| *f == from)
            .count()
            > 1
        {
            err(key, "names an event type another entry is renamed from too");
        }
    }
    let funnels: Vec<(&str, Option<&String>)> = cfg
        .funnels
        .iter()
        .map(|f| (f.name.as_str(), f.renamed_from.as_ref()))
        .collect();
    check_renamed("engine.funnels", "funnel", &funnels, err);
    let segments: Vec<(&str, Option<&String>)> = cfg
        .segments
        .iter()
        .map(|s| (s.name.as_str(), s.renamed_from.as_ref()))
        .collect();
    check_renamed("engine.segments", "segment", &segments, err);
}

/// The `renamed_from` of a list's entries (name, previous name): each must name an entry no
/// longer configured, and no other entry's previous name.
fn check_renamed(
    section: &str,
    kind: &str,
    entries: &[(&str, Option<&String>)],
    err: &mut impl FnMut(String, &str),
) {
    for (i, (name, from)) in entries.iter().enumerate() {
        let Some(from) = from else { continue };
        let key = format!("{section}[{i}] ({name}).renamed_from");
        if entries.iter().any(|(n, _)| n == from) {
            err(key, &format!("names a {kind} that is still configured"));
        } else if entries.iter().filter(|(_, f)| *f == Some(*from)).count() > 1 {
            err(
                key,
                &format!("names a {kind} another one is renamed from too"),
            );
        }
    }
}

/// Range checks of the analytics sections.
fn check_analytics(cfg: &EngineConfig, err: &mut impl FnMut(String, &str)) {
    let c = &cfg.clv;
    for (k, v) in [
        ("r", c.r),
        ("alpha", c.alpha),
        ("a", c.a),
        ("b", c.b),
        ("p", c.p),
        ("v", c.v),
    ] {
        if !(v.is_finite() && v > 0.0) {
            err(format!("engine.clv.{k}"), "must be a positive number");
        }
    }
    if !(c.q.is_finite() && c.q > 1.0) {
        err(
            "engine.clv.q".into(),
            "must be greater than 1 (the mean spend is p·v/(q−1))",
        );
    }
    if !(c.monthly_discount.is_finite() && c.monthly_discount >= 0.0) {
        err(
            "engine.clv.monthly_discount".into(),
            "must be a non-negative number",
        );
    }
    if c.horizon_months == 0 || c.horizon_months > 120 {
        err(
            "engine.clv.horizon_months".into(),
            "must be between 1 and 120",
        );
    }
    let ch = &cfg.churn;
    let w = &ch.weights;
    for (k, v) in [
        ("p_dead", w.p_dead),
        ("engagement_drop", w.engagement_drop),
        ("inactivity", w.inactivity),
        ("detractor", w.detractor),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            err(
                format!("engine.churn.weights.{k}"),
                "must be a non-negative number",
            );
        }
    }
    if !(0.0 < ch.medium && ch.medium < ch.high && ch.high <= 1.0) {
        err(
            "engine.churn".into(),
            "thresholds must satisfy 0 < medium < high <= 1",
        );
    }
    if !(0.0..ch.medium).contains(&ch.hysteresis) {
        err(
            "engine.churn.hysteresis".into(),
            "must be at least 0 and below the medium threshold",
        );
    }
    if !(ch.inactivity_saturation.is_finite() && ch.inactivity_saturation >= 1.0) {
        err(
            "engine.churn.inactivity_saturation".into(),
            "must be at least 1",
        );
    }
    if cfg.rfm.lookback < std::time::Duration::from_secs(86_400) {
        err("engine.rfm.lookback".into(), "must be at least 1d");
    }
}

/// An RFC 3339 time, or a date (its midnight UTC).
fn parse_time_or_date(s: &str) -> Option<Millis> {
    pulse_events::time::parse_rfc3339(s)
        .or_else(|| pulse_events::time::parse_rfc3339(&format!("{s}T00:00:00Z")))
}
