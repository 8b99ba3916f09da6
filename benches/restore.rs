//! Restore rate: how fast a worker reads a partition's state back from the changelog. Fills one
//! changelog partition with realistic profiles (taken from a partition that applied generated
//! traffic), every customer written twice as a long-running worker would, then times
//! `read_changelog` through the embedded cluster and through Apache Kafka, before and after
//! Kafka's log cleaner has compacted the partition. Prints its figures; run with `make bench`.
//!
//! `PULSE_RESTORE_PROFILES` sets how many profiles (default 1,000,000; the embedded cluster,
//! which trims its log, is measured with at most 10,000).

use pulse_events::Encoding;
use pulse_kafka::{
    encode_checkpoint, encode_profile, read_changelog, BatchTag, Checkpoint, EmbeddedCluster,
};
use pulse_testkit::{send_waiting, Kafka};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant};

const TOPIC: &str = "pulse.profiles";
const BATCH: usize = 512;

/// Writes `n` profiles, `rounds` times each, in batches closed by checkpoints.
fn fill(
    bootstrap: &str,
    profiles: &[(String, pulse_engine::Profile)],
    n: usize,
    rounds: usize,
) -> u64 {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("enable.idempotence", "true")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let mut bytes = 0u64;
    let mut send = |key: &[u8], value: &[u8]| {
        bytes += value.len() as u64;
        send_waiting(
            &producer,
            BaseRecord::to(TOPIC).key(key).payload(value).partition(0),
        );
    };
    let customers: Vec<usize> = (0..n).collect();
    let batches = (0..rounds).flat_map(|_| customers.chunks(BATCH));
    for (b, chunk) in batches.enumerate() {
        let tag = BatchTag {
            partition: 0,
            generation: 1,
            batch: b as u64 + 1,
            offsets: [b as i64; 4],
            layout: 0,
        };
        for i in chunk {
            let (_, p) = &profiles[i % profiles.len()];
            let (k, v) = encode_profile(&tag, &format!("c-{i:08}"), p, &[]);
            send(&k, &v);
        }
        let (k, v) = encode_checkpoint(&Checkpoint {
            tag,
            frontiers: [Some(1_767_225_600_000); 4],
            ..Checkpoint::default()
        });
        send(&k, &v);
    }
    producer.flush(Duration::from_secs(120)).expect("flushed");
    bytes
}

/// A record as read: key and value (none for a tombstone).
type Raw = (Vec<u8>, Option<Vec<u8>>);

/// Reads partition 0 of the changelog to its end without decoding, the broker and client
/// alone; returns the seconds and the records, to time decoding them without the broker.
fn bare_read(bootstrap: &str, records: u64) -> (f64, Vec<Raw>) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bare-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("partition");
    c.assign(&tpl).expect("assign");
    let started = Instant::now();
    let mut kept = Vec::with_capacity(records as usize);
    let mut quiet = Instant::now();
    while (kept.len() as u64) < records && quiet.elapsed() < Duration::from_secs(5) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            use rdkafka::Message;
            kept.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().map(<[u8]>::to_vec),
            ));
            quiet = Instant::now();
        }
    }
    (started.elapsed().as_secs_f64(), kept)
}

/// The restore's own work on records already in memory: decoding and keeping the newest per
/// customer (`Restorer`), then building the partition (`Partition::restore`).
fn decode_only(records: &[Raw]) -> (f64, f64) {
    let started = Instant::now();
    let mut r = pulse_kafka::Restorer::new(0);
    for (i, (k, v)) in records.iter().enumerate() {
        r.push(i as i64, k, v.as_deref()).expect("readable");
    }
    let c = r.finish(None).expect("decodable");
    let decoded = started.elapsed().as_secs_f64();
    let engine = std::sync::Arc::new(
        pulse::Config::embedded_default()
            .compile_engine()
            .expect("shipped configuration"),
    );
    let started = Instant::now();
    let p = pulse_engine::Partition::restore(
        engine,
        c.profiles,
        c.checkpoint.frontiers,
        c.checkpoint.population(),
    );
    let built = started.elapsed().as_secs_f64();
    assert!(p.customers() > 0);
    (decoded, built)
}

/// Times a restore of the partition; returns how many records it read.
fn measure(name: &str, bootstrap: &str, n: usize) -> u64 {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    let started = Instant::now();
    let c = read_changelog(&client, TOPIC, 0, None).expect("changelog reads");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(c.profiles.len(), n, "every profile restored");
    let (bare, records) = bare_read(bootstrap, c.records);
    println!(
        "restore/{name}/bare-consumer: the same {} records read without decoding in {bare:.2} s = {:.0} records/s",
        c.records,
        c.records as f64 / bare
    );
    let (decoded, built) = decode_only(&records);
    println!(
        "restore/{name}/in-memory: decoding them {decoded:.2} s ({:.0} records/s), building the partition {built:.2} s ({:.0} profiles/s)",
        records.len() as f64 / decoded,
        n as f64 / built
    );
    println!(
        "restore/{name}: {n} profiles from {} records, {:.1} MB in {secs:.2} s = {:.0} profiles/s ({:.1} MB/s)",
        c.records,
        c.bytes as f64 / 1e6,
        n as f64 / secs,
        c.bytes as f64 / 1e6 / secs,
    );
    c.records
}

/// Lets Kafka's cleaner compact the partition: segments roll every 100 ms from now on, and a
/// record after that rolls the active one. Waits until a restore reads fewer records.
fn compact(kafka: &Kafka, before: u64) {
    use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};
    let admin = pulse_testkit::admin(&kafka.bootstrap);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = AlterConfig::new(ResourceSpecifier::Topic(TOPIC))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "100")
        .set("min.cleanable.dirty.ratio", "0.01");
    rt.block_on(admin.alter_configs(&[config], &AdminOptions::new()))
        .expect("altered")
        .into_iter()
        .for_each(|r| {
            r.expect("topic altered");
        });
    std::thread::sleep(Duration::from_millis(300));
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .create()
        .expect("producer");
    send_waiting(
        &producer,
        BaseRecord::<[u8], [u8]>::to(TOPIC)
            .key(b"\xffroll")
            .partition(0),
    );
    producer.flush(Duration::from_secs(10)).expect("flushed");
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &kafka.bootstrap);
    let deadline = Instant::now() + Duration::from_secs(600);
    while read_changelog(&client, TOPIC, 0, None)
        .expect("reads")
        .records
        > before / 2 + 1_000
    {
        assert!(
            Instant::now() < deadline,
            "the cleaner did not compact the changelog"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: keep that run tiny.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("PULSE_RESTORE_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 1_000_000 } else { 2_000 });
    let w = pulse_benches::Workload::generate(20_000, 30, 200_000, 0, Encoding::Msgpack);
    let profiles: Vec<(String, pulse_engine::Profile)> = w
        .warm
        .profiles()
        .map(|(k, p)| (k.to_owned(), p.clone()))
        .collect();

    // The mock cluster keeps a bounded log per partition and trims older records, so it is
    // measured at a size it holds; the full figure comes from the real broker.
    let mock = EmbeddedCluster::start(1, &[(TOPIC, 1)]).expect("embedded cluster");
    let small = n.min(10_000);
    fill(mock.bootstrap_servers(), &profiles, small, 1);
    measure("embedded", mock.bootstrap_servers(), small);
    drop(mock);

    // Apache Kafka, the cleaner held off (one huge segment) until the first measurement.
    let kafka = Kafka::builder().label("restore-bench").start();
    kafka.create_topics_with(&[(
        TOPIC,
        1,
        &[("cleanup.policy", "delete"), ("retention.ms", "-1")],
    )]);
    let started = Instant::now();
    fill(&kafka.bootstrap, &profiles, n, 2);
    println!(
        "restore/kafka: filling {n} profiles twice took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let before = measure("kafka/uncompacted", &kafka.bootstrap, n);
    compact(&kafka, before);
    measure("kafka/compacted", &kafka.bootstrap, n);
}
