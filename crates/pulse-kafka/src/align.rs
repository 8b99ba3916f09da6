//! The order in which a partition task applies its own records and the records other partitions
//! forwarded to it through the repartition topic.
//!
//! Where a forwarded record lands in the repartition topic depends on the pace of every
//! partition that forwards: applied in arrival order, the same input would give different state
//! in different runs. So every record carries a key: the stream time of the partition that read
//! it from its input (the newest event time it had sequenced, its own included, see
//! [`crate::sequence`]). Per source partition the keys never decrease. The task applies the
//! records of every source, its own included, in the order of (key, source partition, own
//! before forwarded), which is a function of the input records alone.
//!
//! A record may go once no source can still send one that comes before it. Each source says
//! how far it is with markers in the repartition topic, after the records they cover: "every
//! record I forward from now on has a key of at least B", or "I am caught up". A source that is
//! caught up holds nobody back: in a replay of stored history no partition is caught up before
//! its end. Nor is a live record held back (its key, an event time, within [`LIVE`] of the
//! wall clock): in live use records are applied as they arrive, as in Kafka Streams, and a
//! partition whose worker died holds nobody back. A source that says nothing (its worker died
//! during a replay and its partition has not moved yet) holds the others for at most
//! `worker.repartition_hold`; past that they go on without it, and count it.

use crate::held::Weigh;
use pulse_engine::Millis;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How close to the wall clock a key is live: such a record is not held back for the order.
/// Event times in live use trail the wall clock by the pipeline's delay, seconds; a catch-up
/// after an outage, or a replay, is older and keeps its order.
pub(crate) const LIVE: Millis = 60_000;

/// What a source's latest marker said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// Nothing heard from it since this task started reading.
    Unknown,
    /// Every record it forwards from now on has at least this key.
    At(Millis),
    /// Caught up: it forwards nothing more until new input arrives.
    CaughtUp,
}

/// A record with its place in the order.
#[derive(Debug)]
pub(crate) struct Keyed<T> {
    pub key: Millis,
    /// Its offset in the repartition topic (forwarded records; unused for own ones).
    pub offset: i64,
    pub item: T,
}

#[derive(Debug)]
struct Source<T> {
    queue: VecDeque<Keyed<T>>,
    bound: Bound,
    /// Where its latest marker is in the repartition topic: a restart reads from there, so it
    /// learns the bound again at once.
    marker: Option<i64>,
}

/// What [`Aligner::next`] found.
#[derive(Debug)]
pub(crate) enum Next<T> {
    Own(Keyed<T>),
    Forwarded(Keyed<T>),
    /// The first record must wait for the task's own input (it may still hold an earlier one).
    WaitOwn,
    /// The first record must wait for a source's marker or records.
    WaitSource,
    /// Nothing buffered.
    Empty,
}

#[derive(Debug)]
pub(crate) struct Aligner<T> {
    me: usize,
    sources: Vec<Source<T>>,
    own: VecDeque<Keyed<T>>,
    /// One past the newest repartition offset received.
    received: i64,
    hold: Duration,
    /// Forwarded records buffered beyond this many, or this many bytes, are let through
    /// regardless, so memory stays bounded whatever a source does.
    cap: usize,
    byte_cap: usize,
    forwarded: usize,
    forwarded_bytes: usize,
    own_bytes: usize,
    blocked_since: Option<Instant>,
    /// Records let through while a source could still send an earlier one.
    pub forced: u64,
}

/// Rank of a record: key, source partition, own (0) before forwarded (1).
type Rank = (Millis, usize, u8);

impl<T: Weigh> Aligner<T> {
    /// `partitions`: how many partitions forward to this one (0: unknown, nothing is waited
    /// for). `next`: the repartition offset reading starts at.
    pub fn new(
        me: i32,
        partitions: i32,
        next: i64,
        hold: Duration,
        cap: usize,
        byte_cap: usize,
    ) -> Self {
        let sources = (0..partitions.max(0))
            .map(|_| Source {
                queue: VecDeque::new(),
                bound: Bound::Unknown,
                marker: None,
            })
            .collect();
        Self {
            me: usize::try_from(me).unwrap_or(0),
            sources,
            own: VecDeque::new(),
            received: next,
            hold,
            cap,
            byte_cap,
            forwarded: 0,
            forwarded_bytes: 0,
            own_bytes: 0,
            blocked_since: None,
            forced: 0,
        }
    }

    /// A source partition out of range (a partition count that changed) counts as this one's,
    /// which is never waited for.
    fn source(&self, partition: i32) -> usize {
        usize::try_from(partition)
            .ok()
            .filter(|p| *p < self.sources.len())
            .unwrap_or(self.me)
    }

    fn arrived(&mut self, offset: i64) {
        self.received = self.received.max(offset + 1);
    }

    pub fn push_own(&mut self, key: Millis, item: T) {
        self.own_bytes += item.bytes();
        self.own.push_back(Keyed {
            key,
            offset: -1,
            item,
        });
    }

    pub fn push_forwarded(&mut self, source: i32, key: Millis, offset: i64, item: T) {
        self.arrived(offset);
        let s = self.source(source);
        if let Some(src) = self.sources.get_mut(s) {
            self.forwarded += 1;
            self.forwarded_bytes += item.bytes();
            src.queue.push_back(Keyed { key, offset, item });
        } else {
            // No partition count known: nothing to align with, so it simply comes next.
            self.own_bytes += item.bytes();
            self.own.push_back(Keyed { key, offset, item });
        }
    }

    pub fn mark(&mut self, source: i32, bound: Bound, offset: i64) {
        self.arrived(offset);
        let s = self.source(source);
        if let Some(src) = self.sources.get_mut(s) {
            src.bound = bound;
            src.marker = Some(offset);
        }
    }

    pub fn own_len(&self) -> usize {
        self.own.len()
    }

    /// What the own records waiting here weigh.
    pub fn own_bytes(&self) -> usize {
        self.own_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.own.is_empty() && self.forwarded == 0
    }

    /// The next own record, if any.
    pub fn own_front(&self) -> Option<&Keyed<T>> {
        self.own.front()
    }

    /// Where reading the repartition topic resumes after a restart: at the oldest forwarded
    /// record not yet applied, and not past any source's latest marker.
    pub fn resume(&self) -> i64 {
        self.sources
            .iter()
            .flat_map(|s| {
                s.queue
                    .front()
                    .map(|k| k.offset)
                    .into_iter()
                    .chain(s.marker)
            })
            .fold(self.received, i64::min)
    }

    /// The record to apply next, if the order allows it now. `own_floor`: the least key the
    /// task's own records can still have (its stream time), or `None` if it is caught up and
    /// has nothing on its way. `wall`: the wall clock, for what is live.
    pub fn next(&mut self, own_floor: Option<Millis>, wall: Millis, now: Instant) -> Next<T> {
        let own = self.own.front().map(|k| (k.key, self.me, 0u8));
        let forwarded = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(j, s)| s.queue.front().map(|k| ((k.key, j, 1u8), j)))
            .min();
        let first: Rank = match (own, forwarded) {
            (None, None) => return Next::Empty,
            (Some(o), None) => o,
            (None, Some((f, _))) => f,
            (Some(o), Some((f, _))) => o.min(f),
        };
        let live = first.0 >= wall.saturating_sub(LIVE);
        let waits = if live {
            None
        } else if own.is_none() && own_floor.is_some_and(|k| (k, self.me, 0) < first) {
            Some(Next::WaitOwn)
        } else {
            self.waits_on_source(first).then_some(Next::WaitSource)
        };
        if let Some(wait) = waits {
            let since = *self.blocked_since.get_or_insert(now);
            let room = self.forwarded <= self.cap && self.forwarded_bytes <= self.byte_cap;
            if now.duration_since(since) < self.hold && room {
                return wait;
            }
            self.forced += 1;
        } else {
            self.blocked_since = None;
        }
        match forwarded {
            Some((f, j)) if f == first => match self.sources[j].queue.pop_front() {
                Some(k) => {
                    self.forwarded -= 1;
                    self.forwarded_bytes -= k.item.bytes();
                    Next::Forwarded(k)
                }
                None => Next::Empty,
            },
            _ => match self.own.pop_front() {
                Some(k) => {
                    self.own_bytes -= k.item.bytes();
                    Next::Own(k)
                }
                None => Next::Empty,
            },
        }
    }

    /// Whether a source with nothing buffered may still send a record that comes before
    /// `first`. This partition's own forwarded records are never waited for: they are
    /// forwarded here only when its partitioner cannot be reproduced, and then in no order
    /// worth waiting for.
    fn waits_on_source(&self, first: Rank) -> bool {
        self.sources.iter().enumerate().any(|(j, s)| {
            j != self.me
                && s.queue.is_empty()
                && match s.bound {
                    Bound::Unknown => true,
                    Bound::At(b) => (b, j, 1) <= first,
                    Bound::CaughtUp => false,
                }
        })
    }

    /// The task was away for `d` (delivering a batch): that does not count as waiting.
    pub fn away(&mut self, d: Duration) {
        if let Some(s) = &mut self.blocked_since {
            *s += d;
        }
    }

    /// When the aligner will give up waiting, if it is waiting.
    pub fn deadline(&self) -> Option<Instant> {
        self.blocked_since.map(|s| s + self.hold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(60);
    /// A wall clock far past the keys of these tests: every record is history.
    const WALL: Millis = 1_000_000_000;

    fn aligner(me: i32, partitions: i32) -> Aligner<&'static str> {
        Aligner::new(me, partitions, 0, HOLD, 1000, usize::MAX)
    }

    fn drain(a: &mut Aligner<&'static str>, floor: Option<Millis>) -> Vec<&'static str> {
        let now = Instant::now();
        let mut out = Vec::new();
        loop {
            match a.next(floor, WALL, now) {
                Next::Own(k) | Next::Forwarded(k) => out.push(k.item),
                _ => return out,
            }
        }
    }

    #[test]
    fn records_go_in_key_order_then_by_source_partition_own_first() {
        let mut a = aligner(1, 3);
        a.push_own(10, "own10");
        a.push_own(20, "own20");
        a.push_forwarded(0, 10, 5, "p0-10");
        a.push_forwarded(2, 10, 6, "p2-10");
        a.push_forwarded(0, 15, 7, "p0-15");
        a.mark(0, Bound::CaughtUp, 8);
        a.mark(2, Bound::CaughtUp, 9);
        assert_eq!(
            drain(&mut a, None),
            ["p0-10", "own10", "p2-10", "p0-15", "own20"]
        );
        assert!(a.is_empty());
        assert_eq!(a.forced, 0);
    }

    #[test]
    fn a_record_waits_for_a_source_that_may_still_send_an_earlier_one() {
        let mut a = aligner(1, 3);
        a.push_own(10, "own10");
        a.mark(2, Bound::CaughtUp, 0);
        // Source 0 has said nothing.
        assert!(matches!(
            a.next(None, WALL, Instant::now()),
            Next::WaitSource
        ));
        // Source 0 is at 10: it may still send a record of key 10, which comes first.
        a.mark(0, Bound::At(10), 1);
        assert!(matches!(
            a.next(None, WALL, Instant::now()),
            Next::WaitSource
        ));
        a.mark(0, Bound::At(11), 2);
        assert_eq!(drain(&mut a, None), ["own10"]);
        // A source of a higher partition at the same key comes after this one's own records.
        let mut b = aligner(1, 3);
        b.mark(0, Bound::CaughtUp, 0);
        b.mark(2, Bound::At(10), 1);
        b.push_own(10, "own10");
        assert_eq!(drain(&mut b, None), ["own10"]);
    }

    #[test]
    fn a_forwarded_record_waits_for_the_tasks_own_input_while_it_may_hold_an_earlier_record() {
        let mut a = aligner(1, 2);
        a.push_forwarded(0, 30, 0, "p0-30");
        a.mark(0, Bound::At(40), 1);
        // Own stream time 20: an own record of key 20 may still come.
        assert!(matches!(
            a.next(Some(20), WALL, Instant::now()),
            Next::WaitOwn
        ));
        a.push_own(20, "own20");
        assert_eq!(drain(&mut a, Some(35)), ["own20", "p0-30"]);
    }

    #[test]
    fn a_live_record_waits_for_nobody() {
        let mut a = aligner(1, 3);
        let wall = 1_000_000;
        a.push_own(wall - LIVE + 1, "live");
        assert!(matches!(a.next(None, wall, Instant::now()), Next::Own(_)));
        a.push_forwarded(0, wall - 5, 0, "forwarded live");
        assert!(matches!(
            a.next(Some(wall - 10), wall, Instant::now()),
            Next::Forwarded(_)
        ));
        a.push_own(wall - LIVE - 1, "history");
        assert!(matches!(
            a.next(None, wall, Instant::now()),
            Next::WaitSource
        ));
    }

    #[test]
    fn a_silent_source_is_waited_for_at_most_the_hold() {
        let mut a: Aligner<&str> =
            Aligner::new(0, 2, 0, Duration::from_millis(10), 1000, usize::MAX);
        a.push_own(5, "own5");
        let t0 = Instant::now();
        assert!(matches!(a.next(None, WALL, t0), Next::WaitSource));
        assert_eq!(a.deadline(), Some(t0 + Duration::from_millis(10)));
        let later = t0 + Duration::from_millis(11);
        assert!(matches!(a.next(None, WALL, later), Next::Own(_)));
        assert_eq!(a.forced, 1);
    }

    #[test]
    fn the_same_records_arriving_in_any_interleaving_come_out_in_one_order() {
        // Three sources' records, each source's in its own order, interleaved differently.
        let streams: [Vec<(i32, Millis, &'static str)>; 3] = [
            vec![(0, 1, "a1"), (0, 4, "a4"), (0, 9, "a9")],
            vec![(2, 1, "c1"), (2, 2, "c2"), (2, 9, "c9")],
            vec![(3, 3, "d3"), (3, 9, "d9")],
        ];
        let own = [(1, "o1"), (5, "o5"), (9, "o9")];
        let mut seen: Option<Vec<&str>> = None;
        for rotation in 0..20u64 {
            let mut a = aligner(1, 4);
            let mut queues: Vec<VecDeque<_>> = streams
                .iter()
                .map(|s| s.iter().copied().collect())
                .collect();
            let mut out = Vec::new();
            let mut offset = 0;
            let mut rng: u64 = rotation * 2 + 1;
            let mut own_left: VecDeque<_> = own.iter().copied().collect();
            while queues.iter().any(|q| !q.is_empty()) || !own_left.is_empty() {
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let turn = (rng >> 33) as usize % 4;
                if turn < 3 {
                    if let Some((src, key, item)) = queues[turn].pop_front() {
                        a.push_forwarded(src, key, offset, item);
                        let bound = queues[turn]
                            .front()
                            .map_or(Bound::CaughtUp, |n| Bound::At(n.1));
                        a.mark(src, bound, offset + 1);
                        offset += 2;
                    }
                } else if let Some((key, item)) = own_left.pop_front() {
                    a.push_own(key, item);
                }
                let floor = own_left.front().map(|o| o.0);
                out.extend(drain(&mut a, floor));
            }
            out.extend(drain(&mut a, None));
            assert_eq!(a.forced, 0);
            match &seen {
                None => seen = Some(out),
                Some(s) => assert_eq!(&out, s, "rotation {rotation}"),
            }
        }
        assert_eq!(
            seen.unwrap(),
            ["a1", "o1", "c1", "c2", "d3", "a4", "o5", "a9", "o9", "c9", "d9"]
        );
    }

    #[test]
    fn reading_resumes_at_the_oldest_unapplied_record_and_keeps_every_latest_marker() {
        let mut a = aligner(1, 3);
        a.mark(0, Bound::At(5), 10);
        a.push_forwarded(2, 8, 11, "p2-8");
        a.mark(2, Bound::At(9), 12);
        a.mark(0, Bound::At(50), 13);
        assert_eq!(a.resume(), 11);
        a.push_own(7, "own7");
        assert_eq!(drain(&mut a, None), ["own7", "p2-8"]);
        // Source 2's latest marker is the oldest one kept.
        assert_eq!(a.resume(), 12);
    }
}
