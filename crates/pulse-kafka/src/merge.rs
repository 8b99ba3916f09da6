//! Event-time order across a partition task's own inputs. The clickstream, purchases and surveys
//! topics' records reach a task in fetch order, which differs from run to run; the merger hands
//! them on in event-time order, ties broken by input and then offset, so that the sequence a
//! task takes them in ([`crate::sequence`]) is a function of the input records alone. (The
//! records other partitions forward are ordered by [`crate::align`].)
//!
//! A record is held back while another input has nothing buffered but still has records on
//! the broker, or records the consumer has polled that are still on their way to the task (it
//! lags). An input with nothing buffered that is caught up (its end offset, looked up after the
//! record that would pass it arrived, is where the task stands) does not hold the others: in a
//! replay of stored history no input is caught up until its end, so the order is the stored
//! records' alone; in live use a caught-up input's next record was produced after the one
//! passing it, and waiting for it would only add latency. A lagging input holds the others
//! back for at most `worker.max_hold`; past that the merger goes on without it (and counts
//! it), so an input whose records stop arriving cannot stall the partition.

use crate::held::Weigh;
use pulse_engine::Millis;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often an input the merge waits on without a record to pass it (a partition saying
/// whether it is caught up, transaction markers being confirmed) is looked up again, and how
/// long such a finding counts although records arrived since. A record that would pass an
/// input is never let through on a lookup older than itself.
const LOOKUP_EVERY: Duration = Duration::from_millis(100);

/// A record waiting for its turn.
#[derive(Debug)]
pub(crate) struct Held<T> {
    pub item: T,
    pub input: usize,
    pub offset: i64,
    /// Its event time; records without one go in their input's order, at the time before them.
    pub ts: Millis,
    /// Its own event time, if it has one.
    pub read: Option<Millis>,
    /// When it reached the task.
    pub arrived: Instant,
}

/// What the merger knows of one input.
#[derive(Debug, Default)]
struct Input<T> {
    queue: VecDeque<Held<T>>,
    /// One past the offset of the newest record received.
    received: i64,
    /// When the newest record arrived.
    last_arrival: Option<Instant>,
    /// The broker's end offset as last looked up, and when.
    end: Option<(i64, Instant)>,
    /// The consumer's position at that lookup: past the records it delivered, and past the
    /// transaction markers it skipped, which no record will ever fill.
    position: i64,
    /// One past the newest record the consumer loop had taken for the task at that lookup.
    dispatched: i64,
    /// The position and received offset of the previous lookup, when the position was past
    /// what was received with nothing on its way.
    gap: Option<(i64, i64)>,
    /// That gap was seen at two lookups in a row: it is transaction markers, not a record
    /// polled just as the position was read.
    markers: bool,
    /// The event time of the newest record received, for records without one.
    last_ts: Millis,
}

/// Whether an input that has nothing buffered may be passed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Empty {
    CaughtUp,
    Lagging,
    Unknown,
}

#[derive(Debug)]
pub(crate) struct Merger<T> {
    inputs: Vec<Input<T>>,
    blocked_since: Option<Instant>,
    max_hold: Duration,
    /// What the buffered records weigh.
    bytes: usize,
    /// Records released past a lagging input because the hold bound passed.
    pub forced: u64,
}

impl<T: Weigh> Merger<T> {
    /// `next`: per input, the next offset the task will read (-1: unknown yet).
    pub fn new(max_hold: Duration, next: &[i64]) -> Self {
        let inputs = next
            .iter()
            .map(|n| Input {
                queue: VecDeque::new(),
                received: *n,
                last_arrival: None,
                end: None,
                position: -1,
                dispatched: -1,
                gap: None,
                markers: false,
                last_ts: Millis::MIN,
            })
            .collect();
        Self {
            inputs,
            blocked_since: None,
            max_hold,
            bytes: 0,
            forced: 0,
        }
    }

    pub fn push(&mut self, input: usize, offset: i64, ts: Option<Millis>, item: T, now: Instant) {
        let i = &mut self.inputs[input];
        let read = ts;
        let ts = ts.unwrap_or(i.last_ts);
        i.last_ts = ts;
        // A record from before the restored position (re-delivered from an older commit) does
        // not move what was received back.
        i.received = i.received.max(offset + 1);
        i.last_arrival = Some(now);
        self.bytes += item.bytes();
        i.queue.push_back(Held {
            item,
            input,
            offset,
            ts,
            read,
            arrived: now,
        });
    }

    /// Records buffered in all.
    pub fn len(&self) -> usize {
        self.inputs.iter().map(|i| i.queue.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `passing`: when the record that would pass this input arrived, if one would.
    fn empty_state(&self, input: usize, now: Instant, passing: Option<Instant>) -> Empty {
        let i = &self.inputs[input];
        let Some((end, at)) = i.end else {
            return Empty::Unknown;
        };
        // Records the consumer loop took but that are not here yet are on their way.
        if i.dispatched > i.received || end > i.received.max(i.position) {
            return Empty::Lagging;
        }
        let fresh = match passing {
            // Only a lookup begun after the passing record arrived covers every record
            // produced before it: one the producer wrote earlier was on the broker before the
            // passing record could be fetched, and is then counted in `end`. An older lookup
            // says nothing of what was produced since, however long nothing arrived.
            Some(arrived) => at >= arrived,
            None => i.last_arrival.is_none_or(|a| a <= at) || now.duration_since(at) < LOOKUP_EVERY,
        };
        // Between what was received and the position: markers, once seen twice.
        let settled = end <= i.received || i.markers;
        if fresh && settled {
            Empty::CaughtUp
        } else {
            Empty::Unknown
        }
    }

    /// When an input the merge waits on may be looked up again: at once if the record that
    /// would pass it arrived after its last lookup, otherwise at most every [`LOOKUP_EVERY`].
    fn lookup_due(&self, input: usize) -> Option<Instant> {
        let (_, at) = self.inputs[input].end?;
        match self.passing() {
            Some(arrived) if at < arrived => Some(at),
            _ => Some(at + LOOKUP_EVERY),
        }
    }

    /// When the record the next release would hand on arrived.
    fn passing(&self) -> Option<Instant> {
        let i = self.first()?;
        self.inputs[i].queue.front().map(|h| h.arrived)
    }

    /// The empty inputs the next release waits on without knowing whether they are caught up:
    /// their end offsets should be looked up (a broker round trip) and given to
    /// [`Merger::set_end`].
    /// `wanted`: look up even with nothing buffered (someone waits to know).
    pub fn to_look_up(&self, now: Instant, wanted: bool) -> Vec<usize> {
        if self.is_empty() && !wanted {
            return Vec::new();
        }
        self.unknown(now)
            .filter(|j| self.lookup_due(*j).is_none_or(|due| due <= now))
            .collect()
    }

    /// The empty inputs whose state is unknown.
    fn unknown(&self, now: Instant) -> impl Iterator<Item = usize> + '_ {
        let passing = self.passing();
        (0..self.inputs.len())
            .filter(|j| self.inputs[*j].queue.is_empty())
            .filter(move |j| self.empty_state(*j, now, passing) == Empty::Unknown)
    }

    /// The broker's end offset of `input` and the consumer's position there, as looked up at
    /// `at` (taken before the lookup started).
    /// `dispatched`: one past the newest record the consumer loop had taken for the task,
    /// read after the position.
    pub fn set_end(&mut self, input: usize, end: i64, position: i64, dispatched: i64, at: Instant) {
        let i = &mut self.inputs[input];
        i.end = Some((end, at));
        i.position = position;
        i.dispatched = dispatched;
        let gap = (position > i.received && dispatched <= i.received && end <= position)
            .then_some((position, i.received));
        i.markers = gap.is_some() && gap == i.gap;
        i.gap = gap;
    }

    /// Whether `input` has nothing buffered and nothing more on the broker, as last looked up.
    pub fn caught_up(&self, input: usize, now: Instant) -> bool {
        self.inputs[input].queue.is_empty() && self.empty_state(input, now, None) == Empty::CaughtUp
    }

    /// The input whose next record comes first: by event time, then input, then offset.
    fn first(&self) -> Option<usize> {
        (0..self.inputs.len())
            .filter_map(|i| {
                let h = self.inputs[i].queue.front()?;
                Some(((h.ts, h.input, h.offset), i))
            })
            .min()
            .map(|(_, i)| i)
    }

    /// Releases records past any wait while more than `cap` records or `byte_cap` bytes are
    /// buffered, so memory stays bounded whatever an input does.
    pub fn release_over(&mut self, cap: usize, byte_cap: usize, out: &mut Vec<Held<T>>) {
        while self.len() > cap || self.bytes > byte_cap {
            let Some(i) = self.first() else { return };
            if let Some(h) = self.pop(i) {
                self.forced += 1;
                out.push(h);
            }
        }
    }

    fn pop(&mut self, input: usize) -> Option<Held<T>> {
        let h = self.inputs[input].queue.pop_front()?;
        self.bytes -= h.item.bytes();
        Some(h)
    }

    /// Moves the records that may be applied now, in event-time order, to `out`.
    pub fn release(&mut self, now: Instant, out: &mut Vec<Held<T>>) {
        loop {
            let Some(i) = self.first() else { return };
            let passing = self.inputs[i].queue.front().map(|h| h.arrived);
            let waits = (0..self.inputs.len()).any(|j| {
                j != i
                    && self.inputs[j].queue.is_empty()
                    && self.empty_state(j, now, passing) != Empty::CaughtUp
            });
            if waits {
                let since = *self.blocked_since.get_or_insert(now);
                if now.duration_since(since) < self.max_hold {
                    return;
                }
                self.forced += 1;
            } else {
                self.blocked_since = None;
            }
            if let Some(h) = self.pop(i) {
                out.push(h);
            }
        }
    }

    /// The task was away for `d` (delivering a batch): that time does not count as waiting,
    /// since nothing could have been released meanwhile anyway.
    pub fn away(&mut self, d: Duration) {
        if let Some(s) = &mut self.blocked_since {
            *s += d;
        }
    }

    /// When the merger will give up waiting on a lagging input, if it is waiting.
    pub fn deadline(&self) -> Option<Instant> {
        self.blocked_since.map(|s| s + self.max_hold)
    }

    /// When an input the merge waits on should be looked up again, if one is waited on.
    pub fn next_look_up(&self, now: Instant, wanted: bool) -> Option<Instant> {
        if self.is_empty() && !wanted {
            return None;
        }
        self.unknown(now).filter_map(|j| self.lookup_due(j)).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(5);
    const INPUTS: usize = 4;

    /// A merger whose inputs were all looked up at `t` and found empty.
    fn settled(t: Instant) -> Merger<&'static str> {
        let mut m = Merger::new(HOLD, &[0, 0, 0, 0]);
        for j in 0..INPUTS {
            m.set_end(j, 0, -1, -1, t);
        }
        m
    }

    fn order(m: &mut Merger<&'static str>, now: Instant) -> Vec<&'static str> {
        let mut out = Vec::new();
        m.release(now, &mut out);
        out.into_iter().map(|h| h.item).collect()
    }

    /// Two inputs, every end known: the records come out by event time, whatever the order
    /// they were pushed in.
    #[test]
    fn records_come_out_in_event_time_order_whatever_the_arrival() {
        let t = Instant::now();
        let records = [
            (0, 0, 10, "c10"),
            (0, 1, 30, "c30"),
            (1, 0, 20, "p20"),
            (1, 1, 40, "p40"),
            (0, 2, 50, "c50"),
        ];
        let mut outs = Vec::new();
        for arrival in [[0, 1, 2, 3, 4], [2, 3, 0, 1, 4], [2, 0, 3, 1, 4]] {
            let mut m = Merger::new(HOLD, &[0, 0, 0, 0]);
            for j in [2, 3] {
                m.set_end(j, 0, -1, -1, t);
            }
            m.set_end(0, 3, -1, -1, t);
            m.set_end(1, 2, -1, -1, t);
            let mut got = Vec::new();
            for a in arrival {
                let (input, offset, ts, name) = records[a];
                m.push(input, offset, Some(ts), name, t);
                got.extend(order(&mut m, t));
            }
            // Everything received: the inputs are caught up.
            for j in 0..2 {
                m.set_end(j, m.inputs[j].received, -1, -1, Instant::now());
            }
            got.extend(order(&mut m, Instant::now()));
            outs.push(got);
        }
        for got in &outs {
            assert_eq!(got, &["c10", "p20", "c30", "p40", "c50"]);
        }
    }

    #[test]
    fn a_lagging_input_holds_the_others_back_until_the_bound() {
        let t = Instant::now();
        let mut m = Merger::new(HOLD, &[0, 0, 0, 0]);
        for j in 1..INPUTS {
            m.set_end(j, 0, -1, -1, t);
        }
        m.set_end(1, 5, -1, -1, t); // purchases: five records on the broker, none here yet
        m.push(0, 0, Some(100), "c", t);
        assert!(order(&mut m, t).is_empty());
        // It lags: its records are on their way, nothing to look up.
        assert!(m.to_look_up(t, false).is_empty());
        assert!(order(&mut m, t + HOLD / 2).is_empty());
        assert_eq!(order(&mut m, t + HOLD), ["c"]);
        assert_eq!(m.forced, 1);
    }

    #[test]
    fn an_input_that_received_records_after_its_lookup_must_be_looked_up_again() {
        let t = Instant::now();
        let mut m = settled(t);
        let later = t + LOOKUP_EVERY;
        m.push(1, 0, Some(5), "p", later);
        m.push(0, 0, Some(10), "c", later);
        // The empty inputs were looked up before these records arrived: what was produced
        // since is not known, so nothing passes them until they are looked up again.
        assert!(order(&mut m, later).is_empty());
        assert_eq!(m.to_look_up(later, false), vec![2, 3]);
        m.set_end(2, 0, -1, -1, later);
        m.set_end(3, 0, -1, -1, later);
        assert_eq!(order(&mut m, later), ["p"]);
        // Purchases is empty again, but it received a record after its end was looked up.
        assert_eq!(m.to_look_up(later, false), vec![1]);
        m.set_end(1, 1, -1, -1, later);
        assert_eq!(order(&mut m, later), ["c"]);
    }

    /// An input found caught up stays so only for records that arrived before the lookup: a
    /// record arriving later, however long nothing came on the empty input, waits for a new
    /// lookup, which finds what was produced before it on its way (the input lags).
    #[test]
    fn a_record_arriving_after_an_empty_inputs_lookup_waits_for_a_new_one() {
        let t = Instant::now();
        let mut m = settled(t);
        let later = t + Duration::from_secs(5);
        m.push(1, 0, Some(50), "p", later);
        assert!(order(&mut m, later).is_empty());
        assert_eq!(m.next_look_up(later, false), Some(t));
        assert_eq!(m.to_look_up(later, false), vec![0, 2, 3]);
        // Clickstream: two records produced before the purchase, not fetched yet.
        m.set_end(0, 2, -1, -1, later);
        m.set_end(2, 0, -1, -1, later);
        m.set_end(3, 0, -1, -1, later);
        assert!(order(&mut m, later).is_empty());
        m.push(0, 0, Some(10), "c10", later);
        m.push(0, 1, Some(20), "c20", later);
        assert_eq!(order(&mut m, later), ["c10", "c20", "p"]);
    }

    /// A transactional producer's commit marker takes an offset no record fills: the consumer's
    /// position past it, seen at two lookups with nothing on its way, says the input is caught
    /// up.
    #[test]
    fn a_transaction_marker_at_the_end_does_not_hold_the_others() {
        let t = Instant::now();
        let mut m = settled(t);
        m.push(1, 0, Some(5), "p", t);
        m.set_end(1, 2, -1, 1, t);
        m.push(0, 0, Some(10), "c", t);
        assert_eq!(order(&mut m, t), ["p"]);
        let t1 = t + Duration::from_millis(1);
        m.set_end(1, 2, 2, 1, t1);
        // Once could be a record polled as the position was read.
        assert!(order(&mut m, t1).is_empty());
        assert_eq!(m.next_look_up(t1, false), Some(t1 + LOOKUP_EVERY));
        assert!(m.to_look_up(t1, false).is_empty());
        let t2 = t1 + LOOKUP_EVERY;
        assert_eq!(m.to_look_up(t2, false), vec![1]);
        m.set_end(1, 2, 2, 1, t2);
        assert_eq!(order(&mut m, t2), ["c"]);
    }

    /// Records the consumer has polled (its position is past them) but the task has not
    /// received yet are on their way: the input lags, it is not caught up.
    #[test]
    fn records_on_their_way_to_the_task_hold_the_others() {
        let t = Instant::now();
        let mut m = settled(t);
        m.push(0, 0, Some(10), "c", t);
        // Purchases: 3 records on the broker, all polled, none received.
        m.set_end(1, 3, 3, 3, t);
        assert!(order(&mut m, t).is_empty());
        assert!(order(&mut m, t + LOOKUP_EVERY * 3).is_empty());
        m.push(1, 0, Some(5), "p0", t);
        m.push(1, 1, Some(6), "p1", t);
        m.push(1, 2, Some(20), "p2", t);
        assert_eq!(order(&mut m, t), ["p0", "p1", "c", "p2"]);
    }

    /// After a restore the consumer can deliver records from before the restored position
    /// (the group's commit trails it); they do not make a caught-up input look behind.
    #[test]
    fn records_from_before_the_restored_position_do_not_move_it_back() {
        let t = Instant::now();
        let mut m = Merger::new(HOLD, &[10, 0, 0, 0]);
        for j in 1..INPUTS {
            m.set_end(j, 0, -1, -1, t);
        }
        m.push(0, 3, Some(10), "old", t);
        m.set_end(0, 10, -1, 4, t + Duration::from_millis(1));
        assert_eq!(order(&mut m, t + Duration::from_millis(1)), ["old"]);
        assert!(m.caught_up(0, t + Duration::from_millis(1)));
    }

    #[test]
    fn records_without_a_time_keep_their_place_in_their_input() {
        let t = Instant::now();
        let mut m = settled(t);
        m.push(0, 0, Some(10), "a", t);
        m.push(0, 1, None, "bad", t);
        m.push(0, 2, Some(20), "b", t);
        m.set_end(0, 3, -1, -1, t + Duration::from_millis(1));
        assert_eq!(order(&mut m, t), ["a", "bad", "b"]);
    }
}
