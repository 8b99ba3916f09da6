//! Gauges the worker sets once a second from its shared state: customers, timers, readiness,
//! populations by segment, churn level and RFM segment, population survey scores, and the
//! exact latency quantiles of the interval just ended. Reading the state takes each
//! partition's lock only to copy a few counters.

use crate::state::StateRegistry;
use pulse_engine::{ChurnLevel, EngineSpec, RfmSegment};
use pulse_events::{AbandonReason, ErrorKind, OutputKind, TopicRole};
use pulse_telemetry::{Health, Metrics};

/// Creates every bounded label combination at zero when the worker starts. A series that
/// does not exist yet reads as "no data" rather than 0, which hides the first occurrence
/// from `rate()` and from alert rules.
pub(crate) fn zero_labels(m: &Metrics, spec: &EngineSpec) {
    for role in TopicRole::ALL {
        m.input_records.with_label_values(&[role.as_str()]);
    }
    m.input_records.with_label_values(&["repartition"]);
    for kind in ErrorKind::ALL {
        m.dead_letters.with_label_values(&[kind.as_str()]);
    }
    for kind in OutputKind::ALL {
        m.output_events.with_label_values(&[kind.as_str()]);
    }
    for topic in crate::outbox::LABELS {
        m.produce_errors.with_label_values(&[topic]);
    }
    for result in ["ok", "error"] {
        m.commits.with_label_values(&[result]);
    }
    for name in spec.segment_names() {
        for direction in ["entered", "exited"] {
            m.segment_transitions.with_label_values(&[name, direction]);
        }
    }
    for (funnel, steps) in spec.funnel_steps() {
        for step in steps {
            m.funnel_steps.with_label_values(&[funnel, step]);
        }
        m.funnel_conversions.with_label_values(&[funnel]);
        for reason in [AbandonReason::Expired, AbandonReason::Excluded] {
            m.funnel_abandonments
                .with_label_values(&[funnel, reason.as_str()]);
        }
    }
}

/// How many one-second ticks make a latency interval.
pub(crate) const LATENCY_INTERVAL_TICKS: u64 = 10;

pub(crate) fn refresh(
    m: &Metrics,
    state: &StateRegistry,
    health: &Health,
    spec: &EngineSpec,
    tick: u64,
) {
    m.customers.set(state.customers() as i64);
    m.timers_pending.set(state.pending_timers() as i64);
    m.ready.set(i64::from(health.is_ready()));

    let tally = state.tally();
    for (name, n) in spec.segment_names().zip(&tally.segments) {
        m.segment_members.with_label_values(&[name]).set(*n as i64);
    }
    for (level, n) in [ChurnLevel::Low, ChurnLevel::Medium, ChurnLevel::High]
        .iter()
        .zip(tally.churn)
    {
        m.churn_risk_customers
            .with_label_values(&[level.as_str()])
            .set(n as i64);
    }
    for (segment, n) in RfmSegment::ALL.iter().zip(tally.rfm) {
        m.rfm_segment_customers
            .with_label_values(&[segment.as_str()])
            .set(n as i64);
    }

    let scores = state.survey_scores();
    let nps_answers = scores.promoters + scores.passives + scores.detractors;
    for (survey, score, answers) in [
        ("nps", scores.nps(), nps_answers),
        ("csat", scores.csat(), scores.csat_answers),
    ] {
        m.survey_answers
            .with_label_values(&[survey])
            .set(answers as i64);
        match score {
            Some(v) => m.survey_score.with_label_values(&[survey]).set(v),
            // No answer in the window: no score, rather than a misleading zero.
            None => {
                let _ = m.survey_score.remove_label_values(&[survey]);
            }
        }
    }

    if tick % LATENCY_INTERVAL_TICKS == 0 {
        m.latency.rotate();
    }
}
