//! Segment, churn and RFM behaviour through the partition: entries and exits on change only,
//! transitions driven by time alone, min_dwell, cooldown, config errors.

use crate::config::analytics::SegmentConfig;
use crate::engine::Engine;
use crate::partition::Partition;
use crate::test_support::*;
use pulse_events::time::{Millis, DAY};
use pulse_events::{Cause, OutputData, OutputEvent, OutputKind};
use std::sync::Arc;
use std::time::Duration;

fn rule(name: &str, rule: &str) -> SegmentConfig {
    SegmentConfig {
        name: name.into(),
        version: 3,
        rule: rule.into(),
        min_dwell: None,
        cooldown: None,
        renamed_from: None,
    }
}

fn with_segments(segments: Vec<SegmentConfig>) -> Partition {
    let mut cfg = config(vec![]);
    cfg.segments = segments;
    Partition::new(Arc::new(Engine::compile(&cfg).expect("valid")))
}

fn segment_events(out: &[OutputEvent]) -> Vec<String> {
    render(
        &out.iter()
            .filter(|o| o.kind.topic() == pulse_events::OutputTopic::Segments)
            .cloned()
            .collect::<Vec<_>>(),
    )
}

#[test]
fn entered_and_exited_on_change_only() {
    let mut p = with_segments(vec![rule("detractors", "nps.category == 'detractor'")]);
    let out = feed(
        &mut p,
        &[
            ("a", "page_view", T0),
            ("a", "nps_3", T0 + MIN),
            ("a", "nps_5", T0 + 2 * MIN),
            ("a", "page_view", T0 + 3 * MIN),
            ("a", "nps_9", T0 + 4 * MIN),
            ("a", "nps_10", T0 + 5 * MIN),
        ],
    );
    assert_eq!(
        segment_events(&out),
        vec![
            "a segment.entered detractors",
            "a segment.exited detractors"
        ]
    );
    let entered = out
        .iter()
        .find(|o| o.kind == OutputKind::SegmentEntered)
        .unwrap();
    assert_eq!(entered.rule_version, Some(3));
    assert!(matches!(&entered.cause, Cause::Event { offset: 1, .. }));
}

#[test]
fn a_time_only_transition_fires_when_the_watermark_passes_it() {
    let mut p = with_segments(vec![rule("dormant", "days_since_last_seen > 30")]);
    let mut out = feed(&mut p, &[("a", "page_view", T0)]);
    assert!(segment_events(&out).is_empty());
    // 30 days and 23 hours later: not yet more than 30 whole days.
    p.advance_to(T0 + 31 * DAY - HOUR + 10 * MIN, &mut out);
    assert!(
        segment_events(&out).is_empty(),
        "{:?}",
        segment_events(&out)
    );
    p.advance_to(T0 + 31 * DAY + 11 * MIN, &mut out);
    assert_eq!(segment_events(&out), vec!["a segment.entered dormant"]);
    let o = out.last().unwrap();
    assert_eq!(o.cause, Cause::Timer { due: T0 + 31 * DAY });
    assert_eq!(o.at, T0 + 31 * DAY);
    // A new event ends dormancy at once.
    let back = feed(&mut p, &[("a", "page_view", T0 + 32 * DAY)]);
    assert_eq!(segment_events(&back), vec!["a segment.exited dormant"]);
}

#[test]
fn min_dwell_holds_membership_then_exits_by_timer() {
    let mut r = rule("detractors", "nps.category == 'detractor'");
    r.min_dwell = Some(Duration::from_secs(2 * 86_400));
    let mut p = with_segments(vec![r]);
    let mut out = feed(
        &mut p,
        &[
            ("a", "nps_2", T0),
            ("a", "nps_10", T0 + HOUR),
            ("a", "nps_1", T0 + 2 * HOUR),
        ],
    );
    assert_eq!(segment_events(&out), vec!["a segment.entered detractors"]);
    // Promoter again, then the dwell ends with no new event: exit by timer at T0 + 2 days.
    out.extend(feed(&mut p, &[("a", "nps_10", T0 + 3 * HOUR)]));
    assert_eq!(segment_events(&out).len(), 1);
    p.advance_to(T0 + 2 * DAY + 11 * MIN, &mut out);
    assert_eq!(
        segment_events(&out),
        vec![
            "a segment.entered detractors",
            "a segment.exited detractors"
        ]
    );
    assert_eq!(
        out.last().unwrap().cause,
        Cause::Timer { due: T0 + 2 * DAY }
    );
}

#[test]
fn cooldown_caps_entries_and_enters_late_if_still_matching() {
    let mut r = rule("detractors", "nps.category == 'detractor'");
    r.cooldown = Some(Duration::from_secs(86_400));
    let mut p = with_segments(vec![r]);
    let mut out = feed(
        &mut p,
        &[
            ("a", "nps_2", T0),
            ("a", "nps_10", T0 + HOUR),
            ("a", "nps_0", T0 + 2 * HOUR),
        ],
    );
    assert_eq!(
        segment_events(&out),
        vec![
            "a segment.entered detractors",
            "a segment.exited detractors"
        ]
    );
    // Still a detractor when the cooldown ends: entered by the timer.
    p.advance_to(T0 + DAY + 11 * MIN, &mut out);
    assert_eq!(segment_events(&out).len(), 3);
    assert_eq!(out.last().unwrap().kind, OutputKind::SegmentEntered);
    assert_eq!(out.last().unwrap().cause, Cause::Timer { due: T0 + DAY });
}

#[test]
fn only_rules_whose_inputs_changed_are_evaluated() {
    // A rule on purchases is not re-evaluated by page views: a customer entering through a
    // purchase stays entered whatever the page views do, and the ids stay deterministic.
    let mut p = with_segments(vec![
        rule("buyers", "orders_total >= 1"),
        rule("browsers", "counts.page_view_24h >= 3"),
    ]);
    let out = feed(
        &mut p,
        &[
            ("a", "purchase", T0),
            ("a", "page_view", T0 + MIN),
            ("a", "page_view", T0 + 2 * MIN),
            ("a", "page_view", T0 + 3 * MIN),
        ],
    );
    assert_eq!(
        segment_events(&out),
        vec!["a segment.entered buyers", "a segment.entered browsers"]
    );
    let sources: Vec<u16> = p.engine().segments().iter().map(|r| r.sources).collect();
    use crate::read::fields::source::*;
    assert_eq!(sources[0], PURCHASE);
    assert_eq!(sources[1], ACTIVITY | TIME);
}

#[test]
fn churn_risk_rises_with_inactivity_and_names_its_drivers() {
    let mut p = with_segments(vec![]);
    // A steady daily visitor and buyer for three weeks, then silence.
    let events: Vec<(&str, &str, Millis)> = (0..21)
        .flat_map(|d| {
            let t = T0 + d * DAY;
            [("a", "page_view", t), ("a", "purchase", t + MIN)]
        })
        .collect();
    let mut out = feed(&mut p, &events);
    assert!(out.iter().all(|o| o.kind != OutputKind::ChurnRiskChanged));
    // Time passes day by day (other customers' events), not in one jump, which would skip
    // the days between (`engine.max_recheck_gap`).
    for d in 21..=60 {
        p.advance_to(T0 + d * DAY, &mut out);
    }
    let changes: Vec<_> = out
        .iter()
        .filter(|o| o.kind == OutputKind::ChurnRiskChanged)
        .collect();
    assert!(!changes.is_empty(), "no churn change after 40 silent days");
    let last = changes.last().unwrap();
    let OutputData::ChurnRisk {
        level,
        drivers,
        score,
        ..
    } = &last.data
    else {
        panic!("{last:?}")
    };
    assert_eq!(level, "high");
    assert!(*score >= 0.7);
    assert!(matches!(last.cause, Cause::Timer { .. }));
    let names: Vec<&str> = drivers.iter().map(|d| &*d.name).collect();
    assert!(
        names.contains(&"inactivity") && names.contains(&"p_dead"),
        "{names:?}"
    );
    // Levels change one way at a time and never repeat: low→medium→high.
    let levels: Vec<String> = render(&changes.into_iter().cloned().collect::<Vec<_>>());
    assert_eq!(
        levels,
        vec![
            "a churn_risk.changed low->medium",
            "a churn_risk.changed medium->high"
        ]
    );
    assert_eq!(p.profile("a").unwrap().derived.churn_level, 2);
}

#[test]
fn a_detractor_answer_raises_churn_risk_at_once() {
    let mut cfg = config(vec![]);
    cfg.churn.weights.detractor = 1.0;
    cfg.churn.weights.inactivity = 0.0;
    cfg.churn.weights.engagement_drop = 0.0;
    let mut p = Partition::new(Arc::new(Engine::compile(&cfg).unwrap()));
    let out = feed(&mut p, &[("a", "page_view", T0), ("a", "nps_2", T0 + MIN)]);
    let churn: Vec<_> = out
        .iter()
        .filter(|o| o.kind == OutputKind::ChurnRiskChanged)
        .collect();
    assert_eq!(churn.len(), 1);
    assert!(matches!(churn[0].cause, Cause::Event { offset: 1, .. }));
}

#[test]
fn rfm_refresh_scores_purchasers_and_fires_rules() {
    let mut p = with_segments(vec![rule("champions", "rfm.segment == 'champions'")]);
    // Ten customers, customer k buying k times on consecutive days.
    let mut events = Vec::new();
    let names: Vec<String> = (1..=10).map(|k| format!("c{k:02}")).collect();
    for (k, name) in names.iter().enumerate() {
        for d in 0..=k as i64 {
            events.push((name.as_str(), "purchase", T0 + d * DAY + k as i64));
        }
    }
    events.sort_by_key(|e| e.2);
    let mut out = feed(&mut p, &events);
    p.advance_to(T0 + 12 * DAY, &mut out);
    let pop = p.population();
    assert!(pop.rfm.version >= 1);
    let champions: Vec<String> = segment_events(&out);
    // The two most frequent, most recent, highest-spending customers are champions.
    assert!(
        champions.contains(&"c10 segment.entered champions".to_string()),
        "{champions:?}"
    );
    assert!(
        champions.contains(&"c09 segment.entered champions".to_string()),
        "{champions:?}"
    );
    assert!(
        !champions.iter().any(|c| c.starts_with("c01 ")),
        "{champions:?}"
    );
    let excerpt = &out
        .iter()
        .find(|o| o.customer_id == "c10" && o.kind == OutputKind::SegmentEntered)
        .unwrap()
        .profile;
    assert_eq!(excerpt.rfm_segment.as_deref(), Some("champions"));
}

#[test]
fn bad_rules_are_config_errors_naming_rule_and_position() {
    let compile = |r: &str| {
        let mut cfg = config(vec![]);
        cfg.segments = vec![rule("vip", r)];
        Engine::compile(&cfg).map(|_| ()).unwrap_err()
    };
    let e = compile("orders_total > 3 &&\n  rfm.segmnt == 'champions'");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].key, "engine.segments[0] (vip)");
    assert!(
        e[0].message
            .contains("unknown field `rfm.segmnt` at line 2, column"),
        "{}",
        e[0].message
    );
    let says = |rule: &str, fragment: &str| {
        let e = compile(rule);
        assert!(e[0].message.contains(fragment), "{}", e[0].message);
    };
    says("orders_total >", "does not compile at line 1");
    says("rfm.segment > 3", "fails on an empty profile");
    says("counts.page_view_13d > 1", "counts.page_view_13d");
    // Comprehension variables are not fields.
    let mut cfg = config(vec![]);
    cfg.segments = vec![rule("ok", "[1, 2].exists(x, x > orders_total)")];
    assert!(Engine::compile(&cfg).is_ok());
}

mod compiled {
    use super::*;
    use crate::read::view::View;
    use proptest::prelude::*;

    const RULES: &[(&str, bool)] = &[
        ("orders_total >= 1 && revenue_total > 20.5", true),
        (
            "rfm.segment == 'champions' || churn.level in ['medium', 'high']",
            true,
        ),
        (
            "!(nps.category == 'detractor') && days_since_last_seen < 3",
            true,
        ),
        ("engagement.stickiness * 30.0 >= 2.0", true),
        ("counts.page_view_7d - counts.page_view_24h > 1", true),
        ("events_total / (sessions_total - 1) > 2", true),
        ("events_total % 3 == 0", true),
        (
            "clv.p_alive < 0.9 ? churn.score > 0.2 : engagement.active_days_7 >= 1",
            true,
        ),
        ("-events_total < -3", true),
        ("clv.frequency > 1.5", true),
        ("nps.score == 10.0", true),
        ("csat.satisfied == false || funnels.onb.step >= 2", true),
        ("funnels.onb.active && !funnels.onb.converted", true),
        ("days_since_last_purchase in [0, 1, 2]", true),
        (
            "9223372036854775807 + events_total > 0 || orders_total > 0",
            true,
        ),
        (
            "orders_total > 0 || 9223372036854775807 + events_total > 0",
            true,
        ),
        ("size(rfm.segment) > 4", false),
    ];

    fn engine() -> Arc<Engine> {
        let mut cfg = config(vec![funnel(
            "onb",
            Duration::from_secs(7 * 86_400),
            vec![step("signup"), step("feature_used"), step("purchase")],
        )]);
        cfg.segments = RULES
            .iter()
            .enumerate()
            .map(|(i, (r, _))| rule(&format!("r{i}"), r))
            .collect();
        Arc::new(Engine::compile(&cfg).expect("rules compile"))
    }

    #[test]
    fn the_common_subset_is_compiled() {
        let engine = engine();
        for (i, (r, compiled)) in RULES.iter().enumerate() {
            assert_eq!(engine.rules.is_compiled(i), *compiled, "{r}");
        }
    }

    const KINDS: &[&str] = &[
        "page_view",
        "purchase",
        "signup",
        "feature_used",
        "session_start",
        "nps_2",
        "nps_8",
        "nps_10",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn compiled_rules_agree_with_the_interpreter(
            steps in proptest::collection::vec((0..KINDS.len(), 0i64..(3 * DAY)), 1..40),
            later in 0i64..(60 * DAY),
        ) {
            let engine = engine();
            let mut p = Partition::new(engine.clone());
            let mut t = T0;
            let mut out = Vec::new();
            for (i, (k, gap)) in steps.iter().enumerate() {
                t += gap;
                p.apply(&event("a", KINDS[*k], t), &clickstream(i as i64), t, &mut out)
                    .unwrap();
                let profile = p.profile("a").unwrap();
                for now in [t, t + later] {
                    let view = View::new(&engine.spec, p.population(), profile, now);
                    for (r, (text, _)) in RULES.iter().enumerate() {
                        let fast = engine.rules.matches(r, &view);
                        let slow = engine.rules.interpret(r, &view);
                        prop_assert_eq!(
                            fast.clone().unwrap_or(false),
                            slow.clone().unwrap_or(false),
                            "{} at {}: compiled {:?}, interpreted {:?}", text, now, fast, slow
                        );
                    }
                }
            }
        }
    }
}

/// The live tally equals a recount of the profiles after entries and exits driven by events,
/// timers (a dormancy rule, churn rising with inactivity) and RFM refreshes.
#[test]
fn the_tally_follows_every_change() {
    use crate::tally::{Standing, Tally};
    let mut cfg = config(vec![]);
    cfg.segments = vec![
        rule("champions", "rfm.segment == 'champions'"),
        rule("dormant", "days_since_last_seen >= 3"),
        rule("buyers", "orders_total >= 2"),
    ];
    let engine = Arc::new(Engine::compile(&cfg).expect("valid"));
    let mut p = Partition::new(engine.clone());
    let names: Vec<String> = (1..=12).map(|k| format!("c{k:02}")).collect();
    let mut events = Vec::new();
    for (k, name) in names.iter().enumerate() {
        for d in 0..=(k % 5) as i64 {
            events.push((name.as_str(), "purchase", T0 + 3 * d * DAY + k as i64));
        }
        events.push((name.as_str(), "page_view", T0 + k as i64 * DAY));
    }
    events.sort_by_key(|e| e.2);
    let mut out = feed(&mut p, &events);
    p.advance_to(T0 + 40 * DAY, &mut out);
    let recount = |p: &Partition| {
        let mut t = Tally::new(3);
        for (_, profile) in p.profiles() {
            t.arrive(Standing::of(profile));
        }
        t
    };
    let tally = p.tally().clone();
    assert_eq!(tally, recount(&p));
    assert_eq!(tally.customers, 12);
    assert!(tally.segments.iter().all(|n| *n > 0), "{tally:?}");
    assert!(tally.churn[0] < 12, "churn rose for someone: {tally:?}");
    assert!(tally.rfm.iter().sum::<u64>() > 0, "{tally:?}");
    let restored = Partition::restore(
        engine,
        p.profiles().map(|(k, v)| (k.to_owned(), v.clone())),
        p.frontiers(),
        p.population().clone(),
    );
    assert_eq!(restored.tally(), &tally);
}

/// Event time jumping a year past the customers' last events (a clock, a backfill): the
/// rechecks of the days skipped fire once, at the last daily slot before the new time, not
/// once a day; the customers end where daily rechecks would have left them.
#[test]
fn a_jump_of_a_year_fires_the_skipped_rechecks_once() {
    let run = |gap: Duration| {
        let mut cfg = config(vec![]);
        cfg.segments = vec![
            rule("dormant", "days_since_last_seen > 30"),
            rule("lapsed", "days_since_last_seen > 90"),
        ];
        cfg.max_recheck_gap = gap;
        let mut p = Partition::new(Arc::new(Engine::compile(&cfg).expect("valid")));
        feed(
            &mut p,
            &[("a", "page_view", T0), ("b", "page_view", T0 + HOUR)],
        );
        let mut out = Vec::new();
        p.advance_to(T0 + 365 * DAY, &mut out);
        let members: Vec<(String, u64)> = p
            .profiles()
            .map(|(c, prof)| (c.to_owned(), prof.derived.segments))
            .collect();
        (out, members)
    };
    let (daily, daily_members) = run(Duration::ZERO);
    let (jumped, jumped_members) = run(Duration::from_secs(7 * 86_400));
    let mut members = jumped_members.clone();
    members.sort();
    let mut want = daily_members;
    want.sort();
    assert_eq!(members, want);
    let dues = |out: &[OutputEvent]| -> std::collections::BTreeSet<Millis> {
        out.iter()
            .filter_map(|o| match o.cause {
                Cause::Timer { due } => Some(due),
                _ => None,
            })
            .collect()
    };
    // Daily: the entries at day 31 and day 91 (and churn as it rose), each at its own day.
    assert!(dues(&daily).len() >= 2, "{:?}", dues(&daily));
    // Jumped: every output at the one slot per customer before the new time.
    assert_eq!(
        dues(&jumped),
        [T0 + 364 * DAY, T0 + HOUR + 364 * DAY]
            .into_iter()
            .collect(),
        "{:?}",
        render(&jumped)
    );
    let mut entered = segment_events(&jumped);
    entered.sort();
    assert_eq!(
        entered,
        [
            "a segment.entered dormant",
            "a segment.entered lapsed",
            "b segment.entered dormant",
            "b segment.entered lapsed"
        ]
    );
}
