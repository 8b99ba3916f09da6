//! Producing generated traffic into Kafka at a steady rate: the embedded demo's source and
//! `pulse generate`'s sink.

use pulse_kafka::TopicNames;
use pulse_loadgen::Record;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::watch;

/// A producer for generated traffic, keying records to partitions with `partitioner` (a
/// librdkafka partitioner name; `murmur2_random` is the Java client's default).
pub fn traffic_producer(brokers: &str, partitioner: &str) -> Result<FutureProducer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "pulse-generate")
        .set("partitioner", partitioner)
        .set("linger.ms", "10")
        .set("acks", "all")
        .create()
}

/// Sends `records` at `rate` records per second (0: as fast as the broker takes them) until
/// they run out or `stop` turns true. Returns how many were acknowledged.
pub async fn produce_records(
    producer: &FutureProducer,
    topics: &TopicNames,
    records: impl Iterator<Item = Record>,
    rate: u32,
    stop: watch::Receiver<bool>,
) -> Result<u64, KafkaError> {
    let mut in_flight: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut acked = 0u64;
    let mut failed: Option<KafkaError> = None;
    let tick = Duration::from_millis(10);
    let per_tick = f64::from(rate) * tick.as_secs_f64();
    let mut budget = 0.0;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut records = records.peekable();
    while records.peek().is_some() && !*stop.borrow() {
        if rate > 0 {
            interval.tick().await;
            budget += per_tick;
        } else {
            budget = 1024.0;
            tokio::task::yield_now().await;
        }
        while budget >= 1.0 {
            let Some(r) = records.next() else { break };
            budget -= 1.0;
            let headers = OwnedHeaders::new().insert(Header {
                key: "content-type",
                value: Some(r.encoding.content_type()),
            });
            // The record timestamp is the event time, as a well-behaved producer would set it.
            let mut rec = FutureRecord::to(topics.input(r.topic))
                .key(&r.key)
                .payload(&r.value)
                .headers(headers)
                .timestamp(r.timestamp);
            loop {
                match producer.send_result(rec) {
                    Ok(f) => {
                        in_flight.push_back(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(e),
                }
            }
            // Bound what is held in memory: settle the oldest deliveries as we go.
            while in_flight.len() > 50_000 {
                if let Some(f) = in_flight.pop_front() {
                    settle(f, &mut acked, &mut failed).await;
                }
            }
        }
    }
    while let Some(f) = in_flight.pop_front() {
        settle(f, &mut acked, &mut failed).await;
    }
    let _ = producer.flush(Duration::from_secs(10));
    match failed {
        Some(e) if acked == 0 => Err(e),
        Some(e) => {
            tracing::warn!(error = %e, acked, "Some generated records were not delivered.");
            Ok(acked)
        }
        None => Ok(acked),
    }
}

async fn settle(f: DeliveryFuture, acked: &mut u64, failed: &mut Option<KafkaError>) {
    match f.await {
        Ok(Ok(_)) => *acked += 1,
        Ok(Err((e, _))) => *failed = Some(e),
        Err(_) => *failed = Some(KafkaError::Canceled),
    }
}
