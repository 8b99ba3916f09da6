//! Restore without I/O: a changelog partition's records, fed in log order, become the
//! partition's state. Correct on any log the cleaner may have compacted, after a crash at any
//! point, because no record depends on another surviving:
//!
//! - Each customer's newest profile record is a valid state of that customer: it is written
//!   only after every output it reflects is acknowledged, and it names the input offsets it
//!   reflects. So it is kept whether or not its batch's checkpoint was ever written.
//! - The newest checkpoint of the newest writer generation says where the partition-wide state
//!   (frontiers, RFM cut-points) stands. Input from there on is replayed; a customer whose
//!   record reflects more of it than the checkpoint (its batch's checkpoint was lost) has those
//!   records passed by, not applied twice ([`Contents::ahead`]).
//! - A record written by an older generation after a newer one claimed the partition comes
//!   from a zombie that had not noticed it lost the partition: the newer writer's record of
//!   the same customer is preferred, so the zombie cannot undo it while both survive.
//!
//! - A profile written under another configuration's layout (its batch tag names the layout,
//!   whose record the writer put beside it) is carried over by name to the current one
//!   ([`pulse_engine::Migration`]); the new writer then rewrites every profile in its own.
//!
//! Format 1 records (one checkpoint key, batches valid only once their checkpoint followed) are
//! read by format 1's rule, so a changelog written before this format restores as it did.

use super::format::{checkpoint_key, decode, Applied, BatchTag, Checkpoint, Entry, Offsets};
use super::format::{V1_CHECKPOINT_KEY, V1_POPULATION_KEY};
use crate::KafkaError;
use pulse_engine::{CutPoints, EngineSpec, Layout, Migration, Millis, Profile};
use std::collections::{BTreeMap, HashMap};

/// Restored profiles by customer id. Keys come from our own changelog, so a fast hasher is safe.
pub type ProfileMap = HashMap<String, Profile, foldhash::fast::RandomState>;

/// What one changelog partition holds.
#[derive(Debug, Default)]
pub struct Contents {
    /// Every customer's newest valid state.
    pub profiles: ProfileMap,
    /// Customers whose state reflects input past the checkpoint, with the offsets it reflects:
    /// their records below those offsets are already applied.
    pub ahead: HashMap<String, Offsets>,
    /// Customers whose state reflects records forwarded from other partitions past the
    /// checkpoint: per source, the next original offset their state expects.
    pub ahead_forwarded: HashMap<String, Vec<Applied>>,
    /// The checkpoint to resume from (offsets -1 where none).
    pub checkpoint: Checkpoint,
    /// The generation a new writer of this partition takes: past every generation in the log.
    pub next_generation: u64,
    /// Keys the new writer deletes once its own checkpoint is durable: older generations'
    /// checkpoints and format 1's records that are not customers'.
    pub obsolete: Vec<Vec<u8>>,
    /// Format 1 records were read with no newer checkpoint, or profiles were carried over from
    /// another layout: the new writer rewrites every profile in the current format and layout
    /// before its first checkpoint.
    pub migrate: bool,
    /// Profiles carried over from another configuration's layout.
    pub migrated: u64,
    /// Records that could not be read and were passed by, by offset, with the reason (only
    /// when told to drop them): their customers start over.
    pub dropped: Vec<(i64, String)>,
    pub records: u64,
    pub bytes: u64,
}

#[derive(Debug)]
struct Candidate {
    profile: Stored,
    /// The layout it was written in; 0: the current one (format 1 and 2 records).
    layout: u64,
    offsets: Offsets,
    forwarded: Vec<Applied>,
    /// Written by an older generation after a newer one had claimed the partition.
    zombie: bool,
}

/// A candidate's profile: as encoded (format 2, decoded only if it survives) or decoded.
#[derive(Debug)]
enum Stored {
    Encoded { offset: i64, bytes: Vec<u8> },
    Decoded(Box<Profile>),
}

impl Stored {
    fn decode(self) -> Result<Profile, KafkaError> {
        match self {
            Self::Encoded { offset, bytes } => super::format::Encoded {
                offset,
                bytes: &bytes,
            }
            .decode(),
            Self::Decoded(p) => Ok(*p),
        }
    }
}

/// Reads one partition's records in log order.
#[derive(Debug)]
pub struct Restorer {
    partition: i32,
    profiles: HashMap<String, Candidate, foldhash::fast::RandomState>,
    checkpoints: BTreeMap<u64, Checkpoint>,
    /// The highest generation that has written a checkpoint so far in the log.
    claimed: u64,
    /// The highest generation of any record.
    newest: u64,
    /// The layouts named in the log, by id.
    layouts: HashMap<u64, Layout>,
    /// Pass records that cannot be read by, dropping the customer they hold, rather than stop.
    drop_undecodable: bool,
    v1: V1,
    contents: Contents,
}

/// Format 1's reading state: a batch's records wait for its checkpoint.
#[derive(Debug, Default)]
struct V1 {
    seen: bool,
    pending: Vec<(String, BatchTag, Profile)>,
    pending_population: Option<(BatchTag, CutPoints, Millis)>,
    population: (CutPoints, Millis),
    checkpoint: Option<Checkpoint>,
}

impl Restorer {
    pub fn new(partition: i32) -> Self {
        Self {
            partition,
            profiles: HashMap::default(),
            checkpoints: BTreeMap::new(),
            claimed: 0,
            newest: 0,
            layouts: HashMap::new(),
            drop_undecodable: false,
            v1: V1::default(),
            contents: Contents::default(),
        }
    }

    /// Records that cannot be read are passed by, and the customer each held starts over,
    /// instead of failing the restore (`worker.on_undecodable_changelog = "drop"`).
    pub fn dropping_undecodable(mut self) -> Self {
        self.drop_undecodable = true;
        self
    }

    /// The changelog partition read.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Feeds the record at `offset`. A record this worker cannot read is an error, unless told
    /// to drop it: skipping it silently would restore a state that lacks it.
    pub fn push(
        &mut self,
        offset: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), KafkaError> {
        self.contents.records += 1;
        self.contents.bytes += value.map_or(0, |v| v.len() as u64);
        let entry = match decode(offset, key, value) {
            Ok(e) => e,
            Err(KafkaError::Changelog { offset, reason }) if self.drop_undecodable => {
                // Whatever the customer's older records said, this one replaced them.
                if let Ok(customer) = std::str::from_utf8(key) {
                    self.profiles.remove(customer);
                }
                self.contents.dropped.push((offset, reason));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        // A record of another partition means the input partitioning changed under the
        // changelog; it does not belong to this state.
        if entry.partition().is_some_and(|p| p != self.partition) {
            return Ok(());
        }
        match entry {
            Entry::Profile {
                customer,
                tag,
                forwarded,
                profile,
            } => {
                self.newest = self.newest.max(tag.generation);
                let zombie = tag.generation < self.claimed;
                let stored = Stored::Encoded {
                    offset: profile.offset,
                    bytes: profile.bytes.to_vec(),
                };
                let candidate = Candidate {
                    profile: stored,
                    layout: tag.layout,
                    offsets: tag.offsets,
                    forwarded,
                    zombie,
                };
                self.offer(customer, Some(candidate));
            }
            Entry::Tombstone { customer } => self.offer(customer, None),
            Entry::Layout(id, layout) => {
                self.layouts.insert(id, layout);
            }
            Entry::Checkpoint(c) => {
                let g = c.tag.generation;
                self.newest = self.newest.max(g);
                self.claimed = self.claimed.max(g);
                self.checkpoints.insert(g, *c);
            }
            Entry::Cleared => {}
            // Format 1, until a format 2 writer has claimed the partition: after that, a
            // format 1 record can only come from an old worker still running.
            _ if self.claimed > 0 => {}
            Entry::V1Profile {
                customer,
                tag,
                profile,
            } => {
                self.v1.seen = true;
                self.newest = self.newest.max(tag.generation);
                self.v1.pending.push((customer, tag, *profile));
            }
            Entry::V1Population {
                tag,
                rfm,
                next_refresh,
            } => {
                self.v1.seen = true;
                self.v1.pending_population = Some((tag, rfm, next_refresh));
            }
            Entry::V1Checkpoint(mut c) => {
                self.v1.seen = true;
                self.newest = self.newest.max(c.tag.generation);
                let same =
                    |t: &BatchTag| (t.generation, t.batch) == (c.tag.generation, c.tag.batch);
                for (customer, tag, profile) in std::mem::take(&mut self.v1.pending) {
                    if same(&tag) {
                        let candidate = Candidate {
                            profile: Stored::Decoded(Box::new(profile)),
                            layout: 0,
                            offsets: tag.offsets,
                            forwarded: Vec::new(),
                            zombie: false,
                        };
                        self.offer(customer, Some(candidate));
                    }
                }
                if let Some((tag, rfm, next_refresh)) = self.v1.pending_population.take() {
                    if same(&tag) {
                        self.v1.population = (rfm, next_refresh);
                    }
                }
                (c.rfm, c.next_refresh) = self.v1.population.clone();
                self.v1.checkpoint = Some(*c);
            }
        }
        Ok(())
    }

    /// A customer's newer record (`None`: deleted). A zombie's record never replaces a
    /// non-zombie's; otherwise the newer wins.
    fn offer(&mut self, customer: String, state: Option<Candidate>) {
        let zombie = state.as_ref().is_some_and(|c| c.zombie);
        if zombie && self.profiles.get(&customer).is_some_and(|c| !c.zombie) {
            return;
        }
        match state {
            Some(candidate) => {
                self.profiles.insert(customer, candidate);
            }
            None => {
                self.profiles.remove(&customer);
            }
        }
    }

    /// The partition's state once every record is fed. The surviving profiles are decoded
    /// here, on as many threads as the machine has cores, and those written under another
    /// layout than `target`'s are carried over to it (`None`: every profile as stored).
    pub fn finish(mut self, target: Option<&EngineSpec>) -> Result<Contents, KafkaError> {
        let mut c = std::mem::take(&mut self.contents);
        let newest_v2 = self.checkpoints.keys().next_back().copied();
        c.checkpoint = match newest_v2 {
            Some(g) => self.checkpoints.remove(&g).unwrap_or_default(),
            None => self.v1.checkpoint.take().unwrap_or_default(),
        };
        c.checkpoint.tag.partition = self.partition;
        for g in self.checkpoints.keys() {
            c.obsolete.push(checkpoint_key(*g));
        }
        if self.v1.seen {
            c.obsolete.push(V1_CHECKPOINT_KEY.to_vec());
            c.obsolete.push(V1_POPULATION_KEY.to_vec());
            c.migrate = newest_v2.is_none();
        }
        c.next_generation = self.newest + 1;
        let resume = c.checkpoint.tag.offsets;
        let expected: HashMap<(u8, i32), i64> = c
            .checkpoint
            .forwarded
            .iter()
            .map(|f| (f.source, f.next))
            .collect();
        let migrations = self.migrations(target)?;
        let unnamed = self.profiles.values().any(|c| c.layout == 0);
        let mut survivors = Vec::with_capacity(self.profiles.len());
        for (customer, candidate) in self.profiles {
            // The repartition topic's offset says nothing of what was applied: its records
            // are applied in their sources' order, and by their sources' offsets.
            let own = &candidate.offsets[..super::REPARTITION];
            if own.iter().zip(resume).any(|(o, r)| *o > r) {
                c.ahead.insert(customer.clone(), candidate.offsets);
            }
            let forwarded: Vec<Applied> = candidate
                .forwarded
                .into_iter()
                .filter(|(s, n)| expected.get(s).is_none_or(|e| n > e))
                .collect();
            if !forwarded.is_empty() {
                c.ahead_forwarded.insert(customer.clone(), forwarded);
            }
            let migration = migrations.get(&candidate.layout);
            c.migrated += u64::from(migration.is_some());
            survivors.push((customer, candidate.profile, migration));
        }
        // Profiles carried over, or written before layouts were named: the claim rewrites
        // them all under this configuration's layout.
        c.migrate |= c.migrated > 0 || unnamed;
        let (profiles, failed) = decode_all(survivors);
        if let Some((offset, reason)) = failed.first().filter(|_| !self.drop_undecodable) {
            return Err(KafkaError::Changelog {
                offset: *offset,
                reason: reason.clone(),
            });
        }
        c.dropped.extend(failed);
        c.profiles = profiles;
        Ok(c)
    }

    /// How to carry each other layout the surviving profiles were written in to `target`'s.
    /// A layout that is not in the log cannot be read: its profiles' positions mean nothing.
    fn migrations(
        &self,
        target: Option<&EngineSpec>,
    ) -> Result<HashMap<u64, Migration>, KafkaError> {
        let mut out = HashMap::new();
        let Some(spec) = target else {
            return Ok(out);
        };
        let current = spec.layout.id();
        for candidate in self.profiles.values() {
            let id = candidate.layout;
            if id == 0 || id == current || out.contains_key(&id) {
                continue;
            }
            let Some(from) = self.layouts.get(&id) else {
                let offset = match &candidate.profile {
                    Stored::Encoded { offset, .. } => *offset,
                    Stored::Decoded(_) => -1,
                };
                return Err(KafkaError::Changelog {
                    offset,
                    reason: format!("a profile written under layout {id:#x}, whose layout record is not in the changelog"),
                });
            };
            let m = Migration::between(from, spec);
            if !m.is_identity() {
                out.insert(id, m);
            }
        }
        Ok(out)
    }
}

/// A surviving profile: its customer, its record, and how to carry it to the current layout.
type Survivor<'a> = (String, Stored, Option<&'a Migration>);

/// Decodes profiles in parallel chunks: restoring is bound by decoding once the broker's fetch
/// keeps up. Returns those decoded, and the offset of each record that could not be, with the
/// reason.
fn decode_all(survivors: Vec<Survivor<'_>>) -> (ProfileMap, Vec<(i64, String)>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = survivors.len().div_ceil(threads).max(1024);
    let mut chunks: Vec<Vec<Survivor<'_>>> = Vec::new();
    let mut rest = survivors;
    while rest.len() > chunk {
        let tail = rest.split_off(rest.len() - chunk);
        chunks.push(tail);
    }
    chunks.push(rest);
    type Decoded = Vec<Result<(String, Profile), (i64, String)>>;
    let decoded: Vec<Decoded> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|part| {
                s.spawn(move || {
                    part.into_iter()
                        .map(|(k, p, migration)| match p.decode() {
                            Ok(mut p) => {
                                if let Some(m) = migration {
                                    m.apply(&mut p);
                                }
                                Ok((k, p))
                            }
                            Err(KafkaError::Changelog { offset, reason }) => Err((offset, reason)),
                            Err(e) => Err((-1, e.to_string())),
                        })
                        .collect::<Decoded>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut profiles = ProfileMap::default();
    profiles.reserve(decoded.iter().map(Vec::len).sum());
    let mut failed = Vec::new();
    for r in decoded.into_iter().flatten() {
        match r {
            Ok((k, p)) => {
                profiles.insert(k, p);
            }
            Err(e) => failed.push(e),
        }
    }
    failed.sort_unstable();
    (profiles, failed)
}

#[cfg(test)]
#[path = "restorer_tests.rs"]
mod tests;
