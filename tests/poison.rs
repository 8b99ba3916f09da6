//! Records nobody expects, through the real worker: one larger than the producer's
//! `message.max.bytes` (its dead letter cannot go out whole) and a stream of malformed ones.
//! Each is dead-lettered, the huge one truncated with its size and hash, and the partition
//! keeps up with the good records behind them.

use pulse::Running;
use pulse_events::dead_letter;
use pulse_tests::*;
use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use std::time::Duration;

const HUGE: usize = 1_500_000;
const BAD: usize = 200;
const GOOD: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_record_and_a_stream_of_bad_ones_do_not_stall_the_partition() {
    let cluster = cluster();
    let cfg = config(cluster.bootstrap_servers(), "poison");
    let topics = cfg.kafka.topics.clone();
    let running = Running::start(cfg).await.expect("pulse starts");
    // A producer allowed larger records than Pulse's own (librdkafka's 1,000,000 bytes).
    let big: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", running.brokers.as_str())
        .set("message.max.bytes", "2000000")
        .create()
        .expect("producer");
    let now = pulse_kafka::wall_clock_ms();
    let customer = "c-poison";
    let p = partition_of(customer);
    let huge = vec![b'x'; HUGE];
    let (_, huge_offset) = send(
        &big,
        &topics.clickstream,
        Some(customer),
        p,
        Some(&huge),
        None,
    )
    .await;
    for i in 0..BAD {
        let junk = format!("{{\"event_id\": \"bad-{i}\", \"customer_id\": ");
        send(
            &big,
            &topics.clickstream,
            Some(customer),
            p,
            Some(junk.as_bytes()),
            None,
        )
        .await;
    }
    for i in 0..GOOD {
        let at = now - 3_600_000 + i as i64 * 1000;
        let value = format!(
            r#"{{"event_id":"good-{i}","customer_id":"{customer}","type":"page_view","timestamp":{at},"url":"/"}}"#
        );
        send(
            &big,
            &topics.clickstream,
            Some(customer),
            p,
            Some(value.as_bytes()),
            None,
        )
        .await;
    }
    let held = || {
        running
            .state
            .profiles()
            .into_iter()
            .find(|(c, _)| c == customer)
            .map(|(_, p)| p.events_total)
    };
    assert!(
        eventually(Duration::from_secs(60), || held() == Some(GOOD as u64)).await,
        "the good records behind the bad ones were not applied: {:?}",
        held()
    );
    let letters = read_all(
        running.brokers.as_str(),
        &topics.dead_letter,
        1 + BAD,
        Duration::from_secs(30),
    );
    assert_eq!(
        letters.len(),
        1 + BAD,
        "every bad record dead-lettered once"
    );
    let header =
        |m: &rdkafka::message::OwnedMessage, k: &str| pulse_kafka::header(m, k).map(str::to_owned);
    let cut: Vec<_> = letters
        .iter()
        .filter(|m| header(m, dead_letter::TRUNCATED).is_some())
        .collect();
    assert_eq!(
        cut.len(),
        1,
        "only the huge record's dead letter is truncated"
    );
    let m = cut[0];
    assert_eq!(
        header(m, dead_letter::ERROR_KIND).as_deref(),
        Some("oversized")
    );
    assert_eq!(
        header(m, dead_letter::ORIGINAL_SIZE),
        Some(HUGE.to_string())
    );
    assert_eq!(
        header(m, dead_letter::SOURCE_OFFSET),
        Some(huge_offset.to_string())
    );
    assert_eq!(
        header(m, dead_letter::ORIGINAL_FNV1A).map(|h| h.len()),
        Some(16)
    );
    assert_eq!(
        m.payload().map(<[u8]>::len),
        Some(dead_letter::TRUNCATED_KEEP)
    );
    running.stop().await.expect("clean stop");
}

/// Records of tens of kilobytes, within `worker.max_payload`, arriving while the broker refuses
/// every write of the worker (a DENY ACL on its topics): the task cannot finish a batch, and the
/// records pile up. They stop at `worker.queue_bytes`, not at `queue_capacity` records (which
/// would be 8,192 × 32 KiB = 256 MiB here), and once writes are allowed again every one is
/// applied. Apache Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_large_records_piling_up_stop_at_queue_bytes() {
    const RECORDS: usize = 600;
    const URL: usize = 32 * 1024;
    const BOUND: u64 = 1 << 20;
    let mut cfg = tokio::task::spawn_blocking(|| on_kafka("held-bytes"))
        .await
        .expect("topics created");
    cfg.worker.queue_bytes = pulse_kafka::ByteSize(BOUND);
    cfg.worker.max_payload = pulse_kafka::ByteSize(BOUND / 4);
    // What librdkafka fetches ahead for the whole consumer, on top of the bound.
    cfg.kafka.max_prefetch = pulse_kafka::ByteSize(BOUND);
    let topics = cfg.kafka.topics.clone();
    let running = Running::start(cfg).await.expect("pulse starts");
    assert!(
        eventually(Duration::from_secs(60), || running.health.is_ready()).await,
        "the worker did not become ready"
    );
    let kafka = pulse_testkit::Kafka::shared();
    let writes: Vec<String> = [
        &topics.segments,
        &topics.churn_risk,
        &topics.milestones,
        &topics.profiles,
        &topics.dead_letter,
        &topics.repartition,
    ]
    .into_iter()
    .cloned()
    .collect();
    let acl = |on: bool, writes: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let writes: Vec<&str> = writes.iter().map(String::as_str).collect();
            if on {
                kafka.deny_write(&writes);
            } else {
                kafka.allow_write(&writes);
            }
        })
    };
    acl(true, writes.clone()).await.expect("denied");
    let customer = "c-large";
    let p = partition_of(customer);
    let producer = producer(&kafka.bootstrap);
    let now = pulse_kafka::wall_clock_ms();
    let url = "x".repeat(URL);
    let held = || {
        running
            .metrics
            .held_bytes
            .with_label_values(&[&p.to_string()])
            .get()
    };
    let mut most = 0;
    for i in 0..RECORDS {
        let at = now - 3_600_000 + i as i64 * 1000;
        let value = format!(
            r#"{{"event_id":"large-{i}","customer_id":"{customer}","type":"page_view","timestamp":{at},"url":"{url}"}}"#
        );
        send(
            &producer,
            &topics.clickstream,
            Some(customer),
            p,
            Some(value.as_bytes()),
            None,
        )
        .await;
        most = most.max(held());
    }
    // The worker fetches what it may and waits.
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        most = most.max(held());
    }
    let record = (URL + 256) as i64;
    let ceiling = 2 * BOUND as i64 + record;
    assert!(
        most >= BOUND as i64 / 2,
        "the worker held only {most} bytes while its writes were refused: the bound was not reached"
    );
    assert!(
        most <= ceiling,
        "the worker held {most} bytes of input, over queue_bytes ({BOUND}) plus the prefetch"
    );
    acl(false, writes).await.expect("allowed");
    let applied = || {
        running
            .state
            .profiles()
            .into_iter()
            .find(|(c, _)| c == customer)
            .map(|(_, p)| p.events_total)
    };
    assert!(
        eventually(Duration::from_secs(120), || applied()
            == Some(RECORDS as u64))
        .await,
        "not every record was applied once writes were allowed: {:?}",
        applied()
    );
    assert!(
        eventually(Duration::from_secs(10), || held() == 0).await,
        "the task still holds {} bytes with nothing left to apply",
        held()
    );
    running.stop().await.expect("clean stop");
}
