//! The timer index: pending time-driven changes ordered by due time, so advancing the
//! watermark touches only what is due instead of scanning every customer.
//!
//! A funnel deadline is never cancelled: one that fires after its attempt went away (converted
//! first) is recognised as stale by its handler and ignored.
//!
//! A customer's recheck moves with nearly every evaluation: it is due a whole day after their
//! newest event, so each event pushes it later. Moving its entry in the index each time (one
//! removal and one insertion into a B-tree of every customer's recheck) cost a fifth of the
//! engine's instructions. [`PendingRecheck`] instead leaves the entry where it is while the
//! recheck only moves later: when the entry comes due it is put back at the recheck's time
//! then, once a day at most instead of once an event. It keeps the scheduling number the move
//! would have given it, so rechecks and deadlines due at one time still fire in the order they
//! were asked for, whatever the deferral. [`caught_up`] says where a timer left far behind by a
//! jump of event time fires instead.

use crate::customer::profile::Profile;
use pulse_events::time::Millis;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// A funnel attempt's deadline (conversion window or step deadline).
    FunnelDeadline { funnel: u16, attempt: u32 },
    /// A customer's time-driven re-evaluation (recency, P(alive), inactivity, segment holds);
    /// put back at the profile's pending recheck if that moved later (`PendingRecheck`).
    Recheck,
}

/// Pending timers of one partition, by due time then scheduling order.
#[derive(Debug, Clone, Default)]
pub struct TimerIndex {
    due: BTreeMap<(Millis, u64), (Arc<str>, TimerKind)>,
    seq: u64,
}

impl TimerIndex {
    /// Schedules a timer; the customer's key is shared with its profile, not copied. Timers
    /// of one due time fire in the order they were scheduled.
    pub fn schedule(&mut self, due: Millis, customer: &Arc<str>, kind: TimerKind) {
        let seq = self.next_seq();
        self.due.insert((due, seq), (customer.clone(), kind));
    }

    /// The next scheduling number: where a timer scheduled now falls among those of its due
    /// time.
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Takes out `customer`'s timer of `kind` due at `due`, if there is one: a scan of the
    /// timers of that due time, for a rare removal (an evicted customer's funnel deadlines).
    pub fn cancel(&mut self, due: Millis, customer: &str, kind: TimerKind) {
        let found = self
            .due
            .range((due, 0)..=(due, u64::MAX))
            .find(|(_, (c, k))| &**c == customer && *k == kind)
            .map(|(key, _)| *key);
        if let Some(key) = found {
            self.due.remove(&key);
        }
    }

    /// Due time of the earliest timer.
    pub fn next_due(&self) -> Option<Millis> {
        self.due.first_key_value().map(|(k, _)| k.0)
    }

    /// Removes and returns the earliest timer that the watermark has passed (`due < watermark`).
    pub fn pop_passed(&mut self, watermark: Millis) -> Option<(Millis, Arc<str>, TimerKind)> {
        let entry = self.due.first_entry()?;
        if entry.key().0 >= watermark {
            return None;
        }
        let ((due, _), (customer, kind)) = entry.remove_entry();
        Some((due, customer, kind))
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

/// Where a customer's recheck (`profile.derived.recheck`) sits in the index: its entry, which
/// may be due earlier than the recheck itself (see the module's notes), and the scheduling
/// number the recheck fires with. Kept by the partition next to the profile.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PendingRecheck {
    /// The entry's key in the index; due time 0 when there is none.
    entry: (Millis, u64),
    /// The scheduling number of the newest move of the recheck.
    seq: u64,
}

impl PendingRecheck {
    /// The entry of a recheck due at `due` (none if 0), as a restored profile holds it.
    pub(crate) fn restored(timers: &mut TimerIndex, key: &Arc<str>, due: Millis) -> Self {
        let mut pending = Self::default();
        if due != 0 {
            pending.seq = timers.next_seq();
            pending.put(timers, key, due);
        }
        pending
    }

    /// Moves the customer's one pending recheck to `due` (0: none). It is the one the newest
    /// evaluation asked for, which sees everything the earlier ones saw (its own day count and
    /// every hold still running). Keeping the earliest instead would make the pending recheck,
    /// and the evaluation it causes, depend on which of a customer's events happened to be
    /// evaluated first.
    pub(crate) fn schedule(
        &mut self,
        timers: &mut TimerIndex,
        key: &Arc<str>,
        profile: &mut Profile,
        due: Millis,
    ) {
        if due == profile.derived.recheck {
            return;
        }
        profile.derived.recheck = due;
        if due == 0 {
            self.take(timers);
            return;
        }
        self.seq = timers.next_seq();
        if self.entry.0 != 0 && self.entry.0 <= due {
            return; // the entry comes due first and moves on to `due` then
        }
        self.take(timers);
        self.put(timers, key, due);
    }

    /// Handles this customer's recheck entry, popped from the index at `due`: whether the
    /// recheck is due now (`recheck`, the profile's, is `due`). If the recheck moved later
    /// since, the entry is put back at its time and nothing is due yet.
    pub(crate) fn fired(
        &mut self,
        timers: &mut TimerIndex,
        key: &Arc<str>,
        recheck: Millis,
        due: Millis,
    ) -> bool {
        self.entry = (0, 0);
        if recheck > due {
            self.put(timers, key, recheck);
            return false;
        }
        recheck == due
    }

    fn put(&mut self, timers: &mut TimerIndex, key: &Arc<str>, due: Millis) {
        self.entry = (due, self.seq);
        timers
            .due
            .insert(self.entry, (key.clone(), TimerKind::Recheck));
    }

    fn take(&mut self, timers: &mut TimerIndex) {
        if self.entry.0 != 0 {
            timers.due.remove(&self.entry);
            self.entry = (0, 0);
        }
    }
}

/// `due`, or, if the watermark `wm` is more than `gap` past it, the last time before `wm` on
/// its grid of `step` (the time it would have reached by firing every `step`).
pub(crate) fn caught_up(due: Millis, wm: Millis, step: Millis, gap: Millis) -> Millis {
    if gap <= 0 || wm - due <= gap {
        return due;
    }
    due + (wm - 1 - due).div_euclid(step) * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_due_order_only_once_passed() {
        let mut t = TimerIndex::default();
        let k = TimerKind::FunnelDeadline {
            funnel: 0,
            attempt: 1,
        };
        let key = |s: &str| Arc::<str>::from(s);
        t.schedule(300, &key("b"), k);
        t.schedule(100, &key("a"), k);
        t.schedule(300, &key("c"), k);
        assert_eq!(t.pop_passed(100), None);
        assert_eq!(t.pop_passed(101).map(|x| x.1), Some("a".into()));
        assert_eq!(t.pop_passed(301).map(|x| x.1), Some("b".into()));
        assert_eq!(t.pop_passed(301).map(|x| x.1), Some("c".into()));
        assert!(t.is_empty());
    }

    /// Pops every timer passed at `wm`, handling rechecks as the partition does; returns the
    /// ones that fired, in order, as (due, customer, whether a recheck).
    fn fire_all(
        t: &mut TimerIndex,
        wm: Millis,
        pending: &mut [(Arc<str>, PendingRecheck, Profile)],
    ) -> Vec<(Millis, String, bool)> {
        let mut fired = Vec::new();
        while let Some((due, customer, kind)) = t.pop_passed(wm) {
            let recheck = kind == TimerKind::Recheck;
            if recheck {
                let (key, p, profile) = pending
                    .iter_mut()
                    .find(|(k, ..)| *k == customer)
                    .expect("a customer of the test");
                if !p.fired(t, key, profile.derived.recheck, due) {
                    continue;
                }
                profile.derived.recheck = 0;
            }
            fired.push((due, customer.to_string(), recheck));
        }
        fired
    }

    fn customers(names: &[&str]) -> Vec<(Arc<str>, PendingRecheck, Profile)> {
        names
            .iter()
            .map(|n| (Arc::from(*n), PendingRecheck::default(), Profile::default()))
            .collect()
    }

    #[test]
    fn a_recheck_moved_later_keeps_one_entry_and_fires_once_at_its_last_time() {
        let mut t = TimerIndex::default();
        let mut c = customers(&["a"]);
        let (key, p, profile) = &mut c[0];
        for due in [100, 150, 200] {
            p.schedule(&mut t, key, profile, due);
        }
        assert_eq!(t.len(), 1, "moving later leaves the entry where it is");
        assert_eq!(t.next_due(), Some(100));
        assert_eq!(fire_all(&mut t, 150, &mut c), vec![]);
        assert_eq!(t.next_due(), Some(200), "put back at the recheck's time");
        assert_eq!(
            fire_all(&mut t, 1_000, &mut c),
            vec![(200, "a".into(), true)]
        );
        assert!(t.is_empty());
    }

    #[test]
    fn a_recheck_moved_earlier_or_taken_out_moves_its_entry() {
        let mut t = TimerIndex::default();
        let mut c = customers(&["a"]);
        let (key, p, profile) = &mut c[0];
        p.schedule(&mut t, key, profile, 200);
        p.schedule(&mut t, key, profile, 100);
        assert_eq!((t.len(), t.next_due()), (1, Some(100)));
        p.schedule(&mut t, key, profile, 0);
        assert!(t.is_empty());
        assert_eq!(fire_all(&mut t, 1_000, &mut c), vec![]);
    }

    #[test]
    fn rechecks_and_deadlines_of_one_time_fire_in_the_order_asked_whatever_the_deferral() {
        let deadline = TimerKind::FunnelDeadline {
            funnel: 0,
            attempt: 1,
        };
        let mut t = TimerIndex::default();
        let mut c = customers(&["a", "b"]);
        let b: Arc<str> = Arc::from("b");
        // a's recheck is asked for 200 (deferred behind its entry at 100) before b's deadline
        // at 200; b's recheck is asked for 200 after it.
        {
            let (key, p, profile) = &mut c[0];
            p.schedule(&mut t, key, profile, 100);
            p.schedule(&mut t, key, profile, 200);
        }
        t.schedule(200, &b, deadline);
        {
            let (key, p, profile) = &mut c[1];
            p.schedule(&mut t, key, profile, 50);
            p.schedule(&mut t, key, profile, 200);
        }
        assert_eq!(
            fire_all(&mut t, 1_000, &mut c),
            vec![
                (200, "a".into(), true),
                (200, "b".into(), false),
                (200, "b".into(), true)
            ]
        );
    }
}
