//! One partition task: it owns the processing of one partition number across the input
//! topics. It first restores the partition's state from the changelog and claims the partition
//! there with a checkpoint of a new generation. Then its own inputs' records are merged,
//! sequenced and forwarded or queued ([`crate::flow`]), and per batch it applies what the
//! order of own and forwarded records lets through, under the partition lock (no `.await`
//! inside); it produces the forwards, outputs, dead letters, markers, the changed profiles and
//! a checkpoint, waits for every acknowledgement, then stores the input offsets.

use crate::align::Next;
use crate::changelog::{self, Applied, BatchTag, Checkpoint, ForwardedFrom, Offsets, REPARTITION};
use crate::config::{Delivery, OffsetReset, OnUndecodable, TopicNames, WorkerConfig};
use crate::context::PulseContext;
use crate::deliver::{deliver, ChangelogBatch, Forward, Markers, Products, Record};
use crate::flow::{Entry, Fetched, Flow, Item, Routed};
use crate::held::Charge;
use crate::idle::IdleClock;
use crate::outbox::{Outbox, MARKER_HEADER, ORDER_HEADER};
use crate::restoring::Restoring;
use crate::sequence::{Cut, DIRECT};
use crate::state::{lock, StateRegistry};
use crate::tasks::{Dispatched, Lane, Queues};
use crate::txn::Txn;
use crate::wall_clock_ms;
use crate::KafkaError;
use pulse_engine::{Engine, ForwardSource, Millis, Partition, Source, INPUTS};
use pulse_events::{decode, Encoding, EventError, Limits, TopicRole};
use pulse_telemetry::{Health, Metrics};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
    /// Customers restored from a batch whose checkpoint was lost, with what that batch applied
    /// to them of forwarded records: per source, the next original offset their state expects.
    ahead_forwarded: HashMap<String, Vec<Applied>>,
    /// The stream time at `next`, where the keys of the order resume.
    sequenced: Millis,
    /// The id of the layout the profiles are written in: the configuration's.
    layout: u64,
    /// What this batch applied of forwarded records, per customer: written with its profile.
    applied_forwarded: HashMap<String, Vec<Applied>>,
}

/// Runs until the sender side closes (a revoke, shutdown or the worker stopping). What it
/// holds unapplied then is read again by the partition's next owner. `restoring` counts the
/// partition as restoring until its restore ends, or until this task is dropped.
pub(crate) async fn run(
    partition: i32,
    queues: Queues,
    dispatched: Dispatched,
    ctx: Arc<TaskCtx>,
    mut restoring: Restoring,
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
                    return;
                }
            }
        }
    };
    let restored = restore(partition, &ctx).await;
    let state = ctx
        .state
        .get_or_insert(partition, || Partition::new(ctx.engine.clone()));
    let claimed = match restored {
        Some((mut pos, migrate)) => claim(&state, &ctx, txn.as_ref(), &mut pos, migrate)
            .await
            .then_some(pos),
        None => None,
    };
    restoring.finish();
    let Some(mut pos) = claimed else { return };
    resume_at(&pos, &ctx).await;
    // Per input (the three topics and the repartition topic): when its last record arrived.
    let mut last_input = [Instant::now(); INPUTS];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live_within = i64::try_from(ctx.worker.live_within.as_millis()).unwrap_or(i64::MAX);
    // Own records buffered beyond this many in the merge, or in the order, pause their fetching.
    let cap = ctx.worker.queue_capacity.max(ctx.worker.max_batch) * 4;
    let mut direct = [0; DIRECT];
    direct.copy_from_slice(&pos.next[..DIRECT]);
    let mut flow = Flow::new(
        partition,
        ctx.state.input_partitions(),
        Cut {
            key: pos.sequenced,
            next: direct,
        },
        pos.next[REPARTITION],
        ctx.worker.max_hold,
        ctx.worker.repartition_hold,
        cap,
        ctx.worker.queue_bytes.0 as usize,
        ctx.engine.spec.max_future_skew,
    );
    let [mut own_rx, mut forwarded_rx] = queues;
    let mut clock = IdleClock::default();
    // A look-up of the own inputs' end offsets, under way beside the task: a broker round trip
    // per input, which under load takes hundreds of milliseconds. Meanwhile the task applies
    // what it may and sends its markers, so the partitions waiting for them are not held too.
    let mut looking_up: Option<JoinHandle<LookedUp>> = None;
    loop {
        let wake = flow.wake(Instant::now(), wall_clock_ms(), looking_up.is_none());
        tokio::select! {
            found = async { looking_up.as_mut().expect("a look-up under way").await }, if looking_up.is_some() => {
                looking_up = None;
                match found {
                    Ok(found) => looked_up(&mut flow, &dispatched, pos.partition, found),
                    Err(e) => tracing::warn!(error = %e, partition, "Looking the inputs up failed; trying again."),
                }
            }
            m = own_rx.recv(), if flow.wants_own() => {
                let Some(first) = m else { break };
                receive(&ctx, &mut flow, first, &mut last_input);
                while flow.wants_own() {
                    match own_rx.try_recv() {
                        Ok(f) => receive(&ctx, &mut flow, f, &mut last_input),
                        Err(_) => break,
                    }
                }
            }
            m = forwarded_rx.recv() => {
                let Some(first) = m else { break };
                receive(&ctx, &mut flow, first, &mut last_input);
                while let Ok(f) = forwarded_rx.try_recv() {
                    receive(&ctx, &mut flow, f, &mut last_input);
                }
            }
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now).into()), if wake.is_some() => {}
            _ = tick.tick() => {
                let now = Instant::now();
                let live = {
                    let p = lock(&state);
                    clock.observe(p.newest(), now);
                    p.is_live(wall_clock_ms(), live_within)
                };
                let quiet = last_input.iter().all(|t| t.elapsed() >= ctx.worker.idle_timeout);
                // Idle means caught up too: an input with records on the broker (a replay, a
                // backfill) is never idle, however long since its last record.
                let caught_up = flow.bound(now).is_none();
                if quiet && caught_up && live && flow.is_empty() {
                    let reached = clock.time(now, wall_clock_ms());
                    if let Some(t) = reached {
                        if !idle(&state, &ctx, txn.as_ref(), &mut pos, t).await {
                            return;
                        }
                    }
                }
                if !write_deferred(&ctx, &mut pos).await {
                    return;
                }
            }
        }
        if looking_up.is_none() {
            let now = Instant::now();
            let waiting = flow.merger.to_look_up(now, flow.wants_look_up(now));
            if !waiting.is_empty() {
                looking_up = Some(look_up(&ctx, pos.partition, &waiting));
            }
        }
        loop {
            let forced = flow.sequence(Instant::now(), wall_clock_ms());
            if forced > 0 {
                tracing::warn!(partition, records = forced, "An own input lagged longer than worker.max_hold, or the records held back for it reached worker.queue_capacity or worker.queue_bytes; the merge went on without it, so the order of these records depends on timing.");
            }
            ctx.metrics.merge_forced.inc_by(forced);
            let began = Instant::now();
            let stepped = step(&state, &ctx, txn.as_ref(), &mut pos, &mut flow).await;
            flow.away(began.elapsed());
            match stepped {
                Some(true) => {}
                Some(false) => break,
                None => {
                    tracing::warn!(partition, "Stopping with outputs unacknowledged; their inputs will be processed again.");
                    return;
                }
            }
            // Take what arrived meanwhile, so the consumer loop is not parked on these queues
            // while other partitions wait for their records behind them. What was sequenced
            // already keeps its place: anything that arrives comes after its input's head.
            while flow.wants_own() {
                match own_rx.try_recv() {
                    Ok(f) => receive(&ctx, &mut flow, f, &mut last_input),
                    Err(_) => break,
                }
            }
            while let Ok(f) = forwarded_rx.try_recv() {
                receive(&ctx, &mut flow, f, &mut last_input);
            }
        }
    }
    // Stopped: what was applied is acknowledged; its checkpoint must be too before the
    // partition moves (or the worker stops), so the next owner resumes there.
    write_deferred(&ctx, &mut pos).await;
}

/// Hands a fetched record to the flow: one of the task's own to the event-time merge, with
/// where it goes; a marker to the order; a forwarded record to wait its turn there.
fn receive(ctx: &TaskCtx, flow: &mut Flow, fetched: Fetched, last_input: &mut [Instant; INPUTS]) {
    let m = &fetched.msg;
    let Some((role, index)) = input_of(ctx, m) else {
        return;
    };
    let now = Instant::now();
    last_input[index] = now;
    if index == REPARTITION {
        let header = |k| crate::dead_letter::header(m, k);
        let from = |k| header(k).and_then(|p: &str| p.parse::<i32>().ok());
        let offset = m.offset();
        if header(MARKER_HEADER).is_some() {
            let bound = crate::flow::bound_of(header(crate::outbox::BOUND_HEADER));
            if let (Some(source), Some(bound)) = (from(MARKER_HEADER), bound) {
                flow.aligner.mark(source, bound, offset);
            }
            return;
        }
        // A record forwarded without a key (by a Pulse that did not write one) comes as soon
        // as it can; one without its source is this partition's, which nobody waits for.
        let key = header(ORDER_HEADER)
            .and_then(|k| k.parse().ok())
            .unwrap_or(Millis::MIN);
        let source = from(pulse_events::dead_letter::SOURCE_PARTITION).unwrap_or(flow.partition());
        let item = Item {
            entry: Entry::Record(fetched),
            // Forwarded here: not in this partition's sequence.
            cut: Cut {
                key: Millis::MIN,
                next: [-1; DIRECT],
            },
        };
        flow.aligner.push_forwarded(source, key, offset, item);
        return;
    }
    let encoding = crate::dead_letter::content_type(m).unwrap_or(ctx.input_encoding);
    let peeked = m
        .payload()
        .map(|p| pulse_events::peek(p, encoding))
        .unwrap_or_default();
    let forward = peeked
        .customer_id
        .filter(|c| m.key() != Some(c.as_bytes()))
        .filter(|c| {
            // Keyed by something else, but in the customer's partition all the same.
            let home = crate::partition_for(c.as_bytes(), flow.partitions(), &ctx.partitioner);
            home != Some(flow.partition())
        })
        .map(|c| c.into_owned());
    let (ts, offset) = (peeked.timestamp, m.offset());
    let routed = Routed {
        fetched,
        role,
        forward,
    };
    flow.merger.push(index, offset, ts, routed, now);
}

/// What a look-up found: per input, the broker's end offset and the consumer's position, and
/// when the look-up began.
struct LookedUp {
    at: Instant,
    found: Vec<(usize, i64, i64)>,
}

/// Starts looking up, for the merge, the broker's end offset and the consumer's position of
/// `which` own inputs of the partition, on a blocking thread. An input that cannot be looked up
/// stays unknown, and waits.
fn look_up(ctx: &TaskCtx, partition: i32, which: &[usize]) -> JoinHandle<LookedUp> {
    let topics: Vec<(usize, String)> = inputs(ctx)
        .filter(|(_, i)| which.contains(i))
        .map(|(t, i)| (i, t.to_owned()))
        .collect();
    let consumer = ctx.consumer.clone();
    let earliest = ctx.offset_reset == OffsetReset::Earliest;
    let at = Instant::now();
    tokio::task::spawn_blocking(move || {
        let position = consumer.position().ok();
        let found = topics
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
            .collect();
        LookedUp { at, found }
    })
}

/// Hands what a look-up found to the merge, with what the consumer loop has taken for this
/// task since. Read now, after the look-up read the position: a record polled before that is
/// then counted as on its way (the loop marks it right after the poll).
fn looked_up(flow: &mut Flow, dispatched: &Dispatched, partition: i32, l: LookedUp) {
    for (i, end, reached) in l.found {
        let taken = dispatched[i].load(std::sync::atomic::Ordering::SeqCst);
        tracing::debug!(
            partition,
            input = i,
            end,
            position = reached,
            dispatched = taken,
            "Input looked up for the merge."
        );
        flow.merger.set_end(i, end, reached, taken, l.at);
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
            pos.deferred = products.changes.checkpoint.take().map(|r| (r, end));
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
        let (client, topic, engine) = (
            ctx.changelog_client.clone(),
            ctx.topics.profiles.clone(),
            ctx.engine.clone(),
        );
        let drop_undecodable = ctx.worker.on_undecodable_changelog == OnUndecodable::Drop;
        let result = tokio::task::spawn_blocking(move || {
            changelog::restore(&client, &topic, partition, engine, drop_undecodable)
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
                    migrated = c.migrated,
                    "Partition restored."
                );
                for (offset, reason) in &c.dropped {
                    tracing::error!(partition, offset, reason, "A changelog record could not be read and was dropped (worker.on_undecodable_changelog = \"drop\"); the customer it held starts over.");
                }
                if c.migrated > 0 {
                    tracing::info!(partition, profiles = c.migrated, "Profiles written under another configuration were carried over to this one by name; the changelog is rewritten in this one.");
                }
                let m = &ctx.metrics;
                m.restored_profiles.inc_by(profiles as u64);
                m.restored_bytes.inc_by(c.bytes);
                m.restore_seconds.observe(r.seconds);
                // A checkpoint written before the order's keys were: the restored frontiers
                // stand in for the stream time.
                let sequenced = c
                    .checkpoint
                    .sequenced
                    .or_else(|| r.partition.newest())
                    .unwrap_or(Millis::MIN);
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
                    ahead_forwarded: c.ahead_forwarded,
                    sequenced,
                    applied_forwarded: HashMap::new(),
                    layout: ctx.engine.spec.layout.id(),
                };
                return Some((pos, c.migrate));
            }
            Ok(Err(KafkaError::Changelog { offset, reason })) => {
                // Retrying reads the same record again; going on without it would lose the
                // state it holds. An operator decides.
                tracing::error!(partition, offset, reason, "A changelog record cannot be read; stopping. Set worker.on_undecodable_changelog = \"drop\" to pass such records by, starting their customers over.");
                ctx.fail(KafkaError::Changelog { offset, reason });
                return None;
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
                .map(|(c, profile)| changelog::encode_profile(&tag, c, profile, &[]))
                .collect();
        }
        // The layout goes before every profile written in it (the claim's batch is the first
        // this writer writes), so a restore under another configuration can carry them over.
        batch
            .profiles
            .insert(0, changelog::encode_layout(&ctx.engine.spec.layout));
        batch.obsolete = std::mem::take(&mut pos.obsolete);
        batch
    };
    let products = Products {
        partition: pos.partition,
        inputs: &[],
        rejected: &[],
        forwards: &[],
        markers: None,
        outputs: &[],
        changes,
        earlier: None,
        commit: None,
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
    let ctx_ops = ctx.clone();
    let resumed = tokio::task::spawn_blocking(move || {
        let _one_at_a_time = ctx_ops.fetch_ops.lock().unwrap_or_else(|e| e.into_inner());
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

/// A live partition whose inputs are all idle and caught up: its event time moves on to
/// `reached` ([`IdleClock`]), so timers still fire without new events.
async fn idle(
    state: &Mutex<Partition>,
    ctx: &TaskCtx,
    txn: Option<&Txn>,
    pos: &mut Position,
    reached: Millis,
) -> bool {
    let mut outputs = Vec::new();
    let changes = {
        let mut p = lock(state);
        p.advance_to(reached, &mut outputs);
        if outputs.is_empty() && p.changed() == 0 && p.evicted() == 0 {
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
                markers: None,
                outputs: &outputs,
                changes,
                earlier: None,
                commit: None,
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
        layout: pos.layout,
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
    let mut evicted = Vec::new();
    p.drain_evicted(|c| evicted.push(c.as_bytes().to_vec()));
    let mut profiles = Vec::with_capacity(p.changed());
    let applied = std::mem::take(&mut pos.applied_forwarded);
    p.drain_changes(|c, profile| {
        let forwarded = applied.get(c).map_or(&[][..], Vec::as_slice);
        profiles.push(changelog::encode_profile(&tag, c, profile, forwarded));
    });
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
        sequenced: Some(pos.sequenced),
    });
    ChangelogBatch {
        evicted,
        profiles,
        checkpoint: Some(checkpoint),
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

/// What one batch applied and rejected, and what it counts.
#[derive(Default)]
struct Batch {
    /// The forwarded records first, then those applied (or rejected) in order.
    inputs: Vec<OwnedMessage>,
    /// The inputs' bytes, counted against the task's bound until the batch is delivered.
    charges: Vec<Charge>,
    arrived: Vec<Instant>,
    forwards: Vec<Forward>,
    rejected: Vec<(usize, EventError)>,
    outputs: Vec<pulse_events::OutputEvent>,
    by_type: BTreeMap<&'static str, u64>,
    by_topic: BTreeMap<&'static str, u64>,
    skipped: u64,
    applied: usize,
}

/// One batch: the records sequenced for forwarding since the last, and up to `max_batch`
/// records the order lets through, applied, up to the first that ends a batch (an RFM
/// refresh); delivered with the markers due. `Some(false)`: nothing to do now; `None`: the
/// worker must stop without storing the offsets.
async fn step(
    state: &Mutex<Partition>,
    ctx: &TaskCtx,
    txn: Option<&Txn>,
    pos: &mut Position,
    flow: &mut Flow,
) -> Option<bool> {
    let started = Instant::now();
    let now = wall_clock_ms();
    let mut b = Batch::default();
    for f in flow.forwards.drain(..) {
        *b.by_topic.entry(f.role.as_str()).or_default() += 1;
        b.forwards.push(Forward {
            input: b.inputs.len(),
            role: f.role,
            customer: f.customer,
            order: f.order,
        });
        b.inputs.push(f.fetched.msg);
        b.charges.push(f.fetched.charge);
    }
    b.skipped = std::mem::take(&mut flow.skipped);
    let markers = flow.markers_due(Instant::now(), now);
    let changes = {
        let mut p = lock(state);
        crate::failpoint::panics(crate::failpoint::PANIC_IN_BATCH);
        while b.applied < ctx.worker.max_batch {
            let (item, forwarded) = match flow.next(Instant::now(), now) {
                Next::Own(k) => (k.item, false),
                Next::Forwarded(k) => (k.item, true),
                Next::WaitOwn | Next::WaitSource | Next::Empty => break,
            };
            b.applied += 1;
            apply(&mut p, ctx, pos, item.entry, forwarded, now, &mut b);
            if p.take_refreshed() {
                break;
            }
        }
        if b.applied == 0 && b.forwards.is_empty() {
            None
        } else {
            Some(close_batch(&mut p, ctx, txn, pos, flow))
        }
    };
    let Some(changes) = changes else {
        // Nothing applied or forwarded: the markers go on their own, and the changelog is
        // left alone.
        let Some(bound) = markers else {
            return Some(false);
        };
        // The repartition topic's position moves with the markers read: committed, it keeps
        // what a restart reads again short. The others stay where the last checkpoint put them.
        pos.next[REPARTITION] = flow.aligner.resume();
        let mut read: Offsets = [-1; 4];
        read[REPARTITION] = pos.next[REPARTITION];
        let products = Products {
            partition: pos.partition,
            inputs: &[],
            rejected: &[],
            forwards: &[],
            markers: Some(Markers {
                from: pos.partition,
                partitions: flow.partitions(),
                bound,
            }),
            outputs: &[],
            changes: ChangelogBatch {
                evicted: Vec::new(),
                profiles: Vec::new(),
                checkpoint: None,
                defer: false,
                obsolete: Vec::new(),
            },
            earlier: None,
            commit: Some(read),
        };
        if !deliver(ctx, txn, &products).await {
            return None;
        }
        if txn.is_none() {
            store(ctx, pos.partition, read);
        }
        flow.marked(bound, Instant::now());
        return Some(false);
    };

    let products = Products {
        partition: pos.partition,
        inputs: &b.inputs,
        rejected: &b.rejected,
        forwards: &b.forwards,
        markers: markers.map(|bound| Markers {
            from: pos.partition,
            partitions: flow.partitions(),
            bound,
        }),
        outputs: &b.outputs,
        changes,
        earlier: None,
        commit: Some(pos.next),
    };
    if !deliver_batch(ctx, txn, pos, products).await {
        return None;
    }
    if let Some(bound) = markers {
        flow.marked(bound, Instant::now());
    }
    tracing::debug!(
        partition = pos.partition,
        generation = pos.generation,
        batch = pos.batch,
        applied = b.applied,
        forwarded = b.forwards.len(),
        next = ?pos.next,
        "Batch acknowledged."
    );
    // Everything the batch caused is acknowledged now.
    let waited: Vec<f64> = b
        .arrived
        .iter()
        .map(|t| t.elapsed().as_secs_f64())
        .collect();
    let m = &ctx.metrics;
    m.latency.record(&waited);
    for (t, n) in b.by_topic {
        m.input_records.with_label_values(&[t]).inc_by(n);
    }
    for (t, n) in b.by_type {
        m.input_events.with_label_values(&[t]).inc_by(n);
    }
    for (_, e) in &b.rejected {
        m.dead_letters.with_label_values(&[e.kind().as_str()]).inc();
        if e.kind() == pulse_events::ErrorKind::Late {
            m.late_records.inc();
        }
    }
    m.skipped_records.inc_by(b.skipped);
    m.repartitioned_records.inc_by(b.forwards.len() as u64);
    let forced = std::mem::take(&mut flow.aligner.forced);
    if forced > 0 {
        tracing::warn!(partition = pos.partition, records = forced, "A partition that may forward records here said nothing for worker.repartition_hold; the order went on without it, so the order of these records depends on timing.");
    }
    m.merge_forced.inc_by(forced);
    m.batch_size.observe(b.applied as f64);
    m.processing_seconds
        .with_label_values(&["batch"])
        .observe(started.elapsed().as_secs_f64());
    report_watermark(pos.partition, state, ctx);
    Some(true)
}

/// Closes a batch: its position is the cut the flow stands at, and its changelog records.
fn close_batch(
    p: &mut Partition,
    ctx: &TaskCtx,
    txn: Option<&Txn>,
    pos: &mut Position,
    flow: &Flow,
) -> ChangelogBatch {
    let cut = flow.cut();
    pos.next[..DIRECT].copy_from_slice(&cut.next);
    pos.next[REPARTITION] = flow.aligner.resume();
    pos.sequenced = cut.key;
    let next = pos.next;
    pos.ahead
        .retain(|_, o| o[..DIRECT].iter().zip(next).any(|(o, n)| *o > n));
    let expected = &pos.forwarded_next;
    pos.ahead_forwarded.retain(|_, applied| {
        applied
            .iter()
            .any(|(s, n)| expected.get(s).is_none_or(|e| n > e))
    });
    changelog_records(p, pos, ctx.advertise.as_deref(), txn.is_none())
}

/// Applies one entry the order let through.
fn apply(
    p: &mut Partition,
    ctx: &TaskCtx,
    pos: &mut Position,
    entry: Entry,
    forwarded: bool,
    now: Millis,
    b: &mut Batch,
) {
    let (m, at) = match entry {
        Entry::Record(f) => {
            b.charges.push(f.charge);
            (f.msg, f.at)
        }
        Entry::PassedOn { role, ts, offset } => {
            // Forwarded from here: judged where it went, but its event time is this input's
            // too, so it moves the input forward, at its turn.
            if let Some(ts) = ts {
                let src = Source {
                    role,
                    forwarded: false,
                    topic: ctx.topics.input(role),
                    partition: pos.partition,
                    offset,
                };
                p.passed_on(ts, &src, now, &mut b.outputs);
            }
            return;
        }
    };
    let Some((role, index)) = input_of(ctx, &m) else {
        return;
    };
    let label = if forwarded {
        "repartition"
    } else {
        role.as_str()
    };
    *b.by_topic.entry(label).or_default() += 1;
    let i = b.inputs.len();
    b.inputs.push(m);
    b.arrived.push(at);
    let m = &b.inputs[i];
    // A forwarded record is named, judged and counted by its original coordinates.
    let from = crate::dead_letter::forwarded_from(&ctx.topics.repartition, m);
    let source = from.as_ref().map(|f| (role.index() as u8, f.partition));
    if let (Some(f), Some(source)) = (&from, source) {
        let mark = pos.forwarded_next.entry(source).or_insert(-1);
        if f.offset < *mark {
            // Forwarded again by a source that replayed it after a crash.
            b.skipped += 1;
            return;
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
        let customer = ev.customer_id.as_ref();
        let applied_before = match source {
            // Restored from a batch whose checkpoint was lost, which had applied it.
            Some(s) => pos
                .ahead_forwarded
                .get(customer)
                .and_then(|a| a.iter().find(|(x, _)| *x == s))
                .is_some_and(|(_, n)| from.offset < *n),
            None => pos
                .ahead
                .get(customer)
                .is_some_and(|o| m.offset() < o[index]),
        };
        if applied_before {
            b.skipped += 1;
            return p
                .already_applied(ev.timestamp, &src, now, &mut b.outputs)
                .map(|()| None);
        }
        p.apply(&ev, &src, now, &mut b.outputs)?;
        if let Some(s) = source {
            let applied = pos
                .applied_forwarded
                .entry(customer.to_owned())
                .or_default();
            match applied.iter_mut().find(|(x, _)| *x == s) {
                Some(a) => a.1 = from.offset + 1,
                None => applied.push((s, from.offset + 1)),
            }
        }
        Ok(Some(ev.body.type_label()))
    });
    match applied {
        Ok(Some(label)) => *b.by_type.entry(label).or_default() += 1,
        Ok(None) => {}
        Err(e) => b.rejected.push((i, e)),
    }
}
