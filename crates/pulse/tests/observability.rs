//! Pulse's metrics, dashboard and alert rules against the real tools: the demo worker's
//! `/metrics` passes `promtool check metrics` and carries every metric Pulse defines; a real
//! Prometheus server scrapes it and evaluates the alert rules, and every expression of the
//! Grafana dashboard returns data.

mod common;

use common::*;
use pulse_telemetry::names;
use pulse_testkit::Prometheus;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Every `expr` of the dashboard's panels.
fn dashboard_expressions() -> Vec<String> {
    let text = std::fs::read_to_string(repo_file("deploy/grafana/dashboards/pulse.json"))
        .expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("expr").to_owned())
        .collect();
    assert!(exprs.len() >= 20, "{} expressions", exprs.len());
    exprs
}

/// An alert expression with every comparison turned into a 0/1 value (`a > bool 1`), so that
/// it returns one sample per series whether or not the alert would fire.
fn as_values(expr: &str) -> String {
    let mut out = expr.to_owned();
    for op in [" > ", " < ", " >= ", " <= ", " == ", " != "] {
        out = out.replace(op, &format!("{}bool ", op));
    }
    out
}

/// Metric names a PromQL expression selects.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if word.starts_with("pulse_") || word.starts_with("process_") {
                names.push(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    names
}

/// Scrapes until `ready` holds for the scrape, or panics after `timeout`.
fn scrape_until(addr: &str, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, scrape) = pulse_testkit::http_get(addr, "/metrics").expect("scrape");
        if ready(&scrape) {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never got there:\n{scrape}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn metrics_pass_promtool_and_prometheus_evaluates_the_dashboard_and_the_alerts() {
    let mut demo = start(&[("PULSE__DEMO__RATE", "3000")]);
    // Traffic with every kind of outcome the dashboard shows.
    let scrape = scrape_until(&demo.addr, Duration::from_secs(120), |s| {
        [
            "pulse_funnel_conversions_total",
            "pulse_segment_transitions_total",
            "pulse_dead_letters_total",
            "pulse_survey_score",
            "pulse_consumer_lag_records",
            "pulse_event_to_output_exact_seconds",
        ]
        .iter()
        .all(|m| metric_sum(s, m) > 0.0)
    });

    // The exposition is valid by Prometheus' own linter.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package `prometheus`; make test-deps)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // Every metric Pulse defines is there (transactions only exist in exactly-once mode).
    for name in names::ALL {
        if name == names::TRANSACTIONS {
            continue;
        }
        assert!(
            scrape.contains(&format!("# TYPE {name} ")),
            "{name} missing from the scrape"
        );
    }

    let prometheus = Prometheus::start(
        &[demo.addr.as_str()],
        &[repo_file("deploy/prometheus/alerts.yml")],
    );
    prometheus.wait_scraped(Duration::from_secs(30));
    // Enough scrapes for rate() over a one-minute window to have two samples.
    std::thread::sleep(Duration::from_secs(5));

    for expr in dashboard_expressions() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if !prometheus.query(&expr).is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dashboard query returns nothing: {expr}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    // Prometheus loaded every alert rule and evaluates it without error; every series a rule
    // reads exists on a live worker, and the rule's expression returns data there (with its
    // thresholds read as 0/1: a healthy worker must not fire them).
    let rules = prometheus.rules();
    let loaded: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    for alert in [
        "PulseConsumerLagGrowing",
        "PulseDeadLetterRateHigh",
        "PulseLatencyOverBudget",
        "PulseWorkerNotReady",
        "PulseNoInput",
        "PulseChangelogProduceFailing",
    ] {
        assert!(loaded.contains(&alert), "{alert} not loaded: {loaded:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while prometheus.rules().iter().any(|r| {
        r["health"] != "ok"
            || r["lastEvaluation"]
                .as_str()
                .unwrap_or("")
                .starts_with("0001")
    }) {
        assert!(
            Instant::now() < deadline,
            "rules not healthy: {:?}",
            prometheus.rules()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for rule in &rules {
        let expr = rule["query"].as_str().expect("query");
        prometheus.query(expr);
        // With its thresholds as 0/1 values, the rule returns data on a live worker.
        let values = as_values(expr);
        assert!(
            !prometheus.query(&values).is_empty(),
            "{} returns nothing: {values}",
            rule["name"]
        );
        for name in metric_names(expr) {
            let series = prometheus.query(&format!("count({{__name__=\"{name}\"}})"));
            assert!(
                !series.is_empty(),
                "{} reads {name}, which has no series",
                rule["name"]
            );
        }
    }
    stop_cleanly(&mut demo);
}
