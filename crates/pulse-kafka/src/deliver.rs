//! How one batch's products reach Kafka. At-least-once: send everything, wait for every
//! acknowledgement, re-send refusals; the caller then stores the input offsets. Exactly-once:
//! everything and the input offsets in one transaction, sent again whole after an abort.

use crate::outbox::{InFlight, Outbox};
use crate::task::TaskCtx;
use crate::txn::{Failure, Txn};
use crate::KafkaError;
use pulse_events::{EventError, OutputData, OutputEvent, OutputKind, TopicRole};
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

/// An input record to forward through the repartition topic.
pub(crate) struct Forward {
    /// Index into the batch's inputs.
    pub input: usize,
    pub role: TopicRole,
    pub customer: String,
}

/// What one batch produces.
pub(crate) struct Products<'a> {
    pub partition: i32,
    /// The input records; `rejected` indexes into them.
    pub inputs: &'a [OwnedMessage],
    pub rejected: &'a [(usize, EventError)],
    pub forwards: &'a [Forward],
    pub outputs: &'a [OutputEvent],
    /// Changelog `(key, value)`s, the batch's checkpoint last.
    pub changes: Vec<(Vec<u8>, Vec<u8>)>,
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

/// Two steps: everything but the checkpoint, then the checkpoint. The checkpoint tells restore
/// that the batch's inputs are done with; were it written while an output of the batch was
/// still unacknowledged, a crash at that moment would restore past an output never produced.
async fn acknowledged(ctx: &TaskCtx, outbox: &Outbox, p: &Products<'_>) -> bool {
    let Some(((ck_key, ck_value), profiles)) = p.changes.split_last() else {
        return true;
    };
    let mut in_flight: Vec<InFlight> =
        Vec::with_capacity(p.rejected.len() + p.forwards.len() + p.outputs.len() + profiles.len());
    for (i, e) in p.rejected {
        in_flight.push(outbox.send_dead_letter(&p.inputs[*i], e).await);
    }
    for f in p.forwards {
        in_flight.push(
            outbox
                .send_forward(&p.inputs[f.input], f.role, &f.customer)
                .await,
        );
    }
    for o in p.outputs {
        in_flight.push(outbox.send_output(o).await);
    }
    for (key, value) in profiles {
        in_flight.push(outbox.send_changelog(p.partition, key, value).await);
    }
    if !outbox.settle(in_flight, &ctx.stop).await {
        return false;
    }
    let checkpoint = vec![outbox.send_changelog(p.partition, ck_key, ck_value).await];
    outbox.settle(checkpoint, &ctx.stop).await
}

/// The next offset to read of every input topic in the batch: what its commit stores.
pub(crate) fn input_offsets(p: &Products<'_>) -> TopicPartitionList {
    let mut highest: BTreeMap<&str, i64> = BTreeMap::new();
    for m in p.inputs {
        let e = highest.entry(m.topic()).or_insert(m.offset());
        *e = (*e).max(m.offset());
    }
    let mut tpl = TopicPartitionList::new();
    for (topic, offset) in highest {
        let _ = tpl.add_partition_offset(topic, p.partition, Offset::Offset(offset + 1));
    }
    tpl
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
                        .send_forward(&p.inputs[f.input], f.role, &f.customer)
                        .await,
                );
            }
            for o in p.outputs {
                drop(txn.outbox.send_output(o).await);
            }
            for (key, value) in &p.changes {
                drop(txn.outbox.send_changelog(p.partition, key, value).await);
            }
            txn.commit(input_offsets(p), ctx.consumer.group_metadata())
                .await
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
    m.changelog_records.inc_by(p.changes.len() as u64);
    m.changelog_bytes
        .inc_by(p.changes.iter().map(|(_, v)| v.len() as u64).sum());
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
