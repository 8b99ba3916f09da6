//! The consumer's callbacks: assigned partitions start restoring at once, revoked ones are
//! drained, committed and dropped before they move; commit results are counted.

use crate::config::OffsetReset;
use crate::state::StateRegistry;
use pulse_telemetry::{Health, Metrics};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;

/// What the rebalance callbacks do to partition tasks. Named here and implemented by
/// [`crate::tasks::Tasks`], so that the callbacks sit below the tasks they drive rather than in
/// a circle with them.
pub(crate) trait PartitionTasks: Send + Sync {
    /// Starts partition `p`'s task (and its restore) if it is not running.
    fn start(&self, p: i32);
    /// Whether partition `p` has a task.
    fn running(&self, p: i32) -> bool;
    /// Closes the tasks of `partitions` and waits until they have finished what they hold, or
    /// aborts those still busy at `deadline`.
    fn drain(&self, partitions: &[i32], deadline: Duration);
}

pub(crate) struct PulseContext {
    /// Stops the worker on errors retrying cannot fix; routes librdkafka's logs.
    pub guard: crate::clients::Guard,
    pub metrics: Metrics,
    pub health: Health,
    pub tasks: Arc<dyn PartitionTasks>,
    pub state: StateRegistry,
    /// How long a revoked partition may take to drain.
    pub drain_deadline: Duration,
    /// Where a partition the group never committed starts (`kafka.auto_offset_reset`).
    pub offset_reset: OffsetReset,
}

fn partition_numbers(tpl: &TopicPartitionList) -> Vec<i32> {
    let mut numbers: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

impl ClientContext for PulseContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.guard.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.guard.on_error(&error, reason);
    }

    /// Consumer lag per assigned partition, from librdkafka's periodic statistics.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's internal unassigned partition; a lag of -1 means unknown.
                if *partition < 0 {
                    continue;
                }
                let labels = [topic.as_str(), &partition.to_string()];
                // A revoked partition stays in the statistics, its lag frozen at the revoke:
                // only what this worker holds (librdkafka's "desired" partitions) is reported.
                if p.desired && p.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&labels)
                        .set(p.consumer_lag);
                } else {
                    let _ = self.metrics.consumer_lag.remove_label_values(&labels);
                }
            }
        }
    }
}

impl ConsumerContext for PulseContext {
    /// rdkafka's rebalance, with each assigned partition's start offset resolved before the
    /// assignment is handed over (see [`crate::assign`]), so that no fetcher start is still on
    /// its way when the tasks pause, seek and resume their partitions.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        crate::assign::rebalance(self, consumer, err, tpl, self.offset_reset);
    }

    /// On revoke: drain the partitions' tasks, commit what they stored, drop their state. Only
    /// then may another worker restore them from the changelog.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.metrics.rebalances.inc();
        if let Rebalance::Revoke(tpl) = rebalance {
            let numbers = partition_numbers(tpl);
            tracing::info!(partitions = tpl.count(), numbers = ?numbers, "Partitions revoked; draining.");
            self.tasks.drain(&numbers, self.drain_deadline);
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Commit on revoke failed; the new owner re-reads from the previous commit.")
                }
            }
            for p in numbers {
                self.state.remove(p);
            }
            // Lag of partitions this worker no longer owns is another worker's to report; an
            // incremental revoke leaves the lag of the partitions kept.
            for e in tpl.elements() {
                let labels = [e.topic(), &e.partition().to_string()];
                let _ = self.metrics.consumer_lag.remove_label_values(&labels);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), numbers = ?partition_numbers(tpl), "Partitions assigned.");
                // An incremental assignment adds to what is held. Should it bring a topic of a
                // partition number whose task already runs (the group gave partition N of one
                // topic before N of another), that task resumed the topics it had, not this
                // one: it starts over, restoring and resuming all of them together.
                let running: Vec<i32> = partition_numbers(tpl)
                    .into_iter()
                    .filter(|p| self.tasks.running(*p))
                    .collect();
                if !running.is_empty() {
                    tracing::warn!(partitions = ?running, "Assigned a topic of partitions already held; their tasks start over.");
                    self.tasks.drain(&running, self.drain_deadline);
                    for p in &running {
                        self.state.remove(*p);
                    }
                    let mut all = TopicPartitionList::new();
                    if let Ok(held) = consumer.assignment() {
                        for e in held.elements() {
                            if running.contains(&e.partition()) {
                                all.add_partition(e.topic(), e.partition());
                            }
                        }
                    }
                    if let Err(e) = consumer.pause(&all) {
                        tracing::warn!(error = %e, "Could not pause partitions starting over.");
                    }
                }
                // Nothing is fetched until the partition's state is restored: its task then
                // seeks to the position the restored state reflects and resumes. That position,
                // not the group's commit (which can only be behind it), says where the state
                // ends; records in between are not fetched only to be skipped. No task of these
                // partitions runs yet, so this pause needs no `TaskCtx::fetch_ops`.
                if let Err(e) = consumer.pause(tpl) {
                    tracing::warn!(error = %e, "Could not pause newly assigned partitions.");
                }
                // Start restoring now, not when a partition's first record arrives; each task
                // counts as restoring, so readiness stays false until all are done.
                for p in partition_numbers(tpl) {
                    self.tasks.start(p);
                }
                self.health.set_ready(true);
            }
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "Rebalance failed; the group will retry.")
            }
            Rebalance::Revoke(_) => {}
        }
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        self.metrics.assigned_partitions.set(assigned as i64);
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self.metrics.commits.with_label_values(&["ok"]).inc(),
            // "No offset" means nothing new was stored since the last commit: not a failure.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(e) => {
                self.metrics.commits.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "Offset commit failed; it is retried at the next interval.");
            }
        }
    }
}
