//! The changelog: every batch's changed profiles, then a checkpoint, go to the compacted
//! profiles topic, on the partition of the task that owns them; restoring a partition reads
//! them back. [`format`] says what the records hold, [`restorer`] why the state read back is
//! right on any compacted log, [`reader`] how it is read through Kafka.

mod format;
mod reader;
mod restorer;

pub use format::{
    encode_checkpoint, encode_layout, encode_profile, Applied, BatchTag, Checkpoint, ForwardedFrom,
    Offsets, REPARTITION,
};
pub use reader::{latest_owner, read_all, read_changelog};
pub use restorer::{Contents, ProfileMap, Restorer};

use crate::KafkaError;
use pulse_engine::{Engine, Partition};
use rdkafka::config::ClientConfig;
use std::sync::Arc;
use std::time::Instant;

/// A partition's state as read back from the changelog.
#[derive(Debug)]
pub(crate) struct Restored {
    pub partition: Partition,
    pub contents: Contents,
    pub seconds: f64,
}

/// Restores a partition's engine state. Blocking: run it on a blocking thread. Fails
/// (retryably) if the broker cannot be reached; on a record it cannot read, unless
/// `drop_undecodable`.
pub(crate) fn restore(
    client: &ClientConfig,
    topic: &str,
    partition: i32,
    engine: Arc<Engine>,
    drop_undecodable: bool,
) -> Result<Restored, KafkaError> {
    let started = Instant::now();
    let mut restorer = Restorer::new(partition);
    if drop_undecodable {
        restorer = restorer.dropping_undecodable();
    }
    reader::feed(client, topic, &mut restorer)?;
    let mut contents = restorer.finish(Some(&engine.spec))?;
    let profiles = std::mem::take(&mut contents.profiles);
    let c = &contents.checkpoint;
    let mut partition = Partition::restore(engine, profiles, c.frontiers, c.population());
    partition.restore_forwarded(
        c.forwarded
            .iter()
            .filter_map(|f| f.frontier.map(|t| (f.source, t))),
    );
    Ok(Restored {
        partition,
        contents,
        seconds: started.elapsed().as_secs_f64(),
    })
}
