//! Builders shared by the engine's unit tests.

use crate::config::engine::{EngineConfig, FunnelConfig, HumanDuration, StepConfig, WindowConfig};
use crate::engine::Engine;
use crate::input::Source;
use crate::partition::Partition;
use pulse_events::time::Millis;
use pulse_events::{EventBody, InputEvent, OutputData, OutputEvent};
use std::sync::Arc;
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

pub fn partition(funnels: Vec<FunnelConfig>) -> Partition {
    Partition::new(Arc::new(
        Engine::compile(&config(funnels)).expect("valid test config"),
    ))
}

pub fn event(customer: &str, kind: &str, ts: Millis) -> InputEvent<'static> {
    let body = match kind {
        "signup" => EventBody::Signup,
        "session_start" => EventBody::SessionStart,
        "session_end" => EventBody::SessionEnd,
        "page_view" => EventBody::PageView {
            url: "/".into(),
            referrer: None,
            channel: None,
            device: None,
        },
        "feature_used" => EventBody::FeatureUsed {
            feature: "export".into(),
        },
        "purchase" => EventBody::Purchase {
            order_id: "o".into(),
            amount: 10.0,
            currency: "EUR".into(),
            items: vec![],
        },
        nps if nps.starts_with("nps_") => EventBody::SurveyResponse {
            survey: pulse_events::SurveyKind::Nps,
            score: nps[4..].parse().expect("nps_<score>"),
            comment: None,
        },
        other => EventBody::Custom {
            name: other.to_owned().into(),
        },
    };
    InputEvent {
        event_id: format!("{customer}-{kind}-{ts}").into(),
        customer_id: customer.to_owned().into(),
        timestamp: ts,
        body,
    }
}

/// The source of the `i`-th record of a test stream.
pub fn clickstream(offset: i64) -> Source<'static> {
    Source {
        role: pulse_events::TopicRole::Clickstream,
        forwarded: false,
        topic: "clickstream",
        partition: 0,
        offset,
    }
}

/// Feeds events (customer, type, time) in order, returning the outputs.
pub fn feed(p: &mut Partition, events: &[(&str, &str, Millis)]) -> Vec<OutputEvent> {
    let mut out = Vec::new();
    for (i, (c, k, t)) in events.iter().enumerate() {
        p.apply(&event(c, k, *t), &clickstream(i as i64), *t, &mut out)
            .expect("accepted");
    }
    out
}

/// Feeds events (customer, type, time) in order, returning the outputs rendered compactly.
pub fn run(p: &mut Partition, events: &[(&str, &str, Millis)]) -> Vec<String> {
    render(&feed(p, events))
}

pub fn render(out: &[OutputEvent]) -> Vec<String> {
    out.iter()
        .map(|o| {
            let detail = match &o.data {
                OutputData::Milestone {
                    funnel,
                    attempt,
                    step_index,
                    ..
                } => {
                    format!("{funnel}#{attempt} step {step_index}")
                }
                OutputData::Converted {
                    funnel, attempt, ..
                } => format!("{funnel}#{attempt}"),
                OutputData::ChurnRisk {
                    level,
                    previous_level,
                    ..
                } => format!("{previous_level}->{level}"),
                OutputData::Abandoned {
                    funnel,
                    attempt,
                    reason,
                    last_step_index,
                    ..
                } => {
                    format!("{funnel}#{attempt} {reason:?} after {last_step_index}")
                }
                OutputData::Segment { segment } => segment.clone(),
            };
            format!("{} {} {detail}", o.customer_id, o.kind)
        })
        .collect()
}
