//! The consumer group loop: fetch, hand each record to its partition task over a bounded queue
//! (a full queue stops fetching), and on shutdown drain the tasks, commit and leave the group.

use crate::clients::Guard;
use crate::config::{KafkaConfig, WorkerConfig};
use crate::context::PulseContext;
use crate::ctx::TaskCtx;
use crate::outbox::Outbox;
use crate::state::StateRegistry;
use crate::tasks::{Offer, Tasks};
use crate::KafkaError;
use pulse_engine::Engine;
use pulse_events::{Limits, TopicRole};
use pulse_telemetry::{Health, Metrics};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Shared handles the worker reports into.
#[derive(Debug, Clone, Default)]
pub struct WorkerDeps {
    pub metrics: Metrics,
    pub health: Health,
    pub state: StateRegistry,
    /// Base URL of this worker's HTTP server as other workers reach it (`http.advertise`).
    pub advertise: Option<String>,
}

/// Where the worker that last wrote changelog partition `partition` serves its query API.
pub fn partition_owner(
    kafka: &KafkaConfig,
    partition: i32,
    timeout: Duration,
) -> Result<Option<String>, KafkaError> {
    let c = crate::clients::reader(kafka);
    crate::changelog::latest_owner(&c, &kafka.topics.profiles, partition, timeout)
}

/// Checks that the input topics exist with one partition count and that the changelog has as
/// many partitions: each partition task writes its state to the changelog partition of the same
/// number, and a missing one would stall it for good.
async fn check_topology(
    consumer: Arc<StreamConsumer<PulseContext>>,
    kafka: &KafkaConfig,
) -> Result<Option<usize>, KafkaError> {
    let topics = kafka.topics.clone();
    let counts = tokio::task::spawn_blocking(move || {
        let md = consumer.fetch_metadata(None, Duration::from_secs(10))?;
        let count = |name: &str| {
            md.topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none())
                .map(|t| t.partitions().len())
        };
        let inputs: Vec<(String, Option<usize>)> = TopicRole::ALL
            .iter()
            .map(|r| topics.input(*r))
            .chain([topics.repartition.as_str()])
            .map(|t| (t.to_owned(), count(t)))
            .collect();
        Ok::<_, rdkafka::error::KafkaError>((
            inputs,
            count(&topics.profiles),
            topics.profiles.clone(),
        ))
    })
    .await
    .map_err(|e| KafkaError::Topology(e.to_string()))?;
    let (inputs, changelog, changelog_name) = match counts {
        Ok(c) => c,
        // Metadata unavailable (brokers starting): the consumer will retry; do not block startup.
        Err(e) => {
            tracing::warn!(error = %e, "Could not check the topic layout; continuing.");
            return Ok(None);
        }
    };
    let missing: Vec<&str> = inputs
        .iter()
        .filter(|(_, c)| c.is_none())
        .map(|(t, _)| t.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(KafkaError::Topology(format!(
            "input topics missing: {} (kafka.topics)",
            missing.join(", ")
        )));
    }
    let mut counts: Vec<usize> = inputs.iter().filter_map(|(_, c)| *c).collect();
    counts.dedup();
    if counts.len() > 1 {
        let shape: Vec<String> = inputs
            .iter()
            .map(|(t, c)| format!("{t}={}", c.unwrap_or(0)))
            .collect();
        return Err(KafkaError::Topology(format!(
            "input topics must have the same partition count to be co-partitioned by customer id, found {}",
            shape.join(", ")
        )));
    }
    match changelog {
        Some(n) if n >= counts[0] => Ok(Some(counts[0])),
        Some(n) => Err(KafkaError::Topology(format!(
            "changelog topic {changelog_name} has {n} partitions, fewer than the inputs' {} (kafka.topics.profiles)",
            counts[0]
        ))),
        None => Err(KafkaError::Topology(format!("changelog topic {changelog_name} is missing (kafka.topics.profiles)"))),
    }
}

/// Runs the worker until `stop` turns true, then drains, commits and leaves the group within
/// the configured deadline.
pub async fn run_worker(
    kafka: &KafkaConfig,
    worker: &WorkerConfig,
    engine: Arc<Engine>,
    deps: WorkerDeps,
    mut stop: watch::Receiver<bool>,
) -> Result<(), KafkaError> {
    let tasks = Arc::new(Tasks::default());
    let consumer_config = crate::clients::consumer(kafka);
    let guard = Guard::for_client(&consumer_config);
    let fatal = guard.fatal.clone();
    let context = PulseContext {
        guard,
        metrics: deps.metrics.clone(),
        health: deps.health.clone(),
        tasks: tasks.clone(),
        state: deps.state.clone(),
        drain_deadline: worker.shutdown_deadline,
        offset_reset: kafka.auto_offset_reset,
    };
    let consumer: StreamConsumer<PulseContext> = consumer_config
        .create_with_context(context)
        .map_err(|source| KafkaError::Client {
            role: "consumer",
            source,
        })?;
    let consumer = Arc::new(consumer);
    let producer: FutureProducer =
        crate::clients::producer(kafka)
            .create()
            .map_err(|source| KafkaError::Client {
                role: "producer",
                source,
            })?;
    match check_topology(consumer.clone(), kafka).await {
        Ok(Some(n)) => deps.state.set_input_partitions(n as i32),
        Ok(None) => {}
        Err(e) => return Err(e),
    }
    // Credentials refused or a TLS handshake failed while the layout was checked: no retry
    // fixes that.
    if let Some(e) = fatal.take() {
        return Err(e);
    }
    let inputs: Vec<&str> = TopicRole::ALL
        .iter()
        .map(|r| kafka.topics.input(*r))
        .chain([kafka.topics.repartition.as_str()])
        .collect();
    consumer
        .subscribe(&inputs)
        .map_err(|source| KafkaError::Subscribe {
            topics: inputs.join(", "),
            source,
        })?;
    tracing::info!(brokers = %kafka.brokers, group = %kafka.group_id, topics = %inputs.join(","), "Worker started.");

    let earliest_event_time = engine.spec.earliest_event_time;
    let ctx = Arc::new(TaskCtx {
        consumer: consumer.clone(),
        fetch_ops: Mutex::new(()),
        advertise: deps.advertise.clone(),
        outbox: Outbox {
            producer: producer.clone(),
            topics: kafka.topics.clone(),
            encoding: kafka.output_encoding,
            metrics: deps.metrics.clone(),
            // librdkafka's default unless the configuration passes another one through.
            max_message: kafka
                .librdkafka
                .get("message.max.bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_000_000),
            stop: stop.clone(),
        },
        topics: kafka.topics.clone(),
        engine,
        limits: Limits {
            max_payload_bytes: worker.max_payload.0 as usize,
            earliest_event_time,
            ..Limits::default()
        },
        input_encoding: kafka.input_encoding,
        worker: worker.clone(),
        metrics: deps.metrics.clone(),
        health: deps.health.clone(),
        state: deps.state.clone(),
        // Changelog records of aborted transactions are invisible to this reader.
        changelog_client: crate::clients::reader(kafka),
        delivery: kafka.delivery,
        offset_reset: kafka.auto_offset_reset,
        producer_client: crate::clients::producer(kafka),
        group_id: kafka.group_id.clone(),
        stop: stop.clone(),
        fatal,
        partitioner: kafka.partitioner.clone(),
    });

    crate::gauges::zero_labels(&deps.metrics, &ctx.engine.spec);
    tasks.set_ctx(ctx.clone());
    let mut gauges = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    // How often records waiting for room in a full partition queue are moved on.
    let mut flush = tokio::time::interval(Duration::from_millis(5));
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        tokio::select! {
            _ = stop.changed() => break,
            _ = gauges.tick() => {
                if ctx.fatal.is_set() {
                    break;
                }
                ticks += 1;
                crate::gauges::refresh(&deps.metrics, &deps.state, &deps.health, &ctx.engine.spec, ticks);
            }
            received = consumer.recv() => {
                let msg = match received {
                    Ok(m) => m.detach(),
                    // librdkafka's consumer does nothing more after a fatal error: the worker
                    // stops and says why, so a supervisor restarts it, rather than idling on.
                    Err(rdkafka::error::KafkaError::MessageConsumptionFatal(code)) => {
                        let reason = consumer
                            .client()
                            .fatal_error()
                            .map_or_else(|| code.to_string(), |(_, reason)| reason);
                        ctx.fail(crate::clients::fatal(reason));
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Fetch failed; librdkafka retries by itself.");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let partition = msg.partition();
                match tasks.offer(partition, msg, std::time::Instant::now()) {
                    Offer::Queued | Offer::Parked { first: false, .. } => {}
                    // The task's lane is full: this partition waits, the others go on.
                    Offer::Parked { first: true, lane } => crate::ctx::set_fetching(&ctx, partition, lane, false),
                    Offer::Closed => {
                        tracing::error!(partition, "Partition task ended early; stopping so the partition is re-read.");
                        break;
                    }
                    Offer::Stopping => break,
                }
            }
            _ = flush.tick(), if tasks.parked() => {
                for (p, lane) in tasks.flush() {
                    crate::ctx::set_fetching(&ctx, p, lane, true);
                }
            }
        }
    }

    deps.health.set_stopping();
    tracing::info!("Draining partition tasks.");
    let (handles, abort): (Vec<_>, Vec<_>) = tasks.close_all().into_iter().unzip();
    let deadline = worker.shutdown_deadline;
    let drained = tokio::time::timeout(deadline, async {
        for h in handles {
            if let Err(e) = h.await {
                tracing::error!(error = %e, "A partition task failed; its uncommitted input will be re-read.");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::error!(deadline = ?deadline, "Shutdown deadline passed with work in flight; unacknowledged input will be re-read on restart.");
        abort.iter().for_each(tokio::task::AbortHandle::abort);
    }
    let consumer_for_commit = consumer.clone();
    let committed = tokio::task::spawn_blocking(move || {
        consumer_for_commit.commit_consumer_state(CommitMode::Sync)
    })
    .await;
    match committed {
        // NoOffset: the timed commit already covered everything stored.
        Ok(Ok(()))
        | Ok(Err(rdkafka::error::KafkaError::ConsumerCommit(
            rdkafka::types::RDKafkaErrorCode::NoOffset,
        ))) => tracing::info!("Final offsets committed."),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Final commit failed; input since the last commit will be re-read.")
        }
        Err(e) => tracing::warn!(error = %e, "Final commit task failed."),
    }
    let _ = tokio::task::spawn_blocking(move || {
        let _ = producer.flush(Duration::from_secs(5));
        consumer.unsubscribe();
    })
    .await;
    deps.health.set_ready(false);
    tracing::info!("Worker stopped.");
    ctx.fatal.take().map_or(Ok(()), Err)
}
