//! Shared harness for the end-to-end tests: an embedded cluster, a Pulse configured against
//! it on an ephemeral HTTP port, and helpers to produce and read records.

use pulse::Config;
pub use pulse_kafka::header;
use pulse_kafka::EmbeddedCluster;
pub use pulse_telemetry::counter_total;
use pulse_testkit::TopicSpec;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

pub const PARTITIONS: i32 = 3;

/// A mock cluster with Pulse's default topics.
pub fn cluster() -> EmbeddedCluster {
    let cfg = Config::embedded_default();
    let topics: Vec<(&str, i32)> = cfg
        .kafka
        .topics
        .all()
        .iter()
        .map(|t| (*t, PARTITIONS))
        .collect();
    EmbeddedCluster::start(1, &topics).expect("embedded cluster starts")
}

/// The changelog's topic configuration on Kafka: compacted as users are told to create it, and
/// compacted soon (segments roll every 100 ms), so tests restore from logs the cleaner has
/// been at.
pub const COMPACTED: [(&str, &str); 4] = [
    ("cleanup.policy", "compact"),
    ("segment.ms", "100"),
    ("min.cleanable.dirty.ratio", "0.01"),
    ("delete.retention.ms", "100"),
];

/// The default configuration pointed at the shared Apache Kafka node, with Pulse's topics and
/// group in a namespace of this test's own, created there.
pub fn on_kafka(label: &str) -> Config {
    let kafka = pulse_testkit::Kafka::shared();
    let ns = pulse_testkit::namespace(label);
    let mut cfg = config(&kafka.bootstrap, &format!("{ns}.group"));
    let t = &mut cfg.kafka.topics;
    for name in [
        &mut t.clickstream,
        &mut t.purchases,
        &mut t.surveys,
        &mut t.segments,
        &mut t.churn_risk,
        &mut t.milestones,
        &mut t.profiles,
        &mut t.dead_letter,
        &mut t.repartition,
    ] {
        *name = format!("{ns}.{name}");
    }
    let profiles = t.profiles.clone();
    let spec: Vec<TopicSpec<'_>> = t
        .all()
        .into_iter()
        .map(|name| {
            let config: &[(&str, &str)] = if name == profiles { &COMPACTED } else { &[] };
            (name, PARTITIONS, config)
        })
        .collect();
    kafka.create_topics_with(&spec);
    cfg
}

/// The default configuration pointed at `brokers`, with an ephemeral HTTP port.
pub fn config(brokers: &str, group: &str) -> Config {
    let mut cfg = Config::embedded_default();
    cfg.kafka.brokers = brokers.to_owned();
    cfg.kafka.group_id = group.to_owned();
    cfg.http.listen = "127.0.0.1:0".into();
    cfg
}

pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

/// A stable partition for a customer: the input topics are co-partitioned by customer id.
pub fn partition_of(customer: &str) -> i32 {
    let h = customer.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    (h % PARTITIONS as u64) as i32
}

/// Produces one record and returns its (partition, offset).
pub async fn send(
    p: &FutureProducer,
    topic: &str,
    key: Option<&str>,
    partition: i32,
    payload: Option<&[u8]>,
    content_type: Option<&str>,
) -> (i32, i64) {
    let mut rec: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).partition(partition);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    if let Some(v) = payload {
        rec = rec.payload(v);
    }
    if let Some(ct) = content_type {
        rec = rec.headers(OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some(ct),
        }));
    }
    let d = p
        .send(rec, Duration::from_secs(10))
        .await
        .expect("delivered");
    (d.partition, d.offset)
}

/// Reads every record of `topic` from the beginning until `expected` are read or `timeout`.
pub fn read_all(
    brokers: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    read_topics(brokers, &[topic], expected, timeout)
}

/// [`read_all`] over several topics together.
pub fn read_topics(
    brokers: &str,
    topics: &[&str],
    expected: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("reader-{}-{}", topics.join("+"), std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    pulse_testkit::assign_from_beginning(&c, topics, PARTITIONS);
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < expected && start.elapsed() < timeout {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push(m.detach());
        }
    }
    // Anything beyond `expected` would be a duplicate: give it a moment to show up.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(500) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(m.detach());
        }
    }
    out
}

/// Every record of the three output topics, decoded, with its key: `expected` in all, then a
/// moment for duplicates to show.
pub fn read_outputs(
    brokers: &str,
    topics: &pulse_kafka::TopicNames,
    expected: usize,
    timeout: Duration,
) -> Vec<(Option<String>, pulse_events::OutputEvent)> {
    let names = [
        topics.milestones.as_str(),
        topics.segments.as_str(),
        topics.churn_risk.as_str(),
    ];
    read_topics(brokers, &names, expected, timeout)
        .iter()
        .map(|m| {
            let o = pulse_events::OutputEvent::decode(
                m.payload().unwrap_or_default(),
                pulse_events::Encoding::Json,
            )
            .expect("output decodes");
            (m.key().map(|k| String::from_utf8_lossy(k).into_owned()), o)
        })
        .collect()
}

/// The group's committed offset per partition of `topic`.
pub fn committed(brokers: &str, group: &str, topic: &str) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..PARTITIONS)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

/// Waits until `done` holds, polling; false on timeout.
pub async fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

/// Waits until the worker has counted `n` input records (it counts one only once everything the
/// record caused is acknowledged), failing the test after `timeout`.
pub async fn wait_consumed(metrics: &pulse_telemetry::Metrics, n: u64, timeout: Duration) {
    assert!(
        eventually(timeout, || counter_total(&metrics.input_records) >= n).await,
        "worker consumed {} of {n}",
        counter_total(&metrics.input_records)
    );
}
