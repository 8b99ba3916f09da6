//! Time enters a partition's state in one documented place: a **live** partition (its newest
//! event at most `worker.live_within` behind the wall clock) whose inputs are all caught up and
//! have been idle for `worker.idle_timeout` moves on by the time that passes, so its timers fire
//! without new events. A partition holding history never does: a replay of last year's
//! records leaves the same state today as tomorrow. A jump of event time rechecks each quiet
//! customer once, however many days it skips.

use pulse::Running;
use pulse_tests::*;
use std::time::Duration;

const DAY: i64 = 86_400_000;

fn page_view(customer: &str, at: i64) -> Vec<u8> {
    format!(
        r#"{{"event_id":"{customer}-{at}","customer_id":"{customer}","type":"page_view","timestamp":{at},"url":"/"}}"#
    )
    .into_bytes()
}

/// A worker on an embedded cluster of its own, configured by `tune`, and a way to send it one
/// page view for a customer, at an event time, on a partition of the clickstream.
struct Worker {
    running: Running,
    producer: rdkafka::producer::FutureProducer,
    topic: String,
    topics: pulse_kafka::TopicNames,
    // Dropped last: the cluster must outlive every client.
    _cluster: pulse_kafka::EmbeddedCluster,
}

impl Worker {
    async fn start(group: &str, tune: impl FnOnce(&mut pulse::Config)) -> Self {
        let cluster = cluster();
        let mut cfg = config(cluster.bootstrap_servers(), group);
        tune(&mut cfg);
        let topic = cfg.kafka.topics.clickstream.clone();
        let topics = cfg.kafka.topics.clone();
        let running = Running::start(cfg).await.expect("pulse starts");
        let producer = producer(running.brokers.as_str());
        Self {
            running,
            producer,
            topic,
            topics,
            _cluster: cluster,
        }
    }

    async fn page_view(&self, customer: &str, partition: i32, at: i64) {
        let value = page_view(customer, at);
        send(
            &self.producer,
            &self.topic,
            Some(customer),
            partition,
            Some(&value),
            None,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_live_partition_moves_on_when_idle() {
    let w = Worker::start("clock", |cfg| {
        cfg.worker.idle_timeout = Duration::from_secs(1)
    })
    .await;
    let shipped = pulse::Config::embedded_default().engine.allowed_lateness;
    let lateness = i64::try_from(shipped.as_millis()).unwrap();
    let now = pulse_kafka::wall_clock_ms();
    // Partition 0: live traffic an hour old. Partition 1: a replay of last year's.
    let (live, history) = (now - 3_600_000, now - 365 * DAY);
    w.page_view("a", 0, live).await;
    w.page_view("b", 1, history).await;

    let watermark = |p: i32| {
        w.running
            .state
            .watermarks()
            .into_iter()
            .find(|(q, _)| *q == p)
            .map(|(_, w)| w)
    };
    assert!(
        eventually(Duration::from_secs(30), || watermark(1).is_some()).await,
        "the record of last year was not applied"
    );
    // The live partition's watermark moves on once it has been idle, by the time that passes
    // from its newest event, not to the wall clock: its producers' records come an hour after
    // their event time, and the next ones must not be late ...
    let moved = live - lateness + 3_000;
    assert!(
        eventually(Duration::from_secs(30), || watermark(0)
            .is_some_and(|w| w >= moved))
        .await,
        "the live partition's watermark stayed at {:?}",
        watermark(0)
    );
    assert!(
        watermark(0).is_some_and(|w| w < now - lateness - 3_000_000),
        "the live partition's watermark jumped to the wall clock: {:?}",
        watermark(0)
    );
    // ... and, idle just as long, the partition of last year's records stays where they left it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(watermark(1), Some(history - lateness));
    w.running.stop().await.expect("clean stop");
}

/// History older than 2000 (the CDNOW log starts in 1997) is replayed by moving
/// `engine.earliest_event_time`; events before it are still rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_earliest_accepted_event_time_is_a_setting() {
    let w = Worker::start("earliest", |cfg| {
        cfg.engine.earliest_event_time = "1997-01-01".into();
    })
    .await;
    let (jan_1997, dec_1996) = (852_076_800_000, 852_076_800_000 - DAY);
    w.page_view("a", 0, jan_1997).await;
    w.page_view("b", 1, dec_1996).await;
    let metrics = w.running.metrics.clone();
    let rejected = || {
        metrics
            .dead_letters
            .with_label_values(&["validation"])
            .get()
    };
    assert!(
        eventually(Duration::from_secs(30), || rejected() == 1).await,
        "the event of 1996 was not rejected"
    );
    let held = |id: &str| w.running.state.profiles().iter().any(|(c, _)| c == id);
    assert!(
        eventually(Duration::from_secs(30), || held("a")).await,
        "the event of 1997 was not applied"
    );
    assert!(!held("b"));
    w.running.stop().await.expect("clean stop");
}

/// One partition's event time jumps a year (a producer's clock set ahead, a backfill): each
/// customer quiet since is rechecked once, at the last daily slot before the new time, not once
/// a day for the year skipped (`engine.max_recheck_gap`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_time_jump_of_a_year_rechecks_each_customer_once() {
    let w = Worker::start("jump", |_| {}).await;
    let base = pulse_kafka::wall_clock_ms() - 500 * DAY;
    let quiet: Vec<String> = (0..20).map(|i| format!("q{i:02}")).collect();
    for (i, c) in quiet.iter().enumerate() {
        w.page_view(c, 0, base + i as i64 * 1000).await;
    }
    w.page_view("z", 0, base + 365 * DAY).await;
    let held = |id: &str| w.running.state.profiles().iter().any(|(c, _)| c == id);
    assert!(
        eventually(Duration::from_secs(30), || held("z")).await,
        "the record a year later was not applied"
    );
    let outputs = read_outputs(
        w.running.brokers.as_str(),
        &w.topics,
        usize::MAX,
        Duration::from_secs(5),
    );
    let mut dues: std::collections::BTreeMap<String, std::collections::BTreeSet<i64>> =
        Default::default();
    for (_, o) in &outputs {
        let timed = matches!(
            o.kind.topic(),
            pulse_events::OutputTopic::Segments | pulse_events::OutputTopic::ChurnRisk
        );
        if let (true, pulse_events::Cause::Timer { due }) = (timed, &o.cause) {
            dues.entry(o.customer_id.clone()).or_default().insert(*due);
        }
    }
    assert_eq!(
        dues.len(),
        quiet.len(),
        "every quiet customer was rechecked: {dues:?}"
    );
    for (c, d) in &dues {
        assert_eq!(d.len(), 1, "{c} was rechecked at {d:?}");
    }
    w.running.stop().await.expect("clean stop");
}
