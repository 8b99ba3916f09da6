//! The first of a partition task's two steps. The task's own inputs (clickstream, purchases,
//! surveys), merged in event-time order, are taken here one record at a time: a record keyed by
//! something other than its customer, whose customer lives in another partition, is forwarded
//! through the repartition topic at once; every record gets its key in the order of
//! [`crate::align`]: the partition's stream time once it is taken, the newest event time so
//! far, its own included. Forwarding here, before the
//! record's turn to be applied, is what lets the partitions wait for each other without
//! waiting in turn: how far a partition has sequenced is what it tells the others.
//!
//! The key includes the record's own event time, not only what came before it, so that a
//! source that was caught up (it had nothing more for a while: history produced in chunks, a
//! backfill) gives its next record a key past the records the others applied meanwhile, as it
//! would have had they all been there from the start. With the stream time before it, that
//! record would carry the key of the last chunk's end and come, in every other partition,
//! before records they had already applied: an order that depends on how long the pause was.
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

    /// Takes the next record of own input `input`: the cut before it, where a restart resumes
    /// while it waits, and its key, the stream time with it. `None` for a record from before
    /// the restored position (re-delivered after a seek). The stream time never passes the wall
    /// clock, as the partition's frontiers do not: one broken clock would otherwise hold every
    /// later record back behind it.
    pub fn take(
        &mut self,
        input: usize,
        offset: i64,
        ts: Option<Millis>,
        wall: Millis,
    ) -> Option<(Cut, Millis)> {
        if offset < self.at.next[input] {
            return None;
        }
        let before = self.at;
        self.at.next[input] = offset + 1;
        if let Some(ts) = ts.filter(|t| *t <= wall.saturating_add(self.max_future_skew)) {
            self.at.key = self.at.key.max(ts.min(wall));
        }
        Some((before, self.at.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_stream_time_with_each_record_and_never_decrease() {
        let mut s = Sequencer::new(
            Cut {
                key: Millis::MIN,
                next: [0, 5, -1],
            },
            1_000,
        );
        let wall = 100;
        let key = |t: Option<(Cut, Millis)>| t.map(|(_, k)| k);
        assert_eq!(key(s.take(0, 0, Some(50), wall)), Some(50));
        // Older than the stream time: the stream time's key.
        assert_eq!(key(s.take(1, 5, Some(40), wall)), Some(50));
        // Re-delivered from before the restored position.
        assert_eq!(s.take(1, 4, Some(90), wall), None);
        // Beyond the wall clock and the skew: taken, but the stream time stays.
        assert_eq!(key(s.take(2, 0, Some(5_000), wall)), Some(50));
        // Ahead of the wall clock within the skew: the wall clock's.
        assert_eq!(key(s.take(0, 1, Some(500), wall)), Some(100));
        assert_eq!(
            s.take(0, 2, None, wall),
            Some((
                Cut {
                    key: 100,
                    next: [2, 6, 1]
                },
                100
            ))
        );
        assert_eq!(s.at().next, [3, 6, 1]);
    }

    #[test]
    fn a_record_after_a_pause_is_keyed_by_its_own_time_not_by_where_the_last_chunk_ended() {
        let start = Cut {
            key: Millis::MIN,
            next: [0, 0, 0],
        };
        let wall = 1_000_000;
        // The same records, read in one go and in two chunks with the source caught up in
        // between: the keys do not depend on the pause.
        let mut s = Sequencer::new(start, 1_000);
        let first_chunk = s.take(0, 0, Some(100), wall);
        let next_chunk = s.take(0, 1, Some(250), wall);
        assert_eq!(first_chunk.map(|(_, k)| k), Some(100));
        assert_eq!(next_chunk.map(|(_, k)| k), Some(250));
        // Resumed at the cut before the second record, it is keyed alike.
        let (cut, _) = next_chunk.unwrap();
        let mut resumed = Sequencer::new(cut, 1_000);
        assert_eq!(
            resumed.take(0, 1, Some(250), wall).map(|(_, k)| k),
            Some(250)
        );
    }
}
