//! Workloads shared by the benchmarks: generated traffic, pre-encoded, and the engine built
//! from the shipped configuration.

use pulse_engine::{Partition, Source};
use pulse_events::{decode, Encoding, Limits, OutputEvent, TopicRole};
use pulse_loadgen::{Generator, GeneratorConfig};
use std::sync::Arc;

/// Pre-encoded input records of one encoding, and a partition warmed up on the records that
/// precede them, so a run measures the steady state: mostly known customers, some new ones.
#[derive(Debug)]
pub struct Workload {
    pub records: Vec<(TopicRole, Vec<u8>)>,
    pub encoding: Encoding,
    pub warm: Partition,
    pub now: i64,
}

const START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

impl Workload {
    /// `customers` customers over `days` days of generated traffic: the first `warmup` records
    /// build the partition state, the next `measured` ones are the workload.
    pub fn generate(
        customers: u32,
        days: i64,
        warmup: usize,
        measured: usize,
        encoding: Encoding,
    ) -> Self {
        Self::generate_with(customers, days, warmup, measured, encoding, true, 0.6)
    }

    /// [`Workload::generate`], optionally without the shipped segment rules (to show what
    /// evaluating them costs) and with another activity level.
    pub fn generate_with(
        customers: u32,
        days: i64,
        warmup: usize,
        measured: usize,
        encoding: Encoding,
        segments: bool,
        sessions_per_day: f64,
    ) -> Self {
        let mut cfg = GeneratorConfig::new(customers, 7, START, days * 86_400_000);
        cfg.encoding = encoding;
        cfg.sessions_per_day = sessions_per_day;
        let mut all: Vec<(TopicRole, Vec<u8>)> = Generator::new(cfg)
            .take(warmup + measured)
            .map(|r| (r.topic, r.value))
            .collect();
        let records = all.split_off(warmup.min(all.len()));
        let mut config = pulse::Config::embedded_default();
        if !segments {
            config.engine.segments.clear();
        }
        let engine = config.compile_engine().expect("shipped config is valid");
        let now = START + (days + 1) * 86_400_000;
        let mut warm = Partition::new(Arc::new(engine));
        apply_all(&mut warm, &all, encoding, now, 0);
        Self {
            records,
            encoding,
            warm,
            now,
        }
    }

    /// Decodes, validates and applies every record, as a partition task does. Returns the
    /// partition (so dropping it is not timed) and the number of outputs.
    pub fn run(&self, mut p: Partition) -> (Partition, usize) {
        let n = apply_all(&mut p, &self.records, self.encoding, self.now, 1 << 40);
        (p, n)
    }
}

fn apply_all(
    p: &mut Partition,
    records: &[(TopicRole, Vec<u8>)],
    encoding: Encoding,
    now: i64,
    base: i64,
) -> usize {
    let limits = Limits::default();
    let mut out: Vec<OutputEvent> = Vec::with_capacity(64);
    let mut outputs = 0;
    for (i, (role, bytes)) in records.iter().enumerate() {
        let src = Source {
            role: *role,
            forwarded: false,
            topic: role.as_str(),
            partition: 0,
            offset: base + i as i64,
        };
        if let Ok(ev) = decode(bytes, encoding, *role, &limits) {
            let _ = p.apply(&ev, &src, now, &mut out);
        }
        // Per batch the worker hands outputs to the producer and drains the changed profiles
        // into the changelog (measured separately); dropping them here stands in for that.
        if i % 512 == 511 {
            outputs += out.len();
            out.clear();
            p.drain_changes(|_, _| {});
        }
    }
    outputs + out.len()
}
