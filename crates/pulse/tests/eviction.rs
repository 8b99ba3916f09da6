//! `engine.evict_after` with the real binary on Apache Kafka: a customer quiet that long is
//! evicted (counted, tombstoned in the changelog, answered as evicted), stays gone when another
//! worker restores the partition, and starts over when they come back.

mod common;

use common::cluster::*;
use common::*;
use pulse_events::time::DAY;
use pulse_events::{Encoding, RawEvent, RawTimestamp, TopicRole};
use pulse_loadgen::{encode_raw, Record};
use pulse_testkit::http_get;
use rdkafka::Message;
use serde_json::Value;
use std::time::Duration;

const START: i64 = 1_767_225_600_000; // 2026-01-01

fn partition_of(key: &str) -> i32 {
    pulse_kafka::partition_for(key.as_bytes(), PARTITIONS, "murmur2_random").expect("partition")
}

fn page_view(customer: &str, ts: i64, n: usize) -> Record {
    let raw = RawEvent {
        event_id: Some(format!("{customer}-{n}").into()),
        customer_id: Some(customer.into()),
        kind: Some("page_view".into()),
        timestamp: Some(RawTimestamp::rfc3339(ts)),
        url: Some("/".into()),
        ..RawEvent::default()
    };
    Record {
        topic: TopicRole::Clickstream,
        key: customer.to_owned(),
        timestamp: ts,
        value: encode_raw(&raw, Encoding::Json),
        encoding: Encoding::Json,
        expect: None,
    }
}

fn produce(cluster: &Cluster, records: &[Record]) -> Ends {
    let keyed: Vec<(String, &Record)> = records.iter().map(|r| (r.key.clone(), r)).collect();
    cluster.produce(&keyed, partition_of)
}

fn customer(worker: &Proc, id: &str) -> (u16, Value) {
    let (status, body) = http_get(&worker.addr, &format!("/v1/customers/{id}")).expect("answer");
    (status, serde_json::from_str(&body).expect("JSON"))
}

/// Waits for the group's commits to reach `ends` on every partition that has records.
fn caught_up(cluster: &Cluster, ends: &Ends) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for (topic, end) in ends {
        loop {
            let committed = cluster.committed(topic);
            if committed.iter().zip(end).all(|(c, e)| *e == 0 || c >= e) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{topic}: {committed:?} of {end:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn kafka_a_customer_quiet_for_evict_after_is_evicted_tombstoned_and_starts_over() {
    let cluster = Cluster::start(Kind::Kafka, "eviction");
    let quiet = "c-quiet";
    let p = partition_of(quiet);
    // A customer of the same partition who stays active, so its event time moves on.
    let busy = (0..)
        .map(|i| format!("c-busy-{i}"))
        .find(|c| partition_of(c) == p)
        .unwrap();
    let mut records = vec![page_view(quiet, START, 0)];
    records.extend((0..40).map(|d| page_view(&busy, START + d * DAY + 60_000, d as usize)));
    let ends = produce(&cluster, &records);

    let mut env = cluster.env();
    for (k, v) in [
        ("PULSE__ENGINE__TIME_HORIZON", "20d"),
        ("PULSE__ENGINE__EVICT_AFTER", "30d"),
        // Event time only: no idle advance to the wall clock.
        ("PULSE__WORKER__IDLE_TIMEOUT", "1h"),
    ] {
        env.push((k.into(), v.into()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut first = start(&env);
    caught_up(&cluster, &ends);
    let (status, body) = customer(&first, quiet);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["evicted"], true, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("evicted"),
        "{body}"
    );
    assert_eq!(customer(&first, &busy).0, 200);
    let (_, scrape) = http_get(&first.addr, "/metrics").expect("metrics");
    assert_eq!(metric_sum(&scrape, "pulse_evicted_customers_total"), 1.0);
    stop_cleanly(&mut first);

    // The changelog ends the customer with a tombstone (their profile before it, if a batch
    // wrote one before the eviction and the cleaner has not removed it yet), or holds nothing
    // of them once the cleaner has removed the tombstone too (the test changelog keeps
    // tombstones 100 ms). Without the tombstone, compaction would keep their last profile.
    let records = cluster.read_all("pulse.profiles");
    let theirs: Vec<bool> = records
        .iter()
        .filter(|m| m.key() == Some(quiet.as_bytes()))
        .map(|m| m.payload().is_none())
        .collect();
    assert_ne!(theirs.last(), Some(&false), "{theirs:?}");

    // Another worker restores the partition without them; when they come back they are new.
    let mut second = start(&env);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while customer(&second, &busy).0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the partition was not restored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = customer(&second, quiet);
    assert_eq!(status, 404, "restored without the evicted customer: {body}");
    let back = START + 45 * DAY;
    let more = produce(&cluster, &[page_view(quiet, back, 99)]);
    let ends: Ends = ends
        .iter()
        .zip(&more)
        .map(|((topic, a), (_, b))| (*topic, a.iter().zip(b).map(|(x, y)| x + y).collect()))
        .collect();
    caught_up(&cluster, &ends);
    let (status, body) = customer(&second, quiet);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fields"]["events_total"], 1, "{body}");
    assert_eq!(
        body["fields"]["first_seen"],
        pulse_events::time::format_rfc3339(back).as_str(),
        "{body}"
    );
    stop_cleanly(&mut second);
}
