//! Heap allocations per event on the hot path (decode + validate + apply + every analytic, the
//! shipped configuration), counted by a global allocator that wraps the system's, on the
//! workloads of `hot_path`: compressed history in MessagePack and JSON, and the active
//! workload. The budget is at most one on average. Reallocations count as allocations.
//!
//! The same binary serves instruction counts, which stay stable on a noisy host where times do
//! not: `valgrind --tool=callgrind --toggle-collect='pulse_benches::Workload::run' <binary>
//! --bench` counts only the measured runs (`BENCHMARKS.md` has the figures).

use pulse_benches::Workload;
use pulse_events::{decode, Encoding, Limits};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::hint::black_box;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CUSTOMERS: u32 = 20_000;
const WARMUP: usize = 300_000;
const RECORDS: usize = 200_000;

/// What `f` returns, and how many allocations and reallocations it made.
fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let region = Region::new(GLOBAL);
    let out = f();
    let stats = region.change();
    (out, (stats.allocations + stats.reallocations) as u64)
}

fn main() {
    // `cargo test --benches` runs this once, smaller, to show it works.
    let benching = std::env::args().any(|a| a == "--bench");
    let (warmup, records) = if benching {
        (WARMUP, RECORDS)
    } else {
        (20_000, 5_000)
    };
    let workloads = [
        ("compressed history, msgpack", 60, 0.6, Encoding::Msgpack),
        ("compressed history, json", 60, 0.6, Encoding::Json),
        ("active, msgpack", 3, 20.0, Encoding::Msgpack),
    ];
    for (name, days, sessions, encoding) in workloads {
        let w = Workload::generate_with(CUSTOMERS, days, warmup, records, encoding, true, sessions);
        let n = w.records.len() as f64;
        let limits = Limits::default();
        let (_, decoding) = counted(|| {
            for (role, bytes) in &w.records {
                black_box(decode(bytes, encoding, *role, &limits).is_ok());
            }
        });
        let start = w.warm.clone();
        let ((p, outputs), all) = counted(|| w.run(start));
        drop(black_box(p));
        println!(
            "allocations/{name}: {:.2} per event ({:.2} decoding), {} events, {outputs} outputs",
            all as f64 / n,
            decoding as f64 / n,
            w.records.len()
        );
    }
}
