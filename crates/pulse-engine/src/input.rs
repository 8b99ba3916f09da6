//! A partition's inputs: where a record came from ([`Source`]), and which event-time frontier
//! it is judged against and moves: one per input topic, and one per source of the records
//! forwarded through the repartition topic.
//!
//! Apart from the partition so that it reads on its own: it names no other part of the engine.

use pulse_events::time::Millis;
use pulse_events::TopicRole;
use std::sync::Arc;

/// Where an input record came from; part of every output's cause and id. The role (or, for a
/// record forwarded through the repartition topic, that topic) selects which of the partition's
/// input watermarks the record is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    pub role: TopicRole,
    /// Read from the repartition topic rather than from the role's input topic.
    pub forwarded: bool,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Inputs with their own frontier: the three input topics (by [`TopicRole::index`]), then the
/// repartition topic at [`FORWARDED`].
///
/// A forwarded record is judged late against the records forwarded from the same source
/// (its original input topic and partition), not against the repartition topic as a whole:
/// the topic interleaves what every source partition forwarded at whatever pace each runs, so
/// its event times are out of order by far more than the lateness allowed, while each source's
/// forwarded records keep the source's order.
pub const INPUTS: usize = 4;
pub const FORWARDED: usize = 3;

/// The original input of a forwarded record: its role's index and partition.
pub type ForwardSource = (u8, i32);

impl Source<'_> {
    /// Which input frontier applies.
    pub fn input(&self) -> usize {
        if self.forwarded {
            FORWARDED
        } else {
            self.role.index()
        }
    }

    /// For a forwarded record, the source whose forwarded records it is judged among.
    pub(crate) fn forward_source(&self) -> Option<ForwardSource> {
        self.forwarded
            .then(|| (self.role.index() as u8, self.partition))
    }
}

/// Event-time progress of one input topic-partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Input {
    /// Highest event time seen on this input (or the time an idle partition moved on to).
    pub frontier: Option<Millis>,
}

/// Most topic names [`Topics`] keeps: a partition reads its input topics and the repartition
/// topic, and a name beyond these is copied where it is needed instead.
const TOPICS_KEPT: usize = 8;

/// The names of the topics a partition's records come from, each held once and shared by the
/// causes of the outputs their records produce, so an output does not copy its topic's name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Topics(Vec<Arc<str>>);

impl Topics {
    /// `name`, shared.
    pub fn shared(&mut self, name: &str) -> Arc<str> {
        if let Some(t) = self.0.iter().find(|t| ***t == *name) {
            return t.clone();
        }
        let t: Arc<str> = name.into();
        if self.0.len() < TOPICS_KEPT {
            self.0.push(t.clone());
        }
        t
    }
}
