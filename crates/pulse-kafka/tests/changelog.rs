//! Reading the changelog back through a broker: the reader reaches the end of a partition
//! however the records were batched, and on Apache Kafka a log its cleaner really compacted
//! restores every customer.

use pulse_engine::Profile;
use pulse_kafka::{
    encode_checkpoint, encode_profile, read_changelog, BatchTag, Checkpoint, Contents,
    EmbeddedCluster,
};
use pulse_testkit::{namespace, Kafka};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant};

const TOPIC: &str = "pulse.profiles";

fn tag(generation: u64, batch: u64, next: i64) -> BatchTag {
    BatchTag {
        partition: 0,
        generation,
        batch,
        offsets: [next, -1, -1, -1],
        layout: 0,
    }
}

fn checkpoint(t: BatchTag) -> (Vec<u8>, Vec<u8>) {
    encode_checkpoint(&Checkpoint {
        tag: t,
        ..Checkpoint::default()
    })
}

fn profile(events: u64) -> Profile {
    Profile {
        first_seen: 1_767_225_600_000,
        last_seen: 1_767_225_600_000 + events as i64,
        events_total: events,
        ..Profile::default()
    }
}

fn client(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// Writes `records` in order to partition 0 of `topic`, with linger so that many share a record
/// batch (`None` values are tombstones).
fn write(brokers: &str, topic: &str, records: &[(Vec<u8>, Option<Vec<u8>>)]) {
    let producer: BaseProducer = client(brokers)
        .set("linger.ms", "20")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for (k, v) in records {
        let mut r = BaseRecord::<[u8], [u8]>::to(topic).key(k).partition(0);
        if let Some(v) = v {
            r = r.payload(v);
        }
        producer.send(r).map_err(|(e, _)| e).expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
}

fn write_and_read(records: &[(Vec<u8>, Vec<u8>)]) -> Contents {
    let cluster = EmbeddedCluster::start(1, &[(TOPIC, 1)]).expect("cluster");
    let records: Vec<_> = records
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    write(cluster.bootstrap_servers(), TOPIC, &records);
    read_changelog(&client(cluster.bootstrap_servers()), TOPIC, 0, None).expect("changelog reads")
}

#[test]
fn the_reader_reaches_the_end_of_a_long_partition() {
    let mut records = Vec::new();
    for b in 1..=40u64 {
        let t = tag(1, b, b as i64 * 100);
        for i in 0..50 {
            records.push(encode_profile(
                &t,
                &format!("c-{:04}", (b * 50 + i) % 1500),
                &profile(b),
                &[],
            ));
        }
        records.push(checkpoint(t));
    }
    let contents = write_and_read(&records);
    assert_eq!(contents.checkpoint.tag.offsets, [4000, -1, -1, -1]);
    assert_eq!(contents.profiles.len(), 1500);
    assert_eq!(contents.profiles["c-0050"], profile(31));
    assert!(contents.ahead.is_empty());
}

#[test]
fn an_empty_changelog_restores_nothing() {
    let contents = write_and_read(&[]);
    assert!(contents.profiles.is_empty());
    assert_eq!(contents.checkpoint.tag.offsets, [-1; 4]);
    assert_eq!(contents.next_generation, 1);
}

/// The compaction case on the real thing: profile a in batch 1, profile b in batch 2, each
/// batch closed by a checkpoint under the generation's key. Kafka's cleaner removes batch 1's
/// checkpoint; a is still restored.
#[test]
fn a_log_kafkas_cleaner_compacted_restores_every_customer() {
    let kafka = Kafka::shared();
    let topic = format!("{}.profiles", namespace("compaction"));
    kafka.create_topics_with(&[(
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )]);
    let some = |(k, v): (Vec<u8>, Vec<u8>)| (k, Some(v));
    write(
        &kafka.bootstrap,
        &topic,
        &[
            some(encode_profile(&tag(1, 1, 10), "a", &profile(1), &[])),
            some(checkpoint(tag(1, 1, 10))),
            some(encode_profile(&tag(1, 2, 20), "b", &profile(2), &[])),
            some(checkpoint(tag(1, 2, 20))),
        ],
    );
    // A record after `segment.ms` rolls the segment, so the cleaner may take the first one.
    std::thread::sleep(Duration::from_millis(300));
    write(&kafka.bootstrap, &topic, &[(b"\xffroll".to_vec(), None)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let consumer: BaseConsumer = client(&kafka.bootstrap).create().expect("consumer");
    loop {
        let c = read_changelog(&client(&kafka.bootstrap), &topic, 0, None).expect("reads");
        let (_, high) = consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(5))
            .expect("watermarks");
        if (c.records as i64) < high {
            assert_eq!(
                c.records, 4,
                "the cleaner left more than batch 1's checkpoint"
            );
            assert_eq!(c.profiles.len(), 2);
            assert_eq!(c.profiles["a"], profile(1));
            assert_eq!(c.profiles["b"], profile(2));
            assert_eq!(c.checkpoint.tag.offsets, [20, -1, -1, -1]);
            return;
        }
        assert!(Instant::now() < deadline, "the cleaner did not run");
        std::thread::sleep(Duration::from_millis(500));
    }
}
