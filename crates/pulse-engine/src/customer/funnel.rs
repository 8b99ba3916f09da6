//! A customer's attempt at a funnel, how events and deadlines move it, and the output events
//! that come of it. The funnel's compiled definition ([`FunnelSpec`]) is on the spec's floor,
//! with the other numbers the configuration compiles to.
//!
//! An attempt goes through sequential steps with other events allowed in between, within a
//! conversion window that runs from the step-1 event that opened it (later step-1 events do
//! not reset it), with optional steps, per-step deadlines and exclusion events.
//!
//! The partition keeps the deadline timers (they are its index) and routes the outputs; this
//! file never names a profile, so the profile can hold attempts without a loop between them.

use crate::spec::funnel::FunnelSpec;
use pulse_events::time::Millis;
use pulse_events::{AbandonReason, Cause, OutputData, OutputEvent, OutputKind, ProfileExcerpt};
use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

/// A customer's state in one funnel: the current (or last) attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelAttempt {
    /// Index of the funnel in the configuration.
    pub funnel: u16,
    /// Attempts opened so far; the current attempt's number.
    pub attempt: u32,
    pub active: bool,
    /// 0-based index of the last step reached.
    pub step: u8,
    /// Time of the step-1 event that opened the attempt.
    pub entered: Millis,
    /// Time the last step was reached.
    pub step_at: Millis,
    /// When the attempt expires if the next required step is not reached.
    pub deadline: Millis,
}

/// What a funnel event or timer produced, turned into output events by [`emit`]. Each
/// carries the attempt as it was at that moment: one event can end one attempt and open the
/// next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FunnelOutcome {
    pub what: Outcome,
    pub at: Millis,
    pub attempt: FunnelAttempt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Reached {
        step: u8,
    },
    Converted,
    /// For expiries `at` is the deadline: the outcome is the timer's, however it was noticed.
    Abandoned {
        reason: AbandonReason,
    },
}

impl FunnelAttempt {
    fn deadline_after(&self, f: &FunnelSpec) -> Millis {
        let window_end = self.entered.saturating_add(f.window);
        let next_required = f.steps[usize::from(self.step) + 1..]
            .iter()
            .find(|s| !s.optional);
        match next_required.and_then(|s| s.within) {
            Some(w) => window_end.min(self.step_at.saturating_add(w)),
            None => window_end,
        }
    }

    fn reach(&mut self, f: &FunnelSpec, step: usize, ts: Millis, out: &mut Vec<FunnelOutcome>) {
        self.step = step as u8;
        self.step_at = ts;
        out.push(self.outcome(Outcome::Reached { step: self.step }, ts));
        if step + 1 == f.steps.len() {
            self.active = false;
            out.push(self.outcome(Outcome::Converted, ts));
        } else {
            self.deadline = self.deadline_after(f);
        }
    }

    fn outcome(&self, what: Outcome, at: Millis) -> FunnelOutcome {
        FunnelOutcome {
            what,
            at,
            attempt: *self,
        }
    }

    fn abandon(&mut self, reason: AbandonReason, at: Millis, out: &mut Vec<FunnelOutcome>) {
        self.active = false;
        out.push(self.outcome(Outcome::Abandoned { reason }, at));
    }

    /// Applies an event of type `kind` at `ts`. Returns the new deadline to schedule, if any.
    pub(crate) fn on_event(
        &mut self,
        f: &FunnelSpec,
        kind: &str,
        ts: Millis,
        out: &mut Vec<FunnelOutcome>,
    ) -> Option<Millis> {
        let before = (self.active, self.attempt, self.deadline);
        if self.active && ts > self.deadline {
            // The deadline passed in event time before the watermark fired its timer; expire now
            // exactly as the timer would have, so the output is the same either way.
            self.abandon(AbandonReason::Expired, self.deadline, out);
        }
        if self.active {
            if f.exclude.iter().any(|e| e == kind) {
                self.abandon(AbandonReason::Excluded, ts, out);
                return None;
            }
            let mut j = usize::from(self.step) + 1;
            while j < f.steps.len() {
                let s = &f.steps[j];
                let in_time = s
                    .within
                    .is_none_or(|w| ts <= self.step_at.saturating_add(w));
                if s.event == kind && in_time {
                    self.reach(f, j, ts, out);
                    break;
                }
                if !s.optional {
                    break;
                }
                j += 1;
            }
        } else if f.steps[0].event == kind {
            *self = FunnelAttempt {
                funnel: self.funnel,
                attempt: self.attempt + 1,
                active: true,
                step: 0,
                entered: ts,
                step_at: ts,
                deadline: 0,
            };
            self.reach(f, 0, ts, out);
        }
        let after = (self.active, self.attempt, self.deadline);
        (self.active && after != before).then_some(self.deadline)
    }

    /// Handles a deadline timer; stale timers (the attempt moved on) do nothing.
    pub(crate) fn on_timer(&mut self, attempt: u32, due: Millis, out: &mut Vec<FunnelOutcome>) {
        if self.active && self.attempt == attempt && self.deadline == due {
            self.abandon(AbandonReason::Expired, due, out);
        }
    }
}

/// Applies an event of type `kind` at `ts` to each funnel it concerns, opening the customer's
/// attempt at a funnel on its first step-1 event. Outcomes are appended in funnel order;
/// `deadline` is handed each attempt whose deadline the event set or moved, with the new
/// deadline, for its timer.
pub(crate) fn apply(
    funnels: &[FunnelSpec],
    attempts: &mut ThinVec<FunnelAttempt>,
    kind: &str,
    ts: Millis,
    out: &mut Vec<FunnelOutcome>,
    mut deadline: impl FnMut(&FunnelAttempt, Millis),
) {
    for (fi, f) in funnels.iter().enumerate() {
        // Overdue attempts are expired by their timers, so only the funnel's own events
        // need any work here.
        let relevant =
            f.steps.iter().any(|s| s.event == kind) || f.exclude.iter().any(|e| e == kind);
        if !relevant {
            continue;
        }
        let at = match attempts.iter().position(|a| usize::from(a.funnel) == fi) {
            Some(i) => i,
            None if f.steps[0].event == kind => {
                attempts.push(FunnelAttempt {
                    funnel: fi as u16,
                    ..Default::default()
                });
                attempts.len() - 1
            }
            None => continue,
        };
        let attempt = &mut attempts[at];
        if let Some(due) = attempt.on_event(f, kind, ts, out) {
            deadline(attempt, due);
        }
    }
}

/// The output events of `outcomes` (of any of `funnels`, each naming its own), each carrying
/// the customer's `excerpt`. An expiry's cause is its timer; the others' is `cause`, moved
/// into the last output that carries it.
pub(crate) fn emit(
    funnels: &[FunnelSpec],
    excerpt: &ProfileExcerpt,
    customer: &str,
    outcomes: &[FunnelOutcome],
    mut cause: Cause,
    out: &mut Vec<OutputEvent>,
) {
    let expired = |o: &FunnelOutcome| {
        o.what
            == Outcome::Abandoned {
                reason: AbandonReason::Expired,
            }
    };
    let last = outcomes.iter().rposition(|o| !expired(o));
    for (i, o) in outcomes.iter().enumerate() {
        let a = &o.attempt;
        let f = &funnels[usize::from(a.funnel)];
        let since_entry_ms = (o.at - a.entered).max(0);
        let attempt = i64::from(a.attempt);
        let (kind, rule_numbers, data) = match o.what {
            Outcome::Reached { step } => (
                OutputKind::MilestoneReached,
                [attempt, i64::from(step) + 1],
                OutputData::Milestone {
                    funnel: f.name.clone(),
                    attempt: a.attempt,
                    step_index: u32::from(step) + 1,
                    step: f.steps[usize::from(step)].name.clone(),
                    steps_total: f.steps.len() as u32,
                    since_entry_ms,
                },
            ),
            Outcome::Converted => (
                OutputKind::FunnelConverted,
                [attempt, 0],
                OutputData::Converted {
                    funnel: f.name.clone(),
                    attempt: a.attempt,
                    duration_ms: since_entry_ms,
                },
            ),
            Outcome::Abandoned { reason } => (
                OutputKind::FunnelAbandoned,
                [attempt, 0],
                OutputData::Abandoned {
                    funnel: f.name.clone(),
                    attempt: a.attempt,
                    reason,
                    last_step_index: u32::from(a.step) + 1,
                    since_entry_ms,
                },
            ),
        };
        // An expiry is the deadline's doing however it was noticed, so its cause (and with it
        // the event id) is the timer whether the watermark or a later event revealed it.
        let cause = if expired(o) {
            Cause::Timer { due: o.at }
        } else if Some(i) == last {
            std::mem::replace(&mut cause, Cause::Timer { due: o.at })
        } else {
            cause.clone()
        };
        let (version, ex) = (Some(f.version), excerpt.clone());
        let rule = (&*f.name, &rule_numbers[..]);
        out.push(OutputEvent::new(
            kind, customer, rule, o.at, cause, version, data, ex,
        ));
    }
}

#[cfg(test)]
#[path = "funnel_tests.rs"]
mod tests;
