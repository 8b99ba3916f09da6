//! How one batch's products reach Kafka. At-least-once: in steps, each waiting for every
//! acknowledgement and re-sending refusals (outputs, then profiles, then the checkpoint); the
//! caller then stores the input offsets. Exactly-once: everything and the input offsets in one
//! transaction, sent again whole after an abort.

use crate::changelog::Offsets;
use crate::outbox::{InFlight, Outbox};
use crate::task::TaskCtx;
use crate::txn::{Failure, Txn};
use crate::KafkaError;
use pulse_engine::Millis;
use pulse_events::{EventError, OutputData, OutputEvent, OutputKind, TopicRole};
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::Producer;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a failpoint waits for a transaction's records to reach the log.
const TIMEOUT: Duration = Duration::from_secs(10);

/// An input record to forward through the repartition topic.
pub(crate) struct Forward {
    /// Index into the batch's inputs.
    pub input: usize,
    pub role: TopicRole,
    pub customer: String,
    /// Its key in the order its owner applies records in (`crate::align`).
    pub order: Millis,
}

/// Markers telling every other partition how far this one has sequenced.
pub(crate) struct Markers {
    pub from: i32,
    /// The partition count: markers go to every partition but `from`.
    pub partitions: i32,
    /// The least key of what this partition forwards from now on; `None`: caught up.
    pub bound: Option<Millis>,
}

/// What one batch produces.
pub(crate) struct Products<'a> {
    pub partition: i32,
    /// The input records; `rejected` indexes into them.
    pub inputs: &'a [OwnedMessage],
    pub rejected: &'a [(usize, EventError)],
    pub forwards: &'a [Forward],
    /// Sent after the forwarded records, so a partition reads them after those.
    pub markers: Option<Markers>,
    pub outputs: &'a [OutputEvent],
    pub changes: ChangelogBatch,
    /// The previous batch's checkpoint, deferred to travel with this batch's outputs.
    pub earlier: Option<Record>,
    /// Exactly-once: the input offsets the transaction commits (the checkpoint's).
    pub commit: Option<Offsets>,
}

/// A changelog record: key and value.
pub(crate) type Record = (Vec<u8>, Vec<u8>);

/// What a batch writes to the changelog.
pub(crate) struct ChangelogBatch {
    /// Customers evicted (`engine.evict_after`), tombstoned before the batch's profiles so a
    /// customer evicted and back within the batch ends with their new profile.
    pub evicted: Vec<Vec<u8>>,
    /// Changed profiles as `(key, value)`s.
    pub profiles: Vec<Record>,
    /// The checkpoint closing the batch; none for markers sent on their own.
    pub checkpoint: Option<Record>,
    /// At-least-once: the checkpoint may wait to travel with the next batch's outputs (it
    /// needs only this batch's profiles acknowledged), saving a round trip per batch.
    pub defer: bool,
    /// Keys deleted once the checkpoint is durable (older generations' checkpoints).
    pub obsolete: Vec<Vec<u8>>,
}

/// Delivers a batch. False if the worker is stopping (or, in a transaction, the partition was
/// taken over) before everything was acknowledged.
pub(crate) async fn deliver(ctx: &TaskCtx, txn: Option<&Txn>, p: &Products<'_>) -> bool {
    let delivered = match txn {
        None => acknowledged(ctx, &ctx.outbox, p).await,
        Some(t) => transact(ctx, t, p).await,
    };
    if delivered {
        count(ctx, p);
    }
    delivered
}

/// In steps, each waiting for the one before to be acknowledged:
/// 1. outputs, dead letters and forwarded records, and the previous batch's deferred
///    checkpoint;
/// 2. the markers, which must follow the forwarded records they cover, and the changed
///    profiles, each of which tells restore that its customer's inputs up to the batch's end
///    are applied: written before an output of theirs was acknowledged, a crash at that moment
///    would restore past an output never produced;
/// 3. unless deferred to the next batch's first step, the checkpoint, which tells restore
///    where every other customer stands: written before a profile was acknowledged, it would
///    restore that customer without the batch;
/// 4. deleting what the checkpoint made obsolete.
async fn acknowledged(ctx: &TaskCtx, outbox: &Outbox, p: &Products<'_>) -> bool {
    let mut first: Vec<InFlight> =
        Vec::with_capacity(p.rejected.len() + p.forwards.len() + p.outputs.len() + 1);
    if let Some((key, value)) = &p.earlier {
        first.push(outbox.send_changelog(p.partition, key, Some(value)).await);
    }
    for (i, e) in p.rejected {
        first.push(outbox.send_dead_letter(&p.inputs[*i], e).await);
    }
    for f in p.forwards {
        first.push(
            outbox
                .send_forward(&p.inputs[f.input], f.role, &f.customer, f.order)
                .await,
        );
    }
    for o in p.outputs {
        first.push(outbox.send_output(o).await);
    }
    if !outbox.settle(first, &ctx.stop).await {
        return false;
    }
    // The markers only once the forwarded records they cover are acknowledged: a forwarded
    // record re-sent after a refusal would land after a marker sent with it.
    let mut profiles = send_markers(outbox, p.markers.as_ref()).await;
    let c = &p.changes;
    for key in &c.evicted {
        profiles.push(outbox.send_changelog(p.partition, key, None).await);
    }
    for (key, value) in &c.profiles {
        profiles.push(outbox.send_changelog(p.partition, key, Some(value)).await);
    }
    if !outbox.settle(profiles, &ctx.stop).await {
        return false;
    }
    if !c.profiles.is_empty() {
        crate::failpoint::reached(crate::failpoint::BEFORE_CHECKPOINT);
    }
    if c.defer {
        return true;
    }
    let Some((key, value)) = &c.checkpoint else {
        return true;
    };
    let checkpoint = vec![outbox.send_changelog(p.partition, key, Some(value)).await];
    if !outbox.settle(checkpoint, &ctx.stop).await {
        return false;
    }
    let mut deletions = Vec::with_capacity(c.obsolete.len());
    for key in &c.obsolete {
        deletions.push(outbox.send_changelog(p.partition, key, None).await);
    }
    outbox.settle(deletions, &ctx.stop).await
}

async fn send_markers(outbox: &Outbox, markers: Option<&Markers>) -> Vec<InFlight> {
    let mut sent = Vec::new();
    if let Some(m) = markers {
        for to in (0..m.partitions).filter(|to| *to != m.from) {
            sent.push(outbox.send_marker(to, m.from, m.bound).await);
        }
    }
    sent
}

async fn transact(ctx: &TaskCtx, txn: &Txn, p: &Products<'_>) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *ctx.stop.borrow() {
            return false;
        }
        let attempt = async {
            txn.begin()?;
            // Delivery is awaited by the commit, which fails if any record failed.
            for (i, e) in p.rejected {
                drop(txn.outbox.send_dead_letter(&p.inputs[*i], e).await);
            }
            for f in p.forwards {
                drop(
                    txn.outbox
                        .send_forward(&p.inputs[f.input], f.role, &f.customer, f.order)
                        .await,
                );
            }
            drop(send_markers(&txn.outbox, p.markers.as_ref()).await);
            for o in p.outputs {
                drop(txn.outbox.send_output(o).await);
            }
            let c = &p.changes;
            if let Some((key, value)) = &p.earlier {
                drop(
                    txn.outbox
                        .send_changelog(p.partition, key, Some(value))
                        .await,
                );
            }
            for key in &c.evicted {
                drop(txn.outbox.send_changelog(p.partition, key, None).await);
            }
            for (key, value) in c.profiles.iter().chain(&c.checkpoint) {
                drop(
                    txn.outbox
                        .send_changelog(p.partition, key, Some(value))
                        .await,
                );
            }
            for key in &c.obsolete {
                drop(txn.outbox.send_changelog(p.partition, key, None).await);
            }
            if !p.inputs.is_empty() && crate::failpoint::armed_at(crate::failpoint::BEFORE_COMMIT) {
                // The crash must leave the transaction's records in the log, uncommitted.
                let producer = txn.outbox.producer.clone();
                let _ = tokio::task::spawn_blocking(move || producer.flush(TIMEOUT)).await;
                crate::failpoint::reached(crate::failpoint::BEFORE_COMMIT);
            }
            let offsets = p
                .commit
                .map(|o| crate::task::offset_list(ctx, p.partition, o))
                .unwrap_or_default();
            txn.commit(offsets, ctx.consumer.group_metadata()).await
        }
        .await;
        let failure = match attempt {
            Ok(()) => {
                ctx.metrics
                    .transactions
                    .with_label_values(&["committed"])
                    .inc();
                return true;
            }
            Err(Failure::Abort) => txn.abort().await.err(),
            Err(Failure::Fatal) => Some(Failure::Fatal),
        };
        if failure == Some(Failure::Fatal) {
            tracing::error!(
                partition = p.partition,
                "This worker's producer for the partition was fenced or failed: another worker owns it now. Stopping; its uncommitted batch is discarded."
            );
            ctx.fail(KafkaError::Fenced {
                partition: p.partition,
            });
            return false;
        }
        ctx.metrics
            .transactions
            .with_label_values(&["aborted"])
            .inc();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn count(ctx: &TaskCtx, p: &Products<'_>) {
    let m = &ctx.metrics;
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
                .with_label_values(&[segment.as_str(), direction])
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
                .with_label_values(&[funnel.as_str(), reason.as_str()])
                .inc();
        }
        OutputData::ChurnRisk { .. } => {}
    }
}
