//! The changelog's records, as written and as read back.
//!
//! Format 3 (written now) is format 2 with the configuration's layout named:
//! - A **layout record**, keyed `\xfflayout/` and the layout's id: what the positions of a
//!   profile stand for under one configuration ([`pulse_engine::Layout`]). A writer writes its
//!   own with its claim; the key is the layout's, so compaction keeps every one.
//! - Every batch tag names the layout of the profiles it carries, so a profile written under
//!   another configuration is carried over by name when it is restored.
//!
//! Format 2 (read, no longer written; its profiles are read under the current layout):
//! - A **profile record**, keyed by customer id: the customer's profile and the input offsets
//!   it reflects (the end of the batch that wrote it). Without a value, a tombstone: the
//!   customer is gone.
//! - A **checkpoint**, keyed per writer generation (`\xffcheckpoint/` and the generation, so
//!   compaction keeps the newest of every generation and a late one from an older writer never
//!   replaces a newer writer's): the input offsets and event-time frontiers the partition's
//!   state reflects, the RFM cut-points, and where the writer serves its query API.
//!
//! Format 1 (read, never written): profile records tagged `(generation, batch)`, a
//! population record, and one checkpoint under the empty key; a batch's profile records
//! counted only once its checkpoint followed.
//!
//! Records are MessagePack arrays whose first element is the format version. Keys that are not
//! customer ids start with `0xff`, which UTF-8 text never does.

use crate::KafkaError;
use pulse_engine::{CutPoints, Layout, Millis, Population, Profile, INPUTS};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// Next offset to read per input: clickstream, purchases, surveys (by [`TopicRole::index`]),
/// then the repartition topic at [`REPARTITION`]; -1 where nothing was read yet.
///
/// [`TopicRole::index`]: pulse_events::TopicRole::index
pub type Offsets = [i64; 4];

/// Where the repartition topic's offset sits in [`Offsets`].
pub const REPARTITION: usize = 3;

pub(crate) const FORMAT_VERSION: u8 = 3;
const CHECKPOINT_PREFIX: &[u8] = b"\xffcheckpoint/";
const LAYOUT_PREFIX: &[u8] = b"\xfflayout/";
/// Format 1's checkpoint and population keys.
pub(crate) const V1_CHECKPOINT_KEY: &[u8] = b"";
pub(crate) const V1_POPULATION_KEY: &[u8] = b"\xffpopulation";

/// The key of generation `generation`'s checkpoints.
pub(crate) fn checkpoint_key(generation: u64) -> Vec<u8> {
    let mut k = CHECKPOINT_PREFIX.to_vec();
    k.extend_from_slice(&generation.to_be_bytes());
    k
}

/// The key of layout `id`'s record.
pub(crate) fn layout_key(id: u64) -> Vec<u8> {
    let mut k = LAYOUT_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Whether `key` is a checkpoint's, of either format.
pub(crate) fn is_checkpoint_key(key: &[u8]) -> bool {
    key.starts_with(CHECKPOINT_PREFIX) || key == V1_CHECKPOINT_KEY
}

/// Identifies what a batch's records reflect: the state's partition, the writer's generation,
/// the batch number within it, and the input position the batch brings the state to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchTag {
    pub partition: i32,
    pub generation: u64,
    pub batch: u64,
    pub offsets: Offsets,
    /// The id of the layout the batch's profiles are written in; 0 in format 2's tags, whose
    /// profiles are read under the current layout.
    #[serde(default)]
    pub layout: u64,
}

/// What a checkpoint says about the partition's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub tag: BatchTag,
    pub frontiers: [Option<Millis>; INPUTS],
    /// The RFM cut-points and when they are next refreshed: the part of the population that
    /// rules read. The rest is summed from the profiles.
    pub rfm: CutPoints,
    pub next_refresh: Millis,
    /// Where the writing worker serves its query API (`http.advertise`).
    pub owner: Option<String>,
    /// Each source of forwarded records (an input topic and partition whose re-keyed records
    /// reached this partition): their frontier and the next original offset expected, below
    /// which a record forwarded again after the source's crash is a repeat. Absent in
    /// checkpoints written before it.
    #[serde(default)]
    pub forwarded: Vec<ForwardedFrom>,
    /// The partition's stream time at `tag.offsets`, where its records' keys for the order of
    /// forwarded and own records resume (`crate::sequence`). Absent in checkpoints written
    /// before it: the restored frontiers stand in.
    #[serde(default)]
    pub sequenced: Option<Millis>,
}

/// One source of forwarded records, in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedFrom {
    /// The original input's role index and partition.
    pub source: (u8, i32),
    pub frontier: Option<Millis>,
    /// The next original offset expected; -1 where none was applied yet.
    pub next: i64,
}

impl Checkpoint {
    /// The population as a restore starts it: the cut-points, sums still to be counted.
    pub fn population(&self) -> Population {
        Population {
            rfm: self.rfm.clone(),
            next_refresh: self.next_refresh,
            ..Population::default()
        }
    }
}

impl Default for BatchTag {
    fn default() -> Self {
        Self {
            partition: 0,
            generation: 0,
            batch: 0,
            offsets: [-1; 4],
            layout: 0,
        }
    }
}

#[derive(Serialize)]
struct ProfileOut<'a> {
    v: u8,
    tag: &'a BatchTag,
    profile: &'a Profile,
}

/// A profile record of a batch that applied forwarded records to the customer: between the
/// tag and the profile, per source of those records, the next original offset expected. If the
/// batch's checkpoint is lost, a restore knows which of them the profile already holds: they
/// are applied in their source's order, but not in the order of the repartition topic.
#[derive(Serialize)]
struct ForwardedProfileOut<'a> {
    v: u8,
    tag: &'a BatchTag,
    forwarded: &'a [Applied],
    profile: &'a Profile,
}

/// A source of forwarded records ([`ForwardedFrom::source`]) and the next original offset
/// expected from it.
pub type Applied = ((u8, i32), i64);

#[derive(Serialize)]
struct CheckpointOut<'a> {
    v: u8,
    checkpoint: &'a Checkpoint,
}

#[derive(Deserialize)]
struct CheckpointIn {
    _v: u8,
    checkpoint: Checkpoint,
}

fn packed<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain data into a vector cannot fail.
    rmp_serde::to_vec(value).unwrap_or_default()
}

/// One changed profile as a changelog `(key, value)` record; `forwarded`: what the batch
/// applied to it of records forwarded from other partitions.
pub fn encode_profile(
    tag: &BatchTag,
    customer: &str,
    profile: &Profile,
    forwarded: &[Applied],
) -> (Vec<u8>, Vec<u8>) {
    let value = if forwarded.is_empty() {
        packed(&ProfileOut {
            v: FORMAT_VERSION,
            tag,
            profile,
        })
    } else {
        packed(&ForwardedProfileOut {
            v: FORMAT_VERSION,
            tag,
            forwarded,
            profile,
        })
    };
    (customer.as_bytes().to_vec(), value)
}

/// A checkpoint as a changelog `(key, value)` record, under its generation's key.
pub fn encode_checkpoint(checkpoint: &Checkpoint) -> (Vec<u8>, Vec<u8>) {
    let value = packed(&CheckpointOut {
        v: FORMAT_VERSION,
        checkpoint,
    });
    (checkpoint_key(checkpoint.tag.generation), value)
}

#[derive(Serialize)]
struct LayoutOut<'a> {
    v: u8,
    layout: &'a Layout,
}

#[derive(Deserialize)]
struct LayoutIn {
    _v: u8,
    layout: Layout,
}

/// A configuration's layout as a changelog `(key, value)` record, under its id's key.
pub fn encode_layout(layout: &Layout) -> (Vec<u8>, Vec<u8>) {
    let value = packed(&LayoutOut {
        v: FORMAT_VERSION,
        layout,
    });
    (layout_key(layout.id()), value)
}

/// Format 1's record: every kind in one shape.
#[derive(Deserialize)]
struct V1Record {
    _v: u8,
    generation: u64,
    batch: u64,
    partition: i32,
    offsets: [i64; 3],
    #[serde(default)]
    profile: Option<Profile>,
    #[serde(default)]
    frontiers: Option<[Option<Millis>; 3]>,
    #[serde(default)]
    repartition: Option<i64>,
    #[serde(default)]
    repartition_frontier: Option<Millis>,
    #[serde(default)]
    population: Option<V1Population>,
    #[serde(default)]
    owner: Option<String>,
}

/// Format 1's population: the cut-points are kept, the sums are rebuilt from profiles.
#[derive(Deserialize)]
struct V1Population {
    rfm: CutPoints,
    next_refresh: Millis,
    _surveys: IgnoredAny,
    _cohorts: IgnoredAny,
}

/// A changelog record as read back. A profile record's profile is left encoded: restore
/// decodes only the records that survive, and can do so in parallel.
#[derive(Debug)]
pub(crate) enum Entry<'a> {
    Profile {
        customer: String,
        tag: BatchTag,
        forwarded: Vec<Applied>,
        profile: Encoded<'a>,
    },
    /// A customer's profile removed.
    Tombstone {
        customer: String,
    },
    Checkpoint(Box<Checkpoint>),
    /// What a layout id's positions stand for.
    Layout(u64, Layout),
    /// Format 1: a profile of batch `(generation, batch)`.
    V1Profile {
        customer: String,
        tag: BatchTag,
        profile: Box<Profile>,
    },
    V1Population {
        tag: BatchTag,
        rfm: CutPoints,
        next_refresh: Millis,
    },
    V1Checkpoint(Box<Checkpoint>),
    /// A tombstone of a key that is not a customer's (an old checkpoint).
    Cleared,
}

/// A profile still in its MessagePack encoding, with the offset of the record it came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encoded<'a> {
    pub offset: i64,
    pub bytes: &'a [u8],
}

impl Encoded<'_> {
    pub fn decode(&self) -> Result<Profile, KafkaError> {
        rmp_serde::from_slice(self.bytes).map_err(|e| undecodable(self.offset, e))
    }
}

impl Entry<'_> {
    /// The partition whose state the record belongs to, where it says.
    pub fn partition(&self) -> Option<i32> {
        match self {
            Self::Profile { tag, .. }
            | Self::V1Profile { tag, .. }
            | Self::V1Population { tag, .. } => Some(tag.partition),
            Self::Checkpoint(c) | Self::V1Checkpoint(c) => Some(c.tag.partition),
            Self::Tombstone { .. } | Self::Cleared | Self::Layout(..) => None,
        }
    }
}

fn undecodable(offset: i64, reason: impl std::fmt::Display) -> KafkaError {
    KafkaError::Changelog {
        offset,
        reason: reason.to_string(),
    }
}

/// Decodes the record at `offset`.
pub(crate) fn decode<'a>(
    offset: i64,
    key: &[u8],
    value: Option<&'a [u8]>,
) -> Result<Entry<'a>, KafkaError> {
    let customer = || {
        std::str::from_utf8(key)
            .map(str::to_owned)
            .map_err(|_| undecodable(offset, "the key is neither a customer id nor Pulse's"))
    };
    let Some(value) = value else {
        return if key.first() == Some(&0xff) || key.is_empty() {
            Ok(Entry::Cleared)
        } else {
            Ok(Entry::Tombstone {
                customer: customer()?,
            })
        };
    };
    // A MessagePack fixarray (at most 15 elements) whose first element is the version.
    let version = match value {
        [head, v, ..] if head & 0xf0 == 0x90 => *v,
        _ => return Err(undecodable(offset, "not a Pulse changelog record")),
    };
    let bad = |e: rmp_serde::decode::Error| undecodable(offset, e);
    match version {
        2 | 3 if key.starts_with(CHECKPOINT_PREFIX) => {
            let c: CheckpointIn = rmp_serde::from_slice(value).map_err(bad)?;
            Ok(Entry::Checkpoint(Box::new(c.checkpoint)))
        }
        3 if key.starts_with(LAYOUT_PREFIX) => {
            let l: LayoutIn = rmp_serde::from_slice(value).map_err(bad)?;
            let id = l.layout.id();
            if layout_key(id) != key {
                return Err(undecodable(
                    offset,
                    "a layout record under another layout's key",
                ));
            }
            Ok(Entry::Layout(id, l.layout))
        }
        2 | 3 => {
            // [v, tag, profile] or [v, tag, forwarded, profile]: the tag (and what was
            // forwarded) is read, the profile's bytes kept as they are.
            let mut rest = &value[2..];
            let tag: BatchTag = rmp_serde::decode::from_read(&mut rest).map_err(bad)?;
            let forwarded: Vec<Applied> = if value[0] == 0x94 {
                rmp_serde::decode::from_read(&mut rest).map_err(bad)?
            } else {
                Vec::new()
            };
            Ok(Entry::Profile {
                customer: customer()?,
                tag,
                forwarded,
                profile: Encoded {
                    offset,
                    bytes: rest,
                },
            })
        }
        1 => {
            let r: V1Record = rmp_serde::from_slice(value).map_err(bad)?;
            let tag = BatchTag {
                partition: r.partition,
                generation: r.generation,
                batch: r.batch,
                offsets: [
                    r.offsets[0],
                    r.offsets[1],
                    r.offsets[2],
                    r.repartition.unwrap_or(-1),
                ],
                layout: 0,
            };
            if key == V1_CHECKPOINT_KEY {
                let [a, b, c] = r.frontiers.unwrap_or_default();
                Ok(Entry::V1Checkpoint(Box::new(Checkpoint {
                    tag,
                    frontiers: [a, b, c, r.repartition_frontier],
                    owner: r.owner,
                    ..Checkpoint::default()
                })))
            } else if key == V1_POPULATION_KEY {
                let p = r
                    .population
                    .ok_or_else(|| undecodable(offset, "a population record without one"))?;
                Ok(Entry::V1Population {
                    tag,
                    rfm: p.rfm,
                    next_refresh: p.next_refresh,
                })
            } else {
                let profile = r
                    .profile
                    .ok_or_else(|| undecodable(offset, "a profile record without one"))?;
                Ok(Entry::V1Profile {
                    customer: customer()?,
                    tag,
                    profile: Box::new(profile),
                })
            }
        }
        v => Err(undecodable(
            offset,
            format!("format version {v}, newer than this Pulse reads ({FORMAT_VERSION})"),
        )),
    }
}
