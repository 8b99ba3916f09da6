//! Records keyed by something other than their customer id (a session id, or no key at all)
//! land on arbitrary partitions. Pulse forwards them through the repartition topic, keyed by
//! customer id, so that every customer's state lives in exactly one partition and counts every
//! event once. The hop loses nothing: with the default lateness no forwarded record is late
//! (each is judged among the records forwarded from its own source), its outputs name its
//! original coordinates, and a record forwarded again (as after a crash of its source) counts
//! once.

use pulse_events::{Cause, TopicRole};
use pulse_loadgen::{Generator, GeneratorConfig};
use pulse_tests::*;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use std::collections::BTreeMap;
use std::time::Duration;

const DAY: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_records_not_keyed_by_customer_reach_the_partition_that_owns_the_customer() {
    let cluster = cluster();
    forwarded_once_and_on_time(config(cluster.bootstrap_servers(), "repartition")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_records_not_keyed_by_customer_reach_the_partition_that_owns_the_customer() {
    let cfg = tokio::task::spawn_blocking(|| on_kafka("repartition"))
        .await
        .expect("Kafka starts");
    forwarded_once_and_on_time(cfg).await;
}

async fn forwarded_once_and_on_time(cfg: pulse::Config) {
    let brokers = cfg.kafka.brokers.clone();
    let topics = cfg.kafka.topics.clone();
    // Producers partition by key with the Java client's partitioner, as Pulse does by default.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let now = pulse_kafka::wall_clock_ms();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let (mut total, mut misrouted) = (0u64, 0u64);
    // Where each record keyed by something else than its customer was produced, and its id.
    let mut forwarded_at: BTreeMap<(String, i32, i64), String> = BTreeMap::new();
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
        let delivered = producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("delivered");
        let (partition, offset) = (delivered.partition, delivered.offset);
        let event: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        let event_id = event["event_id"].as_str().unwrap().to_owned();
        // Keyed by something else but in its customer's partition all the same, a record is
        // applied where it is: only the others go round.
        let home = pulse_kafka::partition_for(r.key.as_bytes(), PARTITIONS, "murmur2_random");
        let elsewhere = i % 3 != 0 && home != Some(partition);
        if elsewhere {
            forwarded_at.insert((topic.to_owned(), partition, offset), event_id);
        }
        *expected.entry(r.key.clone()).or_default() += 1;
        total += 1;
        misrouted += u64::from(elsewhere);
    }

    // A replay of ten days in seconds, at the shipped lateness of ten minutes: the repartition
    // topic interleaves what the partitions forwarded at their own pace, hours of event time
    // apart, and none of it may be late.
    let running = pulse::Running::start(cfg.clone())
        .await
        .expect("pulse starts");
    let metrics = running.metrics.clone();
    // Each misrouted record is counted twice: where it landed and where it was forwarded to.
    wait_consumed(&metrics, total + misrouted, Duration::from_secs(120)).await;
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
    // Outputs name the cause's original coordinates, never the repartition topic's: where
    // the record lands in the repartition topic depends on the pace of every partition that
    // forwards into it, so an id made from those would differ from run to run (one worker
    // against two gave 45 different ids, the profiles being equal).
    let outputs = read_outputs(&brokers, &topics, 1, Duration::from_secs(10));
    assert!(!outputs.is_empty());
    let mut caused_by_forwarded = 0;
    for (_, o) in &outputs {
        if let Cause::Event {
            topic,
            partition,
            offset,
            event_id,
        } = &o.cause
        {
            assert_ne!(**topic, *topics.repartition, "{o:?}");
            if let Some(id) = forwarded_at.get(&(topic.to_string(), *partition, *offset)) {
                assert_eq!(**id, **event_id, "{o:?}");
                caused_by_forwarded += 1;
            }
        }
    }
    assert!(
        caused_by_forwarded > 0,
        "no output caused by a forwarded record"
    );

    // Every forwarded record sent again, as a source replaying after a crash would: a new
    // worker restores and reads them, and counts none of them twice.
    // Among them, the markers that say how far each partition is: not records to send again.
    let forwarded: Vec<_> = read_all(
        &brokers,
        &topics.repartition,
        usize::MAX,
        Duration::from_secs(5),
    )
    .into_iter()
    .filter(|m| header(m, "pulse.marker").is_none())
    .collect();
    assert_eq!(forwarded.len() as u64, misrouted);
    for m in &forwarded {
        let mut headers = OwnedHeaders::new();
        for h in m.headers().expect("headers").iter() {
            headers = headers.insert(h);
        }
        let again = FutureRecord::<[u8], [u8]>::to(&topics.repartition)
            .partition(m.partition())
            .key(m.key().unwrap())
            .payload(m.payload().unwrap())
            .headers(headers);
        producer
            .send(again, Duration::from_secs(10))
            .await
            .expect("delivered");
    }
    let running = pulse::Running::start(cfg).await.expect("pulse starts");
    let again = running.metrics.clone();
    assert!(
        eventually(Duration::from_secs(90), || again.skipped_records.get()
            >= misrouted)
        .await,
        "{} of {misrouted} repeats skipped",
        again.skipped_records.get()
    );
    let after = running.state.profiles();
    running.stop().await.expect("clean stop");
    assert_eq!(
        counter_total(&again.input_events),
        0,
        "a repeat was applied"
    );
    for (id, p) in &after {
        assert_eq!(Some(&p.events_total), expected.get(id), "events of {id}");
    }
}
