use super::*;
use pulse_events::{decode, Limits};

const START: Millis = 1_767_225_600_000;

fn sample(n: u32, seed: u64) -> Vec<Record> {
    Generator::new(GeneratorConfig::new(n, seed, START, 30 * DAY)).collect()
}

#[test]
fn deterministic_for_a_seed() {
    assert_eq!(sample(50, 7), sample(50, 7));
    assert_ne!(sample(50, 7), sample(50, 8));
}

#[test]
fn records_are_valid_and_in_event_time_order() {
    let records = sample(200, 1);
    assert!(records.len() > 1000, "{}", records.len());
    let mut last = 0;
    for r in &records {
        assert!(r.timestamp >= last);
        last = r.timestamp;
        let ev = decode(&r.value, r.encoding, r.topic, &Limits::default()).expect("valid record");
        assert_eq!(ev.customer_id, r.key);
        assert_eq!(ev.timestamp, r.timestamp);
    }
    for kind in [
        "signup",
        "page_view",
        "feature_used",
        "purchase",
        "survey_response",
        "view_cart",
        "begin_checkout",
    ] {
        assert!(
            records.iter().any(
                |r| String::from_utf8_lossy(&r.value).contains(&format!("\"type\":\"{kind}\""))
            ),
            "no {kind}"
        );
    }
}

#[test]
fn bad_records_fail_as_labelled() {
    let mut cfg = GeneratorConfig::new(100, 3, START, 10 * DAY);
    cfg.bad_ratio = 0.2;
    for enc in [Encoding::Json, Encoding::Msgpack] {
        cfg.encoding = enc;
        let mut seen = std::collections::BTreeSet::new();
        for r in Generator::new(cfg.clone()) {
            let got = decode(&r.value, r.encoding, r.topic, &Limits::default());
            match r.expect {
                None => assert!(got.is_ok()),
                // Lateness depends on the partition's watermark, which only the engine knows.
                Some(ErrorKind::Late) => assert!(got.is_ok()),
                Some(k) => assert_eq!(got.unwrap_err().kind(), k, "{enc:?}"),
            }
            if let Some(k) = r.expect {
                seen.insert(k);
            }
        }
        assert_eq!(seen.len(), 6, "{seen:?}");
    }
}
