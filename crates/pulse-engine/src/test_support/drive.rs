//! Driving a partition in the engine's unit tests: one built from a test configuration, events
//! by customer, type and time, fed in order, and their outputs rendered compactly.

use super::build::config;
use crate::config::engine::FunnelConfig;
use crate::engine::Engine;
use crate::input::Source;
use crate::partition::Partition;
use pulse_events::time::Millis;
use pulse_events::{EventBody, InputEvent, OutputData, OutputEvent};
use std::sync::Arc;

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
                OutputData::Segment { segment } => segment.to_string(),
            };
            format!("{} {} {detail}", o.customer_id, o.kind)
        })
        .collect()
}
