//! Producing generated traffic into Kafka at a steady rate: the embedded demo's source and
//! `pulse generate`'s sink.

use pulse_kafka::clients::{Fatal, Guard};
use pulse_kafka::{KafkaConfig, KafkaError, TopicNames};
use pulse_loadgen::Record;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::watch;

/// The producer of generated traffic, configured from `[kafka]` as every Pulse client is
/// (`kafka.partitioner` keys records to partitions, `[kafka.librdkafka]` applies), and what it
/// reported that no retry fixes.
pub struct TrafficProducer {
    producer: FutureProducer<Guard>,
    fatal: Fatal,
}

impl std::fmt::Debug for TrafficProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficProducer").finish_non_exhaustive()
    }
}

pub fn traffic_producer(kafka: &KafkaConfig) -> Result<TrafficProducer, KafkaError> {
    let config = pulse_kafka::clients::traffic(kafka);
    let guard = Guard::for_client(&config);
    let fatal = guard.fatal.clone();
    let producer = config
        .create_with_context(guard)
        .map_err(|source| KafkaError::Client {
            role: "traffic producer",
            source,
        })?;
    Ok(TrafficProducer { producer, fatal })
}

/// Sends `records` at `rate` records per second (0: as fast as the broker takes them) until
/// they run out or `stop` turns true. Returns how many were acknowledged. Stops with the reason
/// if the brokers refuse the client (credentials, TLS).
pub async fn produce_records(
    producer: &TrafficProducer,
    topics: &TopicNames,
    records: impl Iterator<Item = Record>,
    rate: u32,
    stop: watch::Receiver<bool>,
) -> Result<u64, KafkaError> {
    let TrafficProducer { producer, fatal } = producer;
    let mut in_flight: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut acked = 0u64;
    let mut failed: Option<RdError> = None;
    let tick = Duration::from_millis(10);
    let per_tick = f64::from(rate) * tick.as_secs_f64();
    let mut budget = 0.0;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut records = records.peekable();
    while records.peek().is_some() && !*stop.borrow() {
        if let Some(e) = fatal.take() {
            return Err(e);
        }
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
                    Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        if let Some(e) = fatal.take() {
                            return Err(e);
                        }
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((source, _)) => {
                        return Err(KafkaError::Client {
                            role: "traffic producer",
                            source,
                        })
                    }
                }
            }
            // Bound what is held in memory: settle the oldest deliveries as we go.
            while in_flight.len() > 50_000 {
                if let Some(f) = in_flight.pop_front() {
                    settle(f, &mut acked, &mut failed, fatal).await?;
                }
            }
        }
    }
    while let Some(f) = in_flight.pop_front() {
        settle(f, &mut acked, &mut failed, fatal).await?;
    }
    let _ = producer.flush(Duration::from_secs(10));
    if let Some(e) = fatal.take() {
        return Err(e);
    }
    match failed {
        Some(source) if acked == 0 => Err(KafkaError::Client {
            role: "traffic producer",
            source,
        }),
        Some(e) => {
            tracing::warn!(error = %e, acked, "Some generated records were not delivered.");
            Ok(acked)
        }
        None => Ok(acked),
    }
}

/// Waits for one delivery, giving up at once if the client reported an error no retry fixes
/// (a delivery would otherwise wait out `message.timeout.ms`).
async fn settle(
    f: DeliveryFuture,
    acked: &mut u64,
    failed: &mut Option<RdError>,
    fatal: &Fatal,
) -> Result<(), KafkaError> {
    tokio::pin!(f);
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            delivered = &mut f => {
                match delivered {
                    Ok(Ok(_)) => *acked += 1,
                    Ok(Err((e, _))) => *failed = Some(e),
                    Err(_) => *failed = Some(RdError::Canceled),
                }
                return Ok(());
            }
            _ = check.tick() => {
                if let Some(e) = fatal.take() {
                    return Err(e);
                }
            }
        }
    }
}
