//! Records keyed by something other than their customer id (a session id, or no key at all)
//! land on arbitrary partitions. Pulse forwards them through the repartition topic, keyed by
//! customer id, so that every customer's state lives in exactly one partition and counts every
//! event once.

use pulse_events::TopicRole;
use pulse_loadgen::{Generator, GeneratorConfig};
use pulse_tests::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::time::Duration;

const DAY: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_not_keyed_by_customer_reach_the_partition_that_owns_the_customer() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers().to_owned();
    let mut cfg = config(&brokers, "repartition");
    // This replays ten days in seconds: the repartition topic merges what several partitions
    // forwarded, batch by batch, so its records arrive hours of event time out of order. Live,
    // the detour takes milliseconds; here lateness is widened so that only routing is tested.
    cfg.engine.allowed_lateness = Duration::from_secs(60 * 86_400);
    let topics = cfg.kafka.topics.clone();
    // Producers partition by key with the Java client's partitioner, as Pulse does by default.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let now = pulse_kafka::wall_clock_ms();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let (mut total, mut misrouted) = (0u64, 0u64);
    for (i, r) in Generator::new(GeneratorConfig::new(200, 9, now - 20 * DAY, 10 * DAY))
        .filter(|r| r.expect.is_none() && r.topic != TopicRole::Surveys)
        .enumerate()
    {
        let topic = topics.input(r.topic);
        let session_key = format!("session-{}", i % 97);
        let record = FutureRecord::<str, [u8]>::to(topic).payload(&r.value);
        // A third keyed by customer, a third by a session id, a third with no key.
        let record = match i % 3 {
            0 => record.key(&r.key),
            1 => record.key(&session_key),
            _ => record,
        };
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("delivered");
        *expected.entry(r.key.clone()).or_default() += 1;
        total += 1;
        misrouted += u64::from(i % 3 != 0);
    }

    let running = pulse::Running::start(cfg).await.expect("pulse starts");
    let metrics = running.metrics.clone();
    // Each misrouted record is counted twice: where it landed and where it was forwarded to.
    wait_consumed(&metrics, total + misrouted, Duration::from_secs(90)).await;
    let profiles = running.state.profiles();
    running.stop().await.expect("clean stop");

    assert_eq!(metrics.repartitioned_records.get(), misrouted);
    let late = metrics.dead_letters.with_label_values(&["late"]).get();
    assert_eq!(
        counter_total(&metrics.dead_letters),
        0,
        "dead letters, {late} of them late"
    );
    // One profile per customer, across all partitions, with every event counted once.
    assert_eq!(
        profiles.len(),
        expected.len(),
        "a customer's state in two partitions"
    );
    for (id, p) in &profiles {
        assert_eq!(Some(&p.events_total), expected.get(id), "events of {id}");
    }
}
