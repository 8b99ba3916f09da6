//! The changelog: after every batch, each changed profile and then a checkpoint go to the
//! compacted profiles topic, on the partition of the task that owns them. Restoring a
//! partition reads it back, keeping the newest record per customer.
//!
//! Records carry a `(generation, batch)` tag and a checkpoint closes each batch. Restore applies
//! a batch's profile records only when its checkpoint follows, so a crash between the profiles
//! and their checkpoint never leaks half a batch into the restored state, even after later
//! generations have appended to the same log. Each generation starts after a restore.

use crate::KafkaError;
use pulse_engine::{EngineSpec, Millis, Partition, Population, Profile, FORWARDED, INPUTS};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Key of the checkpoint record; customer ids are never empty.
pub(crate) const CHECKPOINT_KEY: &[u8] = b"";
/// Key of the population record (RFM cut-points, rolling NPS/CSAT, cohorts), written in a
/// batch that changed it. Not UTF-8, so no customer id can collide with it; a key of its own
/// so that compaction keeps the newest one whatever later checkpoints carry.
pub(crate) const POPULATION_KEY: &[u8] = b"\xffpopulation";
pub(crate) const FORMAT_VERSION: u8 = 1;

/// One changelog record as read back: a profile, or (with no profile) the checkpoint closing
/// a batch.
#[derive(Debug, Deserialize)]
pub(crate) struct Record {
    pub v: u8,
    pub generation: u64,
    pub batch: u64,
    /// Input partition this state belongs to.
    pub partition: i32,
    /// Next offset to read on each input (clickstream, purchases, surveys) once this batch is
    /// applied; -1 where nothing was read yet.
    pub offsets: [i64; 3],
    #[serde(default)]
    pub profile: Option<Profile>,
    #[serde(default)]
    pub frontiers: Option<[Option<Millis>; 3]>,
    /// Next offset to read on the repartition topic; absent in records written before it.
    #[serde(default)]
    pub repartition: Option<i64>,
    /// The repartition topic's event-time frontier; absent in records written before it.
    #[serde(default)]
    pub repartition_frontier: Option<Millis>,
    /// The partition's population state, in population records.
    #[serde(default)]
    pub population: Option<Population>,
    /// In checkpoints: where the writing worker serves its query API (`http.advertise`).
    #[serde(default)]
    pub owner: Option<String>,
}

/// Next offset to read per input: clickstream, purchases, surveys (by [`TopicRole::index`]),
/// then the repartition topic at [`REPARTITION`]; -1 where nothing was read yet.
///
/// [`TopicRole::index`]: pulse_events::TopicRole::index
pub type Offsets = [i64; 4];

/// Where the repartition topic's offset sits in [`Offsets`].
pub const REPARTITION: usize = 3;

/// Identifies a changelog batch: the state's partition, the writer's generation, the batch
/// number, and the input position the batch brings the state to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchTag {
    pub partition: i32,
    pub generation: u64,
    pub batch: u64,
    pub offsets: Offsets,
}

/// The serialising view of a [`Record`]: same fields in the same order, the profile borrowed,
/// so writing the changelog copies nothing.
#[derive(Serialize)]
struct RecordRef<'a> {
    v: u8,
    generation: u64,
    batch: u64,
    partition: i32,
    offsets: [i64; 3],
    profile: Option<&'a Profile>,
    frontiers: Option<[Option<Millis>; 3]>,
    repartition: Option<i64>,
    repartition_frontier: Option<Millis>,
    population: Option<&'a Population>,
    owner: Option<&'a str>,
}

fn encode(
    tag: &BatchTag,
    profile: Option<&Profile>,
    frontiers: Option<[Option<Millis>; INPUTS]>,
    population: Option<&Population>,
    owner: Option<&str>,
) -> Vec<u8> {
    let r = RecordRef {
        v: FORMAT_VERSION,
        generation: tag.generation,
        batch: tag.batch,
        partition: tag.partition,
        offsets: [tag.offsets[0], tag.offsets[1], tag.offsets[2]],
        profile,
        frontiers: frontiers.map(|f| [f[0], f[1], f[2]]),
        repartition: Some(tag.offsets[REPARTITION]),
        repartition_frontier: frontiers.and_then(|f| f[FORWARDED]),
        population,
        owner,
    };
    rmp_serde::to_vec(&r).unwrap_or_default()
}

/// One changed profile as a changelog `(key, value)` record.
pub fn encode_profile(tag: &BatchTag, customer: &str, profile: &Profile) -> (Vec<u8>, Vec<u8>) {
    (
        customer.as_bytes().to_vec(),
        encode(tag, Some(profile), None, None, None),
    )
}

/// The partition's population state as a changelog record of the batch that changed it.
pub fn encode_population(tag: &BatchTag, population: &Population) -> (Vec<u8>, Vec<u8>) {
    (
        POPULATION_KEY.to_vec(),
        encode(tag, None, None, Some(population), None),
    )
}

/// The checkpoint closing a batch: without it, restore ignores the batch's profile records.
pub fn encode_checkpoint(
    tag: &BatchTag,
    frontiers: [Option<Millis>; INPUTS],
) -> (Vec<u8>, Vec<u8>) {
    encode_checkpoint_by(tag, frontiers, None)
}

/// The checkpoint closing a batch, naming where its writer serves the query API.
pub fn encode_checkpoint_by(
    tag: &BatchTag,
    frontiers: [Option<Millis>; INPUTS],
    owner: Option<&str>,
) -> (Vec<u8>, Vec<u8>) {
    (
        CHECKPOINT_KEY.to_vec(),
        encode(tag, None, Some(frontiers), None, owner),
    )
}

/// Where the worker that last wrote changelog partition `partition` serves its query API:
/// the owner named by the newest checkpoint among the partition's last records. `None` when
/// the partition has none (no batch yet, or written by a worker without `http.advertise`).
/// Blocks for at most `timeout`.
pub fn latest_owner(
    client: &ClientConfig,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Option<String>, KafkaError> {
    let consumer: BaseConsumer = client
        .clone()
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("group.id", "pulse-owner-lookup")
        .create()
        .map_err(|source| KafkaError::Client {
            role: "owner lookup",
            source,
        })?;
    let mut tpl = TopicPartitionList::new();
    // A batch ends with its checkpoint, so the newest one is among the last few records.
    tpl.add_partition_offset(topic, partition, Offset::OffsetTail(16))
        .map_err(|source| KafkaError::Client {
            role: "owner lookup",
            source,
        })?;
    consumer.assign(&tpl).map_err(|source| KafkaError::Client {
        role: "owner lookup",
        source,
    })?;
    let deadline = Instant::now() + timeout;
    let mut owner = None;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if m.key().unwrap_or_default() == CHECKPOINT_KEY {
                    if let Some(r) = m
                        .payload()
                        .and_then(|v| rmp_serde::from_slice::<Record>(v).ok())
                    {
                        owner = r.owner.or(owner);
                    }
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(_)) | None => {}
        }
    }
    Ok(owner)
}

/// Restored profiles by customer id. Keys come from our own changelog, so a fast hasher is safe.
pub type ProfileMap = HashMap<String, Profile, foldhash::fast::RandomState>;

/// What one changelog partition holds: the newest complete state of every customer, and the
/// last checkpoint's input offsets and frontiers.
#[derive(Debug, Default)]
pub struct ChangelogContents {
    pub profiles: ProfileMap,
    pub offsets: Offsets,
    pub frontiers: [Option<Millis>; INPUTS],
    pub population: Population,
    /// Generation of the last checkpoint; 0 if there is none.
    pub generation: u64,
    pub bytes: u64,
}

/// A partition's state as read back from the changelog.
#[derive(Debug)]
pub(crate) struct Restored {
    pub partition: Partition,
    pub offsets: Offsets,
    /// The generation this worker writes with: one past the last checkpoint's.
    pub generation: u64,
    pub profiles: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// Restores a partition's engine state. Blocking: run it on a blocking thread. Fails
/// (retryably) if the broker cannot be reached.
pub(crate) fn restore(
    client: &ClientConfig,
    topic: &str,
    partition: i32,
    spec: Arc<EngineSpec>,
) -> Result<Restored, KafkaError> {
    let started = Instant::now();
    let c = read_changelog(client, topic, partition)?;
    let profiles = c.profiles.len();
    Ok(Restored {
        partition: Partition::restore(spec, c.profiles, c.frontiers, c.population),
        offsets: c.offsets,
        generation: c.generation + 1,
        profiles,
        bytes: c.bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Every partition of the changelog `topic`, read to its end: the whole population, for tools
/// such as `pulse fit`. Blocking.
pub fn read_all(client: &ClientConfig, topic: &str) -> Result<Vec<ChangelogContents>, KafkaError> {
    let consumer: BaseConsumer = client.create().map_err(|source| KafkaError::Client {
        role: "changelog reader",
        source,
    })?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|source| KafkaError::Client {
            role: "changelog reader",
            source,
        })?;
    let partitions = md.topics().first().map_or(0, |t| t.partitions().len());
    (0..partitions as i32)
        .map(|p| read_changelog(client, topic, p))
        .collect()
}

/// Reads partition `partition` of the changelog `topic` from the beginning to its end,
/// keeping the newest record per customer of every completed batch. Blocking.
pub fn read_changelog(
    client: &ClientConfig,
    topic: &str,
    partition: i32,
) -> Result<ChangelogContents, KafkaError> {
    let mut cfg = client.clone();
    // librdkafka refuses to assign partitions without a group id; this reader never commits.
    if cfg.get("group.id").is_none() {
        cfg.set("group.id", "pulse-changelog-reader");
    }
    cfg.set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = cfg.create().map_err(|source| KafkaError::Client {
        role: "changelog reader",
        source,
    })?;
    let timeout = Duration::from_secs(10);
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, timeout)
        .map_err(|source| KafkaError::Restore { partition, source })?;
    let mut state = ProfileMap::default();
    let mut pending: Vec<(String, Record)> = Vec::new();
    let mut population = Population::default();
    let mut checkpoint: Option<Record> = None;
    let mut bytes = 0u64;
    if high > low {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|source| KafkaError::Restore { partition, source })?;
        consumer
            .assign(&tpl)
            .map_err(|source| KafkaError::Restore { partition, source })?;
        let mut idle = Instant::now();
        loop {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    idle = Instant::now();
                    let payload = m.payload().unwrap_or_default();
                    bytes += payload.len() as u64;
                    let rec = match rmp_serde::from_slice::<Record>(payload) {
                        // A record of another partition means the input partitioning changed
                        // under the changelog; it does not belong to this state.
                        Ok(r) if r.v == FORMAT_VERSION && r.partition == partition => r,
                        _ => {
                            tracing::warn!(
                                partition,
                                offset = m.offset(),
                                "Unreadable changelog record skipped."
                            );
                            continue;
                        }
                    };
                    if m.key().unwrap_or_default() == CHECKPOINT_KEY {
                        for (k, r) in pending.drain(..) {
                            if (r.generation, r.batch) == (rec.generation, rec.batch) {
                                if let Some(p) = r.population {
                                    population = p;
                                } else if let Some(p) = r.profile {
                                    state.insert(k, p);
                                }
                            }
                        }
                        checkpoint = Some(rec);
                    } else {
                        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                        pending.push((key, rec));
                    }
                }
                // librdkafka reports the end when its fetch position reaches the high
                // watermark of the latest fetch response. That one is trusted, unlike the
                // ListOffsets answer above: some brokers (tansu 0.6) answer ListOffsets with the
                // base offset of the newest batch, short of its last record.
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    return Err(KafkaError::Restore {
                        partition,
                        source: e,
                    })
                }
                None if idle.elapsed() > Duration::from_secs(30) => {
                    return Err(KafkaError::Restore {
                        partition,
                        source: rdkafka::error::KafkaError::MessageConsumption(
                            rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                        ),
                    });
                }
                None => {}
            }
        }
    }
    // Records after the last checkpoint belong to a batch that never completed: dropped.
    Ok(match checkpoint {
        Some(c) => ChangelogContents {
            profiles: state,
            offsets: [
                c.offsets[0],
                c.offsets[1],
                c.offsets[2],
                c.repartition.unwrap_or(-1),
            ],
            frontiers: {
                let [a, b, c3] = c.frontiers.unwrap_or_default();
                [a, b, c3, c.repartition_frontier]
            },
            generation: c.generation,
            population,
            bytes,
        },
        None => ChangelogContents {
            offsets: [-1; 4],
            bytes,
            ..ChangelogContents::default()
        },
    })
}
