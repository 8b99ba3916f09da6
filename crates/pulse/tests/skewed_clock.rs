//! A worker whose wall clock runs an hour ahead of its producers' (an NTP daemon that died, a
//! VM restored from a snapshot): the real binary against Apache Kafka, with its reading of the
//! wall clock set an hour ahead (`PULSE_FAILPOINT_CLOCK_OFFSET`). Its idle
//! partitions must still fire their timers, and the live records that come after the pause must
//! be applied, not dead-lettered as late: an idle partition's event time moves on by the time
//! that passes, measured on the monotonic clock, not to the worker's wall clock.

mod common;

use common::cluster::*;
use common::*;
use pulse_events::{Encoding, TopicRole};
use pulse_loadgen::Record;
use std::time::{Duration, Instant};

const MINUTE: i64 = 60_000;

fn clickstream(customer: &str, kind: &str, at: i64) -> Record {
    Record {
        topic: TopicRole::Clickstream,
        key: customer.to_owned(),
        timestamp: at,
        value: format!(
            r#"{{"event_id":"{customer}-{kind}-{at}","customer_id":"{customer}","type":"{kind}","timestamp":{at},"url":"/"}}"#
        )
        .into_bytes(),
        encoding: Encoding::Json,
        expect: None,
    }
}

fn metric(w: &Proc, name: &str) -> f64 {
    metric_sum(&http_get(&w.addr, "/metrics").1, name)
}

#[test]
fn kafka_a_worker_whose_clock_runs_an_hour_ahead_fires_timers_and_marks_no_live_record_late() {
    let cluster = Cluster::start(Kind::Kafka, "skewed-clock");
    let mut env = cluster.env();
    env.push(("PULSE__WORKER__IDLE_TIMEOUT".to_owned(), "2s".to_owned()));
    env.push((
        "PULSE_FAILPOINT_CLOCK_OFFSET".to_owned(),
        (60 * MINUTE).to_string(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let worker = start(&env);
    let send = |r: Record| {
        cluster.produce(&[(r.key.clone(), &r)], |_| 0);
    };
    let now = pulse_kafka::wall_clock_ms();
    // The checkout funnel gives begin_checkout an hour after view_cart: this attempt's step
    // deadline falls 20 s after the watermark the live page view sets (its time minus the
    // allowed lateness, 10 min), so only time passing while the partition is idle fires it.
    let opened = now - 70 * MINUTE + 20_000;
    send(clickstream("c-skew", "view_cart", opened));
    send(clickstream("c-skew", "page_view", now));
    let abandoned = || {
        cluster.outputs().into_iter().any(|o| {
            o.customer_id == "c-skew" && o.kind == pulse_events::OutputKind::FunnelAbandoned
        })
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while !abandoned() {
        assert!(
            Instant::now() < deadline,
            "the idle partition fired no funnel deadline within 90 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Live traffic goes on, stamped by the producers' correct clock.
    let later = pulse_kafka::wall_clock_ms();
    send(clickstream("c-skew", "page_view", later));
    let applied = Instant::now() + Duration::from_secs(60);
    while metric(&worker, "pulse_input_records_total") < 3.0 {
        assert!(
            Instant::now() < applied,
            "the live record after the pause was not counted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let late = metric(&worker, "pulse_late_records_total");
    assert_eq!(late, 0.0, "live records were dead-lettered as late");
    let (status, answer) = http_get(&worker.addr, "/v1/customers/c-skew");
    assert_eq!(status, 200, "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let profile: serde_json::Value = serde_json::from_str(body).expect(&answer);
    assert_eq!(profile["fields"]["events_total"], 3, "{body}");
}
