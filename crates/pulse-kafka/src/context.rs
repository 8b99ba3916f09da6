//! The consumer's callbacks: rebalances flip readiness and update the assignment gauge;
//! commit results are counted.

use pulse_telemetry::{Health, Metrics};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, TopicPartitionList};

pub(crate) struct PulseContext {
    pub metrics: Metrics,
    pub health: Health,
    /// Partition numbers newly assigned, so the worker restores them before their records flow.
    pub assigned: tokio::sync::mpsc::UnboundedSender<Vec<i32>>,
}

impl ClientContext for PulseContext {}

impl ConsumerContext for PulseContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.metrics.rebalances.inc();
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "Partitions revoked.");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), "Partitions assigned.");
                let mut numbers: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                numbers.sort_unstable();
                numbers.dedup();
                let _ = self.assigned.send(numbers);
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
