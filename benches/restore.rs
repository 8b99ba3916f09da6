//! Restore rate: how fast a worker reads a partition's state back from the changelog. Fills one
//! changelog partition with realistic profiles (taken from a partition that applied generated
//! traffic), then times `read_changelog` through the embedded cluster and, when installed,
//! through a tansu broker process. Prints its figures; run with `make bench`.
//!
//! `PULSE_RESTORE_PROFILES` sets how many profiles (default 1,000,000; the embedded cluster,
//! which trims its log, is measured with at most 10,000).

use pulse_events::Encoding;
use pulse_kafka::{encode_checkpoint, encode_profile, read_changelog, BatchTag, EmbeddedCluster};
use pulse_testkit::{send_waiting, Tansu};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant};

const TOPIC: &str = "pulse.profiles";
const BATCH: usize = 512;

fn fill(bootstrap: &str, profiles: &[(String, pulse_engine::Profile)], n: usize) -> u64 {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
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
    for (b, chunk) in (0..n).collect::<Vec<_>>().chunks(BATCH).enumerate() {
        let tag = BatchTag {
            partition: 0,
            generation: 1,
            batch: b as u64 + 1,
            offsets: [b as i64; 4],
        };
        for i in chunk {
            let (_, p) = &profiles[i % profiles.len()];
            let (k, v) = encode_profile(&tag, &format!("c-{i:08}"), p);
            send(&k, &v);
        }
        let (k, v) = encode_checkpoint(&tag, [Some(1_767_225_600_000); 4]);
        send(&k, &v);
    }
    producer.flush(Duration::from_secs(120)).expect("flushed");
    bytes
}

/// Reads partition 0 of the changelog to its end without decoding: the broker and client alone.
fn bare_read(bootstrap: &str, n: usize) -> f64 {
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
    let mut seen = 0usize;
    let mut quiet = Instant::now();
    // Profiles plus one checkpoint per batch.
    let total = n + n.div_ceil(BATCH);
    while seen < total && quiet.elapsed() < Duration::from_secs(5) {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
            seen += 1;
            quiet = Instant::now();
        }
    }
    started.elapsed().as_secs_f64()
}

fn measure(name: &str, bootstrap: &str, profiles: &[(String, pulse_engine::Profile)], n: usize) {
    let started = Instant::now();
    let bytes = fill(bootstrap, profiles, n);
    let filled = started.elapsed();
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    let started = Instant::now();
    let c = read_changelog(&client, TOPIC, 0).expect("changelog reads");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(c.profiles.len(), n, "every profile restored");
    let bare = bare_read(bootstrap, n);
    println!("restore/{name}/bare-consumer: the same records read without decoding in {bare:.2} s = {:.0} records/s", n as f64 / bare);
    println!(
        "restore/{name}: {n} profiles, {:.1} MB in {secs:.2} s = {:.0} profiles/s ({:.1} MB/s); filling took {:.1} s",
        bytes as f64 / 1e6,
        n as f64 / secs,
        bytes as f64 / 1e6 / secs,
        filled.as_secs_f64()
    );
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
    measure(
        "embedded",
        mock.bootstrap_servers(),
        &profiles,
        n.min(10_000),
    );
    drop(mock);
    if Tansu::installed() {
        let broker = Tansu::start(&[TOPIC], 1);
        measure("tansu", &broker.bootstrap, &profiles, n);
    } else {
        println!("restore/tansu: skipped, tansu is not installed (make tansu)");
    }
}
