//! Test and benchmark support: the real components Pulse is shown against. Apache Kafka (KRaft
//! nodes from the jars `make kafka` resolves, on loopback ports, with ACLs, TLS and SASL when
//! asked for), a real Prometheus server and a real headless browser, each started on free
//! ports and stopped when dropped.

mod browser;
mod kafka;
mod prometheus;

pub use browser::Browser;
pub use kafka::{kafka_libs, kafka_version, namespace, Kafka, KafkaBuilder, Secured};
pub use prometheus::{http_get, Prometheus};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::process::Command;
use std::time::{Duration, Instant};

/// Assigns partitions `0..partitions` of every topic to `consumer`, from the beginning.
pub fn assign_from_beginning(consumer: &BaseConsumer, topics: &[&str], partitions: i32) {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
}

/// Hands `record` to the producer, polling while its local queue is full.
pub fn send_waiting<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>)
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
        }
    }
}

/// A topic to create: its name, partition count and topic configuration.
pub type TopicSpec<'a> = (&'a str, i32, &'a [(&'a str, &'a str)]);

/// An admin client of the cluster at `bootstrap`.
pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// Creates `(name, partitions, configs)` topics with `replication` replicas each, and waits
/// until every partition has a leader, so a client's first request finds them.
pub fn create_topics(bootstrap: &str, replication: i32, topics: &[TopicSpec<'_>]) {
    let admin = admin(bootstrap);
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, partitions, configs)| {
            configs.iter().fold(
                NewTopic::new(t, *partitions, TopicReplication::Fixed(replication)),
                |n, (k, v)| n.set(k, v),
            )
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt
        .block_on(admin.create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (t, partitions, _) in topics {
        loop {
            let led = admin
                .inner()
                .fetch_metadata(Some(t), Duration::from_secs(5))
                .ok()
                .and_then(|m| {
                    m.topics().first().map(|topic| {
                        topic.error().is_none()
                            && topic.partitions().len() == *partitions as usize
                            && topic.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
                .unwrap_or(false);
            if led {
                break;
            }
            assert!(Instant::now() < deadline, "topic {t} has no leaders");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Sends `sig` (`-STOP`, `-KILL`, ...) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success(), "kill {sig} {pid} failed");
}
