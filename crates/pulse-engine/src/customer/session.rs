//! Sessionization by an inactivity gap in event time, as Flink's session windows do it: a
//! session is a run of a customer's events with no gap longer than `engine.session_gap`
//! between neighbours, so a late event extends a session, starts one, or bridges two into one,
//! and the sessions of a set of events do not depend on the order they arrived in. An explicit
//! `session_start` begins a session at its event (nothing earlier joins it) and `session_end`
//! ends one at its event (nothing later joins it).
//!
//! Only sessions a late event can still reach are kept: those that end within the allowed
//! lateness plus the gap of the customer's newest event. Older ones are final; an event older
//! than that is late for its partition anyway.

use crate::few::Few;
use pulse_events::time::Millis;
use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

/// At most this many sessions are kept open to late events per customer, however many the
/// reach holds (a burst of explicit starts); beyond it the oldest are final.
const MAX_KEPT: usize = 8;

/// The sessions one event works on: the kept ones, the newest and the one the event may add.
/// Pruned profiles keep fewer than [`MAX_KEPT`] earlier ones; of a stored list longer than
/// that, the oldest (which the prune after the event would drop) are left out.
type Spans = Few<Span, { MAX_KEPT + 2 }>;

/// One session: the event times of its first and last events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: Millis,
    pub last: Millis,
    /// Began with an explicit `session_start` at `start`: nothing earlier joins it.
    pub begun: bool,
    /// Ended with an explicit `session_end` at `last`: nothing later joins it.
    pub ended: bool,
}

/// The customer's sessions still open to late events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The newest session's first and last event times.
    pub start: Millis,
    pub last: Millis,
    /// False after `session_end`, or before the first event.
    pub open: bool,
    /// The newest session began with an explicit `session_start`. Absent in profiles stored
    /// before sessions merged.
    #[serde(default)]
    pub begun: bool,
    /// Earlier sessions a late event can still reach, oldest first.
    #[serde(default)]
    pub earlier: ThinVec<Span>,
}

/// What one event did to the customer's sessions: where a session count is added and where
/// counts are taken away (sessions are counted at their start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Touch {
    pub added: Option<Millis>,
    pub removed: [Option<Millis>; 2],
}

impl Touch {
    /// The change in the number of sessions.
    pub fn delta(&self) -> i64 {
        i64::from(self.added.is_some()) - self.removed.iter().flatten().count() as i64
    }
}

/// How an event is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Plain,
    Start,
    End,
}

impl Session {
    /// Every session, oldest first: the earlier ones and the newest. Held inline, so the
    /// events that take the slow path (explicit marks, late events) allocate nothing.
    fn spans(&self) -> Spans {
        let mut all = Spans::from_slice(&self.earlier);
        if self.start != 0 || self.last != 0 || self.open {
            all.push(Span {
                start: self.start,
                last: self.last,
                begun: self.begun,
                ended: !self.open,
            });
        }
        all
    }

    fn store(&mut self, mut all: Spans) {
        let newest = all.pop().unwrap_or_default();
        self.start = newest.start;
        self.last = newest.last;
        self.open = !newest.ended;
        self.begun = newest.begun;
        // Into the list's own buffer, which keeps its capacity from one event to the next.
        self.earlier.clear();
        self.earlier.extend_from_slice(&all);
    }

    /// Records an activity at `ts`. `reach`: how far behind the newest event a late event can
    /// still arrive (the allowed lateness); sessions ending before that, less the gap, are
    /// final and dropped.
    pub fn touch(&mut self, ts: Millis, gap: Millis, mark: Mark, reach: Millis) -> Touch {
        // Most events come at or after the start of the newest session: they continue it or
        // start the next one, without a copy of the spans.
        let fresh = self.start == 0 && self.last == 0 && !self.open;
        if mark == Mark::Plain && (fresh || ts >= self.start) {
            let mut touch = Touch::default();
            if !fresh && (ts <= self.last || (self.open && ts <= self.last + gap)) {
                self.last = self.last.max(ts);
            } else {
                if !fresh {
                    self.earlier.push(Span {
                        start: self.start,
                        last: self.last,
                        begun: self.begun,
                        ended: !self.open,
                    });
                }
                (self.start, self.last, self.open, self.begun) = (ts, ts, true, false);
                touch.added = Some(ts);
            }
            self.prune(reach, gap);
            return touch;
        }
        let mut all = self.spans();
        let mut touch = Touch::default();
        // The spans this event joins: within the gap, and not across an explicit boundary.
        let joins = |s: &Span| {
            let after = ts > s.last;
            let before = ts < s.start;
            let near = ts >= s.start - gap && ts <= s.last + gap;
            let crosses = (after && s.ended) || (before && s.begun);
            near && !crosses
        };
        match mark {
            Mark::Plain => {
                // Only the sessions on either side of `ts` can take it: one further away has
                // another session in between.
                // An event within a session's bounds is in it, and reaches no further than
                // the session already does.
                let after = all.iter().position(|s| s.start > ts).unwrap_or(all.len());
                let within = after > 0 && ts <= all[after - 1].last;
                let hit: Few<usize, 2> = if within {
                    Few::from_slice(&[after - 1])
                } else {
                    (after.saturating_sub(1)..(after + 1).min(all.len()))
                        .filter(|i| joins(&all[*i]))
                        .collect()
                };
                let mut merged = Span {
                    start: ts,
                    last: ts,
                    begun: false,
                    ended: false,
                };
                for (k, i) in hit.iter().enumerate() {
                    let s = all[*i];
                    if s.start <= merged.start {
                        merged.begun = s.begun;
                    }
                    if s.last >= merged.last {
                        merged.ended = s.ended;
                    }
                    merged.start = merged.start.min(s.start);
                    merged.last = merged.last.max(s.last);
                    if k < 2 {
                        touch.removed[k] = Some(s.start);
                    }
                }
                for i in hit.iter().rev() {
                    all.remove(*i);
                }
                touch.added = Some(merged.start);
                all.push(merged);
            }
            Mark::Start => {
                // Events from `ts` on within the gap belong to the session it begins. Spans are
                // disjoint and sorted, so at most one holds `ts` and the first after it is the
                // only one it can begin.
                let inside = all.iter().position(|s| s.start < ts && ts <= s.last);
                let next = all.iter().position(|s| {
                    s.start >= ts && s.start <= ts + gap && !(s.begun && s.start > ts)
                });
                if let Some(i) = inside {
                    // Split it: its events before `ts` keep their session (whose last is not
                    // kept; `ts - 1` bounds it).
                    let s = all[i];
                    all[i].last = ts - 1;
                    all[i].ended = false;
                    all.push(Span {
                        start: ts,
                        last: s.last,
                        begun: true,
                        ended: s.ended,
                    });
                    touch.added = Some(ts);
                } else if let Some(i) = next {
                    // Just before (or at) a session: it now begins here.
                    touch.removed[0] = Some(all[i].start);
                    touch.added = Some(ts);
                    all[i].start = ts;
                    all[i].begun = true;
                } else {
                    all.push(Span {
                        start: ts,
                        last: ts,
                        begun: true,
                        ended: false,
                    });
                    touch.added = Some(ts);
                }
            }
            Mark::End => {
                let inside = all.iter().position(|s| s.start <= ts && ts < s.last);
                let before = all
                    .iter()
                    .rposition(|s| s.last <= ts && ts <= s.last + gap && !(s.ended && ts > s.last));
                if let Some(i) = inside {
                    // It ends here; its later events are another session (whose first is not
                    // kept; `ts + 1` bounds it).
                    let s = all[i];
                    all[i].last = ts;
                    all[i].ended = true;
                    all.push(Span {
                        start: ts + 1,
                        last: s.last,
                        begun: false,
                        ended: s.ended,
                    });
                    touch.added = Some(ts + 1);
                } else if let Some(i) = before {
                    // Just after (or at) a session's last event: it ends here.
                    all[i].last = ts;
                    all[i].ended = true;
                } else {
                    all.push(Span {
                        start: ts,
                        last: ts,
                        begun: false,
                        ended: true,
                    });
                    touch.added = Some(ts);
                }
            }
        }
        // A count added and taken away at the same start is no change.
        for r in &mut touch.removed {
            if r.is_some() && *r == touch.added {
                *r = None;
                touch.added = None;
            }
        }
        all.sort_by_key(|s| (s.start, s.last));
        self.store(all);
        self.prune(reach, gap);
        touch
    }

    /// Drops the earlier sessions no late event can reach any more (they end more than the
    /// reach plus the gap before the newest event), and all but the newest few.
    fn prune(&mut self, reach: Millis, gap: Millis) {
        let final_before = self.last - reach - gap;
        let e = &mut self.earlier;
        let drop = e
            .iter()
            .position(|s| s.last >= final_before)
            .unwrap_or(e.len())
            .max((e.len() + 1).saturating_sub(MAX_KEPT));
        e.drain(..drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Millis = 30 * 60_000;
    const REACH: Millis = 60 * 60_000;
    const T: Millis = 1_767_225_600_000;

    fn play(events: &[(Millis, Mark)]) -> (Session, i64) {
        let mut s = Session::default();
        let mut n = 0;
        for (ts, mark) in events {
            n += s.touch(*ts, GAP, *mark, REACH).delta();
        }
        (s, n)
    }

    fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut p in permutations(&rest) {
                p.insert(0, first.clone());
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn splits_on_the_inactivity_gap() {
        let mut s = Session::default();
        let t = |s: &mut Session, ts| s.touch(ts, GAP, Mark::Plain, REACH).delta();
        assert_eq!(t(&mut s, T), 1);
        assert_eq!(t(&mut s, T + GAP), 0);
        // Exactly the gap after the last activity continues; one millisecond more does not.
        assert_eq!(t(&mut s, T + 2 * GAP + 1), 1);
        assert_eq!(s.start, T + 2 * GAP + 1);
    }

    #[test]
    fn explicit_start_and_end() {
        let (s, n) = play(&[
            (T, Mark::Plain),
            (T + 1000, Mark::Start),
            (T + 2000, Mark::End),
        ]);
        assert_eq!(n, 2);
        assert!(!s.open);
        let (_, n) = play(&[
            (T, Mark::Plain),
            (T + 1000, Mark::Start),
            (T + 2000, Mark::End),
            (T + 3000, Mark::Plain),
        ]);
        assert_eq!(n, 3);
    }

    #[test]
    fn a_late_event_that_bridges_two_sessions_merges_them() {
        let a = T;
        let b = T + GAP + GAP / 2; // 45 min after a: two sessions
        let (s, n) = play(&[(a, Mark::Plain), (b, Mark::Plain)]);
        assert_eq!(n, 2);
        assert_eq!(s.earlier.len(), 1, "within reach of a late event: {s:?}");
        // 20 min after a and 25 min before b: within the gap of both.
        let (s, n) = play(&[
            (a, Mark::Plain),
            (b, Mark::Plain),
            (T + 20 * 60_000, Mark::Plain),
        ]);
        assert_eq!(n, 1);
        assert_eq!((s.start, s.last, s.earlier.len()), (a, b, 0));
    }

    /// Every order of a set of events that straddles gaps gives the same sessions: counts,
    /// bounds and which one is newest.
    #[test]
    fn sessions_are_the_same_for_every_arrival_order() {
        let m = 60_000;
        let events = [
            (T, Mark::Plain),
            (T + 20 * m, Mark::Plain),
            (T + 45 * m, Mark::Plain),
            (T + 70 * m, Mark::Plain),
            (T + 140 * m, Mark::Plain),
            (T + 150 * m, Mark::Plain),
        ];
        let reach = 200 * m; // every event of the set is within the allowed lateness
        let mut seen = None;
        for p in permutations(&events) {
            let mut s = Session::default();
            let n: i64 = p
                .iter()
                .map(|(ts, mk)| s.touch(*ts, GAP, *mk, reach).delta())
                .sum();
            let got = (n, s.clone());
            match &seen {
                None => seen = Some(got),
                Some(first) => assert_eq!(&got, first, "order {p:?}"),
            }
        }
        let (n, s) = seen.unwrap();
        // 0..70 min chained by gaps of at most 30 min; 140..150 apart.
        assert_eq!(n, 2);
        assert_eq!((s.start, s.last), (T + 140 * m, T + 150 * m));
    }

    /// Explicit boundaries that arrive before the events they bound, in any order among
    /// themselves, followed by those events in any order.
    #[test]
    fn explicit_boundaries_are_the_same_for_every_arrival_order_of_the_events_they_bound() {
        let m = 60_000;
        let marks = [
            (T, Mark::Start),
            (T + 10 * m, Mark::End),
            (T + 12 * m, Mark::Start),
        ];
        let plain = [
            (T + 5 * m, Mark::Plain),
            (T + 15 * m, Mark::Plain),
            (T + 11 * m, Mark::Plain),
            (T + 40 * m, Mark::Plain),
        ];
        let mut seen = None;
        for first in permutations(&marks) {
            for then in permutations(&plain) {
                let mut s = Session::default();
                let n: i64 = first
                    .iter()
                    .chain(&then)
                    .map(|(ts, mk)| s.touch(*ts, GAP, *mk, 200 * m).delta())
                    .sum();
                match &seen {
                    None => seen = Some(n),
                    Some(want) => assert_eq!(&n, want, "order {first:?} then {then:?}"),
                }
            }
        }
        // [0, 10] ended; 11 alone (after an end, before a start); [12, 40] begun at 12.
        assert_eq!(seen, Some(3));
    }

    #[test]
    fn sessions_beyond_the_reach_are_final() {
        let (s, n) = play(&[
            (T, Mark::Plain),
            (T + 10 * GAP, Mark::Plain),
            (T + 20 * GAP, Mark::Plain),
        ]);
        assert_eq!(n, 3);
        assert!(s.earlier.is_empty(), "{s:?}");
        // A profile stored before sessions merged reads as its newest session alone.
        let old = Session {
            start: T,
            last: T + 1000,
            open: true,
            ..Session::default()
        };
        assert_eq!(old.spans().len(), 1);
    }
}
