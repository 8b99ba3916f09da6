//! A task's position in its changelog: which inputs its state reflects, the tag of the next
//! batch it writes, and the records that write a batch there (changed profiles, the checkpoint).

use crate::changelog::{self, Applied, BatchTag, Checkpoint, ForwardedFrom, Offsets};
use crate::ctx::{store, TaskCtx};
use crate::deliver::{ChangelogBatch, Record};
use pulse_engine::{ForwardSource, Millis, Partition};
use std::collections::{BTreeMap, HashMap};

/// The task's position in its changelog: which inputs are reflected in the state, and the tag
/// of the next batch it writes.
pub(crate) struct Position {
    pub(crate) partition: i32,
    /// Next offset to apply per input; records below are already in the restored state.
    pub(crate) next: Offsets,
    pub(crate) generation: u64,
    pub(crate) batch: u64,
    /// Customers restored from a batch whose checkpoint was lost, with the offsets their state
    /// reflects: their records below those are already applied. Emptied as the replay passes.
    pub(crate) ahead: HashMap<String, Offsets>,
    /// Where the changelog should be deleted once this task's claim is durable.
    pub(crate) obsolete: Vec<Vec<u8>>,
    /// At-least-once: the last batch's checkpoint, not yet written, and the input offsets it
    /// covers. It goes out with the next batch's outputs, or on the next tick when idle.
    pub(crate) deferred: Option<(Record, Offsets)>,
    /// Per source of forwarded records, the next original offset expected: one below it is a
    /// repeat.
    pub(crate) forwarded_next: HashMap<ForwardSource, i64>,
    /// Customers restored from a batch whose checkpoint was lost, with what that batch applied
    /// to them of forwarded records: per source, the next original offset their state expects.
    pub(crate) ahead_forwarded: HashMap<String, Vec<Applied>>,
    /// The stream time at `next`, where the keys of the order resume.
    pub(crate) sequenced: Millis,
    /// The id of the layout the profiles are written in: the configuration's.
    pub(crate) layout: u64,
    /// What this batch applied of forwarded records, per customer: written with its profile.
    pub(crate) applied_forwarded: HashMap<String, Vec<Applied>>,
}

pub(crate) fn tag_of(pos: &Position) -> BatchTag {
    BatchTag {
        partition: pos.partition,
        generation: pos.generation,
        batch: pos.batch,
        offsets: pos.next,
        layout: pos.layout,
    }
}

/// The changed profiles and the checkpoint closing this batch.
pub(crate) fn changelog_records(
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

/// Writes the deferred checkpoint, if any, and stores the offsets it covers. False if the
/// worker is stopping before it was acknowledged.
pub(crate) async fn write_deferred(ctx: &TaskCtx, pos: &mut Position) -> bool {
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
