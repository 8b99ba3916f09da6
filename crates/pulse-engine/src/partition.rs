//! One partition's state: the profiles of the customers that hash to it, its watermark and
//! its timer index. `apply` is the hot path: one validated event in, output events appended.

use crate::customer::funnel::{self, FunnelOutcome};
use crate::customer::periods::ActivePeriods;
use crate::customer::profile::Profile;
use crate::engine::Engine;
use crate::evaluate::{evaluate, eviction_due, sources_of, Trigger};
use crate::input::{ForwardSource, Input, Source, Topics, FORWARDED, INPUTS};
use crate::models::rfm::Sketch;
use crate::population::{Cohorts, Population};
use crate::read::fields::source;
use crate::slots::{Slot, Slots};
use crate::spec::EngineSpec;
use crate::tally::{Standing, Tally};
use crate::timer::{caught_up, PendingRecheck, TimerIndex, TimerKind};
use pulse_events::time::{format_rfc3339, Millis, DAY};
use pulse_events::{Cause, EventBody, EventError, InputEvent, OutputData, OutputEvent, OutputKind};
use std::cell::OnceCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// The engine state of one partition (of every input topic with that partition number: the
/// input topics are co-partitioned by customer id).
///
/// Each input topic-partition has its own watermark (its highest event time minus the allowed
/// lateness): a record is late only against its own input, so one topic being fetched ahead of
/// another never makes the other's records late. Timers fire on the partition watermark: the
/// newest event time of the partition's own input topics (Kafka Streams' stream time) minus the
/// allowed lateness. The caller applies the inputs in event-time order, so that is where every
/// input stands; a minimum over the inputs would let an input that ran out of records (a topic
/// quiet for days) hold every timer back until it is declared idle, at a moment of wall time.
#[derive(Debug, Clone)]
pub struct Partition {
    engine: Arc<Engine>,
    profiles: Slots,
    timers: TimerIndex,
    inputs: [Input; INPUTS],
    /// The highest event time forwarded from each source (see [`FORWARDED`]).
    forwarded: BTreeMap<ForwardSource, Millis>,
    /// The input topics' names, shared by the causes of outputs.
    topics: Topics,
    scratch: Vec<FunnelOutcome>,
    /// Customers whose profile changed since the last drain, each listed once.
    dirty: Vec<Arc<str>>,
    population: Population,
    /// Whether an RFM refresh ran since the last [`Partition::take_refreshed`].
    refreshed: bool,
    tally: Tally,
    /// Customers evicted since the last [`Partition::drain_evicted`], to tombstone.
    evicted: Vec<Arc<str>>,
    /// Hashes of the ids evicted since this state was built and not back since, so a look-up
    /// can say a customer was evicted: 8 bytes each, not a profile.
    gone: HashSet<u64>,
}

impl Partition {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            profiles: Slots::default(),
            timers: TimerIndex::default(),
            inputs: [Input::default(); INPUTS],
            forwarded: BTreeMap::new(),
            topics: Topics::default(),
            scratch: Vec::new(),
            dirty: Vec::new(),
            population: Population {
                cohorts: Cohorts::bounded(engine.spec.cohort_retention_days),
                ..Population::default()
            },
            refreshed: false,
            tally: Tally::new(engine.rules.rules.len()),
            evicted: Vec::new(),
            gone: HashSet::default(),
            engine,
        }
    }

    /// Rebuilds a partition from restored profiles, input frontiers and population cut-points
    /// (a changelog), with the timers their funnel attempts and rechecks need and the sums the
    /// population keeps over profiles. Nothing is marked changed.
    pub fn restore(
        engine: Arc<Engine>,
        profiles: impl IntoIterator<Item = (String, Profile)>,
        frontiers: [Option<Millis>; INPUTS],
        population: Population,
    ) -> Self {
        let mut p = Self::new(engine);
        p.population = Population {
            rfm: population.rfm,
            next_refresh: population.next_refresh,
            cohorts: Cohorts::bounded(p.engine.spec.cohort_retention_days),
            ..Population::default()
        };
        for (customer, mut profile) in profiles {
            if profile.periods.is_empty() && profile.events_total > 0 {
                // Stored before active periods were kept: its first and newest events are
                // all that is known of them.
                profile
                    .periods
                    .touch(profile.first_seen, None, profile.first_seen);
                profile.periods.touch(
                    profile.first_seen,
                    Some(profile.first_seen),
                    profile.last_seen,
                );
            }
            p.population.count(&profile);
            let key: Arc<str> = customer.into();
            for a in profile.funnels.iter().filter(|a| a.active) {
                let kind = TimerKind::FunnelDeadline {
                    funnel: a.funnel,
                    attempt: a.attempt,
                };
                p.timers.schedule(a.deadline, &key, kind);
            }
            if profile.derived.recheck == 0 {
                // Past the time horizon when stored, before eviction was configured, or under
                // an older Pulse: its eviction is the only recheck left.
                if let Some(due) = eviction_due(&p.engine.spec, &profile) {
                    profile.derived.recheck = due;
                }
            }
            let recheck = PendingRecheck::restored(&mut p.timers, &key, profile.derived.recheck);
            p.tally.arrive(Standing::of(&profile));
            p.profiles.insert(Slot::new(key, profile, recheck));
        }
        for (input, f) in p.inputs.iter_mut().zip(frontiers) {
            input.frontier = f;
        }
        // Answers older than the last refresh's window were dropped then; drop them again.
        let last_refresh = p.population.next_refresh - p.engine.spec.rfm_refresh;
        if p.population.next_refresh > 0 && p.engine.spec.rfm_refresh > 0 {
            p.population
                .surveys
                .expire(p.engine.spec.survey_window_days, last_refresh);
        }
        p
    }

    /// Each input's event-time frontier, for checkpoints.
    pub fn frontiers(&self) -> [Option<Millis>; INPUTS] {
        self.inputs.map(|i| i.frontier)
    }

    /// Each forwarding source's frontier, for checkpoints.
    pub fn forwarded_frontiers(&self) -> impl Iterator<Item = (ForwardSource, Millis)> + '_ {
        self.forwarded.iter().map(|(s, f)| (*s, *f))
    }

    /// Restores the forwarding sources' frontiers from a checkpoint.
    pub fn restore_forwarded(
        &mut self,
        frontiers: impl IntoIterator<Item = (ForwardSource, Millis)>,
    ) {
        self.forwarded = frontiers.into_iter().collect();
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

    /// Hands every customer evicted since the last call to `f`, once each: the changelog's
    /// tombstones, written before the batch's profiles (a customer evicted and back in one
    /// batch ends with their new profile).
    pub fn drain_evicted(&mut self, mut f: impl FnMut(&str)) {
        for customer in self.evicted.drain(..) {
            f(&customer);
        }
    }

    /// Customers evicted and not yet handed to [`Partition::drain_evicted`].
    pub fn evicted(&self) -> usize {
        self.evicted.len()
    }

    /// Whether `customer` was evicted from this state (since it was built) and has not come
    /// back.
    pub fn was_evicted(&self, customer: &str) -> bool {
        !self.gone.is_empty() && self.gone.contains(&gone_key(customer))
    }

    /// Whether an RFM refresh ran since the last call. A refresh reads every profile, so a
    /// batch ends with one: replaying a batch whose checkpoint was lost must find every profile
    /// as the refresh found it, and profiles the batch changed after a refresh would not be.
    pub fn take_refreshed(&mut self) -> bool {
        std::mem::take(&mut self.refreshed)
    }

    pub fn population(&self) -> &Population {
        &self.population
    }

    /// How many profiles changed since the last drain.
    pub fn changed(&self) -> usize {
        self.dirty.len()
    }

    pub fn spec(&self) -> &EngineSpec {
        &self.engine.spec
    }

    /// The compiled configuration and rules this partition runs.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The partition watermark: timers due before it fire. Records forwarded through the
    /// repartition topic do not move it: they arrive at the pace of the partitions that
    /// forwarded them, which differs from run to run.
    pub fn watermark(&self) -> Option<Millis> {
        self.newest().map(|f| f - self.engine.spec.allowed_lateness)
    }

    /// The newest event time of the partition's own input topics.
    pub fn newest(&self) -> Option<Millis> {
        self.inputs[..FORWARDED]
            .iter()
            .filter_map(|i| i.frontier)
            .max()
    }

    /// The watermark of one input ([`Source::input`]): its records older than this are late.
    pub fn input_watermark(&self, input: usize) -> Option<Millis> {
        self.inputs[input]
            .frontier
            .map(|f| f - self.engine.spec.allowed_lateness)
    }

    pub fn profile(&self, customer: &str) -> Option<&Profile> {
        self.profiles.get(customer).map(|s| &s.profile)
    }

    pub fn profiles(&self) -> impl Iterator<Item = (&str, &Profile)> {
        self.profiles.iter().map(|s| (&*s.key, &s.profile))
    }

    /// Customers by segment, churn level and RFM segment, kept as profiles change.
    pub fn tally(&self) -> &Tally {
        &self.tally
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
        self.accept(ts, src, now)?;
        self.update(ev, src, out);
        self.advance(ts, src, now, out);
        Ok(())
    }

    /// An event whose effect on its customer the restored profile already holds (its batch's
    /// profiles reached the changelog, its checkpoint did not): judged as [`Partition::apply`]
    /// judges it, and then only its event time moves its input forward, as it did the first
    /// time.
    pub fn already_applied(
        &mut self,
        ts: Millis,
        src: &Source<'_>,
        now: Millis,
        out: &mut Vec<OutputEvent>,
    ) -> Result<(), EventError> {
        self.accept(ts, src, now)?;
        self.advance(ts, src, now, out);
        Ok(())
    }

    /// Moves the source's frontier to `ts` and fires the timers that passes. Never past the
    /// wall clock `now`: a record from a producer whose clock runs ahead is applied, but the
    /// time it claims does not make the correct records after it late, nor fire their timers.
    fn advance(&mut self, ts: Millis, src: &Source<'_>, now: Millis, out: &mut Vec<OutputEvent>) {
        let ts = ts.min(now);
        if let Some(source) = src.forward_source() {
            let f = self.forwarded.entry(source).or_insert(ts);
            *f = (*f).max(ts);
        }
        let input = &mut self.inputs[src.input()];
        input.frontier = Some(input.frontier.map_or(ts, |f| f.max(ts)));
        self.fire_timers(out);
    }

    /// The watermark a record from `src` is judged late against.
    fn lateness_reference(&self, src: &Source<'_>) -> Option<Millis> {
        match src.forward_source() {
            Some(source) => self
                .forwarded
                .get(&source)
                .map(|f| f - self.engine.spec.allowed_lateness),
            None => self.input_watermark(src.input()),
        }
    }

    /// A record of one of this partition's input topics that belongs to a customer of another
    /// partition, and goes there through the repartition topic: it is judged there, but its event
    /// time is this input's event time too, so it moves the input forward, unless it is too far
    /// ahead to be believed.
    pub fn passed_on(
        &mut self,
        ts: Millis,
        src: &Source<'_>,
        now: Millis,
        out: &mut Vec<OutputEvent>,
    ) {
        if !src.forwarded && self.ahead_check(ts, now).is_ok() {
            self.advance(ts, src, now, out);
        }
    }

    /// Late or too-far-ahead events are rejected with the error to dead-letter.
    fn accept(&self, ts: Millis, src: &Source<'_>, now: Millis) -> Result<(), EventError> {
        if let Some(wm) = self.lateness_reference(src) {
            if ts < wm {
                return Err(EventError::Late {
                    timestamp: format_rfc3339(ts),
                    watermark: format_rfc3339(wm),
                });
            }
        }
        self.ahead_check(ts, now)
    }

    fn ahead_check(&self, ts: Millis, now: Millis) -> Result<(), EventError> {
        // "Too far ahead" is judged against the wall clock alone: against a frontier, one
        // record from a broken clock would let the next ones go further still.
        if ts > now.saturating_add(self.engine.spec.max_future_skew) {
            return Err(EventError::TimestampTooFarAhead {
                timestamp: format_rfc3339(ts),
                clock: format_rfc3339(now),
                max_ahead_hours: self.engine.spec.max_future_skew / 3_600_000,
            });
        }
        Ok(())
    }

    /// The event's effect on its customer, the population's sums and the customer's outputs.
    fn update(&mut self, ev: &InputEvent<'_>, src: &Source<'_>, out: &mut Vec<OutputEvent>) {
        let ts = ev.timestamp;
        let (spec, rules) = (&self.engine.spec, &self.engine.rules);
        let customer: &str = &ev.customer_id;
        let mut standing = None;
        let slot = match self.profiles.get_mut(customer) {
            Some(s) => {
                standing = Some(Standing::of(&s.profile));
                s
            }
            None => {
                if !self.gone.is_empty() {
                    self.gone.remove(&gone_key(customer));
                }
                let fresh = Slot::new(
                    customer.into(),
                    Profile::default(),
                    PendingRecheck::default(),
                );
                self.profiles.insert(fresh)
            }
        };
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(slot.key.clone());
        }
        let profile = &mut slot.profile;
        let previous_first = (profile.events_total > 0).then_some(profile.first_seen);
        let rebased = ActivePeriods::rebases(previous_first, ts).then(|| profile.periods.clone());
        let answers = profile.surveys;
        let change = profile.record(spec, ev);
        let pop = &mut self.population;
        match (rebased, previous_first) {
            (Some(old), Some(first)) => {
                pop.cohorts.remove(&old, first);
                pop.cohorts.add(&profile.periods, profile.first_seen);
            }
            _ => change
                .opened
                .into_iter()
                .flatten()
                .for_each(|o| pop.cohorts.open(o)),
        }
        if matches!(ev.body, EventBody::SurveyResponse { .. }) {
            pop.surveys.replace_nps(answers.nps, profile.surveys.nps);
            pop.surveys.replace_csat(answers.csat, profile.surveys.csat);
        }

        // Built once, when the first output needs it; the event's outputs share its strings.
        let topic = self.topics.shared(src.topic);
        let built = OnceCell::new();
        let cause = || {
            built
                .get_or_init(|| Cause::Event {
                    event_id: Arc::from(&*ev.event_id),
                    topic: topic.clone(),
                    partition: src.partition,
                    offset: src.offset,
                })
                .clone()
        };
        let mut sources = sources_of(ev, change);
        // Deadlines an event sets are this partition's timers; the funnel decides them.
        self.scratch.clear();
        let (timers, key) = (&mut self.timers, &slot.key);
        let kind = ev.body.type_name();
        funnel::apply(
            &spec.funnels,
            &mut profile.funnels,
            kind,
            ts,
            &mut self.scratch,
            |a, due| {
                let timer = TimerKind::FunnelDeadline {
                    funnel: a.funnel,
                    attempt: a.attempt,
                };
                timers.schedule(due, key, timer);
            },
        );
        if !self.scratch.is_empty() {
            sources |= source::FUNNEL;
            let excerpt = profile.excerpt();
            funnel::emit(
                &spec.funnels,
                &excerpt,
                customer,
                &self.scratch,
                cause(),
                out,
            );
        }
        let trigger = Trigger {
            sources,
            now: profile.last_seen,
            cause: &cause,
        };
        let due = evaluate(
            spec,
            rules,
            &self.population,
            customer,
            profile,
            &trigger,
            out,
        );
        slot.recheck
            .schedule(&mut self.timers, &slot.key, profile, due);
        match standing {
            Some(before) => self.tally.moved(before, Standing::of(profile)),
            None => self.tally.arrive(Standing::of(profile)),
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
        }
        if moved {
            self.fire_timers(out);
        }
    }

    /// Whether the partition is live at wall-clock `now`: its newest event is at most `within`
    /// behind. Only a live partition's event time may move on with time when idle; one
    /// further behind holds history (a finished replay or backfill), whose state must stay what
    /// its records made it, whenever it is looked at.
    pub fn is_live(&self, now: Millis, within: Millis) -> bool {
        self.newest()
            .is_some_and(|n| n >= now.saturating_sub(within))
    }

    fn fire_timers(&mut self, out: &mut Vec<OutputEvent>) {
        let Some(wm) = self.watermark() else { return };
        let every = self.engine.spec.rfm_refresh;
        if every > 0 && self.population.next_refresh == 0 {
            self.population.next_refresh = (wm.div_euclid(every) + 1) * every;
        }
        loop {
            // Refreshes and timers fire in due order, so a rule reads the cut-points that
            // were current at its timer's time.
            if every > 0 {
                self.population.next_refresh = caught_up(
                    self.population.next_refresh,
                    wm,
                    every,
                    self.engine.spec.max_recheck_gap,
                );
            }
            let refresh = self.population.next_refresh;
            let timer = self.timers.next_due().filter(|d| *d < wm);
            if every > 0 && refresh < wm && timer.is_none_or(|t| refresh <= t) {
                self.refresh(refresh, out);
                continue;
            }
            let Some((due, customer, kind)) = self.timers.pop_passed(wm) else {
                return;
            };
            self.fire(due, wm, &customer, kind, out);
        }
    }

    /// Fires one timer that came due before the watermark `wm`.
    fn fire(
        &mut self,
        due: Millis,
        wm: Millis,
        customer: &str,
        kind: TimerKind,
        out: &mut Vec<OutputEvent>,
    ) {
        let (spec, rules) = (&self.engine.spec, &self.engine.rules);
        let Some(entry) = self.profiles.get_mut(customer) else {
            return;
        };
        let profile = &mut entry.profile;
        if kind == TimerKind::Recheck {
            let recheck = profile.derived.recheck;
            if !entry
                .recheck
                .fired(&mut self.timers, &entry.key, recheck, due)
            {
                return; // moved later since (put back at its time) or taken out
            }
            if eviction_due(spec, profile).is_some_and(|at| at <= due) {
                self.evict(customer, due, out);
                return;
            }
        }
        let before = Standing::of(profile);
        match kind {
            TimerKind::FunnelDeadline { funnel, attempt } => {
                // An attempt of a funnel no longer configured was dropped at the restore
                // (`crate::customer::migration`); a timer of it left over fires into nothing.
                if usize::from(funnel) >= spec.funnels.len() {
                    return;
                }
                let Some(i) = profile.funnels.iter().position(|a| a.funnel == funnel) else {
                    return;
                };
                self.scratch.clear();
                profile.funnels[i].on_timer(attempt, due, &mut self.scratch);
                if self.scratch.is_empty() {
                    return;
                }
                let cause = Cause::Timer { due };
                let excerpt = profile.excerpt();
                funnel::emit(
                    &spec.funnels,
                    &excerpt,
                    customer,
                    &self.scratch,
                    cause.clone(),
                    out,
                );
                let trigger = Trigger {
                    sources: source::FUNNEL,
                    now: due,
                    cause: &|| cause.clone(),
                };
                let next = evaluate(
                    spec,
                    rules,
                    &self.population,
                    customer,
                    profile,
                    &trigger,
                    out,
                );
                entry
                    .recheck
                    .schedule(&mut self.timers, &entry.key, profile, next);
            }
            TimerKind::Recheck => {
                profile.derived.recheck = 0;
                // Event time jumped far past it (a clock, a backfill): one evaluation at the
                // last daily slot before the new time stands for the days skipped, so a jump of
                // a year is one recheck, not 365 of them with their outputs.
                let due = caught_up(due, wm, DAY, spec.max_recheck_gap);
                let trigger = Trigger {
                    sources: source::TIME | source::HOLD,
                    now: due,
                    cause: &|| Cause::Timer { due },
                };
                let next = evaluate(
                    spec,
                    rules,
                    &self.population,
                    customer,
                    profile,
                    &trigger,
                    out,
                );
                entry
                    .recheck
                    .schedule(&mut self.timers, &entry.key, profile, next);
            }
        }
        self.tally.moved(before, Standing::of(&entry.profile));
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(entry.key.clone());
        }
    }

    /// Drops a customer inactive for `engine.evict_after`: they leave every segment they were
    /// in (a `segment.exited` caused by the eviction's time), leave the tally and the
    /// population's sums, and are tombstoned with the batch. If they come back they start
    /// over as a new customer.
    fn evict(&mut self, customer: &str, due: Millis, out: &mut Vec<OutputEvent>) {
        let Some(slot) = self.profiles.remove(customer) else {
            return;
        };
        let profile = &slot.profile;
        let cause = Cause::Timer { due };
        for (i, rule) in self.engine.rules.rules.iter().enumerate() {
            if profile.derived.segments & (1 << i) == 0 {
                continue;
            }
            out.push(OutputEvent::new(
                OutputKind::SegmentExited,
                customer,
                (&rule.name, &[]),
                due,
                cause.clone(),
                Some(rule.version),
                OutputData::Segment {
                    segment: rule.name.clone(),
                },
                profile.excerpt(),
            ));
        }
        for a in profile.funnels.iter().filter(|a| a.active) {
            let kind = TimerKind::FunnelDeadline {
                funnel: a.funnel,
                attempt: a.attempt,
            };
            self.timers.cancel(a.deadline, customer, kind);
        }
        self.tally.leave(Standing::of(profile));
        self.population.forget(profile);
        self.gone.insert(gone_key(customer));
        self.evicted.push(slot.key);
    }

    /// Recomputes the RFM cut-points from the partition's purchasers as of `at`, then
    /// re-scores every purchaser; rules reading RFM fields may enter or exit. Runs once per
    /// `engine.rfm.refresh` of event time and visits every customer of the partition.
    fn refresh(&mut self, at: Millis, out: &mut Vec<OutputEvent>) {
        let (spec, rules) = (&self.engine.spec, &self.engine.rules);
        let lookback = spec.rfm_lookback_days;
        let mut sketch = Sketch::default();
        for slot in self.profiles.iter() {
            let p = &slot.profile.purchases;
            if p.days > 0 {
                let v = p.rfm_values(at, lookback);
                if v.frequency > 0 {
                    sketch.add(v);
                }
            }
        }
        let pop = &mut self.population;
        pop.rfm = sketch.cut_points(pop.rfm.version + 1, at);
        pop.next_refresh = at + spec.rfm_refresh;
        pop.surveys.expire(spec.survey_window_days, at);
        self.refreshed = true;
        let cause = Cause::Timer { due: at };
        for slot in self.profiles.iter_mut() {
            if slot.profile.purchases.days == 0 {
                continue;
            }
            let before = slot.profile.derived.conclusions();
            let (evaluated_at, emitted) = (slot.profile.derived.evaluated_at, out.len());
            let standing = Standing::of(&slot.profile);
            let trigger = Trigger {
                sources: source::REFRESH,
                now: at,
                cause: &|| cause.clone(),
            };
            let next = evaluate(
                spec,
                rules,
                &self.population,
                &slot.key,
                &mut slot.profile,
                &trigger,
                out,
            );
            slot.recheck
                .schedule(&mut self.timers, &slot.key, &mut slot.profile, next);
            self.tally.moved(standing, Standing::of(&slot.profile));
            let derived = &mut slot.profile.derived;
            let changed = out.len() != emitted || derived.conclusions() != before;
            if !changed {
                // Nothing came of it: the profile stays as stored, so that what a restore
                // reads back is what this partition holds (a refresh visits every purchaser;
                // writing each one back every time would cost more than it says).
                derived.evaluated_at = evaluated_at;
            } else if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(slot.key.clone());
            }
        }
    }
}

/// The key of an evicted id in [`Partition::was_evicted`]'s set.
fn gone_key(customer: &str) -> u64 {
    pulse_events::IdHasher::default()
        .part(customer.as_bytes())
        .finish_u64()
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "segment_tests.rs"]
mod segment_tests;

#[cfg(test)]
#[path = "replay_tests.rs"]
mod replay_tests;

#[cfg(test)]
#[path = "eviction_tests.rs"]
mod eviction_tests;
