//! The first of a partition task's two steps. The task's own inputs (clickstream, purchases,
//! surveys), merged in event-time order, are taken here one record at a time: a record keyed by
//! something other than its customer, whose customer lives in another partition, is forwarded
//! through the repartition topic at once; every record gets its key in the order of
//! [`crate::align`], the partition's stream time before it. Forwarding here, before the
//! record's turn to be applied, is what lets the partitions wait for each other without
//! waiting in turn: how far a partition has sequenced is what it tells the others.
//!
//! What a restart resumes from (the cut) is the point before the first own record not yet
//! applied: the input offsets there and the stream time there, which the checkpoint stores, so
//! that the records after it get the same keys again.

use pulse_engine::Millis;

/// The task's own input topics, in [`crate::changelog::Offsets`] order.
pub(crate) const DIRECT: usize = 3;

/// A point in the sequence: the stream time there and, per own input, the next offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    pub key: Millis,
    pub next: [i64; DIRECT],
}

#[derive(Debug)]
pub(crate) struct Sequencer {
    at: Cut,
    max_future_skew: Millis,
}

impl Sequencer {
    pub fn new(at: Cut, max_future_skew: Millis) -> Self {
        Self {
            at,
            max_future_skew,
        }
    }

    /// Where the sequence stands: how far the partition has read, and the least key any
    /// record it takes from now on can have.
    pub fn at(&self) -> Cut {
        self.at
    }

    /// Takes the next record of own input `input`: the cut before it (its key is the cut's),
    /// or `None` for a record from before the restored position (re-delivered after a seek).
    /// The stream time never passes the wall clock, as the partition's frontiers do not: one
    /// broken clock would otherwise hold every later record back behind it.
    pub fn take(
        &mut self,
        input: usize,
        offset: i64,
        ts: Option<Millis>,
        wall: Millis,
    ) -> Option<Cut> {
        if offset < self.at.next[input] {
            return None;
        }
        let before = self.at;
        self.at.next[input] = offset + 1;
        if let Some(ts) = ts.filter(|t| *t <= wall.saturating_add(self.max_future_skew)) {
            self.at.key = self.at.key.max(ts.min(wall));
        }
        Some(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_stream_time_before_each_record_and_never_decrease() {
        let mut s = Sequencer::new(
            Cut {
                key: Millis::MIN,
                next: [0, 5, -1],
            },
            1_000,
        );
        let wall = 100;
        assert_eq!(
            s.take(0, 0, Some(50), wall).map(|c| c.key),
            Some(Millis::MIN)
        );
        assert_eq!(s.take(1, 5, Some(40), wall).map(|c| c.key), Some(50));
        // Re-delivered from before the restored position.
        assert_eq!(s.take(1, 4, Some(90), wall), None);
        // Beyond the wall clock and the skew: taken, but the stream time stays.
        assert_eq!(s.take(2, 0, Some(5_000), wall).map(|c| c.key), Some(50));
        assert_eq!(
            s.take(0, 1, None, wall),
            Some(Cut {
                key: 50,
                next: [1, 6, 1]
            })
        );
        assert_eq!(s.at().next, [2, 6, 1]);
    }
}
