//! Reading a changelog partition back through Kafka: from its beginning to its end, as a
//! `read_committed` consumer (aborted transactions are invisible), into a [`Restorer`].

use super::format::{decode, is_checkpoint_key, Entry};
use super::restorer::{Contents, Restorer};
use crate::clients::{Fatal, Guard};
use crate::KafkaError;
use pulse_engine::EngineSpec;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

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
    let failed = |source| KafkaError::Client {
        role: "owner lookup",
        source,
    };
    let consumer: BaseConsumer = client
        .clone()
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("group.id", "pulse-owner-lookup")
        .create()
        .map_err(failed)?;
    let deadline = Instant::now() + timeout;
    // Checkpoints come at least once per batch, so one is among the last `worker.max_batch`
    // records or so; the window widens until one is found.
    for window in [64, 1024, 16_384] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::OffsetTail(window))
            .map_err(failed)?;
        consumer.assign(&tpl).map_err(failed)?;
        let mut owner = None;
        let mut found = false;
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let key = m.key().unwrap_or_default();
                    if !is_checkpoint_key(key) {
                        continue;
                    }
                    if let Ok(Entry::Checkpoint(c) | Entry::V1Checkpoint(c)) =
                        decode(m.offset(), key, m.payload())
                    {
                        found = true;
                        owner = c.owner.or(owner);
                    }
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(_)) | None => {}
            }
        }
        if found || Instant::now() >= deadline {
            return Ok(owner);
        }
    }
    Ok(None)
}

/// Every partition of the changelog `topic`, read to its end: the whole population, for tools
/// such as `pulse fit`. Blocking.
pub fn read_all(client: &ClientConfig, topic: &str) -> Result<Vec<Contents>, KafkaError> {
    let guard = Guard::for_client(client);
    let fatal = guard.fatal.clone();
    let consumer: BaseConsumer<Guard> =
        client
            .create_with_context(guard)
            .map_err(|source| KafkaError::Client {
                role: "changelog reader",
                source,
            })?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|source| {
            let otherwise = KafkaError::Metadata {
                topic: topic.to_owned(),
                source,
            };
            reason(&consumer, &fatal, otherwise)
        })?;
    let partitions = md.topics().first().map_or(0, |t| t.partitions().len());
    (0..partitions as i32)
        .map(|p| read_changelog(client, topic, p, None))
        .collect()
}

/// The reason a reader's request failed: the error the client reported that no retry fixes
/// (credentials, TLS), if it did, else `otherwise`. Errors arrive as events, which only
/// polling serves.
fn reason(consumer: &BaseConsumer<Guard>, fatal: &Fatal, otherwise: KafkaError) -> KafkaError {
    for _ in 0..10 {
        if let Some(e) = fatal.take() {
            return e;
        }
        let _ = consumer.poll(Duration::from_millis(100));
    }
    fatal.take().unwrap_or(otherwise)
}

/// Whether a consumer error is the client's to retry (a broker connection lost, a leader
/// moving) rather than a reason to give up the read.
fn transient(e: &rdkafka::error::KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
        )
    )
}

/// Reads partition `partition` of the changelog `topic` from its beginning to its end, with
/// profiles of another layout carried over to `target`'s (`None`: as stored). Blocking. Fails
/// if the broker stays unreachable for 30 s, or on a record it cannot read.
pub fn read_changelog(
    client: &ClientConfig,
    topic: &str,
    partition: i32,
    target: Option<&EngineSpec>,
) -> Result<Contents, KafkaError> {
    let mut restorer = Restorer::new(partition);
    feed(client, topic, &mut restorer)?;
    restorer.finish(target)
}

/// Feeds every record of the restorer's partition of `topic`, from its beginning to its end.
pub(crate) fn feed(
    client: &ClientConfig,
    topic: &str,
    restorer: &mut Restorer,
) -> Result<(), KafkaError> {
    let partition = restorer.partition();
    let mut cfg = client.clone();
    // librdkafka refuses to assign partitions without a group id; this reader never commits.
    if cfg.get("group.id").is_none() {
        cfg.set("group.id", "pulse-changelog-reader");
    }
    cfg.set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let guard = Guard::for_client(&cfg);
    let fatal = guard.fatal.clone();
    let consumer: BaseConsumer<Guard> =
        cfg.create_with_context(guard)
            .map_err(|source| KafkaError::Client {
                role: "changelog reader",
                source,
            })?;
    // Credentials or TLS refused: that, not the timeout it caused, is the reason.
    let restore_error =
        |source| reason(&consumer, &fatal, KafkaError::Restore { partition, source });
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .map_err(restore_error)?;
    if high > low {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(restore_error)?;
        consumer.assign(&tpl).map_err(restore_error)?;
        let mut idle = Instant::now();
        loop {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    idle = Instant::now();
                    restorer.push(m.offset(), m.key().unwrap_or_default(), m.payload())?;
                }
                // librdkafka reports the end when its fetch position reaches the high
                // watermark (for a read_committed reader, the last stable offset) of the latest
                // fetch response.
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) if transient(&e) => {}
                Some(Err(e)) => return Err(restore_error(e)),
                None if idle.elapsed() > Duration::from_secs(30) => {
                    return Err(restore_error(
                        rdkafka::error::KafkaError::MessageConsumption(
                            RDKafkaErrorCode::OperationTimedOut,
                        ),
                    ));
                }
                None => {}
            }
        }
    }
    Ok(())
}
