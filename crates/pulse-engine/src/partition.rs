//! One partition's state: the profiles of the customers that hash to it, its watermark and
//! its timer index. `apply` is the hot path: one validated event in, output events appended.

use crate::funnel::{FunnelAttempt, FunnelOutcome, Outcome};
use crate::profile::Profile;
use crate::spec::{EngineSpec, FunnelSpec};
use crate::timer::{TimerIndex, TimerKind};
use crate::Millis;
use pulse_events::time::format_rfc3339;
use pulse_events::{
    AbandonReason, Cause, EventError, InputEvent, OutputData, OutputEvent, OutputKind, TopicRole,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Where an input record came from; part of every output's cause and id. The role (or, for a
/// record forwarded through the repartition topic, that topic) selects which of the partition's
/// input watermarks the record is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    pub role: TopicRole,
    /// Read from the repartition topic rather than from the role's input topic.
    pub forwarded: bool,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Inputs with their own watermark: the three input topics (by [`TopicRole::index`]), then the
/// repartition topic at [`FORWARDED`]. A forwarded record takes a detour whose length in event
/// time depends on how far behind the worker is, so it is judged against its own input.
pub const INPUTS: usize = 4;
pub const FORWARDED: usize = 3;

impl Source<'_> {
    /// Which input watermark applies.
    pub fn input(&self) -> usize {
        if self.forwarded {
            FORWARDED
        } else {
            self.role.index()
        }
    }
}

/// Event-time progress of one input topic-partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Input {
    /// Highest event time seen on this input (or wall-clock time reached while idle).
    frontier: Option<Millis>,
    /// Set by the caller when the input has had no records for its idle timeout; an idle
    /// input does not hold back the partition's watermark.
    idle: bool,
}

/// A profile and whether it changed since the last [`Partition::drain_changes`]. The slot keeps
/// its own handle on the key so marking a profile changed costs a reference count, not an
/// allocation, on the hot path.
#[derive(Debug, Clone)]
struct Slot {
    key: Arc<str>,
    profile: Profile,
    dirty: bool,
}

type Map = HashMap<Arc<str>, Slot, foldhash::fast::RandomState>;

/// The engine state of one partition (of every input topic with that partition number: the
/// input topics are co-partitioned by customer id).
///
/// Each input topic-partition has its own watermark (its highest event time minus the allowed
/// lateness): a record is late only against its own input, so one topic being fetched ahead of
/// another never makes the other's records late. Timers fire on the partition watermark, the
/// minimum over the inputs that are active (have delivered records and are not idle), as in
/// Flink.
#[derive(Debug, Clone)]
pub struct Partition {
    spec: Arc<EngineSpec>,
    profiles: Map,
    timers: TimerIndex,
    inputs: [Input; INPUTS],
    scratch: Vec<FunnelOutcome>,
    /// Customers whose profile changed since the last drain, each listed once.
    dirty: Vec<Arc<str>>,
}

impl Partition {
    pub fn new(spec: Arc<EngineSpec>) -> Self {
        Self {
            spec,
            profiles: Map::default(),
            timers: TimerIndex::default(),
            inputs: [Input::default(); INPUTS],
            scratch: Vec::new(),
            dirty: Vec::new(),
        }
    }

    /// Rebuilds a partition from restored profiles and input frontiers (a changelog), with the
    /// timers their funnel attempts need. Nothing is marked changed.
    pub fn restore(
        spec: Arc<EngineSpec>,
        profiles: impl IntoIterator<Item = (String, Profile)>,
        frontiers: [Option<Millis>; INPUTS],
    ) -> Self {
        let mut p = Self::new(spec);
        for (customer, profile) in profiles {
            for a in profile.funnels.iter().filter(|a| a.active) {
                let kind = TimerKind::FunnelDeadline {
                    funnel: a.funnel,
                    attempt: a.attempt,
                };
                p.timers.schedule(a.deadline, &customer, kind);
            }
            let key: Arc<str> = customer.into();
            p.profiles.insert(
                key.clone(),
                Slot {
                    key,
                    profile,
                    dirty: false,
                },
            );
        }
        for (input, f) in p.inputs.iter_mut().zip(frontiers) {
            input.frontier = f;
        }
        p
    }

    /// Each input's event-time frontier, for checkpoints.
    pub fn frontiers(&self) -> [Option<Millis>; INPUTS] {
        self.inputs.map(|i| i.frontier)
    }

    /// Hands every profile changed since the last call to `f`, once each, and clears the
    /// marks: what a changelog writes per batch.
    pub fn drain_changes(&mut self, mut f: impl FnMut(&str, &Profile)) {
        for customer in self.dirty.drain(..) {
            if let Some(slot) = self.profiles.get_mut(&customer) {
                slot.dirty = false;
                f(&customer, &slot.profile);
            }
        }
    }

    /// How many profiles changed since the last drain.
    pub fn changed(&self) -> usize {
        self.dirty.len()
    }

    pub fn spec(&self) -> &EngineSpec {
        &self.spec
    }

    /// The partition watermark: timers due before it fire. The minimum over active inputs.
    pub fn watermark(&self) -> Option<Millis> {
        self.inputs
            .iter()
            .filter(|i| !i.idle)
            .filter_map(|i| i.frontier)
            .min()
            .map(|f| f - self.spec.allowed_lateness)
    }

    /// The watermark of one input ([`Source::input`]): its records older than this are late.
    pub fn input_watermark(&self, input: usize) -> Option<Millis> {
        self.inputs[input]
            .frontier
            .map(|f| f - self.spec.allowed_lateness)
    }

    /// The highest event time seen on any input.
    fn frontier(&self) -> Option<Millis> {
        self.inputs.iter().filter_map(|i| i.frontier).max()
    }

    pub fn profile(&self, customer: &str) -> Option<&Profile> {
        self.profiles.get(customer).map(|s| &s.profile)
    }

    pub fn profiles(&self) -> impl Iterator<Item = (&str, &Profile)> {
        self.profiles.iter().map(|(k, v)| (&**k, &v.profile))
    }

    pub fn customers(&self) -> usize {
        self.profiles.len()
    }

    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Applies one validated event. Late or too-far-ahead events are rejected with the error to
    /// dead-letter; nothing changes for them. `now` is the caller's wall clock, used only as a
    /// reference for "too far ahead".
    pub fn apply(
        &mut self,
        ev: &InputEvent<'_>,
        src: &Source<'_>,
        now: Millis,
        out: &mut Vec<OutputEvent>,
    ) -> Result<(), EventError> {
        let ts = ev.timestamp;
        if let Some(wm) = self.input_watermark(src.input()) {
            if ts < wm {
                return Err(EventError::Late {
                    timestamp: format_rfc3339(ts),
                    watermark: format_rfc3339(wm),
                });
            }
        }
        // "Too far ahead" is judged against the highest input watermark or the wall clock,
        // whichever is later: the same in live use, and a replay of history with a quiet topic (a day
        // between purchases on one partition) is not mistaken for clock skew.
        let reference = self
            .frontier()
            .map_or(now, |f| (f - self.spec.allowed_lateness).max(now));
        if ts > reference.saturating_add(self.spec.max_future_skew) {
            return Err(EventError::TimestampTooFarAhead {
                timestamp: format_rfc3339(ts),
                watermark: format_rfc3339(reference),
                max_ahead_hours: self.spec.max_future_skew / 3_600_000,
            });
        }

        let spec = &*self.spec;
        let customer: &str = &ev.customer_id;
        let slot = match self.profiles.get_mut(customer) {
            Some(s) => s,
            None => {
                let key: Arc<str> = customer.into();
                let slot = Slot {
                    key: key.clone(),
                    profile: Profile::default(),
                    dirty: false,
                };
                self.profiles.entry(key).or_insert(slot)
            }
        };
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(slot.key.clone());
        }
        let profile = &mut slot.profile;
        profile.record(spec, ev);

        let kind = ev.body.type_name();
        for (fi, f) in spec.funnels.iter().enumerate() {
            // Overdue attempts are expired by their timers, so only the funnel's own events
            // need any work here.
            let relevant =
                f.steps.iter().any(|s| s.event == kind) || f.exclude.iter().any(|e| e == kind);
            if !relevant {
                continue;
            }
            let slot = match profile
                .funnels
                .iter()
                .position(|a| usize::from(a.funnel) == fi)
            {
                Some(i) => i,
                None if f.steps[0].event == kind => {
                    profile.funnels.push(FunnelAttempt {
                        funnel: fi as u16,
                        ..Default::default()
                    });
                    profile.funnels.len() - 1
                }
                None => continue,
            };
            self.scratch.clear();
            let attempt = &mut profile.funnels[slot];
            if let Some(due) = attempt.on_event(f, kind, ts, &mut self.scratch) {
                let timer = TimerKind::FunnelDeadline {
                    funnel: fi as u16,
                    attempt: attempt.attempt,
                };
                self.timers.schedule(due, customer, timer);
            }
            if !self.scratch.is_empty() {
                let cause = Cause::Event {
                    event_id: ev.event_id.to_string(),
                    topic: src.topic.to_owned(),
                    partition: src.partition,
                    offset: src.offset,
                };
                emit_funnel(f, profile, customer, &self.scratch, &cause, out);
            }
        }

        let input = &mut self.inputs[src.input()];
        input.frontier = Some(input.frontier.map_or(ts, |f| f.max(ts)));
        input.idle = false;
        self.fire_timers(out);
        Ok(())
    }

    /// Marks an input idle (no records for the caller's idle timeout), so it stops holding
    /// back the watermark; its next record makes it active again.
    pub fn set_idle(&mut self, input: usize, out: &mut Vec<OutputEvent>) {
        let input = &mut self.inputs[input];
        if !input.idle {
            input.idle = true;
            self.fire_timers(out);
        }
    }

    /// Advances every input's event time to `frontier` without an event: used when the whole
    /// partition has been idle, so timers still fire in live use. Never moves time backwards.
    pub fn advance_to(&mut self, frontier: Millis, out: &mut Vec<OutputEvent>) {
        let mut moved = false;
        for i in &mut self.inputs {
            if i.frontier.is_none_or(|f| f < frontier) {
                i.frontier = Some(frontier);
                moved = true;
            }
            i.idle = false;
        }
        if moved {
            self.fire_timers(out);
        }
    }

    fn fire_timers(&mut self, out: &mut Vec<OutputEvent>) {
        let Some(wm) = self.watermark() else { return };
        while let Some((due, customer, kind)) = self.timers.pop_passed(wm) {
            let Some(entry) = self.profiles.get_mut(&*customer) else {
                continue;
            };
            match kind {
                TimerKind::FunnelDeadline { funnel, attempt } => {
                    let profile = &mut entry.profile;
                    let Some(i) = profile.funnels.iter().position(|a| a.funnel == funnel) else {
                        continue;
                    };
                    self.scratch.clear();
                    profile.funnels[i].on_timer(attempt, due, &mut self.scratch);
                    if self.scratch.is_empty() {
                        continue;
                    }
                    let f = &self.spec.funnels[usize::from(funnel)];
                    let cause = Cause::Timer { due };
                    emit_funnel(f, profile, &customer, &self.scratch, &cause, out);
                }
            }
            if !entry.dirty {
                entry.dirty = true;
                self.dirty.push(entry.key.clone());
            }
        }
    }
}

fn emit_funnel(
    f: &FunnelSpec,
    profile: &Profile,
    customer: &str,
    outcomes: &[FunnelOutcome],
    cause: &Cause,
    out: &mut Vec<OutputEvent>,
) {
    let excerpt = profile.excerpt();
    for o in outcomes {
        let a = &o.attempt;
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
        let cause = match o.what {
            Outcome::Abandoned {
                reason: AbandonReason::Expired,
            } => Cause::Timer { due: o.at },
            _ => cause.clone(),
        };
        let (version, ex) = (Some(f.version), excerpt.clone());
        let rule = (f.name.as_str(), &rule_numbers[..]);
        out.push(OutputEvent::new(
            kind, customer, rule, o.at, cause, version, data, ex,
        ));
    }
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
