//! What every partition task shares, and what it knows of its partition's topics: which input a
//! topic or a record is, the offsets it stores, the fetching it pauses and resumes.

use crate::changelog::{Offsets, REPARTITION};
use crate::config::{Delivery, OffsetReset, TopicNames, WorkerConfig};
use crate::context::PulseContext;
use crate::held::Lane;
use crate::outbox::Outbox;
use crate::state::StateRegistry;
use crate::KafkaError;
use pulse_engine::Engine;
use pulse_events::{Encoding, Limits, TopicRole};
use pulse_telemetry::{Health, Metrics};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What every partition task shares.
pub(crate) struct TaskCtx {
    pub consumer: Arc<StreamConsumer<PulseContext>>,
    /// Held across every pause, resume and seek of the consumer's partitions, which the
    /// consumer loop and the tasks make from different threads. librdkafka orders such calls
    /// by a version each takes before it queues the call; two made at once on one partition
    /// can be queued in the other order, and the older is then dropped, leaving the partition
    /// paused, or its seek undone, for good.
    pub fetch_ops: Mutex<()>,
    /// Where this worker serves its query API, written into every checkpoint.
    pub advertise: Option<String>,
    pub outbox: Outbox,
    pub topics: TopicNames,
    pub engine: Arc<Engine>,
    pub limits: Limits,
    pub input_encoding: Encoding,
    pub worker: WorkerConfig,
    pub metrics: Metrics,
    pub health: Health,
    pub state: StateRegistry,
    /// Client settings for reading the changelog back.
    pub changelog_client: ClientConfig,
    pub delivery: Delivery,
    /// Where an input the state has never read starts (`kafka.auto_offset_reset`).
    pub offset_reset: OffsetReset,
    /// Producer settings a partition's transactional producer starts from.
    pub producer_client: ClientConfig,
    pub group_id: String,
    pub stop: watch::Receiver<bool>,
    /// Set when a partition task or a client met an error that must stop the worker.
    pub fatal: crate::clients::Fatal,
    /// The producers' partitioner (`kafka.partitioner`): a record keyed by something other
    /// than its customer is forwarded only if its customer lives in another partition.
    pub partitioner: String,
}

impl TaskCtx {
    /// Records why the worker must stop; the first reason wins.
    pub fn fail(&self, e: KafkaError) {
        self.fatal.set(e);
    }
}

/// The input topics with their slot in [`Offsets`].
pub(crate) fn inputs(ctx: &TaskCtx) -> impl Iterator<Item = (&str, usize)> {
    TopicRole::ALL
        .iter()
        .map(|r| (ctx.topics.input(*r), r.index()))
        .chain([(ctx.topics.repartition.as_str(), REPARTITION)])
}

/// Stores `offsets` for the group to commit (at-least-once): the position of a checkpoint
/// that is durable, so a commit never runs ahead of what a restore would resume from.
pub(crate) fn store(ctx: &TaskCtx, partition: i32, offsets: Offsets) {
    let tpl = offset_list(ctx, partition, offsets);
    if let Err(e) = ctx.consumer.store_offsets(&tpl) {
        // The partition was revoked meanwhile: its new owner re-reads from the last commit.
        tracing::debug!(error = %e, partition, "Offsets not stored.");
    }
}

/// `offsets` as the input topics' positions of `partition` (those known).
pub(crate) fn offset_list(ctx: &TaskCtx, partition: i32, offsets: Offsets) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, index) in inputs(ctx) {
        if offsets[index] >= 0 {
            let _ = tpl.add_partition_offset(topic, partition, Offset::Offset(offsets[index]));
        }
    }
    tpl
}

/// Pauses or resumes fetching partition `p` of the topics of one lane.
pub(crate) fn set_fetching(ctx: &TaskCtx, p: i32, lane: Lane, on: bool) {
    let mut tpl = TopicPartitionList::new();
    for (topic, index) in inputs(ctx) {
        if (index == REPARTITION) == (lane == Lane::Forwarded) {
            tpl.add_partition(topic, p);
        }
    }
    let _one_at_a_time = ctx.fetch_ops.lock().unwrap_or_else(|e| e.into_inner());
    let done = if on {
        ctx.consumer.resume(&tpl)
    } else {
        ctx.consumer.pause(&tpl)
    };
    if let Err(e) = done {
        // Revoked meanwhile: the partition is no longer this worker's to fetch.
        tracing::debug!(error = %e, partition = p, on, "Partition fetching not changed.");
    }
}

/// The input (merge index) a topic of the partition is: a role's topic or the repartition topic.
pub(crate) fn input_index(topics: &TopicNames, topic: &str) -> Option<usize> {
    if topic == topics.repartition {
        return Some(REPARTITION);
    }
    topics.role_of(topic).map(|r| r.index())
}

/// Which input a record came from, and its slot in [`Offsets`]. A forwarded record names its
/// original input in a header; one without a usable header is treated as clickstream, whose
/// validation then dead-letters what does not belong there.
pub(crate) fn input_of(ctx: &TaskCtx, m: &OwnedMessage) -> Option<(TopicRole, usize)> {
    if m.topic() == ctx.topics.repartition {
        let named = crate::dead_letter::header(m, crate::outbox::ROLE_HEADER);
        let role = TopicRole::ALL
            .into_iter()
            .find(|r| Some(r.as_str()) == named)
            .unwrap_or(TopicRole::Clickstream);
        return Some((role, REPARTITION));
    }
    ctx.topics.role_of(m.topic()).map(|r| (r, r.index()))
}
