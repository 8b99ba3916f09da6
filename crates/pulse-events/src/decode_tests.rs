//! One test per way a record can be wrong, plus JSON / MessagePack round trips.

use super::*;
use crate::{ErrorKind, RawTimestamp};
use proptest::prelude::*;
use serde_json::json;

fn limits() -> Limits {
    Limits::default()
}

fn json_bytes(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn msgpack_bytes(v: &serde_json::Value) -> Vec<u8> {
    rmp_serde::to_vec_named(v).unwrap()
}

fn base(kind: &str) -> serde_json::Value {
    json!({
        "event_id": "e-1",
        "customer_id": "c-1",
        "type": kind,
        "timestamp": "2026-11-23T10:00:00Z",
    })
}

fn with(mut v: serde_json::Value, k: &str, x: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().unwrap().insert(k.into(), x);
    v
}

fn without(mut v: serde_json::Value, k: &str) -> serde_json::Value {
    v.as_object_mut().unwrap().remove(k);
    v
}

fn purchase() -> serde_json::Value {
    let v = with(base("purchase"), "order_id", json!("o-1"));
    let v = with(v, "amount", json!(42.5));
    with(v, "currency", json!("EUR"))
}

fn survey(name: &str, score: serde_json::Value) -> serde_json::Value {
    with(
        with(base("survey_response"), "survey", json!(name)),
        "score",
        score,
    )
}

/// Decodes in both encodings and checks they agree, returning the JSON result's error.
fn err(v: serde_json::Value, role: TopicRole) -> EventError {
    let j = decode(&json_bytes(v.clone()), Encoding::Json, role, &limits()).unwrap_err();
    let m = decode(&msgpack_bytes(&v), Encoding::Msgpack, role, &limits()).unwrap_err();
    assert_eq!(j.kind(), m.kind(), "json {j} vs msgpack {m}");
    j
}

fn ok(v: serde_json::Value, role: TopicRole) -> InputEvent<'static> {
    let bytes: &'static [u8] = Box::leak(json_bytes(v.clone()).into_boxed_slice());
    let j = decode(bytes, Encoding::Json, role, &limits()).unwrap();
    let mp = msgpack_bytes(&v);
    let m = decode(&mp, Encoding::Msgpack, role, &limits()).unwrap();
    assert_eq!(format!("{j:?}"), format!("{m:?}"));
    j
}

#[test]
fn accepts_every_input_type() {
    let pv = with(base("page_view"), "url", json!("/pricing"));
    assert!(matches!(
        ok(pv, TopicRole::Clickstream).body,
        EventBody::PageView { .. }
    ));
    for t in ["session_start", "session_end", "signup"] {
        assert_eq!(ok(base(t), TopicRole::Clickstream).body.type_name(), t);
    }
    let fu = with(base("feature_used"), "feature", json!("export"));
    assert!(matches!(
        ok(fu, TopicRole::Clickstream).body,
        EventBody::FeatureUsed { .. }
    ));
    let s = with(base("search"), "query", json!("shoes"));
    assert!(matches!(
        ok(s, TopicRole::Clickstream).body,
        EventBody::Search { .. }
    ));
    let custom = ok(base("add_to_cart"), TopicRole::Clickstream);
    assert_eq!(
        custom.body,
        EventBody::Custom {
            name: "add_to_cart".into()
        }
    );
    let p = with(
        purchase(),
        "items",
        json!([{"sku": "A", "quantity": 2, "price": 21.25}]),
    );
    match ok(p, TopicRole::Purchases).body {
        EventBody::Purchase { amount, items, .. } => {
            assert_eq!(amount, 42.5);
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].quantity, 2);
        }
        b => panic!("{b:?}"),
    }
    let r = with(
        with(
            with(base("refund"), "order_id", json!("o-1")),
            "amount",
            json!(5),
        ),
        "currency",
        json!("USD"),
    );
    assert!(matches!(
        ok(r, TopicRole::Purchases).body,
        EventBody::Refund { .. }
    ));
    let nps = ok(survey("nps", json!(9)), TopicRole::Surveys);
    assert!(
        matches!(nps.body, EventBody::SurveyResponse { survey: SurveyKind::Nps, score, .. } if score == 9.0)
    );
    let custom_survey = ok(survey("onboarding_ease", json!(3.5)), TopicRole::Surveys);
    assert!(matches!(
        custom_survey.body,
        EventBody::SurveyResponse {
            survey: SurveyKind::Custom(_),
            ..
        }
    ));
}

#[test]
fn timestamps_as_text_or_millis() {
    let a = ok(base("signup"), TopicRole::Clickstream);
    let b = ok(
        with(base("signup"), "timestamp", json!(a.timestamp)),
        TopicRole::Clickstream,
    );
    assert_eq!(a.timestamp, b.timestamp);
    assert_eq!(
        a.timestamp,
        crate::time::parse_rfc3339("2026-11-23T10:00:00Z").unwrap()
    );
}

#[test]
fn schema_version_1_is_accepted_and_others_are_not() {
    ok(
        with(base("signup"), "schema_version", json!(1)),
        TopicRole::Clickstream,
    );
    let e = err(
        with(base("signup"), "schema_version", json!(2)),
        TopicRole::Clickstream,
    );
    assert_eq!(e, EventError::UnsupportedVersion(2));
    assert_eq!(e.kind(), ErrorKind::UnsupportedVersion);
    // A future version whose shape no longer fits is still reported as unsupported.
    let v2 = with(
        with(base("signup"), "schema_version", json!(3)),
        "customer_id",
        json!({"id": 1}),
    );
    assert_eq!(
        err(v2, TopicRole::Clickstream),
        EventError::UnsupportedVersion(3)
    );
}

#[test]
fn oversized_payload() {
    let v = with(base("signup"), "comment", json!("x".repeat(70_000)));
    let e = err(v, TopicRole::Clickstream);
    assert!(
        matches!(e, EventError::Oversized { limit: 65_536, .. }),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Oversized);
}

#[test]
fn not_json() {
    for bytes in [&b"{\"event_id\": "[..], b"hello", b"{}{}", b"\xff\xfe"] {
        let e = decode(bytes, Encoding::Json, TopicRole::Clickstream, &limits()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    }
}

#[test]
fn not_msgpack() {
    let json_text = json_bytes(base("signup"));
    let e = decode(
        &json_text,
        Encoding::Msgpack,
        TopicRole::Clickstream,
        &limits(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    let mut truncated = msgpack_bytes(&base("signup"));
    truncated.truncate(truncated.len() - 3);
    let e = decode(
        &truncated,
        Encoding::Msgpack,
        TopicRole::Clickstream,
        &limits(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
}

#[test]
fn missing_and_empty_ids() {
    for f in ["event_id", "customer_id", "type", "timestamp"] {
        let e = err(without(base("signup"), f), TopicRole::Clickstream);
        assert_eq!(e, EventError::MissingField(f.into()));
        assert_eq!(e.kind(), ErrorKind::Schema);
    }
    for f in ["event_id", "customer_id"] {
        let e = err(with(base("signup"), f, json!("")), TopicRole::Clickstream);
        assert_eq!(e, EventError::EmptyField(f.into()));
        assert_eq!(e.kind(), ErrorKind::Validation);
    }
    let e = err(
        with(base("signup"), "customer_id", json!(null)),
        TopicRole::Clickstream,
    );
    assert_eq!(e, EventError::MissingField("customer_id".into()));
}

#[test]
fn ids_over_size_limits() {
    let e = err(
        with(base("signup"), "event_id", json!("e".repeat(129))),
        TopicRole::Clickstream,
    );
    assert_eq!(
        e,
        EventError::TooLong {
            field: "event_id",
            len: 129,
            max: 128
        }
    );
    ok(
        with(base("signup"), "event_id", json!("e".repeat(128))),
        TopicRole::Clickstream,
    );
    let e = err(
        with(base("signup"), "customer_id", json!("c".repeat(257))),
        TopicRole::Clickstream,
    );
    assert_eq!(
        e,
        EventError::TooLong {
            field: "customer_id",
            len: 257,
            max: 256
        }
    );
    assert_eq!(e.kind(), ErrorKind::Validation);
}

#[test]
fn unknown_type_for_topic() {
    let e = err(base("page_view"), TopicRole::Purchases);
    assert_eq!(
        e,
        EventError::UnknownType {
            role: TopicRole::Purchases,
            kind: "page_view".into()
        }
    );
    assert_eq!(e.kind(), ErrorKind::Schema);
    assert_eq!(
        err(base("purchase"), TopicRole::Clickstream).kind(),
        ErrorKind::Schema
    );
    assert_eq!(
        err(base("nps"), TopicRole::Surveys).kind(),
        ErrorKind::Schema
    );
    let e = err(base("add to cart!"), TopicRole::Clickstream);
    assert!(matches!(e, EventError::BadEventName(_)), "{e}");
}

#[test]
fn wrong_field_types_name_the_field() {
    let e = err(
        with(base("signup"), "customer_id", json!(42)),
        TopicRole::Clickstream,
    );
    match &e {
        EventError::WrongType { field, .. } => assert_eq!(field, "customer_id"),
        e => panic!("{e}"),
    }
    assert_eq!(e.kind(), ErrorKind::Schema);
    let bad_item = with(
        purchase(),
        "items",
        json!([{"sku": "A", "quantity": 1, "price": "9.99"}]),
    );
    match err(bad_item, TopicRole::Purchases) {
        EventError::WrongType { field, .. } => assert_eq!(field, "items[0].price"),
        e => panic!("{e}"),
    }
    let e = err(
        with(purchase(), "amount", json!("12")),
        TopicRole::Purchases,
    );
    assert_eq!(e.kind(), ErrorKind::Schema);
    let e = err(
        with(base("signup"), "timestamp", json!(true)),
        TopicRole::Clickstream,
    );
    assert_eq!(e.kind(), ErrorKind::Schema);
    // A well-formed document that is not an object is not an event at all.
    let e = err(json!([1, 2, 3]), TopicRole::Clickstream);
    assert_eq!(e.kind(), ErrorKind::Decode);
}

#[test]
fn missing_type_specific_fields() {
    let cases = [
        (base("page_view"), TopicRole::Clickstream, "url"),
        (base("feature_used"), TopicRole::Clickstream, "feature"),
        (base("search"), TopicRole::Clickstream, "query"),
        (
            without(purchase(), "order_id"),
            TopicRole::Purchases,
            "order_id",
        ),
        (
            without(purchase(), "amount"),
            TopicRole::Purchases,
            "amount",
        ),
        (
            without(purchase(), "currency"),
            TopicRole::Purchases,
            "currency",
        ),
        (
            without(survey("nps", json!(1)), "score"),
            TopicRole::Surveys,
            "score",
        ),
        (
            without(survey("nps", json!(1)), "survey"),
            TopicRole::Surveys,
            "survey",
        ),
    ];
    for (v, role, field) in cases {
        assert_eq!(err(v, role), EventError::MissingField(field.into()));
    }
    let e = err(
        with(purchase(), "items", json!([{"quantity": 1, "price": 1}])),
        TopicRole::Purchases,
    );
    assert_eq!(e, EventError::MissingField("items[0].sku".into()));
}

#[test]
fn amounts_must_be_finite_and_non_negative() {
    let e = err(
        with(purchase(), "amount", json!(-0.01)),
        TopicRole::Purchases,
    );
    assert!(matches!(e, EventError::InvalidAmount { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Validation);
    // JSON cannot carry NaN or infinity; MessagePack can.
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let raw = RawEvent {
            event_id: Some("e".into()),
            customer_id: Some("c".into()),
            kind: Some("purchase".into()),
            timestamp: Some(RawTimestamp::Millis(1_700_000_000_000)),
            order_id: Some("o".into()),
            amount: Some(bad),
            currency: Some("EUR".into()),
            ..RawEvent::default()
        };
        let bytes = rmp_serde::to_vec_named(&raw).unwrap();
        let e = decode(&bytes, Encoding::Msgpack, TopicRole::Purchases, &limits()).unwrap_err();
        assert!(matches!(e, EventError::InvalidAmount { .. }), "{e}");
    }
    let e = err(
        with(
            purchase(),
            "items",
            json!([{"sku": "A", "quantity": 1, "price": -1}]),
        ),
        TopicRole::Purchases,
    );
    assert!(
        matches!(e, EventError::InvalidAmount { ref field, .. } if field == "items[0].price"),
        "{e}"
    );
    let e = err(
        with(
            purchase(),
            "items",
            json!([{"sku": "A", "quantity": 0, "price": 1}]),
        ),
        TopicRole::Purchases,
    );
    assert!(matches!(e, EventError::InvalidQuantity { .. }), "{e}");
    let e = err(
        with(purchase(), "currency", json!("euro")),
        TopicRole::Purchases,
    );
    assert_eq!(e, EventError::BadCurrency("euro".into()));
}

#[test]
fn survey_scores_in_range() {
    for (name, score) in [
        ("nps", -1),
        ("nps", 11),
        ("csat", 0),
        ("csat", 6),
        ("ces", 8),
    ] {
        let e = err(survey(name, json!(score)), TopicRole::Surveys);
        assert!(
            matches!(e, EventError::ScoreOutOfRange { .. }),
            "{name} {score}: {e}"
        );
        assert_eq!(e.kind(), ErrorKind::Validation);
    }
    for (name, score) in [("nps", 0), ("nps", 10), ("csat", 1), ("csat", 5)] {
        ok(survey(name, json!(score)), TopicRole::Surveys);
    }
    let e = err(survey("nps", json!(7.5)), TopicRole::Surveys);
    assert!(matches!(e, EventError::ScoreNotInteger { .. }), "{e}");
}

#[test]
fn timestamps_parse_and_are_not_too_old() {
    let e = err(
        with(base("signup"), "timestamp", json!("last tuesday")),
        TopicRole::Clickstream,
    );
    assert_eq!(e, EventError::BadTimestamp("last tuesday".into()));
    assert_eq!(e.kind(), ErrorKind::Validation);
    let e = err(
        with(base("signup"), "timestamp", json!("1999-12-31T23:59:59Z")),
        TopicRole::Clickstream,
    );
    assert!(matches!(e, EventError::TimestampTooOld { .. }), "{e}");
    let e = err(
        with(base("signup"), "timestamp", json!(0)),
        TopicRole::Clickstream,
    );
    assert!(matches!(e, EventError::TimestampTooOld { .. }), "{e}");
    // Older history is accepted once the earliest event time says so.
    let cdnow = with(base("signup"), "timestamp", json!("1997-01-01T00:00:00Z"));
    let older = Limits {
        earliest_event_time: 852_076_800_000, // 1997-01-01
        ..limits()
    };
    let bytes = json_bytes(cdnow.clone());
    let ev = decode(&bytes, Encoding::Json, TopicRole::Clickstream, &older).unwrap();
    assert_eq!(ev.timestamp, 852_076_800_000);
    let e = err(cdnow, TopicRole::Clickstream);
    assert_eq!(
        e.to_string(),
        "timestamp 1997-01-01T00:00:00.000Z is before 2000-01-01T00:00:00.000Z, the earliest accepted (engine.earliest_event_time)"
    );
}

#[test]
fn escaped_strings_decode() {
    let v = with(base("search"), "query", json!("a \"quoted\" \u{e9}t\u{e9}"));
    match ok(v, TopicRole::Clickstream).body {
        EventBody::Search { query } => assert_eq!(query, "a \"quoted\" \u{e9}t\u{e9}"),
        b => panic!("{b:?}"),
    }
}

fn arb_event() -> impl Strategy<Value = serde_json::Value> {
    (
        "[a-z0-9-]{1,40}",
        "[a-zA-Z0-9:_-]{1,60}",
        946_684_800_000i64..4_000_000_000_000,
        prop_oneof![Just("signup"), Just("session_start"), Just("custom_step")],
    )
        .prop_map(
            |(e, c, t, k)| json!({"event_id": e, "customer_id": c, "type": k, "timestamp": t}),
        )
}

proptest! {
    #[test]
    fn json_and_msgpack_decode_the_same(v in arb_event()) {
        let j = json_bytes(v.clone());
        let m = msgpack_bytes(&v);
        let a = decode(&j, Encoding::Json, TopicRole::Clickstream, &limits()).unwrap();
        let b = decode(&m, Encoding::Msgpack, TopicRole::Clickstream, &limits()).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn raw_events_round_trip(v in arb_event()) {
        let j = json_bytes(v);
        let raw: RawEvent<'_> = serde_json::from_slice(&j).unwrap();
        let m = rmp_serde::to_vec_named(&raw).unwrap();
        let back: RawEvent<'_> = rmp_serde::from_slice(&m).unwrap();
        prop_assert_eq!(&raw, &back);
        let j2 = serde_json::to_vec(&back).unwrap();
        let back2: RawEvent<'_> = serde_json::from_slice(&j2).unwrap();
        prop_assert_eq!(raw, back2);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes, Encoding::Json, TopicRole::Clickstream, &limits());
        let _ = decode(&bytes, Encoding::Msgpack, TopicRole::Purchases, &limits());
    }
}

#[test]
fn output_events_round_trip_in_both_encodings() {
    use crate::{Cause, OutputData, OutputEvent, OutputKind, ProfileExcerpt};
    let events = [
        OutputEvent::new(
            OutputKind::MilestoneReached,
            "c-1",
            ("onboarding", &[1, 2]),
            1_700_000_000_000,
            Cause::Event {
                event_id: "e-9".into(),
                topic: "clickstream".into(),
                partition: 3,
                offset: 17,
            },
            Some(1),
            OutputData::Milestone {
                funnel: "onboarding".into(),
                attempt: 1,
                step_index: 2,
                step: "feature_used".into(),
                steps_total: 3,
                since_entry_ms: 60_000,
            },
            ProfileExcerpt {
                first_seen: 1_690_000_000_000,
                last_seen: 1_700_000_000_000,
                events_total: 12,
                ..Default::default()
            },
        ),
        OutputEvent::new(
            OutputKind::FunnelAbandoned,
            "c-1",
            ("onboarding", &[1]),
            1_700_000_000_000,
            Cause::Timer {
                due: 1_700_000_000_000,
            },
            Some(1),
            OutputData::Abandoned {
                funnel: "onboarding".into(),
                attempt: 1,
                reason: crate::AbandonReason::Expired,
                last_step_index: 1,
                since_entry_ms: 5,
            },
            ProfileExcerpt::default(),
        ),
        OutputEvent::new(
            OutputKind::FunnelConverted,
            "c-2",
            ("checkout", &[2]),
            1_700_000_000_000,
            Cause::Timer {
                due: 1_700_000_000_000,
            },
            None,
            OutputData::Converted {
                funnel: "checkout".into(),
                attempt: 2,
                duration_ms: 5,
            },
            ProfileExcerpt::default(),
        ),
    ];
    for e in events {
        for enc in [Encoding::Json, Encoding::Msgpack] {
            assert_eq!(OutputEvent::decode(&e.encode(enc), enc).unwrap(), e);
        }
    }
}

#[test]
fn strings_borrow_from_the_record() {
    use std::borrow::Cow;
    let v = with(
        with(base("page_view"), "url", json!("/pricing")),
        "channel",
        json!("email"),
    );
    let j = json_bytes(v.clone());
    let m = msgpack_bytes(&v);
    for (bytes, enc) in [(&j[..], Encoding::Json), (&m[..], Encoding::Msgpack)] {
        let ev = decode(bytes, enc, TopicRole::Clickstream, &limits()).unwrap();
        assert!(matches!(ev.customer_id, Cow::Borrowed(_)), "{enc:?}");
        match ev.body {
            EventBody::PageView { url, channel, .. } => {
                assert!(matches!(url, Cow::Borrowed(_)));
                assert!(matches!(channel, Some(Cow::Borrowed(_))));
            }
            b => panic!("{b:?}"),
        }
    }
}

#[test]
fn the_customer_and_event_time_are_read_without_the_rest() {
    let json = br#"{"event_id":"e","customer_id":"c","type":"page_view","timestamp":"2026-01-01T00:00:01Z","url":"/"}"#;
    let p = crate::peek(json, Encoding::Json);
    assert_eq!(p.timestamp, Some(1_767_225_601_000));
    assert_eq!(p.customer_id.as_deref(), Some("c"));
    let millis = br#"{"timestamp":1767225601000,"type":"anything"}"#;
    let p = crate::peek(millis, Encoding::Json);
    assert_eq!(
        (p.timestamp, p.customer_id),
        (Some(1_767_225_601_000), None)
    );
    let packed = rmp_serde::to_vec_named(&serde_json::json!({
        "type": "signup", "timestamp": 1_767_225_601_000_i64, "customer_id": "c"
    }))
    .unwrap();
    let p = crate::peek(&packed, Encoding::Msgpack);
    assert_eq!(p.timestamp, Some(1_767_225_601_000));
    assert_eq!(p.customer_id.as_deref(), Some("c"));
    assert_eq!(crate::peek(b"not json", Encoding::Json), Default::default());
    assert_eq!(
        crate::peek(br#"{"type":"x"}"#, Encoding::Json),
        Default::default()
    );
    // A customer id of the wrong type reads as none; decoding dead-letters the record.
    assert_eq!(
        crate::peek(
            br#"{"customer_id":7,"timestamp":1767225601000}"#,
            Encoding::Json
        ),
        Default::default()
    );
}
