//! Typed configuration of the Kafka client and the worker: the `[kafka]` and `[worker]`
//! sections of the configuration file.

use pulse_events::{Encoding, TopicRole};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// `[kafka]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers; empty starts the embedded in-process cluster and demo traffic.
    pub brokers: String,
    pub group_id: String,
    /// Static membership (KIP-345): a stable id per worker, so a restarted worker rejoins
    /// with its partitions within the session timeout and nobody else rebalances. Empty:
    /// dynamic membership.
    #[serde(default)]
    pub group_instance_id: String,
    /// How the group assigns partitions: the classic protocol with eager range assignment, or
    /// Kafka 4's consumer protocol (KIP-848), incremental, where a rebalance moves only the
    /// partitions that change owner.
    #[serde(default)]
    pub group_protocol: GroupProtocol,
    pub client_id: String,
    /// Where a new consumer group starts reading.
    pub auto_offset_reset: OffsetReset,
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// How often stored offsets are committed.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Upper bound on what librdkafka prefetches (`queued.max.messages.kbytes`). The consumer
    /// of a group has one queue for all its partitions, so this bounds the worker, not each
    /// partition.
    pub max_prefetch: ByteSize,
    /// Encoding assumed for input records without a `content-type` header.
    pub input_encoding: Encoding,
    pub output_encoding: Encoding,
    /// At-least-once outputs with exactly-once state, or everything in Kafka transactions.
    pub delivery: Delivery,
    /// librdkafka partitioner for records Pulse keys by customer id (forwarded inputs, outputs).
    /// Must match how your producers partition records keyed by customer id.
    pub partitioner: String,
    /// Partitions per topic when the embedded cluster creates them.
    pub embedded_partitions: i32,
    pub topics: TopicNames,
    /// Extra librdkafka properties, passed through as-is (`"socket.keepalive.enable" = "true"`).
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    Earliest,
    Latest,
}

impl OffsetReset {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

/// `kafka.group_protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup with the client-side range assignor: every rebalance revokes every
    /// partition of every member. Works with any broker Pulse supports.
    #[default]
    Classic,
    /// The consumer group protocol of KIP-848 (Apache Kafka 4.0 and later) with the broker's
    /// range assignor, which keeps partition N of every subscribed topic on one member. A
    /// rebalance is incremental: a member gives up and restores only the partitions that move,
    /// though Apache Kafka 4.1's assignor is not sticky and may move more than the fewest. The
    /// session timeout is the broker's (`group.consumer.session.timeout.ms`).
    Consumer,
}

/// `kafka.delivery`: how outputs, changelog and input offsets reach Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Offsets are committed after everything a record caused is acknowledged; outputs may
    /// repeat after a crash (with the same ids), state applies every input once.
    AtLeastOnce,
    /// Each batch's outputs, dead letters, changelog records and input offsets are one Kafka
    /// transaction, with one transactional producer per partition (`<group_id>-<partition>`),
    /// which fences a zombie owner of the same partition.
    ExactlyOnce,
}

/// `[kafka.topics]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicNames {
    pub clickstream: String,
    pub purchases: String,
    pub surveys: String,
    pub segments: String,
    pub churn_risk: String,
    pub milestones: String,
    pub profiles: String,
    pub dead_letter: String,
    /// Internal: input records whose key is not their customer id, forwarded keyed by customer
    /// id. Co-partitioned with the inputs.
    pub repartition: String,
}

impl TopicNames {
    pub fn input(&self, role: TopicRole) -> &str {
        match role {
            TopicRole::Clickstream => &self.clickstream,
            TopicRole::Purchases => &self.purchases,
            TopicRole::Surveys => &self.surveys,
        }
    }

    pub fn role_of(&self, topic: &str) -> Option<TopicRole> {
        TopicRole::ALL.into_iter().find(|r| self.input(*r) == topic)
    }

    pub fn output(&self, t: pulse_events::OutputTopic) -> &str {
        match t {
            pulse_events::OutputTopic::Segments => &self.segments,
            pulse_events::OutputTopic::ChurnRisk => &self.churn_risk,
            pulse_events::OutputTopic::Milestones => &self.milestones,
        }
    }

    /// Every topic Pulse reads or writes.
    pub fn all(&self) -> [&str; 9] {
        [
            &self.clickstream,
            &self.purchases,
            &self.surveys,
            &self.segments,
            &self.churn_risk,
            &self.milestones,
            &self.profiles,
            &self.dead_letter,
            &self.repartition,
        ]
    }
}

/// `[worker]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Most records applied before their outputs are flushed and offsets stored.
    pub max_batch: usize,
    /// Records buffered between the consumer and each partition task; when full, fetching
    /// stops instead of memory growing.
    pub queue_capacity: usize,
    /// Bytes of input records a partition task holds, per lane (its own inputs; the
    /// repartition topic), from fetch to apply: at this bound the lane's fetching pauses, and
    /// records held back in the event-time merge or the order are let through rather than
    /// held past it.
    pub queue_bytes: ByteSize,
    /// With no input for this long, and nothing more on the broker, a live partition's event
    /// time moves on by the time that passes ([`crate::idle`]), so timers still fire.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A partition is live while its newest event is at most this far behind the wall clock;
    /// one further behind holds history (a finished replay or backfill), and its event time
    /// never moves on while idle.
    #[serde(with = "humantime_serde")]
    pub live_within: Duration,
    /// Longest an input that lags (has records on the broker not yet here) holds back the
    /// others in the event-time merge of a task's inputs.
    #[serde(with = "humantime_serde")]
    pub max_hold: Duration,
    /// Longest a partition that has said nothing of how far it is (its worker died, and the
    /// partition has not moved yet) holds back the records of the partitions it forwards to.
    #[serde(with = "humantime_serde")]
    pub repartition_hold: Duration,
    /// Time allowed on shutdown to finish in-flight records, flush and commit.
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
    /// Largest accepted input record value.
    pub max_payload: ByteSize,
    /// What a restore does with a changelog record it cannot read.
    #[serde(default)]
    pub on_undecodable_changelog: OnUndecodable,
}

/// `worker.on_undecodable_changelog`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUndecodable {
    /// The worker stops with an error naming the partition, the offset and the reason, so no
    /// state is lost without an operator deciding it.
    #[default]
    Stop,
    /// The record is passed by with an error in the log, and the customer it held starts over
    /// from the records replayed after the checkpoint.
    Drop,
}

/// A size in bytes, written as a number or with a unit (`64KiB`, `16MiB`, `1MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size such as `64KiB`"))?;
        let mult = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB or GB)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n >= 1 << 20 && n % (1 << 20) == 0 {
            write!(f, "{}MiB", n >> 20)
        } else if n >= 1 << 10 && n % (1 << 10) == 0 {
            write!(f, "{}KiB", n >> 10)
        } else {
            write!(f, "{n}B")
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 65536 or \"64KiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(ByteSize::parse("64KiB"), Ok(ByteSize(65_536)));
        assert_eq!(ByteSize::parse("1MB"), Ok(ByteSize(1_000_000)));
        assert_eq!(ByteSize::parse("512"), Ok(ByteSize(512)));
        assert!(ByteSize::parse("64 parsecs").unwrap_err().contains("unit"));
        assert!(ByteSize::parse("lots").is_err());
        assert_eq!(ByteSize(65_536).to_string(), "64KiB");
    }
}
