//! Errors of the Kafka side, saying whether retrying can help.

/// A failure that stops the worker. Per-record problems never surface here: they become dead
/// letters.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The client could not be created: a configuration problem, not retryable.
    #[error("cannot create the Kafka {role}: {source} (check the kafka.* settings)")]
    Client {
        role: &'static str,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot read the metadata of topic {topic}: {source}")]
    Metadata {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot subscribe to {topics}: {source}")]
    Subscribe {
        topics: String,
        source: rdkafka::error::KafkaError,
    },
    /// The embedded cluster failed to start; retrying will not help.
    #[error("cannot start the embedded Kafka cluster: {0}")]
    Embedded(String),
    /// The topics do not have the shape Pulse needs; an operator must fix them, retrying will
    /// not help.
    #[error("topic layout: {0}")]
    Topology(String),
    /// Reading the changelog failed; retried until it succeeds or the worker stops.
    #[error("cannot restore partition {partition} from the changelog: {source} (retrying)")]
    Restore {
        partition: i32,
        source: rdkafka::error::KafkaError,
    },
    /// The brokers refused this client's credentials: an operator must fix them.
    #[error("Kafka broker {broker} refused authentication with SASL {mechanism}: {reason} (check kafka.librdkafka sasl.username, sasl.password and sasl.mechanism)")]
    Authentication {
        broker: String,
        mechanism: String,
        reason: String,
    },
    /// The TLS handshake with a broker failed: a certificate or trust problem, not retryable.
    #[error("TLS handshake with Kafka broker {broker} failed: {reason} (check kafka.librdkafka ssl.* settings)")]
    Tls { broker: String, reason: String },
    /// librdkafka declared the client unusable (its fatal error): the group fenced this
    /// consumer, or refused it, for another's holding its `group.instance.id`. Left running,
    /// the worker would fetch nothing for good.
    #[error("the Kafka client stopped for good: {reason}{hint}")]
    ClientFatal { reason: String, hint: &'static str },
    /// A changelog record this worker cannot read: written by a newer Pulse, or damaged.
    #[error("changelog record at offset {offset} cannot be read: {reason}")]
    Changelog { offset: i64, reason: String },
    /// The transactional producer of a partition could not be set up.
    #[error("cannot start transactions for partition {partition}: {reason}")]
    Transaction { partition: i32, reason: String },
    /// Another worker now owns this partition's transactional id: this one is a zombie and
    /// stops; retrying would fence the new owner in turn.
    #[error("partition {partition} was taken over by another worker (producer fenced): stopping")]
    Fenced { partition: i32 },
    /// A bug: the partition's task panicked. The worker stops the other partitions cleanly and
    /// exits with an error, so a supervisor restarts it and the partition is read again.
    #[error("the task of partition {partition} panicked: {message}")]
    TaskPanicked { partition: i32, message: String },
}
