//! `delivery = "exactly-once"` on the embedded cluster, where the broker's answers can be
//! injected: every batch is a transaction; an aborted one is sent again whole; a worker the
//! broker answers "fenced" stops with the reason.
//!
//! The embedded cluster writes no commit or abort markers and does not fence a second producer
//! with the same transactional id; what rests on that (aborted records invisible, a real zombie
//! fenced, each output once across a crash) is shown on Apache Kafka in
//! `crates/pulse/tests/crash.rs`.

use pulse_kafka::Delivery;
use pulse_loadgen::{Generator, GeneratorConfig};
use pulse_tests::*;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::time::Duration;

const DAY: i64 = 86_400_000;

fn eos_config(brokers: &str, group: &str) -> pulse::Config {
    let mut cfg = config(brokers, group);
    cfg.kafka.delivery = Delivery::ExactlyOnce;
    cfg
}

/// Clickstream traffic for a few hundred customers, keyed and partitioned by customer.
async fn produce_traffic(brokers: &str, days: i64) -> u64 {
    let p = producer(brokers);
    let now = pulse_kafka::wall_clock_ms();
    let mut n = 0;
    for r in Generator::new(GeneratorConfig::new(300, 5, now - 30 * DAY, days * DAY))
        .filter(|r| r.topic == pulse_events::TopicRole::Clickstream && r.expect.is_none())
    {
        send(
            &p,
            "clickstream",
            Some(&r.key),
            partition_of(&r.key),
            Some(&r.value),
            None,
        )
        .await;
        n += 1;
    }
    n
}

fn transactions(m: &pulse_telemetry::Metrics, result: &str) -> u64 {
    m.transactions.with_label_values(&[result]).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_is_a_transaction_and_an_aborted_one_is_sent_again() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers().to_owned();
    let total = produce_traffic(&brokers, 10).await;
    // The first transactions fail as a broker answers when it cannot take the partitions
    // (abortable): the batch must be aborted and sent again, not lost.
    cluster
        .request_errors(
            RDKafkaApiKey::AddPartitionsToTxn,
            vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 3],
        )
        .expect("errors injected");
    let running = pulse::Running::start(eos_config(&brokers, "eos"))
        .await
        .expect("pulse starts");
    let metrics = running.metrics.clone();
    wait_consumed(&metrics, total, Duration::from_secs(60)).await;
    running.stop().await.expect("clean stop");
    assert_eq!(counter_total(&metrics.input_records), total);
    assert!(transactions(&metrics, "aborted") > 0, "nothing was aborted");
    assert!(transactions(&metrics, "committed") > 0);
    assert!(counter_total(&metrics.output_events) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_worker_stops_with_the_reason() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers().to_owned();
    produce_traffic(&brokers, 3).await;
    let running = pulse::Running::start(eos_config(&brokers, "fence"))
        .await
        .expect("pulse starts");
    let metrics = running.metrics.clone();
    assert!(
        eventually(Duration::from_secs(60), || transactions(
            &metrics,
            "committed"
        ) > 0)
        .await,
        "no transaction committed"
    );
    // Another worker claimed the partition's transactional id: the broker now answers this
    // worker's next commit with "producer fenced".
    cluster
        .request_errors(
            RDKafkaApiKey::EndTxn,
            vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED; 100],
        )
        .expect("errors injected");
    produce_traffic(&brokers, 3).await;
    assert!(
        eventually(Duration::from_secs(60), || running.worker_finished()).await,
        "the fenced worker kept running"
    );
    let err = running.stop().await.expect_err("stopped by the fence");
    assert!(err.to_string().contains("fenced"), "{err}");
}
