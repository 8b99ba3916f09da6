//! Every Pulse metric, named in one place. Labels carry only bounded values (topic roles,
//! event kinds, dead-letter kinds, partition numbers), never customer ids. The worker updates
//! these once per batch, not per event.

use crate::latency::Latency;
use crate::names;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// The registry and handles to every metric.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// By `topic` role.
    pub input_records: IntCounterVec,
    /// By event `type`; custom event names are counted as `custom` to keep labels bounded.
    pub input_events: IntCounterVec,
    /// By dead-letter `kind`.
    pub dead_letters: IntCounterVec,
    pub late_records: IntCounter,
    /// By output `type`.
    pub output_events: IntCounterVec,
    /// By `topic` role of the record that could not be produced.
    pub produce_errors: IntCounterVec,
    /// Input records keyed by something other than their customer id, forwarded through the
    /// repartition topic.
    pub repartitioned_records: IntCounter,
    /// With `delivery = "exactly-once"`: batch transactions by result.
    pub transactions: IntCounterVec,
    pub batch_size: Histogram,
    pub processing_seconds: HistogramVec,
    /// By `partition`.
    pub watermark_lag: IntGaugeVec,
    pub customers: IntGauge,
    pub timers_pending: IntGauge,
    pub assigned_partitions: IntGauge,
    pub rebalances: IntCounter,
    pub commits: IntCounterVec,
    pub ready: IntGauge,
    pub changelog_records: IntCounter,
    pub changelog_bytes: IntCounter,
    pub evicted: IntCounter,
    pub restored_profiles: IntCounter,
    pub restored_bytes: IntCounter,
    pub restore_seconds: Histogram,
    pub restoring_partitions: IntGauge,
    /// Input records below a restored checkpoint: already in the state, not applied again.
    pub skipped_records: IntCounter,
    /// Records the event-time merge released before a lagging input caught up.
    pub merge_forced: IntCounter,
    /// By `partition`: bytes of input records its task holds, from fetch to apply.
    pub held_bytes: IntGaugeVec,
    /// From the worker receiving an input record to its batch's outputs, dead letters and
    /// changelog records being acknowledged, with exact quantiles over the last interval.
    pub latency: Latency,
    /// By `topic` and `partition`, from librdkafka's statistics.
    pub consumer_lag: IntGaugeVec,
    /// By `segment` name (bounded by the configuration).
    pub segment_members: IntGaugeVec,
    /// By `segment` and `direction` (`entered`, `exited`).
    pub segment_transitions: IntCounterVec,
    /// By `level`.
    pub churn_risk_customers: IntGaugeVec,
    /// By RFM `segment`.
    pub rfm_segment_customers: IntGaugeVec,
    /// By `funnel` and `step`.
    pub funnel_steps: IntCounterVec,
    /// By `funnel`.
    pub funnel_conversions: IntCounterVec,
    /// By `funnel` and `reason`.
    pub funnel_abandonments: IntCounterVec,
    /// Rolling population score by `survey` (`nps` from -100 to 100, `csat` as the share
    /// satisfied, in percent); absent while the window holds no answer.
    pub survey_score: GaugeVec,
    /// Answers in the rolling window, by `survey`.
    pub survey_answers: IntGaugeVec,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    reg(r, IntCounter::new(name, help))
}

/// Registers a metric and hands it back. Definitions are static, so failure is a programming
/// error caught by the tests, not a runtime condition.
fn reg<C: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    m: Result<C, prometheus::Error>,
) -> C {
    let m = m.expect("valid metric definition");
    r.register(Box::new(m.clone()))
        .expect("metric registered once");
    m
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(r, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    reg(r, IntGauge::new(name, help))
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    reg(r, IntGaugeVec::new(Opts::new(name, help), labels))
}

impl Metrics {
    /// A fresh registry with every Pulse metric registered.
    pub fn new() -> Self {
        let r = Registry::new();
        let batch_size = reg(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(names::BATCH_SIZE, "Records per processed batch.")
                    .buckets(vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0]),
            ),
        );
        let processing_seconds = reg(
            &r,
            HistogramVec::new(
            HistogramOpts::new(
                names::PROCESSING_SECONDS,
                "Time from a batch's arrival to its outputs being acknowledged and offsets stored.",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14).expect("valid buckets")),
            &["stage"],
        ),
        );
        let watermark_lag = reg(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    names::WATERMARK_LAG,
                    "How far the partition's watermark trails the wall clock.",
                ),
                &["partition"],
            ),
        );
        let late_records = counter(
            &r,
            names::LATE_RECORDS,
            "Records older than their partition's watermark.",
        );
        let rebalances = counter(&r, names::REBALANCES, "Consumer group rebalances seen.");
        let restore_seconds = reg(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    names::RESTORE_SECONDS,
                    "Time to restore one partition from the changelog.",
                )
                .buckets(prometheus::exponential_buckets(0.01, 2.0, 14).expect("valid buckets")),
            ),
        );
        // Memory, CPU and open file descriptors, read from /proc at each scrape.
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("process collector registered once");
        let latency = Latency::register(&r);
        let survey_score = reg(
            &r,
            GaugeVec::new(
                Opts::new(
                    names::SURVEY_SCORE,
                    "Rolling population NPS (-100..100) and CSAT (percent satisfied) of this worker's partitions.",
                ),
                &["survey"],
            ),
        );
        Self {
            latency,
            survey_score,
            survey_answers: gauge_vec(
                &r,
                names::SURVEY_ANSWERS,
                "Survey answers in the rolling window of this worker's partitions.",
                &["survey"],
            ),
            consumer_lag: gauge_vec(
                &r,
                names::CONSUMER_LAG,
                "Records between the consumer's position and the partition's end (librdkafka statistics).",
                &["topic", "partition"],
            ),
            segment_members: gauge_vec(
                &r,
                names::SEGMENT_MEMBERS,
                "Customers of this worker in each segment.",
                &["segment"],
            ),
            segment_transitions: counter_vec(
                &r,
                names::SEGMENT_TRANSITIONS,
                "Segment entries and exits produced.",
                &["segment", "direction"],
            ),
            churn_risk_customers: gauge_vec(
                &r,
                names::CHURN_RISK_CUSTOMERS,
                "Customers of this worker at each churn-risk level.",
                &["level"],
            ),
            rfm_segment_customers: gauge_vec(
                &r,
                names::RFM_SEGMENT_CUSTOMERS,
                "Scored customers of this worker in each RFM segment.",
                &["segment"],
            ),
            funnel_steps: counter_vec(
                &r,
                names::FUNNEL_STEPS,
                "Funnel steps reached.",
                &["funnel", "step"],
            ),
            funnel_conversions: counter_vec(
                &r,
                names::FUNNEL_CONVERSIONS,
                "Funnel attempts converted.",
                &["funnel"],
            ),
            funnel_abandonments: counter_vec(
                &r,
                names::FUNNEL_ABANDONMENTS,
                "Funnel attempts abandoned, by reason.",
                &["funnel", "reason"],
            ),
            input_records: counter_vec(
                &r,
                names::INPUT_RECORDS,
                "Input records consumed.",
                &["topic"],
            ),
            input_events: counter_vec(
                &r,
                names::INPUT_EVENTS,
                "Valid input events applied, by type.",
                &["type"],
            ),
            dead_letters: counter_vec(
                &r,
                names::DEAD_LETTERS,
                "Records sent to the dead-letter topic.",
                &["kind"],
            ),
            late_records,
            output_events: counter_vec(
                &r,
                names::OUTPUT_EVENTS,
                "Output events produced and acknowledged.",
                &["type"],
            ),
            produce_errors: counter_vec(
                &r,
                names::PRODUCE_ERRORS,
                "Records the broker refused; they are retried.",
                &["topic"],
            ),
            repartitioned_records: counter(
                &r,
                names::REPARTITIONED_RECORDS,
                "Input records not keyed by customer id, forwarded through the repartition topic.",
            ),
            transactions: counter_vec(
                &r,
                names::TRANSACTIONS,
                "Batch transactions (exactly-once delivery), committed or aborted and retried.",
                &["result"],
            ),
            batch_size,
            processing_seconds,
            watermark_lag,
            customers: gauge(&r, names::CUSTOMERS, "Customer profiles held in memory."),
            timers_pending: gauge(&r, names::TIMERS_PENDING, "Pending engine timers."),
            assigned_partitions: gauge(
                &r,
                names::ASSIGNED_PARTITIONS,
                "Input partitions assigned to this worker.",
            ),
            rebalances,
            commits: counter_vec(
                &r,
                names::COMMITS,
                "Offset commits, by result.",
                &["result"],
            ),
            ready: gauge(&r, names::READY, "1 when the worker is ready."),
            changelog_records: counter(
                &r,
                names::CHANGELOG_RECORDS,
                "Changelog records produced (profiles and checkpoints).",
            ),
            changelog_bytes: counter(&r, names::CHANGELOG_BYTES, "Changelog bytes produced."),
            evicted: counter(
                &r,
                names::EVICTED,
                "Customers evicted after engine.evict_after without an event, and tombstoned.",
            ),
            restored_profiles: counter(
                &r,
                names::RESTORED_PROFILES,
                "Profiles restored from the changelog.",
            ),
            restored_bytes: counter(
                &r,
                names::RESTORED_BYTES,
                "Changelog bytes read while restoring.",
            ),
            restore_seconds,
            restoring_partitions: gauge(
                &r,
                names::RESTORING_PARTITIONS,
                "Partitions being restored; the worker is not ready meanwhile.",
            ),
            skipped_records: counter(
                &r,
                names::SKIPPED_RECORDS,
                "Input records already reflected in restored state, not applied again.",
            ),
            merge_forced: counter(
                &r,
                names::MERGE_FORCED,
                "Records applied out of event-time order because an input lagged past worker.max_hold.",
            ),
            held_bytes: gauge_vec(
                &r,
                names::HELD_BYTES,
                "Bytes of input records a partition task holds, from fetch to apply (bounded by worker.queue_bytes per lane).",
                &["partition"],
            ),
            registry: r,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = String::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode_utf8(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "Failed to encode metrics.");
        }
        buf
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The sum of a counter vector's samples over all its labels.
pub fn counter_total(v: &IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    v.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_with_its_name() {
        let m = Metrics::new();
        m.input_records.with_label_values(&["clickstream"]).inc();
        m.input_events.with_label_values(&["page_view"]).inc();
        m.dead_letters.with_label_values(&["late"]).inc();
        m.output_events
            .with_label_values(&["milestone.reached"])
            .inc();
        m.produce_errors.with_label_values(&["milestones"]).inc();
        m.transactions.with_label_values(&["committed"]).inc();
        m.watermark_lag.with_label_values(&["0"]).set(3);
        m.commits.with_label_values(&["ok"]).inc();
        m.processing_seconds
            .with_label_values(&["batch"])
            .observe(0.001);
        m.batch_size.observe(10.0);
        m.latency.record(&[0.004, 0.02]);
        m.latency.rotate();
        m.consumer_lag
            .with_label_values(&["clickstream", "0"])
            .set(5);
        m.segment_members.with_label_values(&["champions"]).set(3);
        m.segment_transitions
            .with_label_values(&["champions", "entered"])
            .inc();
        m.churn_risk_customers.with_label_values(&["low"]).set(9);
        m.rfm_segment_customers.with_label_values(&["lost"]).set(1);
        m.funnel_steps
            .with_label_values(&["checkout", "cart"])
            .inc();
        m.funnel_conversions.with_label_values(&["checkout"]).inc();
        m.funnel_abandonments
            .with_label_values(&["checkout", "timeout"])
            .inc();
        m.survey_score.with_label_values(&["nps"]).set(12.5);
        m.survey_answers.with_label_values(&["nps"]).set(40);
        m.held_bytes.with_label_values(&["0"]).set(4096);
        let text = m.render();
        for name in names::ALL {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
    }
}
