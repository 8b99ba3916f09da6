//! The consumer group loop: fetch, hand each record to its partition task over a bounded queue
//! (a full queue stops fetching), and on shutdown drain the tasks, commit and leave the group.

use crate::config::{Delivery, KafkaConfig, WorkerConfig};
use crate::context::PulseContext;
use crate::outbox::Outbox;
use crate::state::StateRegistry;
use crate::task::TaskCtx;
use crate::tasks::Tasks;
use crate::KafkaError;
use pulse_engine::EngineSpec;
use pulse_events::{Limits, TopicRole};
use pulse_telemetry::{Health, Metrics};
use rdkafka::config::ClientConfig;
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

fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers)
        .set("client.id", &kafka.client_id);
    c
}

fn apply_overrides(c: &mut ClientConfig, kafka: &KafkaConfig) {
    for (k, v) in &kafka.librdkafka {
        c.set(k, v);
    }
}

pub(crate) fn consumer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = client_config(kafka);
    // With transactions the offsets are committed inside each batch's transaction.
    let auto_commit = kafka.delivery == Delivery::AtLeastOnce;
    c.set("group.id", &kafka.group_id)
        .set("enable.auto.commit", auto_commit.to_string())
        .set(
            "auto.commit.interval.ms",
            kafka.commit_interval.as_millis().to_string(),
        )
        // Offsets are stored by the partition tasks once a record's effects are acknowledged.
        .set("enable.auto.offset.store", "false")
        // Inputs written in transactions are read once committed, never when aborted.
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", kafka.auto_offset_reset.as_str())
        .set(
            "session.timeout.ms",
            kafka.session_timeout.as_millis().to_string(),
        )
        // Range assignment keeps partition N of every input topic on the same worker, which
        // the per-partition state needs (the input topics are co-partitioned by customer id).
        .set("partition.assignment.strategy", "range")
        // Consumer lag per partition for the metrics.
        .set("statistics.interval.ms", "5000")
        .set(
            "queued.max.messages.kbytes",
            (kafka.max_prefetch.0 / 1024).max(1).to_string(),
        );
    apply_overrides(&mut c, kafka);
    c
}

/// Where the worker that last wrote changelog partition `partition` serves its query API.
pub fn partition_owner(
    kafka: &KafkaConfig,
    partition: i32,
    timeout: Duration,
) -> Result<Option<String>, KafkaError> {
    let mut c = client_config(kafka);
    c.set("isolation.level", "read_committed");
    apply_overrides(&mut c, kafka);
    crate::changelog::latest_owner(&c, &kafka.topics.profiles, partition, timeout)
}

pub(crate) fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = client_config(kafka);
    c.set("partitioner", &kafka.partitioner)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    apply_overrides(&mut c, kafka);
    c
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
    spec: Arc<EngineSpec>,
    deps: WorkerDeps,
    mut stop: watch::Receiver<bool>,
) -> Result<(), KafkaError> {
    let tasks = Arc::new(Tasks::default());
    let context = PulseContext {
        metrics: deps.metrics.clone(),
        health: deps.health.clone(),
        tasks: tasks.clone(),
        state: deps.state.clone(),
        drain_deadline: worker.shutdown_deadline,
    };
    let consumer: StreamConsumer<PulseContext> = consumer_config(kafka)
        .create_with_context(context)
        .map_err(|source| KafkaError::Client {
            role: "consumer",
            source,
        })?;
    let consumer = Arc::new(consumer);
    let producer: FutureProducer =
        producer_config(kafka)
            .create()
            .map_err(|source| KafkaError::Client {
                role: "producer",
                source,
            })?;
    if let Some(n) = check_topology(consumer.clone(), kafka).await? {
        deps.state.set_input_partitions(n as i32);
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

    let ctx = Arc::new(TaskCtx {
        consumer: consumer.clone(),
        advertise: deps.advertise.clone(),
        outbox: Outbox {
            producer: producer.clone(),
            topics: kafka.topics.clone(),
            encoding: kafka.output_encoding,
            metrics: deps.metrics.clone(),
        },
        topics: kafka.topics.clone(),
        spec,
        limits: Limits {
            max_payload_bytes: worker.max_payload.0 as usize,
            ..Limits::default()
        },
        input_encoding: kafka.input_encoding,
        worker: worker.clone(),
        metrics: deps.metrics.clone(),
        health: deps.health.clone(),
        state: deps.state.clone(),
        changelog_client: {
            let mut c = client_config(kafka);
            // Changelog records of aborted transactions are skipped by brokers that mark them.
            c.set("isolation.level", "read_committed");
            apply_overrides(&mut c, kafka);
            c
        },
        delivery: kafka.delivery,
        producer_client: producer_config(kafka),
        group_id: kafka.group_id.clone(),
        stop: stop.clone(),
        fatal: Mutex::new(None),
    });

    crate::gauges::zero_labels(&deps.metrics, &ctx.spec);
    tasks.set_ctx(ctx.clone());
    let failed = |ctx: &TaskCtx| {
        ctx.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    };
    let mut gauges = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    while !*stop.borrow() {
        tokio::select! {
            _ = stop.changed() => break,
            _ = gauges.tick() => {
                if failed(&ctx) {
                    break;
                }
                ticks += 1;
                crate::gauges::refresh(&deps.metrics, &deps.state, &deps.health, &ctx.spec, ticks);
            }
            received = consumer.recv() => {
                let msg = match received {
                    Ok(m) => m.detach(),
                    Err(e) => {
                        tracing::warn!(error = %e, "Fetch failed; librdkafka retries by itself.");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let partition = msg.partition();
                let Some(queue) = tasks.sender(partition) else { break };
                // A full queue parks the loop here: fetching stops until the task catches up.
                tokio::select! {
                    sent = queue.send((msg, std::time::Instant::now())) => if sent.is_err() {
                        tracing::error!(partition, "Partition task ended early; stopping so the partition is re-read.");
                        break;
                    },
                    _ = stop.changed() => break,
                }
            }
        }
    }

    deps.health.set_stopping();
    tracing::info!("Draining partition tasks.");
    let handles = tasks.close_all();
    let deadline = worker.shutdown_deadline;
    let abort: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
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
    let fatal = ctx.fatal.lock().unwrap_or_else(|p| p.into_inner()).take();
    fatal.map_or(Ok(()), Err)
}
