//! Producing outputs and dead letters, and waiting until the broker has acknowledged every one
//! of them. A record the broker refuses is sent again with backoff until it is acknowledged:
//! the caller stores input offsets only after that, so nothing is committed past an output that
//! was not produced.

use pulse_events::{Encoding, OutputEvent};
use pulse_telemetry::Metrics;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::Message;
use std::time::Duration;
use tokio::sync::watch;

use crate::config::TopicNames;

/// Metric label of changelog records.
const CHANGELOG: &str = "changelog";

/// Every topic-role label of produce failures.
pub(crate) const LABELS: [&str; 4] = ["output", "dead_letter", "repartition", CHANGELOG];

/// Header naming the input a forwarded record came from (`clickstream`, `purchases`,
/// `surveys`).
pub(crate) const ROLE_HEADER: &str = "pulse.input";

/// Header of a forwarded record: its key in the order its owner applies records in
/// ([`crate::align`]), the forwarding partition's stream time before it, in milliseconds.
pub(crate) const ORDER_HEADER: &str = "pulse.order";

/// Header that makes a repartition record a marker: the partition that sent it. Its
/// [`BOUND_HEADER`] says how far that partition has sequenced.
pub(crate) const MARKER_HEADER: &str = "pulse.marker";
pub(crate) const BOUND_HEADER: &str = "pulse.bound";
/// [`BOUND_HEADER`] of a partition that is caught up.
pub(crate) const CAUGHT_UP: &str = "caught-up";

pub(crate) struct Outbox {
    pub producer: FutureProducer,
    pub topics: TopicNames,
    pub encoding: Encoding,
    pub metrics: Metrics,
}

/// A record handed to the producer, with what is needed to label failures.
pub(crate) struct InFlight {
    pub delivery: DeliveryFuture,
    /// Metric label of the record's topic role.
    pub label: &'static str,
}

impl Outbox {
    /// The same outbox writing through another producer (a partition's transactional one).
    pub fn with_producer(&self, producer: FutureProducer) -> Self {
        Self {
            producer,
            topics: self.topics.clone(),
            encoding: self.encoding,
            metrics: self.metrics.clone(),
        }
    }

    /// Enqueues one record, waiting while librdkafka's local queue is full (backpressure). A
    /// missing key or value stays missing: a tombstone's dead letter is a tombstone.
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: OwnedHeaders,
        timestamp: Option<i64>,
    ) -> DeliveryFuture {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(t) = timestamp {
            record = record.timestamp(t);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = payload {
            record = record.payload(p);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(f) => return f,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, r)) => {
                    // The client refused the record itself, from what it last learnt about the
                    // topic (an authorization error, say).
                    tracing::warn!(error = %e, topic, "Producing failed; refreshing metadata and retrying.");
                    record = r;
                    self.refresh_metadata(topic).await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    pub async fn send_output(&self, o: &OutputEvent) -> InFlight {
        let topic = self.topics.output(o.kind.topic());
        let payload = o.encode(self.encoding);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "content-type",
                value: Some(self.encoding.content_type()),
            })
            .insert(Header {
                key: "pulse.type",
                value: Some(o.kind.as_str()),
            });
        let delivery = self
            .send(
                topic,
                None,
                Some(o.customer_id.as_bytes()),
                Some(&payload),
                headers,
                None,
            )
            .await;
        InFlight {
            delivery,
            label: "output",
        }
    }

    pub async fn send_dead_letter(
        &self,
        msg: &OwnedMessage,
        err: &pulse_events::EventError,
    ) -> InFlight {
        let from = crate::dead_letter::forwarded_from(&self.topics.repartition, msg)
            .unwrap_or_else(|| crate::dead_letter::own(msg));
        let headers = crate::dead_letter::headers(msg, err, from);
        let delivery = self
            .send(
                &self.topics.dead_letter,
                None,
                msg.key(),
                msg.payload(),
                headers,
                None,
            )
            .await;
        InFlight {
            delivery,
            label: "dead_letter",
        }
    }

    /// Asks the broker for fresh metadata of `topic`. After an error such as "not authorised",
    /// the client keeps failing records for the topic from what it last learnt until its next
    /// periodic refresh, minutes away; asking now lets recovery follow the broker's.
    async fn refresh_metadata(&self, topic: &str) {
        let producer = self.producer.clone();
        let topic = topic.to_owned();
        let _ = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
        })
        .await;
    }

    /// An input record forwarded to the repartition topic, keyed by its customer id so the
    /// partitioner sends it to the partition that owns the customer. Value, headers and
    /// timestamp are kept; headers name the input it came from and its coordinates there, so
    /// the owner judges its lateness among its source's records, names it as the cause of
    /// what it causes, and counts it once if it is forwarded again.
    pub async fn send_forward(
        &self,
        msg: &OwnedMessage,
        role: pulse_events::TopicRole,
        customer: &str,
        order: pulse_engine::Millis,
    ) -> InFlight {
        use pulse_events::dead_letter::{SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC};
        let (partition, offset) = (msg.partition().to_string(), msg.offset().to_string());
        let order = order.to_string();
        let headers = msg
            .headers()
            .cloned()
            .unwrap_or_else(OwnedHeaders::new)
            .insert(Header {
                key: ROLE_HEADER,
                value: Some(role.as_str()),
            })
            .insert(Header {
                key: SOURCE_TOPIC,
                value: Some(msg.topic()),
            })
            .insert(Header {
                key: SOURCE_PARTITION,
                value: Some(&partition),
            })
            .insert(Header {
                key: SOURCE_OFFSET,
                value: Some(&offset),
            })
            .insert(Header {
                key: ORDER_HEADER,
                value: Some(&order),
            });
        let delivery = self
            .send(
                &self.topics.repartition,
                None,
                Some(customer.as_bytes()),
                msg.payload(),
                headers,
                msg.timestamp().to_millis(),
            )
            .await;
        InFlight {
            delivery,
            label: "repartition",
        }
    }

    /// A marker to partition `to` of the repartition topic: partition `from` has sequenced up
    /// to `bound` (a key; `None`: it is caught up). It goes after the records it forwarded
    /// there, through the same producer, so it is read after them.
    pub async fn send_marker(
        &self,
        to: i32,
        from: i32,
        bound: Option<pulse_engine::Millis>,
    ) -> InFlight {
        let from = from.to_string();
        let bound = bound.map_or_else(|| CAUGHT_UP.to_owned(), |b| b.to_string());
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: MARKER_HEADER,
                value: Some(&from),
            })
            .insert(Header {
                key: BOUND_HEADER,
                value: Some(&bound),
            });
        let delivery = self
            .send(
                &self.topics.repartition,
                Some(to),
                None,
                None,
                headers,
                None,
            )
            .await;
        InFlight {
            delivery,
            label: "repartition",
        }
    }

    /// A changelog record, on the partition of the task that owns the state; without a value,
    /// a tombstone.
    pub async fn send_changelog(
        &self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> InFlight {
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some("application/msgpack"),
        });
        let topic = &self.topics.profiles;
        let delivery = self
            .send(topic, Some(partition), Some(key), value, headers, None)
            .await;
        InFlight {
            delivery,
            label: CHANGELOG,
        }
    }

    /// Waits for every record to be acknowledged, re-sending refused ones with backoff. False
    /// only if shutdown was requested while a record was still unacknowledged.
    pub async fn settle(&self, in_flight: Vec<InFlight>, stop: &watch::Receiver<bool>) -> bool {
        for f in in_flight {
            let mut result = f.delivery.await;
            let mut backoff = Duration::from_millis(100);
            loop {
                let failed: OwnedMessage = match result {
                    Ok(Ok(_)) => break,
                    Ok(Err((e, msg))) => {
                        self.metrics
                            .produce_errors
                            .with_label_values(&[f.label])
                            .inc();
                        tracing::warn!(error = %e, topic = msg.topic(), "Broker refused a record; re-sending. Offsets wait for it.");
                        msg
                    }
                    Err(_) => {
                        tracing::warn!("Producer dropped a record before delivery; it will be replayed from the input.");
                        return false;
                    }
                };
                if *stop.borrow() {
                    return false;
                }
                tokio::time::sleep(backoff).await;
                self.refresh_metadata(failed.topic()).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                let headers = failed.headers().cloned().unwrap_or_else(OwnedHeaders::new);
                let delivery = self
                    // Keep the partition the record was sent to: changelog records must land
                    // on their task's partition.
                    .send(
                        failed.topic(),
                        Some(failed.partition()).filter(|p| *p >= 0),
                        failed.key(),
                        failed.payload(),
                        headers,
                        failed.timestamp().to_millis(),
                    )
                    .await;
                result = delivery.await;
            }
        }
        true
    }
}
