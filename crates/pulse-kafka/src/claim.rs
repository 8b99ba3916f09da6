//! Taking a partition over: restoring its state from the changelog, claiming it there with a
//! checkpoint of a new generation, and resuming its inputs where the restored state ends.

use crate::batch::count;
use crate::changelog;
use crate::config::{Delivery, OnUndecodable};
use crate::ctx::{inputs, TaskCtx};
use crate::deliver::{deliver, Products};
use crate::position::{changelog_records, tag_of, Position};
use crate::state::lock;
use crate::txn::Txn;
use crate::KafkaError;
use pulse_engine::{Millis, Partition};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Restores the partition from the changelog, retrying while the broker is unreachable.
/// `None` if the worker stopped first; otherwise the position and whether the changelog must be
/// rewritten in the current format.
pub(crate) async fn restore(partition: i32, ctx: &Arc<TaskCtx>) -> Option<(Position, bool)> {
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
pub(crate) async fn claim(
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
    let delivered = deliver(ctx, txn, &products).await;
    if delivered {
        count(ctx, &products, None);
    }
    delivered
}

/// Starts fetching the partition's inputs (paused since assignment) where the restored state
/// ends; an input the state has never seen starts at its committed offset.
pub(crate) async fn resume_at(pos: &Position, ctx: &Arc<TaskCtx>) {
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
