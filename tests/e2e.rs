//! End to end, against the embedded cluster and against Apache Kafka: N records
//! including bad ones of every kind go in; every good record is reflected in the profiles
//! exactly once, every bad one sits in the dead-letter topic with the right reason and its
//! original bytes, none stalls its partition, and the committed offsets cover the whole input.

use pulse::Running;
use pulse_events::{dead_letter, decode, Encoding, ErrorKind, Limits, TopicRole};
use pulse_loadgen::{Generator, GeneratorConfig};
use pulse_tests::*;
use rdkafka::Message;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

const DAY: i64 = 86_400_000;

/// What the test expects of one produced record.
struct Sent {
    topic: String,
    partition: i32,
    offset: i64,
    customer: Option<String>,
    payload: Option<Vec<u8>>,
    /// `None` for a good record, else the dead-letter kind.
    outcome: Option<ErrorKind>,
    is_purchase: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_every_record_is_applied_or_dead_lettered_exactly_once() {
    let cluster = cluster();
    let cfg = config(cluster.bootstrap_servers(), "e2e-exactly-once");
    every_record_is_applied_or_dead_lettered_exactly_once(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_every_record_is_applied_or_dead_lettered_exactly_once() {
    let cfg = tokio::task::spawn_blocking(|| on_kafka("e2e"))
        .await
        .expect("Kafka starts");
    every_record_is_applied_or_dead_lettered_exactly_once(cfg).await;
}

async fn every_record_is_applied_or_dead_lettered_exactly_once(cfg: pulse::Config) {
    let brokers = cfg.kafka.brokers.clone();
    let group = cfg.kafka.group_id.clone();
    let topics = cfg.kafka.topics.clone();
    let lateness = i64::try_from(cfg.engine.allowed_lateness.as_millis()).unwrap();
    let running = Running::start(cfg).await.expect("pulse starts");
    let producer = producer(&brokers);

    let now = pulse_kafka::wall_clock_ms();
    let mut gen = GeneratorConfig::new(150, 11, now - 12 * DAY, 10 * DAY);
    gen.bad_ratio = 0.04;
    let mut sent: Vec<Sent> = Vec::new();
    // The oracle for lateness: each input topic-partition's own watermark.
    let mut frontier: HashMap<(TopicRole, i32), i64> = HashMap::new();
    for (i, r) in Generator::new(gen).enumerate() {
        // Every fifth record in MessagePack, announced by its content-type header.
        let enc = if i % 5 == 0 {
            Encoding::Msgpack
        } else {
            Encoding::Json
        };
        let value = if enc == Encoding::Msgpack && r.expect != Some(ErrorKind::Decode) {
            let raw: pulse_events::RawEvent<'_> = serde_json::from_slice(&r.value).unwrap();
            pulse_loadgen::encode_raw(&raw, Encoding::Msgpack)
        } else {
            r.value.clone()
        };
        let partition = partition_of(&r.key);
        let topic = topics.input(r.topic).to_owned();
        let outcome = match decode(&value, enc, r.topic, &Limits::default()) {
            Err(e) => Some(e.kind()),
            Ok(ev) => {
                let f = frontier.entry((r.topic, partition)).or_insert(i64::MIN);
                if *f != i64::MIN && ev.timestamp < *f - lateness {
                    Some(ErrorKind::Late)
                } else {
                    *f = (*f).max(ev.timestamp);
                    None
                }
            }
        };
        let (p, offset) = send(
            &producer,
            &topic,
            Some(&r.key),
            partition,
            Some(&value),
            Some(enc.content_type()),
        )
        .await;
        sent.push(Sent {
            topic,
            partition: p,
            offset,
            customer: Some(r.key.clone()),
            payload: Some(value.clone()),
            outcome,
            is_purchase: outcome.is_none()
                && String::from_utf8_lossy(&r.value).contains("\"type\":\"purchase\""),
        });
    }
    // Hand-made bad records the generator does not make: a tombstone, a wrong content-type,
    // and JSON that is an array.
    for (payload, ct) in [
        (None, None),
        (Some(&b"{\"event_id\":1}"[..]), Some("application/msgpack")),
        (Some(&b"[1,2]"[..]), None),
    ] {
        let (p, offset) = send(
            &producer,
            &topics.clickstream,
            Some("c-handmade"),
            0,
            payload,
            ct,
        )
        .await;
        sent.push(Sent {
            topic: topics.clickstream.clone(),
            partition: p,
            offset,
            customer: None,
            payload: payload.map(<[u8]>::to_vec),
            outcome: Some(ErrorKind::Decode),
            is_purchase: false,
        });
    }
    let total = sent.len() as u64;
    let bad: Vec<&Sent> = sent.iter().filter(|s| s.outcome.is_some()).collect();
    let kinds: HashSet<ErrorKind> = bad.iter().filter_map(|s| s.outcome).collect();
    assert_eq!(
        kinds.len(),
        6,
        "every dead-letter kind is exercised: {kinds:?}"
    );
    assert!(total > 3000, "{total} records");

    let metrics = running.metrics.clone();
    wait_consumed(&metrics, total, Duration::from_secs(90)).await;
    // Every consumed record's effects are acknowledged before it is counted, so the state is
    // complete now; it is read before stopping because a stopping worker gives up (and drops)
    // its partitions.
    let profiles = running.state.profiles();
    // Offsets are committed on a one-second timer; stopping commits the rest.
    running.stop().await.expect("clean stop");

    // Every good record is reflected once: per-customer event and order counts match.
    let mut expected_events: BTreeMap<String, u64> = BTreeMap::new();
    let mut expected_orders: BTreeMap<String, u32> = BTreeMap::new();
    for s in sent.iter().filter(|s| s.outcome.is_none()) {
        let c = s.customer.clone().unwrap();
        *expected_events.entry(c.clone()).or_default() += 1;
        if s.is_purchase {
            *expected_orders.entry(c).or_default() += 1;
        }
    }
    assert_eq!(profiles.len(), expected_events.len(), "customers");
    for (id, p) in &profiles {
        assert_eq!(
            Some(&p.events_total),
            expected_events.get(id),
            "events of {id}"
        );
        assert_eq!(
            p.purchases.orders,
            expected_orders.get(id).copied().unwrap_or(0),
            "orders of {id}"
        );
    }
    assert_eq!(
        counter_total(&metrics.input_records),
        total,
        "each record consumed once"
    );
    assert_eq!(counter_total(&metrics.dead_letters), bad.len() as u64);

    // Every bad record sits in the dead-letter topic once, with its reason and original bytes.
    let dead = read_all(
        &brokers,
        &topics.dead_letter,
        bad.len(),
        Duration::from_secs(30),
    );
    assert_eq!(
        dead.len(),
        bad.len(),
        "dead letters: no loss, no duplicates"
    );
    let by_source: HashMap<(String, i32, i64), &rdkafka::message::OwnedMessage> = dead
        .iter()
        .map(|m| {
            let src = (
                header(m, dead_letter::SOURCE_TOPIC).unwrap().to_owned(),
                header(m, dead_letter::SOURCE_PARTITION)
                    .unwrap()
                    .parse()
                    .unwrap(),
                header(m, dead_letter::SOURCE_OFFSET)
                    .unwrap()
                    .parse()
                    .unwrap(),
            );
            (src, m)
        })
        .collect();
    assert_eq!(
        by_source.len(),
        dead.len(),
        "one dead letter per source record"
    );
    for s in &bad {
        let m = by_source
            .get(&(s.topic.clone(), s.partition, s.offset))
            .unwrap_or_else(|| panic!("{}@{} missing", s.topic, s.offset));
        assert_eq!(
            header(*m, dead_letter::ERROR_KIND),
            s.outcome.map(ErrorKind::as_str),
            "{}@{}",
            s.topic,
            s.offset
        );
        assert!(!header(*m, dead_letter::ERROR_MESSAGE)
            .unwrap_or("")
            .is_empty());
        assert_eq!(
            m.payload().map(<[u8]>::to_vec),
            s.payload,
            "original bytes kept"
        );
        assert_eq!(
            m.key().map(<[u8]>::to_vec),
            s.customer
                .as_ref()
                .map(|c| c.as_bytes().to_vec())
                .or(Some(b"c-handmade".to_vec()))
        );
    }

    // Outputs on all three topics: unique deterministic ids, keyed by customer.
    let produced = counter_total(&metrics.output_events) as usize;
    assert!(produced > 100, "{produced} outputs");
    let outputs = read_outputs(&brokers, &topics, produced, Duration::from_secs(30));
    assert_eq!(outputs.len(), produced);
    let mut ids = HashSet::new();
    for (key, o) in &outputs {
        assert_eq!(key.as_deref(), Some(o.customer_id.as_str()));
        assert!(
            ids.insert(o.event_id.clone()),
            "duplicate output id {}",
            o.event_id
        );
    }

    // Nothing is lost: the committed offsets cover every input record.
    for role in TopicRole::ALL {
        let topic = topics.input(role);
        let mut end = vec![0i64; PARTITIONS as usize];
        for s in sent.iter().filter(|s| s.topic == topic) {
            end[s.partition as usize] = end[s.partition as usize].max(s.offset + 1);
        }
        assert_eq!(
            committed(&brokers, &group, topic),
            end.iter()
                .map(|e| if *e == 0 { -1 } else { *e })
                .collect::<Vec<_>>(),
            "{topic}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changelog_with_too_few_partitions_is_an_error_naming_the_topic() {
    let cfg = pulse::Config::embedded_default();
    let t = &cfg.kafka.topics;
    let mut topics: Vec<(&str, i32)> = t.all().iter().map(|name| (*name, PARTITIONS)).collect();
    for (name, p) in &mut topics {
        if *name == t.profiles {
            *p = 1;
        }
    }
    let cluster = pulse_kafka::EmbeddedCluster::start(1, &topics).expect("cluster");
    let cfg = config(cluster.bootstrap_servers(), "e2e-topology");
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        pulse::run(cfg, std::future::pending()),
    )
    .await;
    let err = result
        .expect("pulse stops by itself")
        .expect_err("a topology error");
    let text = err.to_string();
    assert!(
        text.contains("pulse.profiles") && text.contains("1 partitions"),
        "{text}"
    );
}
