//! The validated, compiled engine configuration: durations in milliseconds, metric indices
//! resolved, funnels checked. Compiling reports every problem at once, each naming its key.

use crate::config::{EngineConfig, FunnelConfig};
use crate::Millis;
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

#[derive(Debug, Clone)]
pub(crate) struct StepSpec {
    pub event: String,
    pub name: String,
    pub optional: bool,
    pub within: Option<Millis>,
}

#[derive(Debug, Clone)]
pub(crate) struct FunnelSpec {
    pub name: String,
    pub version: u32,
    pub window: Millis,
    pub steps: Vec<StepSpec>,
    pub exclude: Vec<String>,
}

/// The compiled engine configuration shared by every partition.
#[derive(Debug, Clone)]
pub struct EngineSpec {
    pub allowed_lateness: Millis,
    pub max_future_skew: Millis,
    pub session_gap: Millis,
    /// Window lengths, ascending.
    pub windows: Vec<Millis>,
    pub metrics: Vec<Metric>,
    /// The longest window: buckets older than this (plus one coarse bucket) are dropped.
    pub(crate) retention: Millis,
    pub(crate) funnels: Vec<FunnelSpec>,
}

fn ms(d: std::time::Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

impl EngineSpec {
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
            if let Some(spec) = compile_funnel(f, &key, &mut err) {
                if funnels.iter().any(|g: &FunnelSpec| g.name == spec.name) {
                    err(format!("{key}.name"), "another funnel has the same name");
                }
                funnels.push(spec);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            allowed_lateness: ms(cfg.allowed_lateness),
            max_future_skew: ms(cfg.max_future_skew),
            session_gap: ms(cfg.session_gap),
            retention: windows.last().copied().unwrap_or(0),
            windows,
            metrics,
            funnels,
        })
    }

    /// Index of a metric in a bucket, for reading windows.
    pub fn metric_index(&self, name: &str) -> Option<usize> {
        self.metrics.iter().position(|m| m.name() == name)
    }
}

fn compile_funnel(
    f: &FunnelConfig,
    key: &str,
    err: &mut impl FnMut(String, &str),
) -> Option<FunnelSpec> {
    let mut ok = true;
    let mut bad = |k: String, m: &str| {
        ok = false;
        err(k, m);
    };
    if f.name.is_empty() {
        bad(format!("{key}.name"), "must not be empty");
    }
    if f.window.is_zero() {
        bad(format!("{key}.window"), "must be greater than zero");
    }
    if f.steps.is_empty() {
        bad(format!("{key}.steps"), "needs at least one step");
    }
    if f.steps.len() > 32 {
        bad(format!("{key}.steps"), "at most 32 steps are supported");
    }
    let last = f.steps.len().saturating_sub(1);
    for (j, s) in f.steps.iter().enumerate() {
        if s.event.is_empty() {
            bad(format!("{key}.steps[{j}].event"), "must not be empty");
        }
        if s.optional && (j == 0 || j == last) {
            bad(
                format!("{key}.steps[{j}].optional"),
                "the first and last steps cannot be optional",
            );
        }
        if j == 0 && s.within.is_some() {
            bad(
                format!("{key}.steps[0].within"),
                "the first step opens the attempt and has no deadline",
            );
        }
        if f.exclude.contains(&s.event) {
            bad(
                format!("{key}.exclude"),
                "an exclusion event cannot also be a step",
            );
        }
    }
    if !ok {
        return None;
    }
    Some(FunnelSpec {
        name: f.name.clone(),
        version: f.version,
        window: ms(f.window),
        steps: f
            .steps
            .iter()
            .map(|s| crate::spec::StepSpec {
                event: s.event.clone(),
                name: s.name.clone().unwrap_or_else(|| s.event.clone()),
                optional: s.optional,
                within: s.within.map(ms),
            })
            .collect(),
        exclude: f.exclude.clone(),
    })
}
