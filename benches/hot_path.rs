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

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_path");
    group.sample_size(10);
    for encoding in [Encoding::Msgpack, Encoding::Json] {
        let w = Workload::generate(CUSTOMERS, DAYS, WARMUP, RECORDS, encoding);
        let name = match encoding {
            Encoding::Json => "json",
            Encoding::Msgpack => "msgpack",
        };
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
    let w = Workload::generate_with(CUSTOMERS, DAYS, WARMUP, RECORDS, Encoding::Msgpack, false);
    group.throughput(Throughput::Elements(w.records.len() as u64));
    group.bench_function("decode_apply_without_segments/msgpack", |b| {
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
