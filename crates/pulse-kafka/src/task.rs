//! One partition task's life: it owns the processing of one partition number across the input
//! topics, in the phases [`run`] names (claiming, restoring, running, draining). Taking the
//! partition over is [`crate::claim`]; while it runs, its own inputs' records are merged,
//! sequenced and forwarded or queued here ([`crate::flow`]), and each batch of what the order
//! lets through is applied and delivered by [`crate::batch`].

use crate::batch::{idle, step};
use crate::changelog::REPARTITION;
use crate::claim::{claim, restore, resume_at};
use crate::config::{Delivery, OffsetReset};
use crate::ctx::{input_of, inputs, TaskCtx};
use crate::flow::{Dispatched, Entry, Fetched, Flow, Item, Queues, Routed};
use crate::idle::IdleClock;
use crate::outbox::{MARKER_HEADER, ORDER_HEADER};
use crate::position::{write_deferred, Position};
use crate::restoring::Restoring;
use crate::sequence::{Cut, DIRECT};
use crate::state::lock;
use crate::txn::Txn;
use crate::wall_clock_ms;
use pulse_engine::{Millis, Partition, INPUTS};
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The task's life, in four phases:
///
/// 1. **claiming**: with `delivery = "exactly-once"`, the partition's transactional id, which
///    fences a previous owner and aborts its open transaction before the changelog is read;
/// 2. **restoring**: the partition's state from the changelog, then its claim there (a
///    checkpoint of a new generation) and its inputs resumed where the state ends; `restoring`
///    counts the partition as restoring (readiness false) until this phase ends, or until the
///    task is dropped;
/// 3. **running**: records merged, ordered and applied batch by batch until the sender side of
///    its queues closes (a revoke, shutdown or the worker stopping);
/// 4. **draining**: the last batch's deferred checkpoint written, so the next owner resumes
///    where this one stopped. What the task holds unapplied is read again by that owner.
///
/// A phase that cannot finish (the worker stopping with outputs unacknowledged, the
/// transactional id refused) ends the task where it is.
pub(crate) async fn run(
    partition: i32,
    queues: Queues,
    dispatched: Dispatched,
    ctx: Arc<TaskCtx>,
    mut restoring: Restoring,
    // Dropped when this task returns, which tells a waiting revoke that it has drained.
    _done: std::sync::mpsc::Sender<()>,
) {
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
    if running(&state, &ctx, txn.as_ref(), &mut pos, queues, &dispatched).await {
        write_deferred(&ctx, &mut pos).await;
    }
}

/// The running phase. True when the queues closed with everything applied acknowledged, false
/// when the worker is stopping with a batch unacknowledged (its inputs are read again).
async fn running(
    state: &Mutex<Partition>,
    ctx: &TaskCtx,
    txn: Option<&Txn>,
    pos: &mut Position,
    queues: Queues,
    dispatched: &Dispatched,
) -> bool {
    let partition = pos.partition;
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
                    Ok(found) => looked_up(&mut flow, dispatched, pos.partition, found),
                    Err(e) => tracing::warn!(error = %e, partition, "Looking the inputs up failed; trying again."),
                }
            }
            m = own_rx.recv(), if flow.wants_own() => {
                let Some(first) = m else { return true };
                receive(ctx, &mut flow, first, &mut last_input);
                while flow.wants_own() {
                    match own_rx.try_recv() {
                        Ok(f) => receive(ctx, &mut flow, f, &mut last_input),
                        Err(_) => break,
                    }
                }
            }
            m = forwarded_rx.recv() => {
                let Some(first) = m else { return true };
                receive(ctx, &mut flow, first, &mut last_input);
                while let Ok(f) = forwarded_rx.try_recv() {
                    receive(ctx, &mut flow, f, &mut last_input);
                }
            }
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now).into()), if wake.is_some() => {}
            _ = tick.tick() => {
                let now = Instant::now();
                let live = {
                    let p = lock(state);
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
                        if !idle(state, ctx, txn, pos, t).await {
                            return false;
                        }
                    }
                }
                if !write_deferred(ctx, pos).await {
                    return false;
                }
            }
        }
        if looking_up.is_none() {
            let now = Instant::now();
            let waiting = flow.merger.to_look_up(now, flow.wants_look_up(now));
            if !waiting.is_empty() {
                looking_up = Some(look_up(ctx, pos.partition, &waiting));
            }
        }
        loop {
            let forced = flow.sequence(Instant::now(), wall_clock_ms());
            if forced > 0 {
                tracing::warn!(partition, records = forced, "An own input lagged longer than worker.max_hold, or the records held back for it reached worker.queue_capacity or worker.queue_bytes; the merge went on without it, so the order of these records depends on timing.");
            }
            ctx.metrics.merge_forced.inc_by(forced);
            let began = Instant::now();
            let stepped = step(state, ctx, txn, pos, &mut flow).await;
            flow.away(began.elapsed());
            match stepped {
                Some(true) => {}
                Some(false) => break,
                None => {
                    tracing::warn!(partition, "Stopping with outputs unacknowledged; their inputs will be processed again.");
                    return false;
                }
            }
            // Take what arrived meanwhile, so the consumer loop is not parked on these queues
            // while other partitions wait for their records behind them. What was sequenced
            // already keeps its place: anything that arrives comes after its input's head.
            while flow.wants_own() {
                match own_rx.try_recv() {
                    Ok(f) => receive(ctx, &mut flow, f, &mut last_input),
                    Err(_) => break,
                }
            }
            while let Ok(f) = forwarded_rx.try_recv() {
                receive(ctx, &mut flow, f, &mut last_input);
            }
        }
    }
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
