//! The analytics end to end: two months of generated traffic through the worker on the
//! embedded cluster produce every output type (segment entries and exits, churn-risk changes,
//! milestones, conversions, abandonments), each with the id its content determines.

use pulse::Running;
use pulse_events::{Cause, OutputData, OutputEvent, OutputKind};
use pulse_loadgen::{Generator, GeneratorConfig};
use pulse_tests::*;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

const DAY: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_traffic_produces_every_output_type_with_deterministic_ids() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers().to_owned();
    let cfg = config(&brokers, "e2e-analytics");
    let topics = cfg.kafka.topics.clone();

    // Two months of 300 customers, ending five days ago, all produced before the worker starts
    // so that event time, not the wall clock, drives every timer.
    let now = pulse_kafka::wall_clock_ms();
    let mut gen = GeneratorConfig::new(300, 5, now - 65 * DAY, 60 * DAY);
    gen.acquisition = 45 * DAY;
    let producer = pulse::produce::traffic_producer(&cfg.kafka).expect("producer");
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let total = pulse::produce::produce_records(&producer, &topics, Generator::new(gen), 0, stop)
        .await
        .expect("traffic produced");
    assert!(total > 5_000, "{total} records");

    let running = Running::start(cfg).await.expect("pulse starts");
    let metrics = running.metrics.clone();
    wait_consumed(&metrics, total, Duration::from_secs(300)).await;
    let profiles = running.state.profiles();
    running.stop().await.expect("clean stop");

    let produced = counter_total(&metrics.output_events) as usize;
    let outputs = read_outputs(&brokers, &topics, produced, Duration::from_secs(30));
    assert_eq!(outputs.len(), produced, "every output once");

    let mut by_kind: BTreeMap<OutputKind, usize> = BTreeMap::new();
    let mut ids = HashSet::new();
    let mut segments = HashSet::new();
    for (key, o) in &outputs {
        *by_kind.entry(o.kind).or_default() += 1;
        assert_eq!(key.as_deref(), Some(o.customer_id.as_str()));
        if !ids.insert(o.event_id.clone()) {
            let same: Vec<_> = outputs
                .iter()
                .filter(|(_, x)| x.event_id == o.event_id)
                .collect();
            panic!("duplicate id {}: {same:#?}", o.event_id);
        }
        // The id is the hash of what the output says: customer, kind, rule and cause.
        let (rule, numbers) = o.data.rule();
        let again = OutputEvent::new(
            o.kind,
            &o.customer_id,
            (rule, &numbers),
            o.at,
            o.cause.clone(),
            o.rule_version,
            o.data.clone(),
            o.profile.clone(),
        );
        assert_eq!(again.event_id, o.event_id, "{o:?}");
        match &o.data {
            OutputData::Segment { segment } => {
                assert_eq!(o.rule_version, Some(1));
                segments.insert((segment.to_string(), o.kind));
            }
            OutputData::ChurnRisk {
                level,
                previous_level,
                drivers,
                score,
            } => {
                assert_ne!(level, previous_level);
                assert_eq!(
                    &o.profile.churn_level, level,
                    "the excerpt is the new state"
                );
                assert!(!drivers.is_empty() && drivers.len() <= 3);
                assert!((0.0..=1.0).contains(score));
            }
            _ => {}
        }
        if let Cause::Timer { due } = o.cause {
            // At its due time, or later for a refresh of a customer already evaluated later.
            assert!(o.at >= due, "{o:?}");
        }
    }
    for kind in OutputKind::ALL {
        assert!(
            by_kind.get(&kind).copied().unwrap_or(0) > 0,
            "no {kind}: {by_kind:?}"
        );
    }
    // Every shipped segment is entered by someone.
    for s in [
        "champions",
        "new_customers",
        "detractors",
        "dormant",
        "power_users",
        "at_risk_high_value",
    ] {
        assert!(
            segments.contains(&(s.to_owned(), OutputKind::SegmentEntered)),
            "nobody entered {s}: {segments:?}"
        );
    }
    // `pulse fit` on the live population: the changelog holds every purchaser's statistics.
    let mut client = rdkafka::ClientConfig::new();
    client.set("bootstrap.servers", &brokers);
    let parts = pulse_kafka::read_all(&client, &topics.profiles).expect("changelog reads");
    let summary = pulse::fit::summary_of_profiles(parts.iter().flat_map(|c| c.profiles.values()));
    let purchasers = profiles
        .iter()
        .filter(|(_, p)| p.purchases.days > 0)
        .count();
    assert_eq!(summary.customers.len(), purchasers);
    let fitted = pulse::fit::fit(&summary, pulse_engine::clv::Clock::Days).expect("fits");
    let m = fitted.bgnbd;
    for v in [
        m.r,
        m.alpha,
        m.a,
        m.b,
        fitted.spend.p,
        fitted.spend.q,
        fitted.spend.v,
    ] {
        assert!(v.is_finite() && v > 0.0, "{fitted:?}");
    }
    assert!(pulse::fit::to_toml(&fitted).contains("[engine.clv]"));

    // New customers leave by time alone.
    assert!(segments.contains(&("new_customers".to_owned(), OutputKind::SegmentExited)));

    // The profiles agree with the last outputs: a customer's final segment set is what its
    // entered/exited events add up to.
    let mut members: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    let mut ordered: Vec<&OutputEvent> = outputs.iter().map(|(_, o)| o).collect();
    ordered.sort_by_key(|o| o.at);
    for o in ordered {
        if let OutputData::Segment { segment } = &o.data {
            let m = members.entry(&o.customer_id).or_default();
            match o.kind {
                OutputKind::SegmentEntered => assert!(m.insert(segment), "entered twice"),
                _ => assert!(m.remove(&**segment), "exited without entering"),
            }
        }
    }
    let names: Vec<&str> = [
        "champions",
        "at_risk_high_value",
        "new_customers",
        "power_users",
        "detractors",
        "dormant",
    ]
    .to_vec();
    for (id, p) in &profiles {
        let expected: HashSet<&str> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| p.derived.segments & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        let got = members.get(id.as_str()).cloned().unwrap_or_default();
        assert_eq!(got, expected, "segments of {id}");
    }
}
