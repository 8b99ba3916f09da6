//! Configurations for the engine's unit tests: the test configuration, funnels and their steps,
//! and the instants tests use. Apart from the partition drivers ([`super::drive`]) because
//! tests of a customer's state (windows) use them too, and those sit below the partition.

use crate::config::engine::{EngineConfig, FunnelConfig, HumanDuration, StepConfig, WindowConfig};
use pulse_events::time::Millis;
use std::time::Duration;

pub const T0: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z
pub const MIN: Millis = 60_000;
pub const HOUR: Millis = 60 * MIN;
pub const DAY: Millis = 24 * HOUR;

pub fn step(event: &str) -> StepConfig {
    StepConfig {
        event: event.into(),
        name: None,
        optional: false,
        within: None,
    }
}

pub fn funnel(name: &str, window: Duration, steps: Vec<StepConfig>) -> FunnelConfig {
    FunnelConfig {
        name: name.into(),
        version: 1,
        window,
        steps,
        exclude: vec![],
        renamed_from: None,
    }
}

pub fn config(funnels: Vec<FunnelConfig>) -> EngineConfig {
    let d = |s: u64| HumanDuration(Duration::from_secs(s));
    EngineConfig {
        allowed_lateness: Duration::from_secs(600),
        max_future_skew: Duration::from_secs(86_400),
        earliest_event_time: "2000-01-01T00:00:00Z".into(),
        session_gap: Duration::from_secs(1800),
        windows: WindowConfig {
            durations: vec![
                d(3600),
                d(86_400),
                d(7 * 86_400),
                d(30 * 86_400),
                d(90 * 86_400),
            ],
            event_types: vec!["page_view".into(), "feature_used".into()],
            renamed_from: Default::default(),
        },
        funnels,
        time_horizon: Duration::from_secs(400 * 86_400),
        max_recheck_gap: Duration::from_secs(7 * 86_400),
        evict_after: Duration::ZERO,
        cohort_retention: Duration::ZERO,
        clv: Default::default(),
        rfm: Default::default(),
        churn: Default::default(),
        surveys: Default::default(),
        segments: vec![],
    }
}
