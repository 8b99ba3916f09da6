//! Replaying from a checkpoint with some customers already ahead of it, as a restore after a
//! lost checkpoint does: events the restored profile holds are only passed by, and the state
//! ends where an uninterrupted run's ends.

use crate::test_support::*;
use crate::{Partition, Profile};
use std::collections::BTreeMap;
use std::time::Duration;

/// Three customers, sessions, a funnel, NPS answers, purchases, across two days.
fn stream() -> Vec<(&'static str, &'static str, i64)> {
    let mut s = Vec::new();
    for i in 0..60i64 {
        let c = ["a", "b", "c"][(i % 3) as usize];
        let kind = match i % 7 {
            0 => "signup",
            1 => "purchase",
            2 => "nps_9",
            3 => "nps_3",
            _ => "page_view",
        };
        s.push((c, kind, T0 + i * 47 * MIN));
    }
    s
}

fn funnels() -> Vec<crate::FunnelConfig> {
    vec![funnel(
        "onb",
        Duration::from_secs(6 * 3600),
        vec![step("signup"), step("purchase")],
    )]
}

fn profiles(p: &Partition) -> BTreeMap<String, Profile> {
    p.profiles()
        .map(|(c, prof)| (c.to_owned(), prof.clone()))
        .collect()
}

#[test]
fn customers_ahead_of_the_checkpoint_are_passed_by_and_the_state_matches() {
    let events = stream();
    let mut whole = partition(funnels());
    feed(&mut whole, &events);

    // The original run, checkpointed after 30 events; the next batch (30 up to 45, or up to
    // the first refresh, which ends a batch) reached the changelog for customer "b" only, and
    // then the worker died.
    let mut original = partition(funnels());
    feed(&mut original, &events[..30]);
    let checkpoint = (
        profiles(&original),
        original.frontiers(),
        original.population().clone(),
    );
    original.take_refreshed();
    let mut out = Vec::new();
    let mut end = 30;
    while end < 45 {
        let (c, k, t) = events[end];
        original
            .apply(&event(c, k, t), &clickstream(end as i64), t, &mut out)
            .unwrap();
        end += 1;
        if original.take_refreshed() {
            break;
        }
    }
    assert!(end < 45, "the batch holds no refresh; the test wants one");
    let ahead = original.profile("b").unwrap().clone();

    let (mut restored_profiles, frontiers, population) = checkpoint;
    restored_profiles.insert("b".into(), ahead);
    let mut p = Partition::restore(
        original.engine().clone(),
        restored_profiles,
        frontiers,
        population,
    );
    for (i, (c, k, t)) in events.iter().enumerate().skip(30) {
        let ev = event(c, k, *t);
        if *c == "b" && i < end {
            p.already_applied(*t, &clickstream(i as i64), *t, &mut out)
                .unwrap();
        } else {
            p.apply(&ev, &clickstream(i as i64), *t, &mut out).unwrap();
        }
    }
    assert_eq!(profiles(&p), profiles(&whole));
    assert_eq!(p.population(), whole.population());
    assert_eq!(p.watermark(), whole.watermark());
}

#[test]
fn the_population_sums_are_rebuilt_exactly_on_restore() {
    let mut p = partition(funnels());
    feed(&mut p, &stream());
    let q = Partition::restore(
        p.engine().clone(),
        profiles(&p),
        p.frontiers(),
        p.population().clone(),
    );
    assert_eq!(q.population(), p.population());
    assert!(!p
        .population()
        .cohorts
        .counts(crate::Period::Week)
        .is_empty());
    assert!(p
        .population()
        .surveys
        .scores(90, T0 + 2 * DAY)
        .nps()
        .is_some());
}

/// What a partition holds is what it wrote to the changelog: every change to a profile marks it
/// for writing, also a refresh's (which visits every purchaser and writes back only those it
/// changed). A profile held differently from its stored copy would restore differently.
#[test]
fn every_profile_held_equals_its_last_written_copy() {
    let mut events = stream();
    // One customer goes on for hours after the others stopped: the hourly refreshes in between
    // visit them, most with nothing new to say.
    for h in 1..6 {
        events.push(("c", "page_view", T0 + 2 * DAY + h * 60 * MIN));
    }
    let mut config = config(funnels());
    config.rfm.refresh = Duration::from_secs(3600);
    let mut p = Partition::new(std::sync::Arc::new(
        crate::Engine::compile(&config).expect("valid test config"),
    ));
    let mut stored: BTreeMap<String, Profile> = BTreeMap::new();
    let mut out = Vec::new();
    let mut refreshes = 0;
    for (i, (c, k, t)) in events.iter().enumerate() {
        p.apply(&event(c, k, *t), &clickstream(i as i64), *t, &mut out)
            .unwrap();
        refreshes += usize::from(p.take_refreshed());
        p.drain_changes(|c, prof| {
            stored.insert(c.to_owned(), prof.clone());
        });
    }
    assert!(
        refreshes > 0,
        "the stream holds no refresh; the test wants one"
    );
    assert_eq!(stored, profiles(&p));
}
