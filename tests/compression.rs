//! Input written by producers that compress: every codec a Kafka producer may choose (zstd,
//! lz4, snappy, gzip) is read and applied, on Apache Kafka, which stores the batches as the
//! producer compressed them.

use pulse::Running;
use pulse_tests::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureProducer;
use std::time::Duration;

const CODECS: [&str; 4] = ["zstd", "lz4", "snappy", "gzip"];
/// Records per codec, sent as one batch each (linger), so each batch is compressed.
const PER_CODEC: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_input_compressed_with_every_codec_is_applied() {
    let cfg = tokio::task::spawn_blocking(|| on_kafka("compression"))
        .await
        .expect("Kafka starts");
    let brokers = cfg.kafka.brokers.clone();
    let topic = cfg.kafka.topics.clickstream.clone();
    let running = Running::start(cfg).await.expect("pulse starts");
    let now = pulse_kafka::wall_clock_ms();
    for (c, codec) in CODECS.iter().enumerate() {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("compression.type", *codec)
            .set("linger.ms", "50")
            .create()
            .expect("producer");
        let customer = format!("c-{codec}");
        let sends = (0..PER_CODEC).map(|i| {
            let at = now - 3_600_000 + (c * PER_CODEC + i) as i64 * 1000;
            let value = format!(
                r#"{{"event_id":"{customer}-{i}","customer_id":"{customer}","type":"page_view","timestamp":{at},"url":"/"}}"#
            );
            let producer = producer.clone();
            let (topic, customer) = (topic.clone(), customer.clone());
            async move {
                let p = partition_of(&customer);
                send(&producer, &topic, Some(&customer), p, Some(value.as_bytes()), None).await
            }
        });
        // Sent together, so the producer batches (and compresses) them.
        let handles: Vec<_> = sends.map(tokio::spawn).collect();
        for h in handles {
            h.await.expect("sent");
        }
    }
    let metrics = running.metrics.clone();
    let applied = || {
        metrics
            .input_records
            .with_label_values(&["clickstream"])
            .get()
    };
    let want = (CODECS.len() * PER_CODEC) as u64;
    assert!(
        eventually(Duration::from_secs(60), || applied() == want).await,
        "{} of {want} compressed records applied",
        applied()
    );
    let dead = metrics.dead_letters.with_label_values(&["decode"]).get()
        + metrics.dead_letters.with_label_values(&["schema"]).get();
    assert_eq!(dead, 0);
    for codec in CODECS {
        let id = format!("c-{codec}");
        let events = running
            .state
            .profiles()
            .into_iter()
            .find(|(c, _)| *c == id)
            .map(|(_, p)| p.events_total);
        assert_eq!(events, Some(PER_CODEC as u64), "{codec}");
    }
    running.stop().await.expect("clean stop");
}
