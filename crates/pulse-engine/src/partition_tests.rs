//! Partition-level behaviour: watermark and late records, clocks that run ahead, windows read through
//! profiles, sessions, purchase statistics, determinism and interleaving independence.

use crate::test_support::*;
use crate::Source;
use proptest::prelude::*;
use pulse_events::{ErrorKind, EventBody, InputEvent, TopicRole};
use std::time::Duration;

fn src(offset: i64) -> Source<'static> {
    Source {
        role: pulse_events::TopicRole::Clickstream,
        forwarded: false,
        topic: "clickstream",
        partition: 0,
        offset,
    }
}

#[test]
fn late_records_are_rejected_and_change_nothing() {
    let mut p = partition(vec![]);
    let mut out = Vec::new();
    let now = T0 + 20 * MIN;
    p.apply(
        &event("a", "page_view", T0 + 20 * MIN),
        &src(0),
        now,
        &mut out,
    )
    .unwrap();
    assert_eq!(p.watermark(), Some(T0 + 10 * MIN));
    // Exactly at the watermark is on time; one millisecond before it is late.
    p.apply(
        &event("b", "page_view", T0 + 10 * MIN),
        &src(1),
        now,
        &mut out,
    )
    .unwrap();
    let err = p
        .apply(
            &event("b", "page_view", T0 + 10 * MIN - 1),
            &src(2),
            now,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Late);
    assert_eq!(p.profile("b").unwrap().events_total, 1);
}

#[test]
fn too_far_ahead_of_the_wall_clock_is_rejected_whatever_came_before() {
    let mut p = partition(vec![]);
    let mut out = Vec::new();
    let too_far = |e: pulse_events::EventError| {
        matches!(e, pulse_events::EventError::TimestampTooFarAhead { .. })
    };
    let e = p
        .apply(
            &event("a", "signup", T0 + 24 * HOUR + 1),
            &src(0),
            T0,
            &mut out,
        )
        .unwrap_err();
    assert!(too_far(e));
    p.apply(&event("a", "signup", T0 + 24 * HOUR), &src(1), T0, &mut out)
        .unwrap();
    // The record accepted at the bound does not move it: the clock is the reference.
    let e = p
        .apply(
            &event("a", "page_view", T0 + 24 * HOUR + 1),
            &src(2),
            T0,
            &mut out,
        )
        .unwrap_err();
    assert!(
        too_far(e),
        "a record at the bound let the next one go further"
    );
    // A replay of history is far behind the wall clock: a day between records is no skew.
    let mut replay = partition(vec![]);
    let now = T0 + 365 * 24 * HOUR;
    replay
        .apply(&event("a", "signup", T0), &src(0), now, &mut out)
        .unwrap();
    replay
        .apply(
            &event("a", "page_view", T0 + 30 * HOUR),
            &src(1),
            now,
            &mut out,
        )
        .unwrap();
}

#[test]
fn a_record_from_a_clock_that_runs_ahead_makes_nothing_late() {
    let mut p = partition(vec![]);
    let mut out = Vec::new();
    let at = |i: i64| T0 + i * MIN;
    for i in 0..10 {
        p.apply(&event("a", "page_view", at(i)), &src(i), at(i), &mut out)
            .unwrap();
    }
    // One producer's clock is 20 h ahead; the record is believed, its time is not.
    p.apply(
        &event("b", "page_view", at(10) + 20 * HOUR),
        &src(10),
        at(10),
        &mut out,
    )
    .unwrap();
    assert_eq!(p.profile("b").unwrap().events_total, 1);
    assert_eq!(p.watermark(), Some(at(10) - 10 * MIN));
    // The on-time records after it are on time.
    for i in 11..30 {
        p.apply(&event("a", "page_view", at(i)), &src(i), at(i), &mut out)
            .unwrap_or_else(|e| panic!("record {i}: {e}"));
    }
    assert_eq!(p.profile("a").unwrap().events_total, 29);
}

#[test]
fn windows_read_through_the_profile() {
    let mut p = partition(vec![]);
    run(
        &mut p,
        &[
            ("a", "page_view", T0),
            ("a", "page_view", T0 + 30 * MIN),
            ("a", "feature_used", T0 + 2 * HOUR),
        ],
    );
    let spec = p.spec().clone();
    let prof = p.profile("a").unwrap();
    let pv = spec.metric_index("page_view").unwrap();
    let ev = spec.metric_index("events").unwrap();
    assert_eq!(prof.windows.sum(&spec, pv, HOUR, T0 + 2 * HOUR), 0);
    assert_eq!(prof.windows.sum(&spec, ev, HOUR, T0 + 2 * HOUR), 1);
    assert_eq!(prof.windows.sum(&spec, pv, 24 * HOUR, T0 + 2 * HOUR), 2);
    assert_eq!(prof.windows.sum(&spec, ev, 24 * HOUR, T0 + 25 * HOUR), 1);
    assert_eq!(prof.windows.sum(&spec, ev, 24 * HOUR, T0 + 27 * HOUR), 0);
}

#[test]
fn sessions_split_on_the_gap() {
    let mut p = partition(vec![]);
    run(
        &mut p,
        &[
            ("a", "page_view", T0),
            ("a", "page_view", T0 + 29 * MIN),
            ("a", "page_view", T0 + 59 * MIN),
            ("a", "page_view", T0 + 120 * MIN),
            ("a", "session_start", T0 + 121 * MIN),
        ],
    );
    let prof = p.profile("a").unwrap();
    assert_eq!(prof.sessions_total, 3);
    let spec = p.spec().clone();
    let s = spec.metric_index("sessions").unwrap();
    assert_eq!(prof.windows.sum(&spec, s, 24 * HOUR, T0 + 3 * HOUR), 3);
}

#[test]
fn purchase_statistics_follow_lifetimes_conventions() {
    let mut p = partition(vec![]);
    let day = 24 * HOUR;
    // Other customers keep the partition's event time moving so no day-long gap trips the
    // future-skew check.
    let mut events: Vec<(&str, &str, i64)> = (0..=20)
        .map(|h| ("filler", "page_view", T0 + h * 12 * HOUR))
        .collect();
    events.extend([
        ("a", "purchase", T0),
        ("a", "purchase", T0 + HOUR),
        ("a", "purchase", T0 + 3 * day),
        ("a", "purchase", T0 + 10 * day),
    ]);
    events.sort_by_key(|e| e.2);
    run(&mut p, &events);
    let prof = p.profile("a").unwrap();
    assert_eq!(prof.purchases.orders, 4);
    assert_eq!(
        prof.purchases.frequency(),
        2,
        "same-day repeat does not count"
    );
    assert_eq!(prof.purchases.recency_days(), 10);
    assert_eq!(prof.purchases.age_days(T0 + 38 * day + HOUR), 38);
    assert_eq!(prof.excerpt().revenue_total, 40.0);
}

#[test]
fn same_input_same_outputs() {
    let events: Vec<(String, &str, i64)> = (0..400)
        .map(|i| {
            (
                format!("c{}", i % 37),
                ["signup", "feature_used", "purchase", "page_view"][i % 4],
                T0 + i as i64 * 17 * MIN,
            )
        })
        .collect();
    let as_refs: Vec<(&str, &str, i64)> = events
        .iter()
        .map(|(c, k, t)| (c.as_str(), *k, *t))
        .collect();
    let f = || {
        vec![funnel(
            "onb",
            Duration::from_secs(6 * 3600),
            vec![step("signup"), step("feature_used"), step("purchase")],
        )]
    };
    let mut a = partition(f());
    let mut b = partition(f());
    let mut out_a = Vec::new();
    let mut out_b = Vec::new();
    for (i, (c, k, t)) in as_refs.iter().enumerate() {
        a.apply(&event(c, k, *t), &src(i as i64), *t, &mut out_a)
            .unwrap();
        b.apply(&event(c, k, *t), &src(i as i64), *t, &mut out_b)
            .unwrap();
    }
    assert!(!out_a.is_empty());
    assert_eq!(out_a, out_b);
    assert!(out_a
        .iter()
        .any(|o| o.kind == pulse_events::OutputKind::FunnelAbandoned));
}

fn arb_stream() -> impl Strategy<Value = Vec<(u8, u8, i64)>> {
    // (customer, event kind, minutes): all within 9 minutes so that no interleaving can make
    // an event late (allowed lateness is 10 minutes).
    proptest::collection::vec((0u8..6, 0u8..6, 0i64..9 * 60_000), 1..120)
}

const KINDS: [&str; 6] = [
    "page_view",
    "signup",
    "feature_used",
    "purchase",
    "session_start",
    "search_done",
];

proptest! {
    #[test]
    fn interleaving_customers_does_not_change_any_profile(stream in arb_stream(), seed in any::<u64>()) {
        // Per customer, events keep their relative order; only the interleaving changes.
        let mut per_customer: Vec<Vec<(u8, u8, i64)>> = vec![Vec::new(); 6];
        for e in &stream {
            per_customer[e.0 as usize].push(*e);
        }
        let mut shuffled = Vec::new();
        let mut cursors = [0usize; 6];
        let mut x = seed | 1;
        while shuffled.len() < stream.len() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            let c = (x % 6) as usize;
            if cursors[c] < per_customer[c].len() {
                shuffled.push(per_customer[c][cursors[c]]);
                cursors[c] += 1;
            }
        }
        let f = || vec![funnel("onb", Duration::from_secs(3600), vec![step("signup"), step("feature_used"), step("purchase")])];
        let feed = |events: &[(u8, u8, i64)]| {
            let mut p = partition(f());
            let mut out = Vec::new();
            for (i, (c, k, t)) in events.iter().enumerate() {
                let ev: InputEvent<'_> = event(&format!("c{c}"), KINDS[*k as usize], T0 + t);
                p.apply(&ev, &src(i as i64), T0, &mut out).unwrap();
            }
            p
        };
        let a = feed(&stream);
        let b = feed(&shuffled);
        prop_assert_eq!(a.customers(), b.customers());
        for (id, prof) in a.profiles() {
            prop_assert_eq!(Some(prof), b.profile(id), "customer {}", id);
        }
    }
}

#[test]
fn custom_event_types_are_counted_when_configured() {
    let mut cfg = config(vec![]);
    cfg.windows.event_types.push("add_to_cart".into());
    let engine = std::sync::Arc::new(crate::Engine::compile(&cfg).unwrap());
    let mut p = crate::Partition::new(engine.clone());
    let spec = engine.spec.clone();
    run(
        &mut p,
        &[
            ("a", "add_to_cart", T0),
            ("a", "add_to_cart", T0 + 1),
            ("a", "other", T0 + 2),
        ],
    );
    let m = spec.metric_index("add_to_cart").unwrap();
    assert_eq!(
        p.profile("a").unwrap().windows.sum(&spec, m, HOUR, T0 + 1),
        2
    );
    assert!(matches!(
        event("a", "add_to_cart", T0).body,
        EventBody::Custom { .. }
    ));
}

#[test]
fn config_errors_name_their_keys() {
    let mut cfg = config(vec![funnel(
        "bad",
        Duration::ZERO,
        vec![crate::StepConfig {
            optional: true,
            ..step("x")
        }],
    )]);
    cfg.windows.event_types.push("page_view".into());
    let errs = crate::EngineSpec::compile(&cfg).unwrap_err();
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|e| e.starts_with("engine.windows.event_types[2]")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|e| e.starts_with("engine.funnels[0] (bad).window")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|e| e.starts_with("engine.funnels[0] (bad).steps[0].optional")),
        "{text:?}"
    );
}

#[test]
fn lateness_is_judged_per_input_and_timers_follow_the_newest_input() {
    let f = || {
        vec![funnel(
            "chk",
            Duration::from_secs(600),
            vec![step("view_cart"), step("purchase")],
        )]
    };
    let mut p = partition(f());
    let mut out = Vec::new();
    // The wall clock, past every event here.
    let now = T0 + 24 * HOUR;
    let at = |role, offset| Source {
        role,
        forwarded: false,
        topic: role.as_str(),
        partition: 0,
        offset,
    };
    p.apply(
        &event("x", "purchase", T0 - 5 * MIN),
        &at(TopicRole::Purchases, 0),
        now,
        &mut out,
    )
    .unwrap();
    p.apply(
        &event("a", "view_cart", T0),
        &at(TopicRole::Clickstream, 0),
        now,
        &mut out,
    )
    .unwrap();
    // Purchases have been quiet since before the cart was viewed: they hold nothing back, so
    // the attempt expires when the clickstream passes its deadline ...
    p.apply(
        &event("b", "page_view", T0 + HOUR),
        &at(TopicRole::Clickstream, 1),
        now,
        &mut out,
    )
    .unwrap();
    assert_eq!(p.watermark(), Some(T0 + HOUR - 10 * MIN));
    assert_eq!(
        render(&out),
        vec![
            "a milestone.reached chk#1 step 1",
            "a funnel.abandoned chk#1 Expired after 1"
        ]
    );
    // ... and a purchase an hour behind the clickstream is not late against its own input,
    // while a click is late against the clickstream.
    p.apply(
        &event("a", "purchase", T0 + 2 * MIN),
        &at(TopicRole::Purchases, 1),
        now,
        &mut out,
    )
    .unwrap();
    let late = p.apply(
        &event("c", "page_view", T0),
        &at(TopicRole::Clickstream, 2),
        now,
        &mut out,
    );
    assert_eq!(late.unwrap_err().kind(), ErrorKind::Late);

    // A record forwarded to another partition still moves its input's event time here, and
    // a forwarded record arriving here moves no timer: its pace is its source's.
    let mut q = partition(f());
    out.clear();
    q.apply(
        &event("a", "view_cart", T0),
        &at(TopicRole::Clickstream, 0),
        now,
        &mut out,
    )
    .unwrap();
    let forwarded = Source {
        forwarded: true,
        ..at(TopicRole::Clickstream, 9)
    };
    q.apply(
        &event("z", "page_view", T0 + HOUR),
        &forwarded,
        now,
        &mut out,
    )
    .unwrap();
    assert_eq!(q.watermark(), Some(T0 - 10 * MIN));
    q.passed_on(T0 + HOUR, &at(TopicRole::Clickstream, 1), now, &mut out);
    assert_eq!(q.watermark(), Some(T0 + HOUR - 10 * MIN));
    assert_eq!(
        render(&out),
        vec![
            "a milestone.reached chk#1 step 1",
            "a funnel.abandoned chk#1 Expired after 1"
        ]
    );
}

#[test]
fn only_a_partition_near_the_wall_clock_is_live() {
    let mut p = partition(vec![]);
    assert!(!p.is_live(T0, HOUR), "no events yet");
    run(&mut p, &[("a", "page_view", T0)]);
    assert!(p.is_live(T0 + HOUR, HOUR));
    assert!(!p.is_live(T0 + HOUR + 1, HOUR));
}

#[test]
fn changes_drain_once_and_restore_rebuilds_timers_and_watermarks() {
    let f = || {
        vec![funnel(
            "onb",
            Duration::from_secs(3600),
            vec![step("signup"), step("purchase")],
        )]
    };
    let mut p = partition(f());
    run(
        &mut p,
        &[
            ("a", "signup", T0),
            ("b", "page_view", T0 + MIN),
            ("a", "page_view", T0 + 2 * MIN),
        ],
    );
    assert_eq!(p.changed(), 2);
    let mut seen = Vec::new();
    p.drain_changes(|c, prof| seen.push((c.to_owned(), prof.clone())));
    assert_eq!(
        seen.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert_eq!(p.changed(), 0);

    // A restored partition behaves like the original: same watermark, and the pending funnel
    // deadline still fires without any further event from the customer.
    let mut q = crate::Partition::restore(
        p.engine().clone(),
        seen,
        p.frontiers(),
        p.population().clone(),
    );
    assert_eq!(q.watermark(), p.watermark());
    // The funnel deadline, and each customer's daily recheck.
    assert_eq!(q.pending_timers(), 3);
    assert_eq!(p.pending_timers(), 3);
    let (mut out_p, mut out_q) = (Vec::new(), Vec::new());
    p.advance_to(T0 + 2 * HOUR, &mut out_p);
    q.advance_to(T0 + 2 * HOUR, &mut out_q);
    assert_eq!(
        render(&out_q),
        vec!["a funnel.abandoned onb#1 Expired after 1"]
    );
    assert_eq!(out_p, out_q);
    // The expiry changed the profile, so it is drained as a change.
    let mut changed = Vec::new();
    q.drain_changes(|c, _| changed.push(c.to_owned()));
    assert_eq!(changed, vec!["a"]);
}

#[test]
fn profiles_round_trip_through_json_and_msgpack() {
    let mut p = partition(vec![funnel(
        "onb",
        Duration::from_secs(3600),
        vec![step("signup"), step("purchase")],
    )]);
    run(
        &mut p,
        &[
            ("a", "signup", T0),
            ("a", "page_view", T0 + 7 * MIN),
            ("a", "purchase", T0 + 2 * HOUR),
        ],
    );
    let prof = p.profile("a").unwrap().clone();
    let json = serde_json::to_vec(&prof).unwrap();
    assert_eq!(
        serde_json::from_slice::<crate::Profile>(&json).unwrap(),
        prof
    );
    let packed = rmp_serde::to_vec(&prof).unwrap();
    assert_eq!(
        rmp_serde::from_slice::<crate::Profile>(&packed).unwrap(),
        prof
    );
}

/// Forwarded records interleave what several source partitions forwarded, far apart in event
/// time: each is judged among its own source's records, so none of them is late, while a
/// record late within its own source still is.
#[test]
fn forwarded_records_are_judged_among_their_own_sources_records() {
    let mut p = partition(vec![]);
    let mut out = Vec::new();
    let from = |partition: i32, offset: i64| Source {
        role: TopicRole::Clickstream,
        forwarded: true,
        topic: "clickstream",
        partition,
        offset,
    };
    // Source 2 runs five days ahead of source 1.
    for (i, (source, ts)) in [
        (2, T0 + 5 * DAY),
        (1, T0),
        (2, T0 + 5 * DAY + HOUR),
        (1, T0 + MIN),
        (1, T0 + 2 * MIN),
    ]
    .into_iter()
    .enumerate()
    {
        p.apply(
            &event("a", "page_view", ts),
            &from(source, i as i64),
            ts,
            &mut out,
        )
        .expect("on time within its source");
    }
    let err = p
        .apply(
            &event("a", "page_view", T0 + 5 * DAY),
            &from(2, 9),
            T0,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Late);
    assert_eq!(p.profile("a").unwrap().events_total, 5);
    let frontiers: Vec<_> = p.forwarded_frontiers().collect();
    assert_eq!(
        frontiers,
        [((0, 1), T0 + 2 * MIN), ((0, 2), T0 + 5 * DAY + HOUR)]
    );
}

/// A late event, still on time, that bridges two sessions merges them, in the count and in the
/// windows, so every arrival order within the allowed lateness gives the same profile.
#[test]
fn sessions_and_their_window_counts_do_not_depend_on_arrival_order() {
    let times = [0, 5, 31, 40, 95, 100].map(|m| T0 + m * MIN);
    let lateness = 10 * MIN;
    let mut first: Option<crate::Profile> = None;
    let mut orders = 0;
    for a in 0..times.len() {
        for b in 0..times.len() {
            // Orders that move one event to another place, each kept within the lateness.
            let mut order: Vec<pulse_events::time::Millis> = times.to_vec();
            let t = order.remove(a);
            order.insert(b, t);
            let mut newest = T0;
            if order.iter().any(|t| {
                let late = *t < newest - lateness;
                newest = newest.max(*t);
                late
            }) {
                continue;
            }
            orders += 1;
            let mut p = partition(vec![]);
            let events: Vec<(&str, &str, pulse_events::time::Millis)> =
                order.iter().map(|t| ("a", "page_view", *t)).collect();
            feed(&mut p, &events);
            let prof = p.profile("a").unwrap().clone();
            let spec = p.spec().clone();
            let s = spec.metric_index("sessions").unwrap();
            // 0..40 chained by gaps of at most 30 min (31 bridges 5 and 40); 95..100.
            assert_eq!(prof.sessions_total, 2, "order {order:?}");
            assert_eq!(prof.windows.sum(&spec, s, HOUR, T0 + 2 * HOUR), 1);
            assert_eq!(prof.windows.sum(&spec, s, 24 * HOUR, T0 + 2 * HOUR), 2);
            match &first {
                None => first = Some(prof),
                Some(want) => assert_eq!(&prof, want, "order {order:?}"),
            }
        }
    }
    assert!(orders > 10, "{orders} orders");
}
