//! A configuration change across a restart, with the real binary: a worker restored from 20
//! days of generated traffic comes back under a configuration that adds a window event type
//! before the others, renames one, removes the checkout funnel, and lists the segments in
//! reverse order with one renamed. It must restore without a panic, keep every count,
//! attempt and membership under its name, emit nothing its input did not cause, and go on
//! applying new records.

mod common;

use common::cluster::*;
use common::*;
use pulse_events::{Cause, Encoding, RawEvent, RawTimestamp, TopicRole};
use pulse_loadgen::{encode_raw, Generator, GeneratorConfig, Record};
use pulse_testkit::http_get;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const DAY: i64 = 86_400_000;
const START: i64 = 1_767_225_600_000; // 2026-01-01

fn partition_of(key: &str) -> i32 {
    pulse_kafka::partition_for(key.as_bytes(), PARTITIONS, "murmur2_random").expect("partition")
}

fn produce(cluster: &Cluster, records: &[Record]) -> Ends {
    let keyed: Vec<(String, &Record)> = records.iter().map(|r| (r.key.clone(), r)).collect();
    cluster.produce(&keyed, partition_of)
}

/// The shipped configuration changed as the module comment says, as a file over the default.
fn changed_config() -> String {
    let default: toml::Table = pulse::config::DEFAULT_TOML.parse().expect("default");
    let engine = default["engine"].as_table().expect("[engine]");
    let mut segments: Vec<toml::Value> = engine["segments"].as_array().expect("segments").clone();
    segments.reverse();
    for s in &mut segments {
        let t = s.as_table_mut().expect("a segment");
        if t["name"].as_str() == Some("power_users") {
            t.insert("name".into(), "most_engaged".into());
            t.insert("renamed_from".into(), "power_users".into());
        }
    }
    let funnels: Vec<toml::Value> = engine["funnels"]
        .as_array()
        .expect("funnels")
        .iter()
        .filter(|f| f["name"].as_str() != Some("checkout"))
        .cloned()
        .collect();
    let mut event_types: Vec<toml::Value> = engine["windows"]["event_types"]
        .as_array()
        .expect("event types")
        .iter()
        .map(|t| match t.as_str() {
            Some("search") => "site_search".into(),
            _ => t.clone(),
        })
        .collect();
    event_types.insert(0, "view_cart".into());
    let mut windows = toml::Table::new();
    windows.insert("event_types".into(), event_types.into());
    let mut renamed = toml::Table::new();
    renamed.insert("site_search".into(), "search".into());
    windows.insert("renamed_from".into(), renamed.into());
    let mut changed = toml::Table::new();
    changed.insert("windows".into(), windows.into());
    changed.insert("segments".into(), segments.into());
    changed.insert("funnels".into(), funnels.into());
    let mut file = toml::Table::new();
    file.insert("engine".into(), changed.into());
    toml::to_string(&file).expect("TOML")
}

/// Every customer's report from the worker, once it holds every partition and is ready.
fn reports(worker: &Proc, customers: &BTreeSet<String>) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(&worker.addr, "/readyz").map(|(s, _)| s).ok() != Some(200) {
        assert!(Instant::now() < deadline, "not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    customers
        .iter()
        .filter_map(|id| {
            let (status, body) = http_get(&worker.addr, &format!("/v1/customers/{id}")).ok()?;
            (status == 200).then(|| (id.clone(), serde_json::from_str(&body).expect("JSON")))
        })
        .collect()
}

/// `counts.<metric>_<window>` of a report, by name.
fn counts(report: &Value) -> BTreeMap<String, u64> {
    report["fields"]["counts"]
        .as_object()
        .expect("counts")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
        .collect()
}

fn names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a name").to_owned())
        .collect()
}

fn funnel(report: &Value, name: &str) -> Option<Value> {
    report["funnels"]
        .as_array()
        .expect("funnels")
        .iter()
        .find(|f| f["funnel"] == name)
        .cloned()
}

#[test]
fn a_restored_worker_under_a_changed_configuration_keeps_its_state_by_name() {
    let cluster = Cluster::start(Kind::Mock, "evolve");
    let records: Vec<Record> =
        Generator::new(GeneratorConfig::new(300, 11, START, 20 * DAY)).collect();
    let customers: BTreeSet<String> = records.iter().map(|r| r.key.clone()).collect();
    let ends = produce(&cluster, &records);
    let env = cluster.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut first = start(&env);
    for (topic, end) in &ends {
        cluster.wait_committed(topic, end, Duration::from_secs(120));
    }
    let before = reports(&first, &customers);
    stop_cleanly(&mut first);
    let outputs_before: BTreeSet<String> = cluster.output_ids().into_iter().collect();
    assert!(before.len() > 250, "{} customers", before.len());
    assert!(
        before
            .values()
            .any(|r| funnel(r, "checkout").is_some_and(|f| f["active"] == true)),
        "no checkout attempt was open, so removing the funnel tests nothing"
    );

    let file = std::env::temp_dir().join(format!("pulse-evolve-{}.toml", std::process::id()));
    std::fs::write(&file, changed_config()).expect("config written");
    let path = file.to_str().expect("a path");
    let mut second = start_with(&["--config", path], &env);
    let after = reports(&second, &customers);
    assert_eq!(after.len(), before.len());
    for (id, was) in &before {
        let now = &after[id];
        let (was_counts, now_counts) = (counts(was), counts(now));
        for (name, n) in &was_counts {
            let name = name.replace("search_", "site_search_");
            assert_eq!(now_counts.get(&name), Some(n), "{id}: {name}");
        }
        for (name, n) in &now_counts {
            if name.starts_with("view_cart_") {
                assert_eq!(*n, 0, "{id}: {name}");
            }
        }
        let mut segments = names(&was["segments"]);
        if segments.remove("power_users") {
            segments.insert("most_engaged".into());
        }
        assert_eq!(names(&now["segments"]), segments, "{id}: memberships");
        assert_eq!(funnel(now, "checkout"), None, "{id}");
        assert_eq!(funnel(now, "onboarding"), funnel(was, "onboarding"), "{id}");
        for field in ["events_total", "sessions_total", "orders_total"] {
            assert_eq!(now["fields"][field], was["fields"][field], "{id}: {field}");
        }
    }
    // Restored and rewritten under the new layout, with no input: nothing to announce.
    let since: Vec<_> = cluster
        .outputs()
        .into_iter()
        .filter(|o| !outputs_before.contains(&cluster.canonical_id(o)))
        .collect();
    assert!(since.is_empty(), "outputs without a cause: {since:?}");

    // New records, of the added type too, for one customer a day after the traffic ends.
    let id = before.keys().next().expect("a customer").clone();
    let late: Vec<Record> = ["view_cart", "page_view", "view_cart"]
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let ts = START + 21 * DAY + i as i64 * 60_000;
            let raw = RawEvent {
                event_id: Some(format!("evolve-{i}").into()),
                customer_id: Some(id.as_str().into()),
                kind: Some((*kind).into()),
                timestamp: Some(RawTimestamp::rfc3339(ts)),
                url: Some("/cart".into()),
                ..RawEvent::default()
            };
            let value = encode_raw(&raw, Encoding::Json);
            Record {
                topic: TopicRole::Clickstream,
                key: id.clone(),
                timestamp: ts,
                value,
                encoding: Encoding::Json,
                expect: None,
            }
        })
        .collect();
    let more = produce(&cluster, &late);
    let p = partition_of(&id) as usize;
    let target: Vec<i64> = (0..PARTITIONS as usize)
        .map(|q| ends[0].1[q] + if q == p { more[0].1[q] } else { 0 })
        .collect();
    cluster.wait_committed("clickstream", &target, Duration::from_secs(60));
    let (status, body) = http_get(&second.addr, &format!("/v1/customers/{id}")).expect("answers");
    assert_eq!(status, 200, "{body}");
    let now: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(counts(&now).get("view_cart_1h"), Some(&2), "{body}");
    assert_eq!(
        now["fields"]["events_total"].as_u64(),
        before[&id]["fields"]["events_total"]
            .as_u64()
            .map(|n| n + 3)
    );
    stop_cleanly(&mut second);
    let _ = std::fs::remove_file(&file);
    // Whatever the new records caused is the one customer's; the day they moved the
    // partition's event time on may recheck the others (time-driven outputs).
    let caused: Vec<String> = cluster
        .outputs()
        .into_iter()
        .filter(|o| !outputs_before.contains(&cluster.canonical_id(o)))
        .filter(|o| matches!(o.cause, Cause::Event { .. }))
        .map(|o| o.customer_id)
        .collect();
    assert!(caused.iter().all(|c| *c == id), "{caused:?}");
}
