//! Exactly-once delivery: each partition task has its own transactional producer, with the
//! transactional id `<group_id>-<partition>`. Claiming the id fences any earlier owner of the
//! partition (a zombie that outlived its session) and aborts its open transaction. A batch's
//! outputs, dead letters, changelog records and input offsets are then committed together, or
//! the transaction is aborted and the whole batch sent again.

use crate::outbox::Outbox;
use crate::KafkaError;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::TopicPartitionList;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A partition's transactional producer, behind the same [`Outbox`] the at-least-once path uses.
pub(crate) struct Txn {
    pub outbox: Outbox,
    partition: i32,
}

/// How a transaction attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Abort and send the batch again.
    Abort,
    /// Another producer claimed the id, or the producer is unusable: stop the partition.
    Fatal,
}

/// The transactional id of `partition`'s producer in consumer group `group`.
pub(crate) fn transactional_id(group: &str, partition: i32) -> String {
    format!("{group}-{partition}")
}

fn classify(e: &RdError) -> Failure {
    let fenced = matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::TransactionCoordinatorFenced
        )
    );
    match e {
        _ if fenced => Failure::Fatal,
        RdError::Transaction(t) if t.is_fatal() => Failure::Fatal,
        _ => Failure::Abort,
    }
}

impl Txn {
    /// Creates the producer and claims the transactional id, fencing the previous owner.
    pub async fn claim(
        base: &ClientConfig,
        outbox: &Outbox,
        group: &str,
        partition: i32,
    ) -> Result<Self, KafkaError> {
        let mut cfg = base.clone();
        cfg.set("transactional.id", transactional_id(group, partition));
        let producer: FutureProducer = cfg.create().map_err(|source| KafkaError::Client {
            role: "transactional producer",
            source,
        })?;
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(TIMEOUT))
            .await
            .map_err(|e| KafkaError::Transaction {
                partition,
                reason: e.to_string(),
            })?
            .map_err(|e| KafkaError::Transaction {
                partition,
                reason: e.to_string(),
            })?;
        Ok(Self {
            outbox: outbox.with_producer(producer),
            partition,
        })
    }

    pub fn begin(&self) -> Result<(), Failure> {
        self.outbox.producer.begin_transaction().map_err(|e| {
            tracing::warn!(error = %e, partition = self.partition, "Could not begin a transaction.");
            classify(&e)
        })
    }

    /// Adds the input offsets to the open transaction and commits it.
    pub async fn commit(
        &self,
        offsets: TopicPartitionList,
        group: Option<ConsumerGroupMetadata>,
    ) -> Result<(), Failure> {
        let producer = self.outbox.producer.clone();
        let done = tokio::task::spawn_blocking(move || {
            if let (Some(g), true) = (group, offsets.count() > 0) {
                producer.send_offsets_to_transaction(&offsets, &g, TIMEOUT)?;
            }
            producer.commit_transaction(TIMEOUT)
        })
        .await;
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, partition = self.partition, "Transaction not committed.");
                Err(classify(&e))
            }
            Err(_) => Err(Failure::Abort),
        }
    }

    pub async fn abort(&self) -> Result<(), Failure> {
        let producer = self.outbox.producer.clone();
        match tokio::task::spawn_blocking(move || producer.abort_transaction(TIMEOUT)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, partition = self.partition, "Transaction not aborted.");
                Err(classify(&e))
            }
            Err(_) => Err(Failure::Fatal),
        }
    }
}
