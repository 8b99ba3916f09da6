//! Every Kafka client Pulse makes is configured here, from `[kafka]`: the worker's consumer
//! and producers, the changelog readers, and the command-line tools' clients (`pulse tail`,
//! `pulse generate`, `pulse fit --brokers`). Each starts from the bootstrap servers and the
//! client id, takes the settings its role needs, and then `[kafka.librdkafka]`, so security
//! settings (TLS, SASL) reach every client alike and an operator's override always wins.
//!
//! Clients report errors retrying cannot fix (credentials refused, a TLS handshake refused)
//! through [`Guard`], so a worker or a tool stops with the reason instead of retrying for ever.

use crate::config::{Delivery, GroupProtocol, KafkaConfig};
use crate::KafkaError;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::types::RDKafkaErrorCode;
use std::sync::{Arc, Mutex};

fn base(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers)
        .set("client.id", &kafka.client_id);
    c
}

fn finish(mut c: ClientConfig, kafka: &KafkaConfig) -> ClientConfig {
    for (k, v) in &kafka.librdkafka {
        c.set(k, v);
    }
    c
}

/// The worker's group consumer.
pub(crate) fn consumer(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka);
    // With transactions the offsets are committed inside each batch's transaction.
    let auto_commit = kafka.delivery == Delivery::AtLeastOnce;
    c.set("group.id", &kafka.group_id)
        .set("enable.auto.commit", auto_commit.to_string())
        .set(
            "auto.commit.interval.ms",
            kafka.commit_interval.as_millis().to_string(),
        )
        // Offsets are stored by the partition tasks once a record's effects are acknowledged.
        .set("enable.auto.offset.store", "false")
        // Inputs written in transactions are read once committed, never when aborted.
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", kafka.auto_offset_reset.as_str())
        // Consumer lag per partition for the metrics.
        .set("statistics.interval.ms", "5000")
        // librdkafka applies this per consumer, to what it prefetches across all partitions.
        .set(
            "queued.max.messages.kbytes",
            (kafka.max_prefetch.0 / 1024).max(1).to_string(),
        )
        // While that prefetch is full, every partition's next fetch waits this long, the
        // repartition topic's too; librdkafka's default (1 s) held the markers the partitions
        // wait on for up to a second each time the own inputs filled the queue.
        .set("fetch.queue.backoff.ms", "10");
    // Either way partition N of every input topic (and of the repartition topic) goes to one
    // member, which the per-partition state needs: the inputs are co-partitioned by customer.
    match kafka.group_protocol {
        GroupProtocol::Classic => {
            c.set(
                "session.timeout.ms",
                kafka.session_timeout.as_millis().to_string(),
            )
            .set("partition.assignment.strategy", "range");
        }
        // The broker's range assignor gives every topic's partition N to the same member, and
        // a rebalance revokes only what moves (Kafka 4.1's places members by sorted id, so
        // more may move than the minimum). The session timeout is the broker's; librdkafka
        // refuses one set here.
        GroupProtocol::Consumer => {
            c.set("group.protocol", "consumer")
                .set("group.remote.assignor", "range");
        }
    }
    if !kafka.group_instance_id.is_empty() {
        c.set("group.instance.id", &kafka.group_instance_id);
    }
    finish(c, kafka)
}

/// The worker's producer of outputs, dead letters, forwarded records and the changelog.
pub(crate) fn producer(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka);
    c.set("partitioner", &kafka.partitioner)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // A batch hands the producer everything of a step at once and waits for it, so
        // lingering for more only delays the step; librdkafka still batches what is queued.
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000");
    finish(c, kafka)
}

/// A reader of the changelog (restore, owner lookups, `pulse fit`): it sees committed
/// transactions only.
pub fn reader(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka);
    c.set("isolation.level", "read_committed");
    finish(c, kafka)
}

/// `pulse tail`'s consumer: a group of its own, never committing.
pub fn tail(kafka: &KafkaConfig, group: &str, from_beginning: bool) -> ClientConfig {
    let mut c = base(kafka);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            if from_beginning { "earliest" } else { "latest" },
        );
    finish(c, kafka)
}

/// The producer of generated traffic (`pulse generate`, the embedded demo), keying records
/// to partitions as `kafka.partitioner` says your producers do.
pub fn traffic(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka);
    c.set("client.id", format!("{}-generate", kafka.client_id))
        .set("partitioner", &kafka.partitioner)
        .set("linger.ms", "10")
        .set("acks", "all")
        // A retried request must not reorder a customer's events: lateness is judged in
        // arrival order.
        .set("enable.idempotence", "true");
    finish(c, kafka)
}

/// Whether a librdkafka property holds a secret, which Pulse never prints or logs.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "key.pem",
        "oauthbearer.config",
        "token",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// `[kafka]` with every secret replaced, to print.
pub fn redacted(kafka: &KafkaConfig) -> KafkaConfig {
    let mut k = kafka.clone();
    for (key, value) in &mut k.librdkafka {
        if is_secret(key) {
            *value = "<redacted>".into();
        }
    }
    k
}

/// The first error a client reported that retrying cannot fix, shared by everything that
/// waits on the client.
#[derive(Debug, Clone, Default)]
pub struct Fatal(Arc<Mutex<Option<KafkaError>>>);

impl Fatal {
    /// Records why the client cannot go on; the first reason wins.
    pub fn set(&self, e: KafkaError) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    }

    pub fn is_set(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    pub fn take(&self) -> Option<KafkaError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The error a client's fatal error stops the worker with: librdkafka's `reason`, and what to
/// do when it is the group's refusal of a static member.
pub(crate) fn fatal(reason: String) -> KafkaError {
    let hint = if reason.contains("instance") {
        " (another worker has the same kafka.group_instance_id, or a worker stopped without leaving the group and Kafka has not yet released its id: give every worker its own id; a crashed worker's id is released after the group's session timeout)"
    } else {
        ""
    };
    KafkaError::ClientFatal { reason, hint }
}

/// A client context that turns the errors retrying cannot fix into a [`Fatal`] and logs the
/// rest, and routes librdkafka's own log lines to `tracing`.
#[derive(Debug, Clone)]
pub struct Guard {
    pub fatal: Fatal,
    mechanism: String,
}

impl Guard {
    /// A guard for a client made from `config`.
    pub fn for_client(config: &ClientConfig) -> Self {
        let mechanism = config
            .get("sasl.mechanism")
            .or_else(|| config.get("sasl.mechanisms"))
            .unwrap_or("GSSAPI")
            .to_owned();
        Self {
            fatal: Fatal::default(),
            mechanism,
        }
    }

    /// Classifies a client error: whether it is one no retry fixes, and why.
    pub(crate) fn on_error(&self, error: &rdkafka::error::KafkaError, reason: &str) {
        // librdkafka prefixes a broker's errors with its name: `sasl_ssl://host:port/id: ...`.
        let (broker, detail) = reason
            .split_once(": ")
            .filter(|(b, _)| b.contains("://"))
            .unwrap_or(("the brokers", reason));
        match error.rdkafka_error_code() {
            // The end of a partition a reader asked to be told of: not an error.
            Some(RDKafkaErrorCode::PartitionEOF) => {}
            Some(RDKafkaErrorCode::Authentication) => {
                tracing::error!(broker, mechanism = %self.mechanism, reason = detail, "Kafka refused this client's credentials.");
                self.fatal.set(KafkaError::Authentication {
                    broker: broker.to_owned(),
                    mechanism: self.mechanism.clone(),
                    reason: detail.to_owned(),
                });
            }
            Some(RDKafkaErrorCode::SSL) => {
                tracing::error!(broker, reason = detail, "TLS handshake with Kafka failed.");
                self.fatal.set(KafkaError::Tls {
                    broker: broker.to_owned(),
                    reason: detail.to_owned(),
                });
            }
            _ => tracing::warn!(error = %error, reason, "Kafka client error; the client retries."),
        }
    }
}

impl ClientContext for Guard {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::log::forward(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.on_error(&error, reason);
    }
}

impl ConsumerContext for Guard {}

#[cfg(test)]
mod tests {
    use super::*;

    /// TLS, the SASL mechanisms managed Kafka services use, and every compression codec a
    /// producer may have chosen are compiled into librdkafka.
    #[test]
    fn librdkafka_is_built_with_tls_scram_oauthbearer_and_every_codec() {
        let native = ClientConfig::new().create_native_config().expect("config");
        let features = native.get("builtin.features").expect("builtin.features");
        let have: Vec<&str> = features.split(',').collect();
        for f in [
            "ssl",
            "sasl_scram",
            "sasl_oauthbearer",
            "zstd",
            "lz4",
            "snappy",
            "gzip",
        ] {
            assert!(have.contains(&f), "librdkafka lacks {f}: {features}");
        }
    }

    fn kafka_config() -> KafkaConfig {
        serde_json::from_value(serde_json::json!({
            "brokers": "b:9093", "group_id": "g", "client_id": "c",
            "auto_offset_reset": "earliest", "session_timeout": "45s", "commit_interval": "1s",
            "max_prefetch": "64MiB", "input_encoding": "json", "output_encoding": "json",
            "delivery": "at-least-once", "partitioner": "murmur2_random",
            "embedded_partitions": 3,
            "topics": {"clickstream": "a", "purchases": "b", "surveys": "c", "segments": "d",
                "churn_risk": "e", "milestones": "f", "profiles": "g", "dead_letter": "h",
                "repartition": "i"},
        }))
        .expect("a KafkaConfig")
    }

    /// librdkafka refuses a consumer of the KIP-848 protocol given a session timeout or an
    /// assignment strategy (both are the broker's there); each protocol's settings make one.
    #[test]
    fn the_group_consumer_is_made_under_either_protocol() {
        for protocol in [GroupProtocol::Classic, GroupProtocol::Consumer] {
            let mut kafka = kafka_config();
            kafka.group_protocol = protocol;
            let made: Result<rdkafka::consumer::BaseConsumer, _> = consumer(&kafka).create();
            assert!(made.is_ok(), "{protocol:?}: {:?}", made.err());
        }
    }

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let mut kafka = kafka_config();
        for (k, v) in [
            ("sasl.password", "p1"),
            ("ssl.key.password", "p2"),
            ("sasl.oauthbearer.client.secret", "p3"),
            ("ssl.key.pem", "p4"),
            ("sasl.username", "pulse"),
            ("security.protocol", "sasl_ssl"),
        ] {
            kafka.librdkafka.insert(k.into(), v.into());
        }
        let shown = redacted(&kafka);
        for k in [
            "sasl.password",
            "ssl.key.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
        ] {
            assert_eq!(shown.librdkafka[k], "<redacted>", "{k}");
        }
        assert_eq!(shown.librdkafka["sasl.username"], "pulse");
        assert_eq!(shown.librdkafka["security.protocol"], "sasl_ssl");
        // Every client made from it still gets the real values.
        assert_eq!(consumer(&kafka).get("sasl.password"), Some("p1"));
    }
}
