//! What a partition task holds between receiving a record and applying it. Its own inputs'
//! records are merged in event-time order ([`crate::merge`]) and sequenced
//! ([`crate::sequence`]): those whose customer lives elsewhere are forwarded at once, the rest
//! wait their turn. The records other partitions forwarded here wait in the aligner
//! ([`crate::align`]) with them, and the markers that say how far those partitions are move it
//! on. This partition's own markers say how far it has sequenced.

use crate::align::{Aligner, Bound, Next};
use crate::held::{Charge, Weigh};
use crate::merge::{Held, Merger};
use crate::sequence::{Cut, Sequencer, DIRECT};
use pulse_engine::{Millis, INPUTS};
use pulse_events::TopicRole;
use rdkafka::message::OwnedMessage;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Markers go out at most this often while the bound moves: each one is a record to every
/// other partition.
const MARK_GAP: Duration = Duration::from_millis(20);

/// And at most this often while the bound is live: nobody waits for a live partition, the
/// markers only say it still is.
const LIVE_MARK_GAP: Duration = Duration::from_secs(1);

/// A marker goes out at least this often. A restarted partition reads the repartition topic
/// from where each source's latest marker is, so this also bounds how much it reads again.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Per input of a partition, one past the offset of the newest record the consumer loop took
/// for the task. Set as soon as the record is polled, before it is queued: with it the task
/// knows whether records the consumer's position has passed are still on their way to it.
pub(crate) type Dispatched = Arc<[AtomicI64; INPUTS]>;

/// The receiving ends of a task's queues, by [`crate::held::Lane`].
pub(crate) type Queues = [mpsc::Receiver<Fetched>; 2];

/// A fetched record, held by a task.
pub(crate) struct Fetched {
    pub msg: OwnedMessage,
    /// When the worker received it: the start of its event-to-output time.
    pub at: Instant,
    /// Its bytes, counted against the task's `worker.queue_bytes` until it is done with.
    pub charge: Charge,
}

/// One of the task's own records as the merger orders it.
pub(crate) struct Routed {
    pub fetched: Fetched,
    pub role: TopicRole,
    /// The customer to forward it to, if it belongs to another partition.
    pub forward: Option<String>,
}

/// What waits in the aligner.
pub(crate) enum Entry {
    /// A record to apply: one of the task's own, or one forwarded here.
    Record(Fetched),
    /// A record this partition forwarded: its event time still moves the input it came from,
    /// at its turn.
    PassedOn {
        role: TopicRole,
        ts: Option<Millis>,
        offset: i64,
    },
}

pub(crate) struct Item {
    pub entry: Entry,
    /// An own entry's place in the sequence before it: where a restart resumes while it waits.
    pub cut: Cut,
}

impl Weigh for Routed {
    fn bytes(&self) -> usize {
        self.fetched.charge.bytes()
    }
}

impl Weigh for Item {
    fn bytes(&self) -> usize {
        match &self.entry {
            Entry::Record(f) => f.charge.bytes(),
            // The record itself waits to be forwarded, in `Flow::forwards`.
            Entry::PassedOn { .. } => 0,
        }
    }
}

/// A record sequenced for forwarding, to deliver with the next batch.
pub(crate) struct Pending {
    pub fetched: Fetched,
    pub role: TopicRole,
    pub customer: String,
    pub order: Millis,
}

pub(crate) struct Flow {
    pub merger: Merger<Routed>,
    pub aligner: Aligner<Item>,
    sequencer: Sequencer,
    pub forwards: Vec<Pending>,
    /// Records re-delivered from before the restored position, passed by.
    pub skipped: u64,
    /// Own records buffered (merger and aligner each) beyond which fetching them pauses.
    cap: usize,
    /// Bytes of records the merger holds beyond which it lets them through past a lagging
    /// input, and the aligner likewise (`worker.queue_bytes`): the task's fetching pauses at
    /// that bound, so an input the merge waits for could not arrive.
    byte_cap: usize,
    partition: i32,
    partitions: i32,
    /// The bound last sent in markers, and when.
    sent: Option<(Option<Millis>, Instant)>,
    /// The last step found the first record waiting for this task's own input.
    waiting_own: bool,
    ready: Vec<Held<Routed>>,
}

impl Flow {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        partition: i32,
        partitions: i32,
        at: Cut,
        repartition_next: i64,
        max_hold: Duration,
        repartition_hold: Duration,
        cap: usize,
        byte_cap: usize,
        max_future_skew: Millis,
    ) -> Self {
        Self {
            merger: Merger::new(max_hold, &at.next),
            aligner: Aligner::new(
                partition,
                partitions,
                repartition_next,
                repartition_hold,
                cap,
                byte_cap,
            ),
            sequencer: Sequencer::new(at, max_future_skew),
            forwards: Vec::new(),
            skipped: 0,
            cap,
            byte_cap,
            partition,
            partitions,
            sent: None,
            waiting_own: false,
            ready: Vec::new(),
        }
    }

    /// Whether the task should take more of its own records now.
    pub fn wants_own(&self) -> bool {
        self.merger.len() < self.cap && self.aligner.own_len() < self.cap
    }

    /// Moves what the merge releases into the sequence: forwards out, the rest to wait in the
    /// aligner. Returns how many records the merge released past a lagging input.
    pub fn sequence(&mut self, now: Instant, wall: Millis) -> u64 {
        if self.aligner.own_len() >= self.cap || self.aligner.own_bytes() >= self.byte_cap {
            return 0;
        }
        let forced = self.merger.forced;
        self.merger.release(now, &mut self.ready);
        self.merger
            .release_over(self.cap, self.byte_cap, &mut self.ready);
        for h in self.ready.drain(..) {
            let Some((cut, key)) = self.sequencer.take(h.input, h.offset, h.read, wall) else {
                self.skipped += 1;
                continue;
            };
            let Routed {
                fetched,
                role,
                forward,
            } = h.item;
            let entry = match forward {
                Some(customer) => {
                    let offset = h.offset;
                    self.forwards.push(Pending {
                        fetched,
                        role,
                        customer,
                        order: key,
                    });
                    Entry::PassedOn {
                        role,
                        ts: h.read,
                        offset,
                    }
                }
                None => Entry::Record(fetched),
            };
            self.aligner.push_own(key, Item { entry, cut });
        }
        self.merger.forced - forced
    }

    /// Whether every own input is caught up with nothing left to sequence.
    fn caught_up(&self, now: Instant) -> bool {
        self.merger.is_empty() && (0..DIRECT).all(|i| self.merger.caught_up(i, now))
    }

    /// The least key this partition's records can have from now on, or `None` if it is caught
    /// up. What its markers say.
    pub fn bound(&self, now: Instant) -> Option<Millis> {
        (!self.caught_up(now)).then(|| self.sequencer.at().key)
    }

    /// The next entry the order lets through now.
    pub fn next(&mut self, now: Instant, wall: Millis) -> Next<Item> {
        let next = self.aligner.next(self.bound(now), wall, now);
        self.waiting_own = matches!(next, Next::WaitOwn);
        next
    }

    /// Where a restart resumes: before the first own entry still waiting, or where the
    /// sequence stands.
    pub fn cut(&self) -> Cut {
        self.aligner
            .own_front()
            .map(|k| k.item.cut)
            .unwrap_or_else(|| self.sequencer.at())
    }

    /// The bound to send in markers now, if markers are due: the bound moved (and the last
    /// markers are not too recent), or the heartbeat is due.
    pub fn markers_due(&self, now: Instant, wall: Millis) -> Option<Option<Millis>> {
        if self.partitions <= 1 {
            return None;
        }
        let bound = self.bound(now);
        match self.sent {
            None => Some(bound),
            Some((last, at)) => {
                let since = now.duration_since(at);
                let moved = bound != last && since >= gap(bound, wall);
                (moved || since >= HEARTBEAT).then_some(bound)
            }
        }
    }

    pub fn marked(&mut self, bound: Option<Millis>, now: Instant) {
        self.sent = Some((bound, now));
    }

    /// Whether the merge should look its empty inputs up even with nothing buffered: the
    /// aligner waits to know whether this task may still sequence an earlier record, or, with
    /// nothing left to sequence, whether it is caught up is what its markers are to say (a
    /// partition kept busy by a producer at a steady rate is caught up, and should say so, or
    /// the others would wait for its markers).
    pub fn wants_look_up(&self, now: Instant) -> bool {
        self.waiting_own || (self.merger.is_empty() && !self.caught_up(now))
    }

    /// When the task should wake without a new record: a hold bound, a look-up (unless one is
    /// under way: its answer wakes the task), or markers.
    pub fn wake(&self, now: Instant, wall: Millis, may_look_up: bool) -> Option<Instant> {
        let markers = self.sent.and_then(|(last, at)| {
            let bound = self.bound(now);
            (self.partitions > 1 && bound != last).then(|| at + gap(bound, wall))
        });
        [
            self.merger.deadline(),
            self.merger
                .next_look_up(now, self.wants_look_up(now))
                .filter(|_| may_look_up),
            self.aligner.deadline(),
            markers,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The task was away for `d`, delivering: the holds' clocks stop meanwhile. A delivery
    /// that waits for a broker (an outage, a refusal) would otherwise use up a hold that is
    /// there for inputs that lag, and the records that arrive as the broker comes back would
    /// find it spent.
    pub fn away(&mut self, d: Duration) {
        self.merger.away(d);
        self.aligner.away(d);
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    pub fn is_empty(&self) -> bool {
        self.merger.is_empty() && self.aligner.is_empty() && self.forwards.is_empty()
    }
}

/// How long markers wait after the last while the bound moves.
fn gap(bound: Option<Millis>, wall: Millis) -> Duration {
    if bound.is_none_or(|b| b >= wall.saturating_sub(crate::align::LIVE)) {
        LIVE_MARK_GAP
    } else {
        MARK_GAP
    }
}

/// A marker's bound as its headers give it.
pub(crate) fn bound_of(header: Option<&str>) -> Option<Bound> {
    match header? {
        crate::outbox::CAUGHT_UP => Some(Bound::CaughtUp),
        b => b.parse().ok().map(Bound::At),
    }
}
