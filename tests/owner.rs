//! The changelog names the worker that holds each partition (for the query API's answer
//! about a customer held elsewhere), also when a partition changes hands while no traffic
//! arrives: the new owner announces itself as soon as it has restored the partition.

use pulse::Running;
use pulse_kafka::partition_owner;
use pulse_tests::*;
use std::time::Duration;

/// The owner the changelog names for every partition, looked up off the runtime.
async fn owners(kafka: &pulse_kafka::KafkaConfig) -> Vec<Option<String>> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        (0..PARTITIONS)
            .map(|p| partition_owner(&kafka, p, Duration::from_secs(2)).expect("owner lookup"))
            .collect()
    })
    .await
    .expect("lookup thread")
}

/// Polls until every partition names `owner`; the last answer on timeout.
async fn until_all_named(
    kafka: &pulse_kafka::KafkaConfig,
    owner: &str,
) -> Result<(), Vec<Option<String>>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let named = owners(kafka).await;
        if named.iter().all(|o| o.as_deref() == Some(owner)) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(named);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_partition_names_its_new_owner() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers().to_owned();
    let mut cfg = config(&brokers, "owner");
    cfg.http.advertise = "http://first.example:9898".into();
    let kafka = cfg.kafka.clone();
    let topics = kafka.topics.clone();

    // The first worker processes a record on every partition, then leaves.
    let first = Running::start(cfg.clone()).await.expect("pulse starts");
    let producer = producer(&brokers);
    let now = pulse_kafka::wall_clock_ms();
    for p in 0..PARTITIONS {
        let customer = (0..)
            .map(|i| format!("c-{i}"))
            .find(|c| partition_of(c) == p)
            .unwrap();
        let event = format!(
            r#"{{"event_id":"e-{p}","type":"signup","customer_id":"{customer}","timestamp":"{}"}}"#,
            pulse_events::time::format_rfc3339(now)
        );
        send(
            &producer,
            &topics.clickstream,
            Some(&customer),
            p,
            Some(event.as_bytes()),
            None,
        )
        .await;
    }
    wait_consumed(&first.metrics, PARTITIONS as u64, Duration::from_secs(60)).await;
    assert_eq!(
        first.state.customers(),
        PARTITIONS as usize,
        "dead letters: {}",
        counter_total(&first.metrics.dead_letters)
    );
    until_all_named(&kafka, "http://first.example:9898")
        .await
        .expect("the first worker is named");
    first.stop().await.expect("clean stop");

    // Another worker takes the partitions over; nothing more is produced to the inputs, yet
    // the changelog soon names it.
    cfg.http.advertise = "http://second.example:9898".into();
    let second = Running::start(cfg).await.expect("pulse starts");
    until_all_named(&kafka, "http://second.example:9898")
        .await
        .expect("the second worker is named");
    assert_eq!(counter_total(&second.metrics.input_records), 0);
    // Its state is the first worker's, restored: one customer per partition.
    assert_eq!(
        second.state.customers(),
        PARTITIONS as usize,
        "restored {} profiles",
        second.metrics.restored_profiles.get()
    );
    second.stop().await.expect("clean stop");
}
