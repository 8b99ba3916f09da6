//! How one batch's products reach Kafka. At-least-once: in steps, each waiting for every
//! acknowledgement and re-sending refusals (outputs, then profiles, then the checkpoint); the
//! caller then stores the input offsets. Exactly-once: everything and the input offsets in one
//! transaction, sent again whole after an abort.

use crate::changelog::Offsets;
use crate::ctx::TaskCtx;
use crate::outbox::{InFlight, Outbox};
use crate::txn::{Failure, Txn};
use crate::KafkaError;
use pulse_engine::Millis;
use pulse_events::{EventError, OutputEvent, TopicRole};
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::Producer;
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
    match txn {
        None => acknowledged(ctx, &ctx.outbox, p).await,
        Some(t) => transact(ctx, t, p).await,
    }
}

/// One record a batch sends.
enum Send<'a> {
    /// A changelog record; `None` deletes the key.
    Changelog(&'a [u8], Option<&'a [u8]>),
    DeadLetter(&'a OwnedMessage, &'a EventError),
    Forward(&'a OwnedMessage, &'a Forward),
    Marker {
        to: i32,
        from: i32,
        bound: Option<Millis>,
    },
    Output(&'a OutputEvent),
}

/// A batch's records in the steps at-least-once delivery waits between, each step sent only
/// once the one before is acknowledged:
/// 1. outputs, dead letters and forwarded records, and the previous batch's deferred
///    checkpoint;
/// 2. the markers, which must follow the forwarded records they cover (one re-sent after a
///    refusal would land after a marker sent with it; with none, they go in step 1), and the
///    changed profiles, each of which
///    tells restore that its customer's inputs up to the batch's end are applied: written
///    before an output of theirs was acknowledged, a crash at that moment would restore past
///    an output never produced;
/// 3. unless deferred to the next batch's first step, the checkpoint, which tells restore
///    where every other customer stands: written before a profile was acknowledged, it would
///    restore that customer without the batch;
/// 4. deleting what the checkpoint made obsolete.
///
/// Exactly-once sends them all, in this order, in one transaction.
fn steps<'a>(p: &'a Products<'a>) -> [Vec<Send<'a>>; 4] {
    let c = &p.changes;
    let changelog = |(k, v): &'a Record| Send::Changelog(k, Some(v));
    let markers = p.markers.iter().flat_map(|m| {
        (0..m.partitions)
            .filter(move |to| *to != m.from)
            .map(move |to| Send::Marker {
                to,
                from: m.from,
                bound: m.bound,
            })
    });
    // Other partitions wait for the markers to apply their records: with no forwarded record
    // of this batch to follow, they go in the first step, a round trip sooner.
    let (early, late) = if p.forwards.is_empty() {
        (Some(markers), None)
    } else {
        (None, Some(markers))
    };
    let first = p
        .earlier
        .iter()
        .map(changelog)
        .chain(
            p.rejected
                .iter()
                .map(|(i, e)| Send::DeadLetter(&p.inputs[*i], e)),
        )
        .chain(
            p.forwards
                .iter()
                .map(|f| Send::Forward(&p.inputs[f.input], f)),
        )
        .chain(p.outputs.iter().map(Send::Output))
        .chain(early.into_iter().flatten())
        .collect();
    let profiles = late
        .into_iter()
        .flatten()
        .chain(c.evicted.iter().map(|k| Send::Changelog(k, None)))
        .chain(c.profiles.iter().map(changelog))
        .collect();
    let (checkpoint, deletions) = match &c.checkpoint {
        Some(r) if !c.defer => (
            vec![changelog(r)],
            c.obsolete
                .iter()
                .map(|k| Send::Changelog(k, None))
                .collect(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    [first, profiles, checkpoint, deletions]
}

async fn send(outbox: &Outbox, partition: i32, s: &Send<'_>) -> InFlight {
    match s {
        Send::Changelog(key, value) => outbox.send_changelog(partition, key, *value).await,
        Send::DeadLetter(m, e) => outbox.send_dead_letter(m, e).await,
        Send::Forward(m, f) => outbox.send_forward(m, f.role, &f.customer, f.order).await,
        Send::Marker { to, from, bound } => outbox.send_marker(*to, *from, *bound).await,
        Send::Output(o) => outbox.send_output(o).await,
    }
}

/// At-least-once: each step of [`steps`] waits for the acknowledgement of the one before.
async fn acknowledged(ctx: &TaskCtx, outbox: &Outbox, p: &Products<'_>) -> bool {
    for (n, step) in steps(p).iter().enumerate() {
        let mut sent = Vec::with_capacity(step.len());
        for s in step {
            sent.push(send(outbox, p.partition, s).await);
        }
        if !outbox.settle(sent, &ctx.stop).await {
            return false;
        }
        if n == 1 && !p.changes.profiles.is_empty() {
            crate::failpoint::reached(crate::failpoint::BEFORE_CHECKPOINT);
        }
    }
    true
}

/// Exactly-once: every step of [`steps`] and the input offsets in one transaction, sent again
/// whole after an abort.
async fn transact(ctx: &TaskCtx, txn: &Txn, p: &Products<'_>) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *ctx.stop.borrow() {
            return false;
        }
        let attempt = async {
            txn.begin()?;
            // Delivery is awaited by the commit, which fails if any record failed.
            for s in steps(p).iter().flatten() {
                drop(send(&txn.outbox, p.partition, s).await);
            }
            if !p.inputs.is_empty() && crate::failpoint::armed_at(crate::failpoint::BEFORE_COMMIT) {
                // The crash must leave the transaction's records in the log, uncommitted.
                let producer = txn.outbox.producer.clone();
                let _ = tokio::task::spawn_blocking(move || producer.flush(TIMEOUT)).await;
                crate::failpoint::reached(crate::failpoint::BEFORE_COMMIT);
            }
            let offsets = p
                .commit
                .map(|o| crate::ctx::offset_list(ctx, p.partition, o))
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
