//! The hot path: decode + validate + apply over generated traffic, JSON and MessagePack, with
//! the shipped configuration (windows, sessions, funnels, RFM, lifetime value, churn, surveys,
//! cohorts and segment rules, with the timers the traffic's event time fires), and once more
//! without the segment rules to show their cost. Run with `make bench`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pulse_benches::Workload;
use pulse_events::{decode, Encoding, Limits};
use std::hint::black_box;

const CUSTOMERS: u32 = 20_000;
const DAYS: i64 = 60;
const WARMUP: usize = 300_000;
const RECORDS: usize = 200_000;

/// Prints what a run of the workload produces, for reading its throughput.
fn describe(name: &str, w: &Workload) {
    let (p, outputs) = w.run(w.warm.clone());
    eprintln!(
        "{name}: {} records -> {outputs} outputs ({:.2} per record); {} customers, {} pending timers after",
        w.records.len(),
        outputs as f64 / w.records.len() as f64,
        p.customers(),
        p.pending_timers()
    );
}

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_path");
    group.sample_size(10);
    for encoding in [Encoding::Msgpack, Encoding::Json] {
        let w = Workload::generate(CUSTOMERS, DAYS, WARMUP, RECORDS, encoding);
        let name = match encoding {
            Encoding::Json => "json",
            Encoding::Msgpack => "msgpack",
        };
        describe(name, &w);
        group.throughput(Throughput::Elements(w.records.len() as u64));
        group.bench_function(format!("decode_apply/{name}"), |b| {
            b.iter_batched(
                || w.warm.clone(),
                |p| black_box(w.run(p)),
                BatchSize::PerIteration,
            )
        });
        let limits = Limits::default();
        group.bench_function(format!("decode_only/{name}"), |b| {
            b.iter(|| {
                let mut ok = 0usize;
                for (role, bytes) in &w.records {
                    ok += usize::from(decode(black_box(bytes), encoding, *role, &limits).is_ok());
                }
                black_box(ok)
            })
        });
    }
    let w = Workload::generate_with(
        CUSTOMERS,
        DAYS,
        WARMUP,
        RECORDS,
        Encoding::Msgpack,
        false,
        0.6,
    );
    group.throughput(Throughput::Elements(w.records.len() as u64));
    group.bench_function("decode_apply_without_segments/msgpack", |b| {
        b.iter_batched(
            || w.warm.clone(),
            |p| black_box(w.run(p)),
            BatchSize::PerIteration,
        )
    });
    // Live-like: the same population far more active (20 sessions a day) over 3 days, so
    // events, not customer-days, dominate; the compressed history above runs about one
    // time-driven recheck per event.
    let w = Workload::generate_with(CUSTOMERS, 3, WARMUP, RECORDS, Encoding::Msgpack, true, 20.0);
    describe("active", &w);
    group.throughput(Throughput::Elements(w.records.len() as u64));
    group.bench_function("decode_apply_active/msgpack", |b| {
        b.iter_batched(
            || w.warm.clone(),
            |p| black_box(w.run(p)),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
