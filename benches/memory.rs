//! Profile memory at scale: 10,000,000 customers (`PULSE_MEMORY_CUSTOMERS`) applied to one
//! partition with the shipped configuration, each with a few days of typical activity (visits,
//! page views, feature use; half of them buy, a tenth answer NPS). Prints the resident-set
//! growth per customer. Run with `cargo bench -p pulse-benches --bench memory`.

use pulse_engine::{Partition, Profile, Source};
use pulse_events::{EventBody, InputEvent, OutputEvent, SurveyKind, TopicRole};
use std::sync::Arc;

const START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400_000;
/// Customers first come on one of this many days.
const SPREAD: u64 = 30;

fn rss_bytes() -> u64 {
    // Second field of statm: resident pages.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The events of one customer on one day, as (kind, minute of the day).
fn day_plan(i: u64, visit: u64) -> Vec<(&'static str, i64)> {
    let mut v = vec![("session_start", 0), ("page_view", 1), ("page_view", 3)];
    if visit == 0 && i % 3 == 0 {
        v.push(("feature_used", 5));
    }
    if visit == 1 && i % 2 == 0 {
        v.push(("purchase", 6));
    }
    if visit == 1 && i % 10 == 0 {
        v.push(("nps", 8));
    }
    v
}

fn main() {
    // `cargo test --benches` runs bench targets without `--bench`: keep that run tiny.
    let benching = std::env::args().any(|a| a == "--bench");
    let customers: u64 = std::env::var("PULSE_MEMORY_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 10_000_000 } else { 3_000 });
    let engine = pulse::Config::embedded_default()
        .compile_engine()
        .expect("shipped config is valid");
    let mut p = Partition::new(Arc::new(engine));
    let before = rss_bytes();
    let mut out: Vec<OutputEvent> = Vec::with_capacity(1024);
    let mut outputs = 0u64;
    let mut day_events: Vec<(i64, u64, &'static str)> = Vec::new();
    let started = std::time::Instant::now();
    let mut offset = 0i64;
    // Day d: customers first seen on d (visit 0) and those returning three days later (visit
    // 1, every other customer), in time order across customers.
    for d in 0..SPREAD + 3 {
        day_events.clear();
        for (visit, first_day) in [(0u64, d), (1, d.wrapping_sub(3))] {
            if first_day >= SPREAD {
                continue;
            }
            let on_day = (customers + SPREAD - 1 - first_day) / SPREAD;
            for j in 0..on_day {
                let i = first_day + j * SPREAD;
                if i >= customers || (visit == 1 && i % 2 == 1) {
                    continue;
                }
                // Spread over the first 20 hours of the day.
                let base = START + d as i64 * DAY + (j as i64 * 72_000_000) / on_day as i64;
                for (kind, minute) in day_plan(i, visit) {
                    day_events.push((base + minute * 60_000, i, kind));
                }
            }
        }
        day_events.sort_unstable_by_key(|e| e.0);
        for (ts, i, kind) in &day_events {
            let customer = format!("c{i:08}");
            let body = match *kind {
                "session_start" => EventBody::SessionStart,
                "page_view" => EventBody::PageView {
                    url: "/pricing".into(),
                    referrer: None,
                    channel: None,
                    device: None,
                },
                "feature_used" => EventBody::FeatureUsed {
                    feature: "export".into(),
                },
                "purchase" => EventBody::Purchase {
                    order_id: "o".into(),
                    amount: 20.0 + (*i % 50) as f64,
                    currency: "EUR".into(),
                    items: vec![],
                },
                _ => EventBody::SurveyResponse {
                    survey: SurveyKind::Nps,
                    score: (*i % 11) as f64,
                    comment: None,
                },
            };
            let ev = InputEvent {
                event_id: "e".into(),
                customer_id: customer.into(),
                timestamp: *ts,
                body,
            };
            offset += 1;
            let src = Source {
                role: TopicRole::Clickstream,
                forwarded: false,
                topic: "clickstream",
                partition: 0,
                offset,
            };
            let _ = p.apply(&ev, &src, *ts, &mut out);
            if out.len() > 512 {
                outputs += out.len() as u64;
                out.clear();
                p.drain_changes(|_, _| {});
            }
        }
    }
    p.drain_changes(|_, _| {});
    let capacity = day_events.capacity() * std::mem::size_of::<(i64, u64, &str)>();
    drop(day_events);
    let after = rss_bytes();
    let n = p.customers() as u64;
    let delta = after.saturating_sub(before);
    println!(
        "customers {n}, events {offset}, outputs {outputs}, pending timers {}, in {:.1} s",
        p.pending_timers(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "resident set: {:.1} MiB before, {:.1} MiB after (event buffer of {:.1} MiB included)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        capacity as f64 / 1048576.0
    );
    println!(
        "bytes per customer: {:.0} (size_of Profile {} bytes inline)",
        delta as f64 / n.max(1) as f64,
        std::mem::size_of::<Profile>()
    );
}
