//! Reading the changelog back through the embedded cluster: a batch counts only once its
//! checkpoint follows, and the reader reaches the end of the partition however the records were
//! batched.

use pulse_engine::Profile;
use pulse_kafka::{encode_checkpoint, encode_profile, read_changelog, BatchTag, EmbeddedCluster};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::Duration;

const TOPIC: &str = "pulse.profiles";

fn tag(generation: u64, batch: u64, next: i64) -> BatchTag {
    BatchTag {
        partition: 0,
        generation,
        batch,
        offsets: [next, -1, -1, -1],
    }
}

fn profile(events: u64) -> Profile {
    Profile {
        first_seen: 1_767_225_600_000,
        last_seen: 1_767_225_600_000 + events as i64,
        events_total: events,
        ..Profile::default()
    }
}

/// Writes `records` in order to partition 0 of the changelog, with linger so that many share a
/// record batch, and reads the partition back.
fn write_and_read(records: &[(Vec<u8>, Vec<u8>)]) -> pulse_kafka::ChangelogContents {
    let cluster = EmbeddedCluster::start(1, &[(TOPIC, 1)]).expect("cluster");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    for (k, v) in records {
        producer
            .send(BaseRecord::to(TOPIC).key(k).payload(v).partition(0))
            .map_err(|(e, _)| e)
            .expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", cluster.bootstrap_servers());
    read_changelog(&client, TOPIC, 0).expect("changelog reads")
}

#[test]
fn a_batch_counts_only_when_its_checkpoint_follows() {
    let (t1, t2) = (tag(1, 1, 10), tag(1, 2, 20));
    let contents = write_and_read(&[
        encode_profile(&t1, "a", &profile(1)),
        encode_profile(&t1, "b", &profile(2)),
        encode_checkpoint(&t1, [Some(5), None, None, None]),
        // The writer died before this batch's checkpoint.
        encode_profile(&t2, "a", &profile(3)),
        encode_profile(&t2, "c", &profile(4)),
    ]);
    assert_eq!(contents.offsets, [10, -1, -1, -1]);
    assert_eq!(contents.frontiers, [Some(5), None, None, None]);
    assert_eq!(contents.generation, 1);
    assert_eq!(contents.profiles.len(), 2);
    assert_eq!(contents.profiles["a"], profile(1));
    assert_eq!(contents.profiles["b"], profile(2));
}

#[test]
fn a_later_generation_does_not_complete_an_earlier_generations_batch() {
    let old = tag(1, 7, 70);
    let new = tag(2, 7, 75);
    let contents = write_and_read(&[
        encode_profile(&tag(1, 6, 60), "a", &profile(1)),
        encode_checkpoint(&tag(1, 6, 60), [None; 4]),
        // Generation 1 died inside batch 7; generation 2 restored from batch 6.
        encode_profile(&old, "a", &profile(99)),
        encode_profile(&new, "a", &profile(2)),
        encode_checkpoint(&new, [None; 4]),
    ]);
    assert_eq!(contents.profiles["a"], profile(2));
    assert_eq!(contents.offsets, [75, -1, -1, -1]);
    assert_eq!(contents.generation, 2);
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
            ));
        }
        records.push(encode_checkpoint(&t, [None; 4]));
    }
    let contents = write_and_read(&records);
    assert_eq!(contents.offsets, [4000, -1, -1, -1]);
    assert_eq!(contents.profiles.len(), 1500);
    assert_eq!(contents.profiles["c-0050"], profile(31));
}

#[test]
fn an_empty_changelog_restores_nothing() {
    let contents = write_and_read(&[]);
    assert!(contents.profiles.is_empty());
    assert_eq!(contents.offsets, [-1; 4]);
    assert_eq!(contents.generation, 0);
}
