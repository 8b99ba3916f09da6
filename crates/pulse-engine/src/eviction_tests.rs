//! `engine.evict_after`: a customer quiet that long leaves memory, every segment and the sums,
//! is tombstoned once, and starts over if they come back; restored state evicts the same.

use crate::config::analytics::SegmentConfig;
use crate::engine::Engine;
use crate::partition::Partition;
use crate::spec::EngineSpec;
use crate::test_support::*;
use pulse_events::{Cause, OutputKind};
use std::sync::Arc;
use std::time::Duration;

fn engine(evict_after_days: u64) -> Arc<Engine> {
    let mut cfg = config(vec![]);
    cfg.time_horizon = Duration::from_secs(20 * 86_400);
    cfg.evict_after = Duration::from_secs(evict_after_days * 86_400);
    cfg.segments = vec![SegmentConfig {
        name: "dormant".into(),
        version: 1,
        rule: "days_since_last_seen >= 7".into(),
        min_dwell: None,
        cooldown: None,
        renamed_from: None,
    }];
    Arc::new(Engine::compile(&cfg).expect("valid"))
}

fn tombstones(p: &mut Partition) -> Vec<String> {
    let mut out = Vec::new();
    p.drain_evicted(|c| out.push(c.to_owned()));
    out
}

#[test]
fn a_customer_quiet_for_evict_after_leaves_memory_segments_and_sums_once() {
    let mut p = Partition::new(engine(30));
    feed(&mut p, &[("a", "page_view", T0), ("b", "page_view", T0)]);
    // b stays active; a goes quiet, enters dormant on day 7.
    let mut out = Vec::new();
    for day in 1..=29 {
        out.extend(feed(&mut p, &[("b", "page_view", T0 + day * DAY)]));
    }
    assert!(p.profile("a").is_some(), "not yet: 29 days");
    assert_eq!(p.tally().segments, vec![1]);
    assert!(tombstones(&mut p).is_empty());
    let out = feed(&mut p, &[("b", "page_view", T0 + 31 * DAY)]);
    assert!(p.profile("a").is_none(), "evicted after 30 days");
    assert!(p.was_evicted("a") && !p.was_evicted("b"));
    assert_eq!((p.customers(), p.tally().customers), (1, 1));
    assert_eq!(p.tally().segments, vec![0], "a left dormant");
    let exits: Vec<_> = out
        .iter()
        .filter(|o| o.customer_id == "a" && o.kind == OutputKind::SegmentExited)
        .collect();
    assert_eq!(exits.len(), 1, "one exit, from dormant");
    assert_eq!(exits[0].cause, Cause::Timer { due: T0 + 30 * DAY });
    assert_eq!(tombstones(&mut p), ["a"]);
    assert!(tombstones(&mut p).is_empty(), "tombstoned once");
    let mut changed = Vec::new();
    p.drain_changes(|c, _| changed.push(c.to_owned()));
    assert!(
        !changed.contains(&"a".to_owned()),
        "no profile written after its tombstone"
    );

    // Back: a new customer, first seen now.
    feed(&mut p, &[("a", "page_view", T0 + 40 * DAY)]);
    let a = p.profile("a").expect("back");
    assert_eq!((a.first_seen, a.events_total), (T0 + 40 * DAY, 1));
    assert!(!p.was_evicted("a"));
    assert_eq!(p.tally().customers, 2);
}

#[test]
fn zero_keeps_every_customer_and_a_restored_state_evicts_as_the_original() {
    let mut kept = Partition::new(engine(0));
    feed(&mut kept, &[("a", "page_view", T0), ("b", "page_view", T0)]);
    feed(&mut kept, &[("b", "page_view", T0 + 100 * DAY)]);
    assert!(kept.profile("a").is_some(), "evict_after = 0s keeps a");

    // The same profiles restored under evict_after = 30d: a, long past the horizon with no
    // recheck pending, is evicted at the next advance, at the time it is due.
    let profiles: Vec<_> = kept
        .profiles()
        .map(|(c, p)| (c.to_owned(), p.clone()))
        .collect();
    assert_eq!(
        profiles
            .iter()
            .find(|(c, _)| c == "a")
            .unwrap()
            .1
            .derived
            .recheck,
        0
    );
    let mut restored = Partition::restore(
        engine(30),
        profiles,
        kept.frontiers(),
        kept.population().clone(),
    );
    let out = feed(&mut restored, &[("b", "page_view", T0 + 101 * DAY)]);
    assert!(restored.profile("a").is_none());
    assert_eq!(tombstones(&mut restored), ["a"]);
    assert!(out
        .iter()
        .filter(|o| o.customer_id == "a")
        .all(|o| o.cause == Cause::Timer { due: T0 + 30 * DAY }));
}

#[test]
fn evict_after_shorter_than_the_time_horizon_is_refused_naming_the_key() {
    let mut cfg = config(vec![]);
    cfg.time_horizon = Duration::from_secs(20 * 86_400);
    cfg.evict_after = Duration::from_secs(10 * 86_400);
    let errors = EngineSpec::compile(&cfg).expect_err("invalid");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|e| e.starts_with("engine.evict_after")),
        "{text:?}"
    );
}
