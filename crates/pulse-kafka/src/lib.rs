//! Pulse's Kafka side: typed configuration, the embedded mock cluster, the consumer group with
//! one task per partition number, output and dead-letter production, and offset handling that
//! stores an input's offset only after everything it caused is acknowledged by the broker.
//! Business rules live in `pulse-engine`; this crate moves records.

mod align;
mod assign;
mod batch;
mod changelog;
mod claim;
pub mod clients;
mod config;
mod context;
mod ctx;
mod dead_letter;
mod deliver;
mod embedded;
mod error;
mod failpoint;
mod flow;
mod gauges;
mod held;
mod idle;
mod log;
mod merge;
mod outbox;
mod partitioner;
mod position;
mod restoring;
mod sequence;
mod state;
mod task;
mod tasks;
mod txn;
mod worker;

pub use changelog::{
    encode_checkpoint, encode_layout, encode_profile, read_all, read_changelog, BatchTag,
    Checkpoint, Contents, Offsets, ProfileMap, Restorer, REPARTITION,
};
pub use config::{
    ByteSize, Delivery, GroupProtocol, KafkaConfig, OffsetReset, OnUndecodable, TopicNames,
    WorkerConfig,
};
pub use dead_letter::header;
pub use embedded::EmbeddedCluster;
pub use error::KafkaError;
pub use partitioner::{murmur2, partition_for};
pub use state::StateRegistry;
pub use worker::{partition_owner, run_worker, WorkerDeps};

/// Milliseconds since the Unix epoch by the wall clock; the engine never reads a clock itself.
/// The fault tests can set it off ([`failpoint::clock_offset`]) to run a worker whose clock is
/// wrong.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        .saturating_add(failpoint::clock_offset())
}
