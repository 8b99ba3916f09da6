//! One partition task: it owns the processing of one partition number across the input
//! topics. Per batch: decode and apply under the partition lock (no `.await` inside), produce
//! outputs and dead letters, wait for every acknowledgement, then store the input offsets.

use crate::config::{TopicNames, WorkerConfig};
use crate::context::PulseContext;
use crate::outbox::{InFlight, Outbox};
use crate::state::{lock, StateRegistry};
use crate::wall_clock_ms;
use pulse_engine::{EngineSpec, Partition, Source};
use pulse_events::{decode, Encoding, EventError, Limits, OutputEvent, TopicRole};
use pulse_telemetry::Metrics;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// What every partition task shares.
pub(crate) struct TaskCtx {
    pub consumer: Arc<StreamConsumer<PulseContext>>,
    pub outbox: Outbox,
    pub topics: TopicNames,
    pub spec: Arc<EngineSpec>,
    pub limits: Limits,
    pub input_encoding: Encoding,
    pub worker: WorkerConfig,
    pub metrics: Metrics,
    pub state: StateRegistry,
    pub stop: watch::Receiver<bool>,
}

/// Runs until the sender side closes (shutdown or the worker stopping) and the queue is drained.
pub(crate) async fn run(partition: i32, mut rx: mpsc::Receiver<OwnedMessage>, ctx: Arc<TaskCtx>) {
    let state = ctx
        .state
        .get_or_insert(partition, || Partition::new(ctx.spec.clone()));
    // Per input role: when its last record arrived (wall clock).
    let mut last_input = [Instant::now(); 3];
    let mut last_any = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(ctx.worker.max_batch);
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break };
                batch.push(m);
                while batch.len() < ctx.worker.max_batch {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                let now = Instant::now();
                last_any = now;
                for m in &batch {
                    if let Some(role) = ctx.topics.role_of(m.topic()) {
                        last_input[role_index(role)] = now;
                    }
                }
                if !process(partition, &batch, &state, &ctx).await {
                    tracing::warn!(partition, "Stopping with outputs unacknowledged; their inputs will be processed again.");
                    return;
                }
                batch.clear();
            }
            _ = tick.tick() => {
                let idle_roles: Vec<TopicRole> = TopicRole::ALL
                    .into_iter()
                    .filter(|r| last_input[role_index(*r)].elapsed() >= ctx.worker.idle_timeout)
                    .collect();
                let all_idle = last_any.elapsed() >= ctx.worker.idle_timeout;
                if !idle_roles.is_empty() && !idle(partition, &state, &ctx, &idle_roles, all_idle).await {
                    return;
                }
            }
        }
    }
}

fn role_index(role: TopicRole) -> usize {
    TopicRole::ALL.iter().position(|r| *r == role).unwrap_or(0)
}

/// Idle inputs stop holding back the watermark; when the whole partition is idle its event
/// time follows the wall clock, so timers still fire in live use.
async fn idle(
    partition: i32,
    state: &std::sync::Mutex<Partition>,
    ctx: &TaskCtx,
    roles: &[TopicRole],
    all: bool,
) -> bool {
    let mut outputs = Vec::new();
    {
        let mut p = lock(state);
        for r in roles {
            p.set_idle(*r, &mut outputs);
        }
        if all {
            p.advance_to(wall_clock_ms(), &mut outputs);
        }
    }
    report_watermark(partition, state, ctx);
    produce(ctx, &outputs, Vec::new()).await
}

fn report_watermark(partition: i32, state: &std::sync::Mutex<Partition>, ctx: &TaskCtx) {
    let wm = lock(state).watermark();
    if let Some(wm) = wm {
        let lag = (wall_clock_ms() - wm).max(0) / 1000;
        ctx.metrics
            .watermark_lag
            .with_label_values(&[&partition.to_string()])
            .set(lag);
    }
}

async fn produce(ctx: &TaskCtx, outputs: &[OutputEvent], dead: Vec<InFlight>) -> bool {
    let mut in_flight = dead;
    in_flight.reserve(outputs.len());
    for o in outputs {
        in_flight.push(ctx.outbox.send_output(o).await);
    }
    if !ctx.outbox.settle(in_flight, &ctx.stop).await {
        return false;
    }
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    for o in outputs {
        *by_kind.entry(o.kind.as_str()).or_default() += 1;
    }
    for (k, n) in by_kind {
        ctx.metrics.output_events.with_label_values(&[k]).inc_by(n);
    }
    true
}

/// Processes one batch. Returns false if the worker must stop without storing its offsets.
async fn process(
    partition: i32,
    batch: &[OwnedMessage],
    state: &std::sync::Mutex<Partition>,
    ctx: &TaskCtx,
) -> bool {
    let started = Instant::now();
    let now = wall_clock_ms();
    let mut outputs = Vec::new();
    let mut rejected: Vec<(usize, EventError)> = Vec::new();
    let mut by_type: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_topic: BTreeMap<&'static str, u64> = BTreeMap::new();
    {
        let mut p = lock(state);
        for (i, m) in batch.iter().enumerate() {
            let Some(role) = ctx.topics.role_of(m.topic()) else {
                continue;
            };
            *by_topic.entry(role.as_str()).or_default() += 1;
            let encoding = crate::dead_letter::content_type(m).unwrap_or(ctx.input_encoding);
            let payload = m.payload().unwrap_or_default();
            let src = Source {
                role,
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
            };
            let applied = decode(payload, encoding, role, &ctx.limits).and_then(|ev| {
                p.apply(&ev, &src, now, &mut outputs)
                    .map(|()| ev.body.type_label())
            });
            match applied {
                Ok(label) => *by_type.entry(label).or_default() += 1,
                Err(e) => rejected.push((i, e)),
            }
        }
    }
    let mut dead = Vec::with_capacity(rejected.len());
    for (i, e) in &rejected {
        dead.push(ctx.outbox.send_dead_letter(&batch[*i], e).await);
    }
    if !produce(ctx, &outputs, dead).await {
        return false;
    }
    // Everything this batch caused is acknowledged: now, and only now, its offsets may be
    // committed. Offsets are stored per input topic at the batch's highest offset.
    let mut highest: BTreeMap<&str, i64> = BTreeMap::new();
    for m in batch {
        let e = highest.entry(m.topic()).or_insert(m.offset());
        *e = (*e).max(m.offset());
    }
    for (topic, offset) in highest {
        if let Err(e) = ctx.consumer.store_offset(topic, partition, offset) {
            // The partition was revoked meanwhile: its new owner re-reads from the last commit.
            tracing::debug!(error = %e, topic, partition, "Offset not stored.");
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
    m.batch_size.observe(batch.len() as f64);
    m.processing_seconds
        .with_label_values(&["batch"])
        .observe(started.elapsed().as_secs_f64());
    report_watermark(partition, state, ctx);
    true
}
