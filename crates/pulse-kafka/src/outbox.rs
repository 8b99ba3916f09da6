//! Producing outputs and dead letters, and waiting until the broker has acknowledged every one
//! of them. A record the broker refuses is sent again with backoff until it is acknowledged:
//! the caller stores input offsets only after that, so nothing is committed past an output that
//! was not produced. Refusals are told apart ([`permanent`]): a dead letter too large to
//! produce whole goes out truncated, so a huge input record cannot stall its partition; a
//! record of Pulse's own that can never be produced is logged as an error at every attempt.
//! Retries stop at shutdown.

use pulse_events::{Encoding, OutputEvent};
use pulse_telemetry::Metrics;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::Message;
use std::time::Duration;
use tokio::sync::watch;

use crate::config::TopicNames;
use pulse_events::dead_letter::TRUNCATED_KEEP;

/// Metric label of changelog records.
const CHANGELOG: &str = "changelog";

/// Every topic-role label of produce failures.
pub(crate) const LABELS: [&str; 4] = ["output", "dead_letter", "repartition", CHANGELOG];

/// Header naming the input a forwarded record came from (`clickstream`, `purchases`,
/// `surveys`).
pub(crate) const ROLE_HEADER: &str = "pulse.input";

/// Header of a forwarded record: its key in the order its owner applies records in
/// ([`crate::align`]), the forwarding partition's stream time with it, in milliseconds.
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
    /// The producer's `message.max.bytes`: a dead letter larger goes out truncated.
    pub max_message: usize,
    /// Set at shutdown: retries stop.
    pub stop: watch::Receiver<bool>,
}

/// Where one of Pulse's own records goes, and the metric label of its topic role.
struct Dest<'a> {
    label: &'static str,
    topic: &'a str,
    partition: Option<i32>,
}

/// A record handed to the producer, with what is needed to label failures. `None`: it was
/// not handed over, because the worker is stopping.
pub(crate) struct InFlight {
    pub delivery: Option<DeliveryFuture>,
    /// Metric label of the record's topic role.
    pub label: &'static str,
}

/// Whether a refusal can never succeed by sending the same record again: its size, its
/// shape, or a request the broker rejects as malformed. Everything else (a leader moving, a
/// broker down, an authorisation being granted) may pass with time.
pub(crate) fn permanent(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            MessageSizeTooLarge
                | InvalidMessageSize
                | InvalidMessage
                | InvalidRecord
                | MessageBatchTooLarge
                | InvalidRequiredAcks
                | InvalidTopic
                | UnsupportedForMessageFormat
                | BadMessage
        )
    )
}

impl Outbox {
    /// The same outbox writing through another producer (a partition's transactional one).
    pub fn with_producer(&self, producer: FutureProducer) -> Self {
        Self {
            producer,
            topics: self.topics.clone(),
            encoding: self.encoding,
            metrics: self.metrics.clone(),
            max_message: self.max_message,
            stop: self.stop.clone(),
        }
    }

    /// Enqueues one record, waiting while librdkafka's local queue is full (backpressure). A
    /// missing key or value stays missing: a tombstone's dead letter is a tombstone. `Err`: the
    /// client refused it for good ([`permanent`]), or the worker is stopping.
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: OwnedHeaders,
        timestamp: Option<i64>,
    ) -> Result<DeliveryFuture, KafkaError> {
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
                Ok(f) => return Ok(f),
                Err((e, _)) if permanent(&e) => return Err(e),
                // A full local queue drains by itself, also while a shutdown finishes its
                // batches (the shutdown deadline bounds that).
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) if *self.stop.borrow() => return Err(e),
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

    /// [`Outbox::send`] of one of Pulse's own records (an output, a forward, a marker, a
    /// changelog record), which must reach the broker as it is: a permanent refusal is an
    /// error in the log, and the record is offered again until the cause is fixed (a topic's
    /// size limit raised) or the worker stops.
    async fn send_own(
        &self,
        to: Dest<'_>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: OwnedHeaders,
        timestamp: Option<i64>,
    ) -> InFlight {
        let Dest {
            label,
            topic,
            partition,
        } = to;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self
                .send(topic, partition, key, payload, headers.clone(), timestamp)
                .await
            {
                Ok(f) => {
                    return InFlight {
                        delivery: Some(f),
                        label,
                    }
                }
                Err(_) if *self.stop.borrow() => {
                    return InFlight {
                        delivery: None,
                        label,
                    }
                }
                Err(e) => {
                    self.metrics
                        .produce_errors
                        .with_label_values(&[label])
                        .inc();
                    tracing::error!(error = %e, topic, "The producer refuses a record for good; its partition waits until the cause is fixed.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
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
        self.send_own(
            Dest {
                label: "output",
                topic,
                partition: None,
            },
            Some(o.customer_id.as_bytes()),
            Some(&payload),
            headers,
            None,
        )
        .await
    }

    pub async fn send_dead_letter(
        &self,
        msg: &OwnedMessage,
        err: &pulse_events::EventError,
    ) -> InFlight {
        let from = crate::dead_letter::forwarded_from(&self.topics.repartition, msg)
            .unwrap_or_else(|| crate::dead_letter::own(msg));
        let headers = crate::dead_letter::headers(msg, err, from);
        let size = crate::dead_letter::size_of(msg.key(), msg.payload(), &headers);
        if size > self.max_message {
            let why = format!(
                "{size} bytes whole, over message.max.bytes ({})",
                self.max_message
            );
            return self
                .send_truncated(msg.key(), msg.payload(), headers, &why)
                .await;
        }
        let topic = &self.topics.dead_letter;
        match self
            .send(topic, None, msg.key(), msg.payload(), headers.clone(), None)
            .await
        {
            Ok(f) => InFlight {
                delivery: Some(f),
                label: "dead_letter",
            },
            Err(e) if permanent(&e) => {
                let why = format!("refused whole by the producer: {e}");
                self.send_truncated(msg.key(), msg.payload(), headers, &why)
                    .await
            }
            Err(_) => InFlight {
                delivery: None,
                label: "dead_letter",
            },
        }
    }

    /// A dead letter that cannot go out whole, truncated ([`crate::dead_letter::truncated`]).
    async fn send_truncated(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: OwnedHeaders,
        why: &str,
    ) -> InFlight {
        tracing::warn!(reason = why, "A dead letter is too large to produce whole; it goes out truncated, with its size and hash.");
        let (headers, value) =
            crate::dead_letter::truncated(headers, value.unwrap_or_default(), why);
        let topic = self.topics.dead_letter.clone();
        self.send_own(
            Dest {
                label: "dead_letter",
                topic: &topic,
                partition: None,
            },
            key,
            Some(&value),
            headers,
            None,
        )
        .await
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
        self.send_own(
            Dest {
                label: "repartition",
                topic: &self.topics.repartition,
                partition: None,
            },
            Some(customer.as_bytes()),
            msg.payload(),
            headers,
            msg.timestamp().to_millis(),
        )
        .await
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
        self.send_own(
            Dest {
                label: "repartition",
                topic: &self.topics.repartition,
                partition: Some(to),
            },
            None,
            None,
            headers,
            None,
        )
        .await
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
        self.send_own(
            Dest {
                label: CHANGELOG,
                topic,
                partition: Some(partition),
            },
            Some(key),
            value,
            headers,
            None,
        )
        .await
    }

    /// Waits for every record to be acknowledged, re-sending refused ones with backoff; a dead
    /// letter the broker refuses as too large is re-sent truncated. False only if shutdown was
    /// requested while a record was still unacknowledged.
    pub async fn settle(&self, in_flight: Vec<InFlight>, stop: &watch::Receiver<bool>) -> bool {
        for f in in_flight {
            let Some(delivery) = f.delivery else {
                return false;
            };
            let mut result = delivery.await;
            let mut backoff = Duration::from_millis(100);
            loop {
                let (error, failed): (KafkaError, OwnedMessage) = match result {
                    Ok(Ok(_)) => break,
                    Ok(Err((e, msg))) => {
                        self.metrics
                            .produce_errors
                            .with_label_values(&[f.label])
                            .inc();
                        (e, msg)
                    }
                    Err(_) => {
                        tracing::warn!("Producer dropped a record before delivery; it will be replayed from the input.");
                        return false;
                    }
                };
                if *stop.borrow() {
                    return false;
                }
                let headers = failed.headers().cloned().unwrap_or_else(OwnedHeaders::new);
                let dead_letter = failed.topic() == self.topics.dead_letter;
                let truncate = dead_letter
                    && permanent(&error)
                    && failed.payload().is_some_and(|v| v.len() > TRUNCATED_KEEP);
                let resent = if truncate {
                    let why = format!("refused whole by the broker: {error}");
                    self.send_truncated(failed.key(), failed.payload(), headers, &why)
                        .await
                } else {
                    if permanent(&error) {
                        tracing::error!(error = %error, topic = failed.topic(), "The broker refuses a record for good; its partition waits until the cause is fixed (a topic's max.message.bytes raised).");
                    } else {
                        tracing::warn!(error = %error, topic = failed.topic(), "Broker refused a record; re-sending. Offsets wait for it.");
                    }
                    tokio::time::sleep(backoff).await;
                    self.refresh_metadata(failed.topic()).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    // Keep the partition the record was sent to: changelog records must land
                    // on their task's partition.
                    self.send_own(
                        Dest {
                            label: f.label,
                            topic: failed.topic(),
                            partition: Some(failed.partition()).filter(|p| *p >= 0),
                        },
                        failed.key(),
                        failed.payload(),
                        headers,
                        failed.timestamp().to_millis(),
                    )
                    .await
                };
                let Some(delivery) = resent.delivery else {
                    return false;
                };
                result = delivery.await;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_shape_refusals_are_permanent_the_rest_retried() {
        use RDKafkaErrorCode::*;
        for code in [MessageSizeTooLarge, InvalidRecord, MessageBatchTooLarge] {
            assert!(permanent(&KafkaError::MessageProduction(code)), "{code:?}");
        }
        for code in [
            QueueFull,
            BrokerTransportFailure,
            NotLeaderForPartition,
            TopicAuthorizationFailed,
            RequestTimedOut,
            UnknownTopicOrPartition,
        ] {
            assert!(!permanent(&KafkaError::MessageProduction(code)), "{code:?}");
        }
    }
}
