//! The bytes of input records a partition task holds, per lane, from the moment the consumer
//! loop takes a record for it until the task is done with it (applied and delivered, forwarded,
//! or passed by). `worker.queue_bytes` bounds them: counted in records alone, a partition could
//! hold `queue_capacity` records of up to `max_payload` each in its queue, and several times
//! that in the merge and the order, gigabytes of large records on a worker sized for small ones.

use prometheus::IntGauge;
use rdkafka::message::{Headers, Message, OwnedMessage};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A task's two queues: its own input topics' records, and what the repartition topic brings
/// (records other partitions forwarded, and their markers). Each fills and pauses on its own:
/// a task whose own records wait for another partition's marker must still receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    Own = 0,
    Forwarded = 1,
}

/// What a record costs beyond its key, value and headers: the message's own fields and its
/// place in the queues. A record with no payload (a marker) still counts.
const RECORD_OVERHEAD: usize = 128;

/// What one partition task holds, by lane.
#[derive(Debug)]
pub(crate) struct Held {
    lanes: [AtomicUsize; 2],
    limit: usize,
    /// The partition's `pulse_partition_held_bytes`, both lanes.
    gauge: IntGauge,
}

impl Held {
    pub fn new(limit: usize, gauge: IntGauge) -> Arc<Self> {
        Arc::new(Self {
            lanes: [AtomicUsize::new(0), AtomicUsize::new(0)],
            limit: limit.max(1),
            gauge,
        })
    }

    /// Counts `msg` against `lane` until the returned charge is dropped.
    pub fn charge(self: &Arc<Self>, lane: Lane, msg: &OwnedMessage) -> Charge {
        let bytes = record_bytes(msg);
        self.lanes[lane as usize].fetch_add(bytes, Ordering::Relaxed);
        self.gauge.add(bytes as i64);
        Charge {
            held: self.clone(),
            lane,
            bytes,
        }
    }

    /// Whether `lane` holds its bound or more: its fetching should pause.
    pub fn full(&self, lane: Lane) -> bool {
        self.bytes(lane) >= self.limit
    }

    pub fn bytes(&self, lane: Lane) -> usize {
        self.lanes[lane as usize].load(Ordering::Relaxed)
    }
}

/// One record's bytes, counted while the record is held.
#[derive(Debug)]
pub(crate) struct Charge {
    held: Arc<Held>,
    lane: Lane,
    bytes: usize,
}

impl Charge {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.held.lanes[self.lane as usize].fetch_sub(self.bytes, Ordering::Relaxed);
        self.held.gauge.sub(self.bytes as i64);
    }
}

/// What an entry of the merge or the order weighs against `worker.queue_bytes`.
pub(crate) trait Weigh {
    fn bytes(&self) -> usize;
}

#[cfg(test)]
impl Weigh for &'static str {
    fn bytes(&self) -> usize {
        self.len()
    }
}

/// What a record takes in memory, near enough: key, value, headers and a fixed overhead.
pub(crate) fn record_bytes(m: &OwnedMessage) -> usize {
    let headers = m.headers().map_or(0, |hs| {
        hs.iter()
            .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len) + 16)
            .sum()
    });
    RECORD_OVERHEAD
        + m.key().map_or(0, <[u8]>::len)
        + m.payload().map_or(0, <[u8]>::len)
        + m.topic().len()
        + headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;

    fn record(payload: usize) -> OwnedMessage {
        OwnedMessage::new(
            Some(vec![b'x'; payload]),
            Some(b"c-1".to_vec()),
            "clickstream".to_owned(),
            Timestamp::NotAvailable,
            0,
            0,
            None,
        )
    }

    #[test]
    fn a_lane_is_full_at_its_bound_and_empties_as_charges_drop() {
        let gauge = IntGauge::new("held", "held").unwrap();
        let held = Held::new(3 * (1000 + RECORD_OVERHEAD), gauge.clone());
        let charges: Vec<Charge> = (0..3)
            .map(|_| held.charge(Lane::Own, &record(1000 - 14)))
            .collect();
        assert_eq!(held.bytes(Lane::Own), 3 * (1000 + RECORD_OVERHEAD));
        assert!(held.full(Lane::Own));
        assert!(!held.full(Lane::Forwarded), "lanes are counted apart");
        assert_eq!(gauge.get(), held.bytes(Lane::Own) as i64);
        drop(charges);
        assert_eq!(held.bytes(Lane::Own), 0);
        assert_eq!(gauge.get(), 0);
    }
}
