//! One batch of a running task: what the order lets through applied under the partition lock,
//! its products delivered, its position made durable, and what it did counted.

use crate::align::Next;
use crate::changelog::{Offsets, REPARTITION};
use crate::ctx::{input_of, store, TaskCtx};
use crate::deliver::{deliver, ChangelogBatch, Forward, Markers, Products};
use crate::flow::{Entry, Flow};
use crate::held::Charge;
use crate::position::{changelog_records, Position};
use crate::sequence::DIRECT;
use crate::state::lock;
use crate::txn::Txn;
use crate::wall_clock_ms;
use pulse_engine::{Millis, Partition, Source};
use pulse_events::{decode, EventError, OutputData, OutputEvent, OutputKind};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// What one batch applied and rejected, and what it counts.
#[derive(Default)]
pub(crate) struct Batch {
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
pub(crate) async fn step(
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
        count(ctx, &products, None);
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
    if !deliver_batch(ctx, txn, pos, products, Some((&b, started))).await {
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
    let forced = std::mem::take(&mut flow.aligner.forced);
    if forced > 0 {
        tracing::warn!(partition = pos.partition, records = forced, "A partition that may forward records here said nothing for worker.repartition_hold; the order went on without it, so the order of these records depends on timing.");
    }
    ctx.metrics.merge_forced.inc_by(forced);
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

/// Delivers a batch and records what it made durable: with a deferred checkpoint, the
/// previous batch's position (its checkpoint went out with this batch), and this batch's
/// checkpoint waits; otherwise this batch's position. False if the worker must stop.
pub(crate) async fn deliver_batch(
    ctx: &TaskCtx,
    txn: Option<&Txn>,
    pos: &mut Position,
    mut products: Products<'_>,
    read: Option<(&Batch, Instant)>,
) -> bool {
    let end = pos.next;
    let earlier = pos.deferred.take();
    let (record, earlier_end) = earlier.map(|(r, o)| (Some(r), Some(o))).unwrap_or_default();
    products.earlier = record;
    if !deliver(ctx, txn, &products).await {
        return false;
    }
    count(ctx, &products, read);
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

/// A live partition whose inputs are all idle and caught up: its event time moves on to
/// `reached` ([`IdleClock`]), so timers still fire without new events.
pub(crate) async fn idle(
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
            deliver_batch(ctx, txn, pos, products, None).await
        }
    }
}

pub(crate) fn report_watermark(partition: i32, state: &Mutex<Partition>, ctx: &TaskCtx) {
    let wm = lock(state).watermark();
    if let Some(wm) = wm {
        let lag = (wall_clock_ms() - wm).max(0) / 1000;
        ctx.metrics
            .watermark_lag
            .with_label_values(&[&partition.to_string()])
            .set(lag);
    }
}

/// Everything a delivered batch counts, in one place: what it wrote (outputs by kind, segment
/// transitions and funnel progress, changelog records and bytes, evictions) and, for a batch of
/// input records (`read`, with when it started), what it read: records by topic, events by
/// type, dead letters, records passed by, records forwarded, batch size and time, and each
/// record's event-to-output latency (everything it caused is acknowledged now).
pub(crate) fn count(ctx: &TaskCtx, p: &Products<'_>, read: Option<(&Batch, Instant)>) {
    let m = &ctx.metrics;
    if let Some((b, started)) = read {
        let waited: Vec<f64> = b
            .arrived
            .iter()
            .map(|t| t.elapsed().as_secs_f64())
            .collect();
        m.latency.record(&waited);
        for (t, n) in &b.by_topic {
            m.input_records.with_label_values(&[t]).inc_by(*n);
        }
        for (t, n) in &b.by_type {
            m.input_events.with_label_values(&[t]).inc_by(*n);
        }
        for (_, e) in &b.rejected {
            m.dead_letters.with_label_values(&[e.kind().as_str()]).inc();
            if e.kind() == pulse_events::ErrorKind::Late {
                m.late_records.inc();
            }
        }
        m.skipped_records.inc_by(b.skipped);
        m.repartitioned_records.inc_by(b.forwards.len() as u64);
        m.batch_size.observe(b.applied as f64);
        m.processing_seconds
            .with_label_values(&["batch"])
            .observe(started.elapsed().as_secs_f64());
    }
    let c = &p.changes;
    // A deferred checkpoint is counted with the batch that sends it.
    let sent_now = c.checkpoint.as_ref().filter(|_| !c.defer);
    let written = || p.earlier.iter().chain(&c.profiles).chain(sent_now);
    m.changelog_records
        .inc_by((written().count() + c.evicted.len() + c.obsolete.len()) as u64);
    m.evicted.inc_by(c.evicted.len() as u64);
    m.changelog_bytes
        .inc_by(written().map(|(_, v)| v.len() as u64).sum());
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    for o in p.outputs {
        *by_kind.entry(o.kind.as_str()).or_default() += 1;
        count_insight(m, o);
    }
    for (k, n) in by_kind {
        m.output_events.with_label_values(&[k]).inc_by(n);
    }
}

/// Segment transitions and funnel progress, labelled by configured names (bounded).
fn count_insight(m: &pulse_telemetry::Metrics, o: &OutputEvent) {
    match &o.data {
        OutputData::Segment { segment } => {
            let direction = if o.kind == OutputKind::SegmentEntered {
                "entered"
            } else {
                "exited"
            };
            m.segment_transitions
                .with_label_values(&[&**segment, direction])
                .inc();
        }
        OutputData::Milestone { funnel, step, .. } => {
            m.funnel_steps.with_label_values(&[funnel, step]).inc();
        }
        OutputData::Converted { funnel, .. } => {
            m.funnel_conversions.with_label_values(&[funnel]).inc();
        }
        OutputData::Abandoned { funnel, reason, .. } => {
            m.funnel_abandonments
                .with_label_values(&[&**funnel, reason.as_str()])
                .inc();
        }
        OutputData::ChurnRisk { .. } => {}
    }
}
