//! Event-to-output latency (from the worker receiving a record to the broker acknowledging
//! everything its batch produced): a Prometheus histogram for rates and heatmaps, and an hdrhistogram
//! for exact quantiles over the last interval, which fixed buckets cannot give.

use crate::names;
use hdrhistogram::Histogram as Hdr;
use prometheus::{GaugeVec, Histogram, HistogramOpts, Opts, Registry};
use std::sync::{Arc, Mutex, PoisonError};

/// The quantiles exported exactly, with their `percentile` label values. (`quantile` is
/// reserved for summaries.)
const QUANTILES: [(f64, &str); 3] = [(0.5, "50"), (0.99, "99"), (0.999, "99.9")];

/// Shared latency recorder. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram,
    exact: GaugeVec,
    /// Microseconds, 1 µs to 1 hour at 3 significant digits; longer values are clamped.
    interval: Arc<Mutex<Hdr<u64>>>,
}

const MAX_MICROS: u64 = 3_600_000_000;

impl Latency {
    pub(crate) fn register(r: &Registry) -> Self {
        let histogram = Histogram::with_opts(
            HistogramOpts::new(
                names::EVENT_TO_OUTPUT,
                "From the worker receiving an input record to the broker acknowledging everything its batch produced.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                60.0,
            ]),
        )
        .expect("valid histogram");
        let exact = GaugeVec::new(
            Opts::new(
                names::EVENT_TO_OUTPUT_EXACT,
                "Exact event-to-output latency quantiles over the last interval (hdrhistogram).",
            ),
            &["percentile"],
        )
        .expect("valid gauge");
        r.register(Box::new(histogram.clone()))
            .expect("registered once");
        r.register(Box::new(exact.clone()))
            .expect("registered once");
        let hdr = Hdr::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds");
        Self {
            histogram,
            exact,
            interval: Arc::new(Mutex::new(hdr)),
        }
    }

    /// The exact quantiles of the last interval, by `percentile`.
    pub fn exact(&self) -> &GaugeVec {
        &self.exact
    }

    /// Records one batch's latencies, in seconds: one lock for the whole batch.
    pub fn record(&self, seconds: &[f64]) {
        let mut hdr = self.interval.lock().unwrap_or_else(PoisonError::into_inner);
        for s in seconds {
            self.histogram.observe(*s);
            let micros = (s.max(0.0) * 1e6) as u64;
            hdr.saturating_record(micros.clamp(1, MAX_MICROS));
        }
    }

    /// Publishes the exact quantiles of the interval that just ended and starts a new one. An
    /// interval without records keeps the previous figures.
    pub fn rotate(&self) {
        let mut hdr = self.interval.lock().unwrap_or_else(PoisonError::into_inner);
        if hdr.is_empty() {
            return;
        }
        for (q, label) in QUANTILES {
            let micros = hdr.value_at_quantile(q);
            self.exact
                .with_label_values(&[label])
                .set(micros as f64 / 1e6);
        }
        hdr.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_quantiles_of_the_last_interval() {
        let r = Registry::new();
        let l = Latency::register(&r);
        let batch: Vec<f64> = (1..=1000).map(|i| f64::from(i) / 1000.0).collect();
        l.record(&batch);
        l.rotate();
        let q = |label: &str| l.exact.with_label_values(&[label]).get();
        assert!((q("50") - 0.5).abs() < 0.001, "{}", q("50"));
        assert!((q("99") - 0.99).abs() < 0.001, "{}", q("99"));
        assert!((q("99.9") - 0.999).abs() < 0.001, "{}", q("99.9"));
        // A quiet interval keeps the figures; a new one replaces them.
        l.rotate();
        assert!((q("50") - 0.5).abs() < 0.001);
        l.record(&[0.002; 10]);
        l.rotate();
        assert!((q("99") - 0.002).abs() < 0.0001, "{}", q("99"));
        assert_eq!(l.histogram.get_sample_count(), 1010);
    }
}
