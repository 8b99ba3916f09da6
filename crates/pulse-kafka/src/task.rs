//! One partition task: it owns the processing of one partition number across the input
//! topics. It first restores the partition's state from the changelog, then per batch: decode
//! and apply under the partition lock (no `.await` inside), produce outputs, dead letters, the
//! changed profiles and a checkpoint, wait for every acknowledgement, then store the input
//! offsets.

use crate::changelog::{self, BatchTag, Offsets, REPARTITION};
use crate::config::{Delivery, TopicNames, WorkerConfig};
use crate::context::PulseContext;
use crate::deliver::{deliver, input_offsets, Forward, Products};
use crate::outbox::Outbox;
use crate::state::{lock, StateRegistry};
use crate::tasks::Fetched;
use crate::txn::Txn;
use crate::wall_clock_ms;
use crate::KafkaError;
use pulse_engine::{EngineSpec, Partition, Source, INPUTS};
use pulse_events::{decode, Encoding, EventError, Limits, TopicRole};
use pulse_telemetry::{Health, Metrics};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// What every partition task shares.
pub(crate) struct TaskCtx {
    pub consumer: Arc<StreamConsumer<PulseContext>>,
    /// Where this worker serves its query API, written into every checkpoint.
    pub advertise: Option<String>,
    pub outbox: Outbox,
    pub topics: TopicNames,
    pub spec: Arc<EngineSpec>,
    pub limits: Limits,
    pub input_encoding: Encoding,
    pub worker: WorkerConfig,
    pub metrics: Metrics,
    pub health: Health,
    pub state: StateRegistry,
    /// Client settings for reading the changelog back.
    pub changelog_client: ClientConfig,
    pub delivery: Delivery,
    /// Producer settings a partition's transactional producer starts from.
    pub producer_client: ClientConfig,
    pub group_id: String,
    pub stop: watch::Receiver<bool>,
    /// Set when a partition task met an error that must stop the worker.
    pub fatal: Mutex<Option<KafkaError>>,
}

impl TaskCtx {
    /// Records why the worker must stop; the first reason wins.
    pub fn fail(&self, e: KafkaError) {
        let mut slot = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }
}

/// The task's position in its changelog: which inputs are reflected in the state, and the tag
/// of the next batch it writes.
struct Position {
    partition: i32,
    /// Next offset to apply per input; records below are already in the restored state.
    next: Offsets,
    generation: u64,
    batch: u64,
}

/// Runs until the sender side closes (shutdown or the worker stopping) and the queue is
/// drained. The caller has counted this partition as restoring.
pub(crate) async fn run(
    partition: i32,
    mut rx: mpsc::Receiver<Fetched>,
    ctx: Arc<TaskCtx>,
    // Dropped when this task returns, which tells a waiting revoke that it has drained.
    _done: std::sync::mpsc::Sender<()>,
) {
    // In a transaction-per-batch setup the partition's transactional id is claimed first:
    // that fences a previous owner and aborts its open transaction before the changelog is read.
    let txn = match ctx.delivery {
        Delivery::AtLeastOnce => None,
        Delivery::ExactlyOnce => {
            match Txn::claim(&ctx.producer_client, &ctx.outbox, &ctx.group_id, partition).await {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::error!(error = %e, partition, "Cannot start transactions; stopping.");
                    ctx.fail(e);
                    ctx.health.restore_finished();
                    ctx.metrics.restoring_partitions.dec();
                    return;
                }
            }
        }
    };
    let restored = restore(partition, &ctx).await;
    ctx.health.restore_finished();
    ctx.metrics.restoring_partitions.dec();
    let Some(mut pos) = restored else { return };
    let state = ctx
        .state
        .get_or_insert(partition, || Partition::new(ctx.spec.clone()));
    // Per input (the three topics and the repartition topic): when its last record arrived.
    let mut last_input = [Instant::now(); INPUTS];
    let mut last_any = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(ctx.worker.max_batch);
    let mut arrived = Vec::with_capacity(ctx.worker.max_batch);
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some((m, at)) = m else { break };
                batch.push(m);
                arrived.push(at);
                while batch.len() < ctx.worker.max_batch {
                    match rx.try_recv() {
                        Ok((m, at)) => {
                            batch.push(m);
                            arrived.push(at);
                        }
                        Err(_) => break,
                    }
                }
                let now = Instant::now();
                last_any = now;
                for m in &batch {
                    if let Some((_, index)) = input_of(&ctx, m) {
                        last_input[index] = now;
                    }
                }
                if !process(&batch, &state, &ctx, txn.as_ref(), &mut pos).await {
                    tracing::warn!(partition, "Stopping with outputs unacknowledged; their inputs will be processed again.");
                    return;
                }
                // Everything the batch caused is acknowledged now.
                let waited: Vec<f64> = arrived.iter().map(|t| t.elapsed().as_secs_f64()).collect();
                ctx.metrics.latency.record(&waited);
                batch.clear();
                arrived.clear();
            }
            _ = tick.tick() => {
                let idle_inputs: Vec<usize> = (0..INPUTS)
                    .filter(|i| last_input[*i].elapsed() >= ctx.worker.idle_timeout)
                    .collect();
                let all_idle = last_any.elapsed() >= ctx.worker.idle_timeout;
                if (!idle_inputs.is_empty() || unannounced(&pos, &ctx)) && !idle(&state, &ctx, txn.as_ref(), &mut pos, &idle_inputs, all_idle).await {
                    return;
                }
            }
        }
    }
}

/// Restores the partition from the changelog, retrying while the broker is unreachable.
/// `None` if the worker stopped first.
async fn restore(partition: i32, ctx: &Arc<TaskCtx>) -> Option<Position> {
    let mut backoff = Duration::from_millis(500);
    loop {
        if *ctx.stop.borrow() {
            return None;
        }
        let (client, topic, spec) = (
            ctx.changelog_client.clone(),
            ctx.topics.profiles.clone(),
            ctx.spec.clone(),
        );
        let result = tokio::task::spawn_blocking(move || {
            changelog::restore(&client, &topic, partition, spec)
        })
        .await;
        match result {
            Ok(Ok(r)) => {
                tracing::info!(
                    partition,
                    profiles = r.profiles,
                    bytes = r.bytes,
                    seconds = r.seconds,
                    generation = r.generation,
                    next = ?r.offsets,
                    "Partition restored."
                );
                let m = &ctx.metrics;
                m.restored_profiles.inc_by(r.profiles as u64);
                m.restored_bytes.inc_by(r.bytes);
                m.restore_seconds.observe(r.seconds);
                ctx.state.replace(partition, r.partition);
                let pos = Position {
                    partition,
                    next: r.offsets,
                    generation: r.generation,
                    batch: 0,
                };
                resume_at(&pos, ctx).await;
                return Some(pos);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, partition, "Restore failed; retrying."),
            Err(e) => tracing::warn!(error = %e, partition, "Restore task failed; retrying."),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Starts fetching the partition's inputs (paused since assignment) where the restored state
/// ends; an input the state has never seen starts at its committed offset.
async fn resume_at(pos: &Position, ctx: &Arc<TaskCtx>) {
    let mut seek = TopicPartitionList::new();
    let mut all = TopicPartitionList::new();
    let mut restored: Vec<(String, i64)> = Vec::new();
    let inputs = TopicRole::ALL
        .iter()
        .map(|r| (ctx.topics.input(*r), r.index()))
        .chain([(ctx.topics.repartition.as_str(), REPARTITION)]);
    for (topic, index) in inputs {
        all.add_partition(topic, pos.partition);
        let next = pos.next[index];
        if next >= 0 {
            let _ = seek.add_partition_offset(topic, pos.partition, Offset::Offset(next));
            restored.push((topic.to_owned(), next));
        }
    }
    let (consumer, partition) = (ctx.consumer.clone(), pos.partition);
    // The restored position is also what the group should commit: the commit may trail it (a
    // worker that died before its last commit), and with no new input nothing else would move
    // it. With transactions, the next batch's transaction commits it.
    let store = ctx.delivery == Delivery::AtLeastOnce;
    let resumed = tokio::task::spawn_blocking(move || {
        if seek.count() > 0 {
            for e in consumer.seek_partitions(seek, Duration::from_secs(10))?.elements() {
                if let Err(err) = e.error() {
                    tracing::warn!(error = %err, topic = e.topic(), partition, "Seek to the restored position failed; fetching from the committed offset.");
                }
            }
        }
        for (topic, next) in restored.iter().filter(|_| store) {
            // Stores `next - 1 + 1`: the offset of the next record to read.
            let _ = consumer.store_offset(topic, partition, next - 1);
        }
        consumer.resume(&all)
    })
    .await;
    match resumed {
        Ok(Ok(_)) => {}
        // Revoked while restoring: the partition is no longer ours to fetch.
        Ok(Err(e)) => tracing::debug!(error = %e, partition, "Partition not resumed."),
        Err(e) => tracing::warn!(error = %e, partition, "Resuming the partition failed."),
    }
}

/// Whether this worker has yet to write a checkpoint for the partition since restoring it. The
/// first tick then writes one even if nothing changed, so the changelog names the new owner
/// (for the query API's owner lookup) at once rather than at the partition's next record,
/// which on a quiet partition may be long after the previous owner has gone.
fn unannounced(pos: &Position, ctx: &TaskCtx) -> bool {
    pos.batch == 0 && ctx.advertise.is_some()
}

/// Idle inputs stop holding back the watermark; when the whole partition is idle its event
/// time follows the wall clock, so timers still fire in live use. A partition not yet
/// announced writes its checkpoint here too.
async fn idle(
    state: &Mutex<Partition>,
    ctx: &TaskCtx,
    txn: Option<&Txn>,
    pos: &mut Position,
    inputs: &[usize],
    all: bool,
) -> bool {
    let mut outputs = Vec::new();
    let changes = {
        let mut p = lock(state);
        for i in inputs {
            p.set_idle(*i, &mut outputs);
        }
        if all {
            p.advance_to(wall_clock_ms(), &mut outputs);
        }
        if outputs.is_empty() && p.changed() == 0 && !unannounced(pos, ctx) {
            None
        } else {
            Some(changelog_records(&mut p, pos, ctx.advertise.as_deref()))
        }
    };
    report_watermark(pos.partition, state, ctx);
    match changes {
        None => true,
        Some(changes) => {
            let products = Products {
                partition: pos.partition,
                inputs: &[],
                rejected: &[],
                forwards: &[],
                outputs: &outputs,
                changes,
            };
            deliver(ctx, txn, &products).await
        }
    }
}

/// The changed profiles and the checkpoint closing this batch, as changelog `(key, value)`s.
fn changelog_records(
    p: &mut Partition,
    pos: &mut Position,
    owner: Option<&str>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    pos.batch += 1;
    let tag = BatchTag {
        partition: pos.partition,
        generation: pos.generation,
        batch: pos.batch,
        offsets: pos.next,
    };
    let frontiers = p.frontiers();
    let mut records = Vec::with_capacity(p.changed() + 1);
    p.drain_changes(|c, profile| records.push(changelog::encode_profile(&tag, c, profile)));
    if let Some(population) = p.take_population_change() {
        records.push(changelog::encode_population(&tag, population));
    }
    records.push(changelog::encode_checkpoint_by(&tag, frontiers, owner));
    records
}

fn report_watermark(partition: i32, state: &Mutex<Partition>, ctx: &TaskCtx) {
    let wm = lock(state).watermark();
    if let Some(wm) = wm {
        let lag = (wall_clock_ms() - wm).max(0) / 1000;
        ctx.metrics
            .watermark_lag
            .with_label_values(&[&partition.to_string()])
            .set(lag);
    }
}

/// Which input a record came from, and its slot in [`Offsets`]. A forwarded record names its
/// original input in a header; one without a usable header is treated as clickstream, whose
/// validation then dead-letters what does not belong there.
fn input_of(ctx: &TaskCtx, m: &OwnedMessage) -> Option<(TopicRole, usize)> {
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

/// Processes one batch. Returns false if the worker must stop without storing its offsets.
async fn process(
    batch: &[OwnedMessage],
    state: &Mutex<Partition>,
    ctx: &TaskCtx,
    txn: Option<&Txn>,
    pos: &mut Position,
) -> bool {
    let started = Instant::now();
    let now = wall_clock_ms();
    let mut outputs = Vec::new();
    let mut rejected: Vec<(usize, EventError)> = Vec::new();
    let mut forwards: Vec<Forward> = Vec::new();
    let mut by_type: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_topic: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut skipped = 0u64;
    let changes = {
        let mut p = lock(state);
        for (i, m) in batch.iter().enumerate() {
            let Some((role, index)) = input_of(ctx, m) else {
                continue;
            };
            let label = if index == REPARTITION {
                "repartition"
            } else {
                role.as_str()
            };
            *by_topic.entry(label).or_default() += 1;
            let next = &mut pos.next[index];
            if m.offset() < *next {
                // Already reflected in the restored state: applying it again would count it twice.
                skipped += 1;
                continue;
            }
            *next = m.offset() + 1;
            let encoding = crate::dead_letter::content_type(m).unwrap_or(ctx.input_encoding);
            let payload = m.payload().unwrap_or_default();
            let src = Source {
                role,
                forwarded: index == REPARTITION,
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
            };
            let applied = decode(payload, encoding, role, &ctx.limits).and_then(|ev| {
                // Keyed by something other than the customer (a session, nothing): the record
                // may sit in another customer's partition, so it goes round through the
                // repartition topic, keyed by customer, to the partition that owns the state.
                if index != REPARTITION && m.key() != Some(ev.customer_id.as_bytes()) {
                    forwards.push(Forward {
                        input: i,
                        role,
                        customer: ev.customer_id.clone().into_owned(),
                    });
                    return Ok(None);
                }
                p.apply(&ev, &src, now, &mut outputs)
                    .map(|()| Some(ev.body.type_label()))
            });
            match applied {
                Ok(Some(label)) => *by_type.entry(label).or_default() += 1,
                Ok(None) => {}
                Err(e) => rejected.push((i, e)),
            }
        }
        changelog_records(&mut p, pos, ctx.advertise.as_deref())
    };
    let products = Products {
        partition: pos.partition,
        inputs: batch,
        rejected: &rejected,
        forwards: &forwards,
        outputs: &outputs,
        changes,
    };
    if !deliver(ctx, txn, &products).await {
        return false;
    }
    tracing::debug!(
        partition = pos.partition,
        generation = pos.generation,
        batch = pos.batch,
        records = batch.len(),
        first = batch.first().map(|m| m.offset()),
        last = batch.last().map(|m| m.offset()),
        next = ?pos.next,
        "Batch acknowledged."
    );
    // Everything this batch caused is acknowledged: now, and only now, its offsets may be
    // committed. (In a transaction they were committed with it.)
    if txn.is_none() {
        if let Err(e) = ctx.consumer.store_offsets(&input_offsets(&products)) {
            // The partition was revoked meanwhile: its new owner re-reads from the last commit.
            tracing::debug!(error = %e, partition = pos.partition, "Offsets not stored.");
        }
    }

    let m = &ctx.metrics;
    for (t, n) in by_topic {
        m.input_records.with_label_values(&[t]).inc_by(n);
    }
    for (t, n) in by_type {
        m.input_events.with_label_values(&[t]).inc_by(n);
    }
    for (_, e) in &rejected {
        m.dead_letters.with_label_values(&[e.kind().as_str()]).inc();
        if e.kind() == pulse_events::ErrorKind::Late {
            m.late_records.inc();
        }
    }
    m.skipped_records.inc_by(skipped);
    m.repartitioned_records.inc_by(forwards.len() as u64);
    m.batch_size.observe(batch.len() as f64);
    m.processing_seconds
        .with_label_values(&["batch"])
        .observe(started.elapsed().as_secs_f64());
    report_watermark(pos.partition, state, ctx);
    true
}
