//! One partition task: it owns the processing of one partition number across the input
//! topics. It first restores the partition's state from the changelog and claims the partition
//! there with a checkpoint of a new generation, then per batch: decode and apply under the
//! partition lock (no `.await` inside), produce outputs, dead letters, the changed profiles and
//! a checkpoint, wait for every acknowledgement, then store the input offsets.

use crate::changelog::{self, BatchTag, Checkpoint, ForwardedFrom, Offsets, REPARTITION};
use crate::config::{Delivery, OffsetReset, TopicNames, WorkerConfig};
use crate::context::PulseContext;
use crate::deliver::{deliver, ChangelogBatch, Forward, Products, Record};
use crate::merge::{Held, Merger};
use crate::outbox::Outbox;
use crate::state::{lock, StateRegistry};
use crate::tasks::{Dispatched, Fetched};
use crate::txn::Txn;
use crate::wall_clock_ms;
use crate::KafkaError;
use pulse_engine::{EngineSpec, ForwardSource, Partition, Source, INPUTS};
use pulse_events::{decode, Encoding, EventError, Limits, TopicRole};
use pulse_telemetry::{Health, Metrics};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
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
    /// Where an input the state has never read starts (`kafka.auto_offset_reset`).
    pub offset_reset: OffsetReset,
    /// Producer settings a partition's transactional producer starts from.
    pub producer_client: ClientConfig,
    pub group_id: String,
    pub stop: watch::Receiver<bool>,
    /// Set when a partition task or a client met an error that must stop the worker.
    pub fatal: crate::clients::Fatal,
}

impl TaskCtx {
    /// Records why the worker must stop; the first reason wins.
    pub fn fail(&self, e: KafkaError) {
        self.fatal.set(e);
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
    /// Customers restored from a batch whose checkpoint was lost, with the offsets their state
    /// reflects: their records below those are already applied. Emptied as the replay passes.
    ahead: HashMap<String, Offsets>,
    /// Where the changelog should be deleted once this task's claim is durable.
    obsolete: Vec<Vec<u8>>,
    /// At-least-once: the last batch's checkpoint, not yet written, and the input offsets it
    /// covers. It goes out with the next batch's outputs, or on the next tick when idle.
    deferred: Option<(Record, Offsets)>,
    /// Per source of forwarded records, the next original offset expected: one below it is a
    /// repeat.
    forwarded_next: HashMap<ForwardSource, i64>,
}

/// Runs until the sender side closes (shutdown or the worker stopping) and the queue is
/// drained. The caller has counted this partition as restoring.
pub(crate) async fn run(
    partition: i32,
    mut rx: mpsc::Receiver<Fetched>,
    dispatched: Dispatched,
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
    let state = ctx
        .state
        .get_or_insert(partition, || Partition::new(ctx.spec.clone()));
    let claimed = match restored {
        Some((mut pos, migrate)) => claim(&state, &ctx, txn.as_ref(), &mut pos, migrate)
            .await
            .then_some(pos),
        None => None,
    };
    ctx.health.restore_finished();
    ctx.metrics.restoring_partitions.dec();
    let Some(mut pos) = claimed else { return };
    resume_at(&pos, &ctx).await;
    // Per input (the three topics and the repartition topic): when its last record arrived.
    let mut last_input = [Instant::now(); INPUTS];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut merger: Merger<Fetched> = Merger::new(ctx.worker.max_hold, pos.next);
    let live_within = i64::try_from(ctx.worker.live_within.as_millis()).unwrap_or(i64::MAX);
    // Records the merge held back longer than this many at once are released regardless.
    let cap = ctx.worker.queue_capacity.max(ctx.worker.max_batch) * 4;
    let mut ready: Vec<Held<Fetched>> = Vec::new();
    let mut batch: Vec<OwnedMessage> = Vec::with_capacity(ctx.worker.max_batch);
    let mut arrived: Vec<Instant> = Vec::with_capacity(ctx.worker.max_batch);
    loop {
        // Wake for the hold bound, or to look an awaited input up again.
        let hold = [merger.deadline(), merger.next_look_up(Instant::now())]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            m = rx.recv() => {
                let Some(first) = m else { break };
                receive(&ctx, &mut merger, first, &mut last_input);
                while merger.len() < cap {
                    match rx.try_recv() {
                        Ok(f) => receive(&ctx, &mut merger, f, &mut last_input),
                        Err(_) => break,
                    }
                }
            }
            _ = tokio::time::sleep_until(hold.unwrap_or_else(Instant::now).into()), if hold.is_some() => {}
            _ = tick.tick() => {
                let all: Vec<usize> = (0..INPUTS).collect();
                let quiet = last_input.iter().all(|t| t.elapsed() >= ctx.worker.idle_timeout);
                if quiet && merger.is_empty() && lock(&state).is_live(wall_clock_ms(), live_within) {
                    // Idle means caught up too: an input with records on the broker (a replay,
                    // a backfill) is never idle, however long since its last record.
                    look_up(&ctx, &mut merger, &dispatched, pos.partition, &all).await;
                    let now = Instant::now();
                    if all.iter().all(|i| merger.caught_up(*i, now)) && !idle(&state, &ctx, txn.as_ref(), &mut pos).await {
                        return;
                    }
                }
                if !write_deferred(&ctx, &mut pos).await {
                    return;
                }
            }
        }
        let waiting = merger.to_look_up(Instant::now());
        if !waiting.is_empty() {
            look_up(&ctx, &mut merger, &dispatched, pos.partition, &waiting).await;
        }
        let forced = merger.forced;
        merger.release(Instant::now(), &mut ready);
        merger.release_over(cap, &mut ready);
        ctx.metrics.merge_forced.inc_by(merger.forced - forced);
        let released = std::mem::take(&mut ready);
        let last = released.len();
        for (n, h) in released.into_iter().enumerate() {
            let (m, at) = h.item;
            batch.push(m);
            arrived.push(at);
            if batch.len() < ctx.worker.max_batch && n + 1 < last {
                continue;
            }
            let mut done = 0;
            while done < batch.len() {
                match process(&batch[done..], &state, &ctx, txn.as_ref(), &mut pos).await {
                    Some(n) => done += n,
                    None => {
                        tracing::warn!(partition, "Stopping with outputs unacknowledged; their inputs will be processed again.");
                        return;
                    }
                }
            }
            // Everything the batch caused is acknowledged now.
            let waited: Vec<f64> = arrived.iter().map(|t| t.elapsed().as_secs_f64()).collect();
            ctx.metrics.latency.record(&waited);
            batch.clear();
            arrived.clear();
            // Take what arrived meanwhile, so the consumer loop is not parked on this queue
            // while other partitions wait for their records behind it. The records released
            // already keep their place: anything that arrives comes after its input's head.
            while merger.len() < cap {
                match rx.try_recv() {
                    Ok(f) => receive(&ctx, &mut merger, f, &mut last_input),
                    Err(_) => break,
                }
            }
        }
    }
    // Drained: what was applied is acknowledged; its checkpoint must be too before the
    // partition moves (or the worker stops), so the next owner resumes there.
    write_deferred(&ctx, &mut pos).await;
}

/// Hands a fetched record to the event-time merge.
fn receive(
    ctx: &TaskCtx,
    merger: &mut Merger<Fetched>,
    (m, at): Fetched,
    last_input: &mut [Instant; INPUTS],
) {
    let Some((_, index)) = input_of(ctx, &m) else {
        return;
    };
    let now = Instant::now();
    last_input[index] = now;
    let encoding = crate::dead_letter::content_type(&m).unwrap_or(ctx.input_encoding);
    let ts = m
        .payload()
        .and_then(|p| pulse_events::event_time(p, encoding));
    merger.push(index, m.offset(), ts, (m, at), now);
}

/// Looks up, for the merge, the broker's end offset and the consumer's position of `which`
/// inputs of the partition, and what the consumer loop has taken for this task since. An input
/// that cannot be looked up stays unknown, and waits.
async fn look_up(
    ctx: &TaskCtx,
    merger: &mut Merger<Fetched>,
    dispatched: &Dispatched,
    partition: i32,
    which: &[usize],
) {
    let topics: Vec<(usize, String)> = inputs(ctx)
        .filter(|(_, i)| which.contains(i))
        .map(|(t, i)| (i, t.to_owned()))
        .collect();
    let consumer = ctx.consumer.clone();
    let earliest = ctx.offset_reset == OffsetReset::Earliest;
    let at = Instant::now();
    // The position first, what was dispatched after: a record polled before the position was
    // read is then counted as on its way (the loop marks it right after the poll).
    let found = tokio::task::spawn_blocking(move || {
        let position = consumer.position().ok();
        topics
            .into_iter()
            .filter_map(|(i, topic)| {
                let (start, end) = consumer
                    .fetch_watermarks(&topic, partition, Duration::from_secs(5))
                    .ok()?;
                let reached = position
                    .as_ref()
                    .and_then(|p| p.find_partition(&topic, partition))
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    // Nothing read here yet: the consumer starts where the reset rule says.
                    .unwrap_or(if earliest { start } else { end });
                Some((i, end, reached))
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    for (i, end, reached) in found {
        let taken = dispatched[i].load(std::sync::atomic::Ordering::SeqCst);
        merger.set_end(i, end, reached, taken, at);
    }
}

/// Writes the deferred checkpoint, if any, and stores the offsets it covers. False if the
/// worker is stopping before it was acknowledged.
async fn write_deferred(ctx: &TaskCtx, pos: &mut Position) -> bool {
    let Some(((key, value), offsets)) = pos.deferred.take() else {
        return true;
    };
    let sent = vec![
        ctx.outbox
            .send_changelog(pos.partition, &key, Some(&value))
            .await,
    ];
    if !ctx.outbox.settle(sent, &ctx.stop).await {
        return false;
    }
    store(ctx, pos.partition, offsets);
    true
}

/// The input topics with their slot in [`Offsets`].
fn inputs(ctx: &TaskCtx) -> impl Iterator<Item = (&str, usize)> {
    TopicRole::ALL
        .iter()
        .map(|r| (ctx.topics.input(*r), r.index()))
        .chain([(ctx.topics.repartition.as_str(), REPARTITION)])
}

/// Stores `offsets` for the group to commit (at-least-once): the position of a checkpoint
/// that is durable, so a commit never runs ahead of what a restore would resume from.
fn store(ctx: &TaskCtx, partition: i32, offsets: Offsets) {
    let mut tpl = TopicPartitionList::new();
    for (topic, index) in inputs(ctx) {
        if offsets[index] >= 0 {
            let _ = tpl.add_partition_offset(topic, partition, Offset::Offset(offsets[index]));
        }
    }
    if let Err(e) = ctx.consumer.store_offsets(&tpl) {
        // The partition was revoked meanwhile: its new owner re-reads from the last commit.
        tracing::debug!(error = %e, partition, "Offsets not stored.");
    }
}

/// Delivers a batch and records what it made durable: with a deferred checkpoint, the
/// previous batch's position (its checkpoint went out with this batch), and this batch's
/// checkpoint waits; otherwise this batch's position. False if the worker must stop.
async fn deliver_batch(
    ctx: &TaskCtx,
    txn: Option<&Txn>,
    pos: &mut Position,
    mut products: Products<'_>,
) -> bool {
    let end = pos.next;
    let earlier = pos.deferred.take();
    let (record, earlier_end) = earlier.map(|(r, o)| (Some(r), Some(o))).unwrap_or_default();
    products.earlier = record;
    if !deliver(ctx, txn, &products).await {
        return false;
    }
    if txn.is_none() {
        let durable = if products.changes.defer {
            pos.deferred = Some((products.changes.checkpoint, end));
            earlier_end
        } else {
            Some(end)
        };
        if let Some(offsets) = durable {
            store(ctx, pos.partition, offsets);
        }
    }
    true
}

/// Restores the partition from the changelog, retrying while the broker is unreachable.
/// `None` if the worker stopped first; otherwise the position and whether the changelog must be
/// rewritten in the current format.
async fn restore(partition: i32, ctx: &Arc<TaskCtx>) -> Option<(Position, bool)> {
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
                let c = r.contents;
                let profiles = r.partition.customers();
                tracing::info!(
                    partition,
                    profiles,
                    ahead = c.ahead.len(),
                    records = c.records,
                    bytes = c.bytes,
                    seconds = r.seconds,
                    generation = c.next_generation,
                    next = ?c.checkpoint.tag.offsets,
                    "Partition restored."
                );
                let m = &ctx.metrics;
                m.restored_profiles.inc_by(profiles as u64);
                m.restored_bytes.inc_by(c.bytes);
                m.restore_seconds.observe(r.seconds);
                ctx.state.replace(partition, r.partition);
                let pos = Position {
                    partition,
                    next: c.checkpoint.tag.offsets,
                    generation: c.next_generation,
                    batch: 0,
                    ahead: c.ahead,
                    obsolete: c.obsolete,
                    deferred: None,
                    forwarded_next: c
                        .checkpoint
                        .forwarded
                        .iter()
                        .map(|f| (f.source, f.next))
                        .collect(),
                };
                return Some((pos, c.migrate));
            }
            Ok(Err(e)) => tracing::warn!(error = %e, partition, "Restore failed; retrying."),
            Err(e) => tracing::warn!(error = %e, partition, "Restore task failed; retrying."),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Claims the partition in the changelog before anything is processed: a checkpoint of this
/// task's generation where the restored state stands, naming this worker as the owner. From
/// then on a restore takes a generation past this one, and records an older generation writes
/// later are known for a zombie's. A changelog of the previous format is first rewritten whole
/// in the current one. False if the worker stopped before the claim was durable.
async fn claim(
    state: &Mutex<Partition>,
    ctx: &TaskCtx,
    txn: Option<&Txn>,
    pos: &mut Position,
    migrate: bool,
) -> bool {
    let changes = {
        let mut p = lock(state);
        let tag = tag_of(pos);
        let mut batch = changelog_records(&mut p, pos, ctx.advertise.as_deref(), false);
        if migrate {
            batch.profiles = p
                .profiles()
                .map(|(c, profile)| changelog::encode_profile(&tag, c, profile))
                .collect();
        }
        batch.obsolete = std::mem::take(&mut pos.obsolete);
        batch
    };
    let products = Products {
        partition: pos.partition,
        inputs: &[],
        rejected: &[],
        forwards: &[],
        outputs: &[],
        changes,
        earlier: None,
    };
    deliver(ctx, txn, &products).await
}

/// Starts fetching the partition's inputs (paused since assignment) where the restored state
/// ends; an input the state has never seen starts at its committed offset.
async fn resume_at(pos: &Position, ctx: &Arc<TaskCtx>) {
    let mut seek = TopicPartitionList::new();
    let mut all = TopicPartitionList::new();
    let mut restored: Vec<(String, i64)> = Vec::new();
    for (topic, index) in inputs(ctx) {
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

/// A live partition whose inputs are all idle and caught up: its event time follows the wall
/// clock, so timers still fire without new events.
async fn idle(
    state: &Mutex<Partition>,
    ctx: &TaskCtx,
    txn: Option<&Txn>,
    pos: &mut Position,
) -> bool {
    let mut outputs = Vec::new();
    let changes = {
        let mut p = lock(state);
        p.advance_to(wall_clock_ms(), &mut outputs);
        if outputs.is_empty() && p.changed() == 0 {
            None
        } else {
            Some(changelog_records(
                &mut p,
                pos,
                ctx.advertise.as_deref(),
                txn.is_none(),
            ))
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
                earlier: None,
            };
            deliver_batch(ctx, txn, pos, products).await
        }
    }
}

fn tag_of(pos: &Position) -> BatchTag {
    BatchTag {
        partition: pos.partition,
        generation: pos.generation,
        batch: pos.batch,
        offsets: pos.next,
    }
}

/// The changed profiles and the checkpoint closing this batch.
fn changelog_records(
    p: &mut Partition,
    pos: &mut Position,
    owner: Option<&str>,
    defer: bool,
) -> ChangelogBatch {
    let tag = tag_of(pos);
    pos.batch += 1;
    let mut profiles = Vec::with_capacity(p.changed());
    p.drain_changes(|c, profile| profiles.push(changelog::encode_profile(&tag, c, profile)));
    let population = p.population();
    let mut forwarded: BTreeMap<ForwardSource, ForwardedFrom> = BTreeMap::new();
    for (source, next) in &pos.forwarded_next {
        let f = forwarded.entry(*source).or_insert(ForwardedFrom {
            source: *source,
            frontier: None,
            next: -1,
        });
        f.next = *next;
    }
    for (source, frontier) in p.forwarded_frontiers() {
        forwarded
            .entry(source)
            .or_insert(ForwardedFrom {
                source,
                frontier: None,
                next: -1,
            })
            .frontier = Some(frontier);
    }
    let checkpoint = changelog::encode_checkpoint(&Checkpoint {
        tag,
        frontiers: p.frontiers(),
        rfm: population.rfm.clone(),
        next_refresh: population.next_refresh,
        owner: owner.map(str::to_owned),
        forwarded: forwarded.into_values().collect(),
    });
    ChangelogBatch {
        profiles,
        checkpoint,
        defer,
        obsolete: Vec::new(),
    }
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
/// Pauses or resumes fetching partition `p` of every input.
pub(crate) fn set_fetching(ctx: &TaskCtx, p: i32, on: bool) {
    let mut tpl = TopicPartitionList::new();
    for (topic, _) in inputs(ctx) {
        tpl.add_partition(topic, p);
    }
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

/// Processes the records of `batch` up to the first that ends a batch (an RFM refresh), and
/// returns how many it took. `None` if the worker must stop without storing their offsets.
async fn process(
    batch: &[OwnedMessage],
    state: &Mutex<Partition>,
    ctx: &TaskCtx,
    txn: Option<&Txn>,
    pos: &mut Position,
) -> Option<usize> {
    let started = Instant::now();
    let now = wall_clock_ms();
    let mut outputs = Vec::new();
    let mut rejected: Vec<(usize, EventError)> = Vec::new();
    let mut forwards: Vec<Forward> = Vec::new();
    let mut by_type: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_topic: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut skipped = 0u64;
    let mut taken = batch.len();
    let changes = {
        let mut p = lock(state);
        crate::failpoint::panics(crate::failpoint::PANIC_IN_BATCH);
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
            // A forwarded record is named, judged and counted by its original coordinates.
            let from = crate::dead_letter::forwarded_from(&ctx.topics.repartition, m);
            if let Some(f) = from {
                let mark = pos
                    .forwarded_next
                    .entry((role.index() as u8, f.partition))
                    .or_insert(-1);
                if f.offset < *mark {
                    // Forwarded again by a source that replayed it after a crash.
                    skipped += 1;
                    continue;
                }
                *mark = f.offset + 1;
            }
            let from = from.unwrap_or_else(|| crate::dead_letter::own(m));
            let encoding = crate::dead_letter::content_type(m).unwrap_or(ctx.input_encoding);
            let payload = m.payload().unwrap_or_default();
            let src = Source {
                role,
                forwarded: index == REPARTITION,
                topic: from.topic,
                partition: from.partition,
                offset: from.offset,
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
                    p.passed_on(ev.timestamp, &src, now, &mut outputs);
                    return Ok(None);
                }
                let applied_before = pos
                    .ahead
                    .get(ev.customer_id.as_ref())
                    .is_some_and(|o| m.offset() < o[index]);
                if applied_before {
                    skipped += 1;
                    return p
                        .already_applied(ev.timestamp, &src, now, &mut outputs)
                        .map(|()| None);
                }
                p.apply(&ev, &src, now, &mut outputs)
                    .map(|()| Some(ev.body.type_label()))
            });
            match applied {
                Ok(Some(label)) => *by_type.entry(label).or_default() += 1,
                Ok(None) => {}
                Err(e) => rejected.push((i, e)),
            }
            if p.take_refreshed() {
                taken = i + 1;
                break;
            }
        }
        let next = pos.next;
        pos.ahead
            .retain(|_, o| o.iter().zip(next).any(|(o, n)| *o > n));
        changelog_records(&mut p, pos, ctx.advertise.as_deref(), txn.is_none())
    };
    let batch = &batch[..taken];
    let products = Products {
        partition: pos.partition,
        inputs: batch,
        rejected: &rejected,
        forwards: &forwards,
        outputs: &outputs,
        changes,
        earlier: None,
    };
    if !deliver_batch(ctx, txn, pos, products).await {
        return None;
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
    Some(taken)
}
