//! Turning a changed profile into churn-risk and segment outputs.
//!
//! [`evaluate`] runs after every applied event, on the customer's recheck timer, and on an RFM
//! refresh, each time with the sources that fired, so only churn and the rules that can have
//! changed are looked at. It returns when the customer next needs a time-driven recheck.

use crate::customer::profile::{Profile, RecordChange};
use crate::models::churn::Level;
use crate::models::rfm::Rfm;
use crate::population::Population;
use crate::read::fields::source::{self, ACTIVITY, NEW_DAY, PURCHASE, SURVEY, TIME};
use crate::read::view::View;
use crate::rules::cel::Segments;
use crate::spec::EngineSpec;
use pulse_events::time::{Millis, DAY};
use pulse_events::{Cause, Driver, OutputData, OutputEvent, OutputKind};

/// Everything `evaluate` needs to know about why it runs.
#[allow(missing_debug_implementations)]
pub(crate) struct Trigger<'a> {
    pub sources: u16,
    pub now: Millis,
    /// Builds the cause only when an output needs it: most evaluations emit nothing.
    pub cause: &'a dyn Fn() -> Cause,
}

/// Sources that move the churn score: its drivers count days and purchases, not events.
const CHURN_INPUTS: u16 = NEW_DAY | PURCHASE | SURVEY | TIME;

/// Re-evaluates churn risk and the segment rules `t.sources` can have changed, appends the
/// outputs of every change, and returns the due time of the customer's next recheck (0 for
/// none).
pub(crate) fn evaluate(
    spec: &EngineSpec,
    rules: &Segments,
    population: &Population,
    customer: &str,
    profile: &mut Profile,
    t: &Trigger<'_>,
    out: &mut Vec<OutputEvent>,
) -> Millis {
    // A customer's analytics only move forward in time: a late event (older than a timer
    // that already fired for them) is judged at the time already reached, so a timer's
    // transition is never undone and then repeated with the same cause and id.
    let now = t.now.max(profile.derived.evaluated_at);
    profile.derived.evaluated_at = now;
    let t = &Trigger {
        sources: t.sources,
        now,
        cause: t.cause,
    };
    let mut sources = t.sources;
    if sources & CHURN_INPUTS != 0 {
        let view = View::new(spec, population, profile, t.now);
        let drivers = view.churn_drivers();
        let p_alive = view.p_alive();
        let rfm = view.rfm().map_or(0, Rfm::code);
        let (score, parts) = spec.churn.score(&drivers);
        let previous = Level::from_u8(profile.derived.churn_level);
        let level = spec.churn.level(score, previous);
        let d = &mut profile.derived;
        if (f64::from(d.churn_score) - score).abs() > 1e-6 {
            sources |= source::CHURN;
        }
        d.churn_score = score as f32;
        d.churn_level = level.as_u8();
        d.p_alive = p_alive as f32;
        d.rfm = rfm;
        if level != previous {
            let data = OutputData::ChurnRisk {
                level: level.as_str().into(),
                previous_level: previous.as_str().into(),
                score,
                drivers: parts
                    .iter()
                    .take(3)
                    .map(|(name, value, contribution)| Driver {
                        name: (*name).into(),
                        value: *value,
                        contribution: *contribution,
                    })
                    .collect(),
            };
            out.push(OutputEvent::new(
                OutputKind::ChurnRiskChanged,
                customer,
                ("churn_risk", &[i64::from(level.as_u8())]),
                t.now,
                (t.cause)(),
                None,
                data,
                profile.excerpt(),
            ));
        }
    } else if sources & source::REFRESH != 0 {
        let view = View::new(spec, population, profile, t.now);
        profile.derived.rfm = view.rfm().map_or(0, Rfm::code);
    }
    let t = &Trigger {
        sources,
        now: t.now,
        cause: t.cause,
    };
    let holds_due = segments(spec, rules, population, customer, profile, t, out);
    next_recheck(spec, profile, t.now, holds_due)
}

/// Applies the segment rules `t.sources` can have changed; returns the earliest time a
/// min_dwell or cooldown hold ends.
fn segments(
    spec: &EngineSpec,
    rules: &Segments,
    population: &Population,
    customer: &str,
    profile: &mut Profile,
    t: &Trigger<'_>,
    out: &mut Vec<OutputEvent>,
) -> Option<Millis> {
    let sources = t.sources;
    let mut want = profile.derived.segments;
    let mut evaluated = 0u64;
    {
        let view = View::new(spec, population, profile, t.now);
        for (i, rule) in rules.rules.iter().enumerate() {
            if rule.sources & sources == 0 {
                continue;
            }
            evaluated |= 1 << i;
            // A rule that fails at run time (a division by zero) counts as not matching.
            if rules.matches(i, &view).unwrap_or(false) {
                want |= 1 << i;
            } else {
                want &= !(1 << i);
            }
        }
    }
    let mut hold_due: Option<Millis> = None;
    let mut hold = |due: Millis| hold_due = Some(hold_due.map_or(due, |h| h.min(due)));
    for (i, rule) in rules.rules.iter().enumerate() {
        let bit = 1u64 << i;
        let member = profile.derived.segments & bit != 0;
        if evaluated & bit == 0 || (want & bit != 0) == member {
            continue;
        }
        let last_entry = profile
            .derived
            .entered
            .iter()
            .find(|(r, _)| usize::from(*r) == i)
            .map(|(_, at)| *at);
        let kind = if member {
            if let (Some(dwell), Some(at)) = (rule.min_dwell, last_entry) {
                if t.now < at.saturating_add(dwell) {
                    hold(at.saturating_add(dwell));
                    continue;
                }
            }
            profile.derived.segments &= !bit;
            OutputKind::SegmentExited
        } else {
            if let (Some(cooldown), Some(at)) = (rule.cooldown, last_entry) {
                if t.now < at.saturating_add(cooldown) {
                    hold(at.saturating_add(cooldown));
                    continue;
                }
            }
            profile.derived.segments |= bit;
            if rule.min_dwell.is_some() || rule.cooldown.is_some() {
                let entered = &mut profile.derived.entered;
                entered.retain(|(r, _)| usize::from(*r) != i);
                entered.push((i as u8, t.now));
                if let Some(dwell) = rule.min_dwell {
                    hold(t.now.saturating_add(dwell));
                }
            }
            OutputKind::SegmentEntered
        };
        out.push(OutputEvent::new(
            kind,
            customer,
            (&rule.name, &[]),
            t.now,
            (t.cause)(),
            Some(rule.version),
            OutputData::Segment {
                segment: rule.name.clone(),
            },
            profile.excerpt(),
        ));
    }
    // Holds still running from earlier evaluations keep their own recheck.
    for (r, at) in &profile.derived.entered {
        let Some(rule) = rules.rules.get(usize::from(*r)) else {
            continue;
        };
        for d in [rule.min_dwell, rule.cooldown].into_iter().flatten() {
            let end = at.saturating_add(d);
            if end > t.now {
                hold(end);
            }
        }
    }
    hold_due
}

/// The customer's next recheck: the next whole day since their last event while within the
/// time horizon (day counts, windows and P(alive) move with time), then their eviction, or a
/// hold's end if sooner.
fn next_recheck(spec: &EngineSpec, profile: &Profile, now: Millis, hold: Option<Millis>) -> Millis {
    let since = now - profile.last_seen;
    let daily = if since < spec.time_horizon {
        Some(profile.last_seen + (since.div_euclid(DAY) + 1) * DAY)
    } else {
        eviction_due(spec, profile)
    };
    match (daily, hold) {
        (Some(d), Some(h)) => d.min(h),
        (d, h) => d.or(h).unwrap_or(0),
    }
}

/// When the customer is evicted if no event comes first (`engine.evict_after`).
pub(crate) fn eviction_due(spec: &EngineSpec, profile: &Profile) -> Option<Millis> {
    (spec.evict_after > 0).then(|| profile.last_seen.saturating_add(spec.evict_after))
}

/// Sources an input event fires, given what recording it changed.
pub(crate) fn sources_of(ev: &pulse_events::InputEvent<'_>, change: RecordChange) -> u16 {
    use pulse_events::EventBody;
    let mut s = ACTIVITY;
    if change.new_day {
        s |= NEW_DAY;
    }
    if change.new_feature {
        s |= source::FEATURE;
    }
    s | match ev.body {
        EventBody::Purchase { .. } | EventBody::Refund { .. } => PURCHASE,
        EventBody::SurveyResponse { .. } => SURVEY,
        _ => 0,
    }
}
