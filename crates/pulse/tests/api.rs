//! The query API of the real binary on demo traffic: every endpoint answers with JSON that
//! agrees with the worker's state and metrics; unknown customers, segments and endpoints are
//! 404s and bad parameters 400s, each with a JSON error; a second worker in the group says
//! which partition and which worker hold a customer it does not hold.

mod common;

use common::*;
use pulse_telemetry::percent_encode;
use pulse_testkit::http_get;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> (u16, Value) {
    let (status, body) = http_get(addr, path).expect("pulse answers");
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{path}: answer is not JSON ({e}): {body}"));
    (status, json)
}

fn error_of(addr: &str, path: &str, status: u16) -> String {
    let (s, body) = get(addr, path);
    assert_eq!(s, status, "{path}: {body}");
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{path}: no error message in {body}"))
        .to_owned()
}

/// Waits until `f` gives a value.
fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn every_endpoint_answers_in_json_and_agrees_with_the_state() {
    let mut demo = start(&[("PULSE__DEMO__RATE", "3000")]);
    let a = demo.addr.clone();

    // Segments: definitions with live populations; wait for traffic to fill them.
    let segments = eventually(Duration::from_secs(90), || {
        let (s, body) = get(&a, "/v1/segments");
        assert_eq!(s, 200);
        let list = body["segments"].as_array()?.clone();
        let new = list.iter().find(|s| s["name"] == "new_customers")?;
        (new["members"].as_u64()? >= 50).then_some(list)
    });
    assert_eq!(segments.len(), 6, "the shipped segments");
    let dormant = segments.iter().find(|s| s["name"] == "dormant").unwrap();
    assert_eq!(dormant["rule"], "days_since_last_seen >= 14");

    // Members, paged with a cursor: pages do not overlap and add up to the population.
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/segments/new_customers/members?limit=7".to_owned(),
            Some(c) => format!(
                "/v1/segments/new_customers/members?limit=7&cursor={}",
                percent_encode(c)
            ),
        };
        let (s, page) = get(&a, &path);
        assert_eq!(s, 200, "{page}");
        let ids: Vec<String> = page["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert!(ids.len() <= 7);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {ids:?}");
        for id in &ids {
            assert!(seen.insert(id.clone()), "{id} on two pages");
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(ids.len(), 7, "a full page before the next cursor");
                cursor = Some(c.to_owned());
            }
            None => break,
        }
        if seen.len() >= 70 {
            break;
        }
    }
    assert!(seen.len() >= 50, "{} members paged", seen.len());

    // A member's full profile: every analytics group, and the segment it was listed in.
    let id = seen.iter().next().unwrap().clone();
    let (s, c) = get(&a, &format!("/v1/customers/{}", percent_encode(&id)));
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["customer_id"], id.as_str());
    for group in [
        "rfm",
        "clv",
        "churn",
        "nps",
        "csat",
        "engagement",
        "counts",
        "funnels",
    ] {
        assert!(c["fields"][group].is_object(), "{group} missing: {c}");
    }
    assert!(c["fields"]["clv"]["p_alive"].is_number());
    assert!(c["fields"]["events_total"].as_u64().unwrap() >= 1);
    let member_of: Vec<&str> = c["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // The segments agree with the rule `days_since_first_seen < 7` on the reported fields,
    // give or take the day a daily recheck may still be due.
    let days = c["fields"]["days_since_first_seen"].as_i64().unwrap();
    if member_of.contains(&"new_customers") {
        assert!(days <= 7, "{c}");
    } else {
        assert!(days >= 7, "{c}");
    }
    assert!(c["churn_drivers"].is_array());
    assert!(c["funnels"].is_array());

    // Funnels: per-step counts never grow along the funnel; conversion matches the counts.
    // The demo replays history, which the partitions apply together: the first conversion
    // may come a moment after the first members.
    let f = eventually(Duration::from_secs(60), || {
        let (s, f) = get(&a, "/v1/funnels");
        assert_eq!(s, 200);
        let converted = f["funnels"]
            .as_array()?
            .iter()
            .any(|f| f["converted"].as_u64() > Some(0));
        converted.then_some(f)
    });
    let funnels = f["funnels"].as_array().unwrap();
    assert_eq!(funnels.len(), 2);
    for funnel in funnels {
        let reached: Vec<u64> = funnel["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["reached"].as_u64().unwrap())
            .collect();
        assert!(reached.windows(2).all(|w| w[0] >= w[1]), "{funnel}");
        let started = funnel["started"].as_u64().unwrap();
        assert_eq!(reached[0], started, "{funnel}");
        let converted = funnel["converted"].as_u64().unwrap();
        // Reaching the last step converts: the last count is the converted customers.
        assert_eq!(*reached.last().unwrap(), converted, "{funnel}");
        let conversion = funnel["conversion"].as_f64().unwrap();
        assert!((conversion - converted as f64 / started.max(1) as f64).abs() < 1e-9);
    }

    // Cohorts: each cohort's size is its first column and no later column exceeds it.
    for period in ["week", "month"] {
        let (s, body) = get(&a, &format!("/v1/cohorts?period={period}"));
        assert_eq!(s, 200);
        assert_eq!(body["period"], period);
        let rows = body["cohorts"].as_array().unwrap();
        assert!(!rows.is_empty(), "{body}");
        for row in rows {
            let active: Vec<u64> = row["active"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(row["size"].as_u64(), active.first().copied());
        }
    }

    // Errors: JSON, with the right status and a message that names the problem.
    assert!(error_of(&a, "/v1/customers/nobody-at-all", 404).contains("nobody-at-all"));
    assert!(error_of(&a, "/v1/segments/vips/members", 404).contains("vips"));
    assert!(error_of(&a, "/v1/segments/dormant/members?limit=0", 400).contains("limit"));
    assert!(error_of(&a, "/v1/segments/dormant/members?limit=lots", 400).contains("limit"));
    assert!(error_of(&a, "/v1/segments/dormant/members?limit=10001", 400).contains("limit"));
    assert!(error_of(&a, "/v1/cohorts?period=day", 400).contains("week or month"));
    assert!(error_of(&a, "/v1/customer/x", 404).contains("no endpoint"));
    assert!(error_of(&a, "/nowhere", 404).contains("no endpoint /nowhere"));
    // Found by fuzzing: these answered plain text before.
    assert!(!error_of(&a, "/v1/customers/%FF", 400).is_empty());
    assert!(!error_of(&a, "/v1/cohorts?period=%FF", 400).is_empty());
    let long = "x".repeat(300);
    assert!(error_of(&a, &format!("/v1/customers/{long}"), 400).contains("256"));

    // A second worker joins the group: it holds some partitions, and for a customer in the
    // others it says where that customer lives.
    let mut second = start(&[
        ("PULSE__KAFKA__BROKERS", demo.brokers.as_str()),
        ("PULSE__KAFKA__GROUP_ID", "pulse"),
    ]);
    let b = second.addr.clone();
    let mut last = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(115);
    let (id, body) = eventually(Duration::from_secs(120), || {
        assert!(
            Instant::now() < deadline,
            "the second worker last answered: {last}"
        );
        for id in &seen {
            let (s, body) = get(&b, &format!("/v1/customers/{}", percent_encode(id)));
            if s == 404 {
                last = body.clone();
            }
            let held_some = body["held_partitions"]
                .as_array()
                .is_some_and(|h| !h.is_empty());
            // While the group settles a partition can move more than once; the owner named
            // is the last one to claim it, which the first worker becomes once it has
            // restored it.
            let named_first = body["owner"] == format!("http://{a}").as_str();
            if s == 404 && held_some && body["partition"].is_i64() && named_first {
                return Some((id.clone(), body));
            }
        }
        None
    });
    let partition = body["partition"].as_i64().unwrap();
    let held: Vec<i64> = body["held_partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    assert!(!held.contains(&partition), "{id}: {partition} in {held:?}");
    // It names the worker that holds the partition (from the changelog's checkpoints) and
    // where to ask; that worker answers.
    assert_eq!(body["owner"], format!("http://{a}").as_str(), "{body}");
    assert!(body["error"].as_str().unwrap().contains(&a), "{body}");
    let location = body["location"].as_str().unwrap();
    let path = location.strip_prefix(&format!("http://{a}")).unwrap();
    let (s, c) = get(&a, path);
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["customer_id"], id.as_str());

    stop_cleanly(&mut second);
    stop_cleanly(&mut demo);
}
