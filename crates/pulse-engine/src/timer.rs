//! The timer index: pending time-driven changes ordered by due time, so advancing the
//! watermark touches only what is due instead of scanning every customer.
//!
//! A funnel deadline is never cancelled: one that fires after its attempt went away (converted
//! first) is recognised as stale by its handler and ignored. A customer's recheck moves with
//! each evaluation, so the old one is taken out by its due time ([`TimerIndex::cancel`]); both
//! stay O(log n) with no back-pointers from profiles into the index. [`schedule_recheck`]
//! keeps a customer's one pending recheck, and [`caught_up`] says where a timer left far behind
//! by a jump of event time fires instead.

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
    /// stale unless its due time is still the profile's pending recheck.
    Recheck,
}

/// Pending timers of one partition, by due time then scheduling order.
#[derive(Debug, Clone, Default)]
pub struct TimerIndex {
    due: BTreeMap<(Millis, u64), (Arc<str>, TimerKind)>,
    seq: u64,
}

impl TimerIndex {
    /// Schedules a timer; the customer's key is shared with its profile, not copied.
    pub fn schedule(&mut self, due: Millis, customer: &Arc<str>, kind: TimerKind) {
        self.seq += 1;
        self.due.insert((due, self.seq), (customer.clone(), kind));
    }

    /// Takes out `customer`'s timer of `kind` due at `due`, if there is one.
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

/// Keeps one pending recheck per customer: the one the newest evaluation asked for, which
/// sees everything the earlier ones saw (its own day count and every hold still running). A
/// timer no longer matching it is stale and skipped when it fires. Keeping the earliest instead
/// would make the pending recheck, and the evaluation it causes, depend on which of a
/// customer's events happened to be evaluated first.
pub(crate) fn schedule_recheck(
    timers: &mut TimerIndex,
    key: &Arc<str>,
    profile: &mut Profile,
    due: Millis,
) {
    let pending = profile.derived.recheck;
    if due != pending {
        if pending != 0 {
            timers.cancel(pending, key, TimerKind::Recheck);
        }
        profile.derived.recheck = due;
        if due != 0 {
            timers.schedule(due, key, TimerKind::Recheck);
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
}
