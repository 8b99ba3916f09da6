//! One `[[engine.funnels]]` entry compiled: its steps, deadlines in milliseconds and exclusion
//! events, checked. What an attempt does with them is `customer/funnel.rs`.

use crate::config::engine::{ms, FunnelConfig};
use pulse_events::time::Millis;
use std::sync::Arc;

/// One compiled step.
#[derive(Debug, Clone)]
pub(crate) struct StepSpec {
    pub event: String,
    /// Shared with every output that names the step.
    pub name: Arc<str>,
    pub optional: bool,
    pub within: Option<Millis>,
}

/// One compiled funnel.
#[derive(Debug, Clone)]
pub(crate) struct FunnelSpec {
    /// Shared with every output that names the funnel.
    pub name: Arc<str>,
    pub version: u32,
    pub window: Millis,
    pub steps: Vec<StepSpec>,
    pub exclude: Vec<String>,
}

impl FunnelSpec {
    /// Compiles one `[[engine.funnels]]` entry, reporting each problem under `key` (the
    /// entry's name in error messages); None if there was any.
    pub(crate) fn compile(
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
            name: f.name.as_str().into(),
            version: f.version,
            window: ms(f.window),
            steps: f
                .steps
                .iter()
                .map(|s| StepSpec {
                    event: s.event.clone(),
                    name: s.name.as_deref().unwrap_or(&s.event).into(),
                    optional: s.optional,
                    within: s.within.map(ms),
                })
                .collect(),
            exclude: f.exclude.clone(),
        })
    }
}
