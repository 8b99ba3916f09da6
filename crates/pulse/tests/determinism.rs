//! Same input, same answer. One generated input (clickstream, purchases and surveys, whose
//! sessions straddle the topics, with malformed records of every kind among them) is replayed
//! with the shipped configuration by:
//!
//! - one worker, uninterrupted: the reference;
//! - three workers in one group;
//! - three workers, one of which is SIGKILLed and replaced five times, at random shares of the
//!   input committed and random moments after (the seed is printed);
//! - one worker reading the same records produced topic by topic instead of interleaved in
//!   event time, so every topic's records are on the broker long before the next topic's.
//!
//! One record in twenty is keyed by a session id instead of its customer id, as many producers
//! key them, so it lands in an arbitrary partition and goes round through the repartition
//! topic to the partition that owns its customer.
//!
//! Every customer's profile, read through the query API of the worker holding it, equals the
//! reference's field by field, and the set of distinct output ids equals the reference's
//! (at-least-once delivery may repeat an output, never change or lose one). The input is last
//! winter's: no wall-clock time may enter the state of a replay of history.
//!
//! Every run uses the shipped configuration, except two settings of the killed workers: a
//! consumer session timeout of 6 s, so that a killed worker's partitions move in seconds rather
//! than in 45, and batches of 200 records rather than of up to 8192, so that they are killed
//! between batches as well as within one, and their batch boundaries are not the reference's.

mod common;

use common::cluster::*;
use common::*;
use pulse_events::TopicRole;
use pulse_loadgen::{Generator, GeneratorConfig, Record};
use rdkafka::message::{Headers, Message};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400_000;

fn traffic() -> Vec<Record> {
    let start = 1_767_225_600_000; // 2026-01-01
    let mut cfg = GeneratorConfig::new(700, 13, start, 20 * DAY);
    cfg.bad_ratio = 0.01;
    Generator::new(cfg).collect()
}

/// The order records are produced in.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    /// As generated: the topics interleaved in event time.
    Interleaved,
    /// Surveys first, then purchases, then the clickstream. Each topic-partition holds the same
    /// records at the same offsets as in [`Order::Interleaved`].
    TopicByTopic,
}

fn partition_of(key: &str) -> i32 {
    pulse_kafka::partition_for(key.as_bytes(), PARTITIONS, "murmur2_random").expect("partition")
}

/// The key record `i` of the generated input is produced with: its customer's id, or for one
/// record in twenty a session id.
fn key_of(i: usize, r: &Record) -> String {
    if i % 20 == 7 {
        format!("session-{}-{}", r.key, i / 20 % 3)
    } else {
        r.key.clone()
    }
}

/// Produces `records`, each on the partition Pulse's partitioner gives its key; returns the
/// number of records per input topic (by default name) and partition.
fn produce(cluster: &Cluster, records: &[Record], order: Order) -> Ends {
    let mut ordered: Vec<(String, &Record)> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (key_of(i, r), r))
        .collect();
    if order == Order::TopicByTopic {
        let rank = |t: TopicRole| match t {
            TopicRole::Surveys => 0,
            TopicRole::Purchases => 1,
            TopicRole::Clickstream => 2,
        };
        ordered.sort_by_key(|(_, r)| rank(r.topic)); // stable: each topic keeps its own order
    }
    cluster.produce(&ordered, partition_of)
}

fn started(cluster: &Cluster) -> Proc {
    started_with(cluster, &[])
}

fn started_with(cluster: &Cluster, extra: &[(&str, &str)]) -> Proc {
    let mut env = cluster.env();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    start(&env)
}

fn metric(worker: &Proc, name: &str) -> f64 {
    metric_sum(&http_get(&worker.addr, "/metrics").1, name)
}

/// What a run ends with: every customer's profile as the query API gives it, and the distinct
/// output ids.
#[derive(PartialEq)]
struct Outcome {
    profiles: BTreeMap<String, Value>,
    ids: HashSet<String>,
}

/// Waits until the group committed every input record, checks the merge never had to give up
/// on a lagging input, then reads the outcome through the workers' query API.
fn finish(
    cluster: &Cluster,
    workers: &mut [Proc],
    ends: &[(&str, Vec<i64>)],
    customers: &BTreeSet<String>,
) -> Outcome {
    for (topic, end) in ends {
        cluster.wait_committed(topic, end, Duration::from_secs(240));
    }
    // Every record was forwarded by then; each is applied once its owner has committed past
    // it in the repartition topic (the markers around them are not records to apply).
    let mut forwarded = vec![0; PARTITIONS as usize];
    for m in cluster.read_all("pulse.repartition") {
        let marker = m
            .headers()
            .is_some_and(|h| h.iter().any(|x| x.key == "pulse.marker"));
        if !marker {
            let p = m.partition() as usize;
            forwarded[p] = forwarded[p].max(m.offset() + 1);
        }
    }
    assert!(forwarded.iter().any(|o| *o > 0), "nothing was forwarded");
    cluster.wait_committed_past("pulse.repartition", &forwarded, Duration::from_secs(120));
    for w in workers.iter() {
        assert_eq!(
            metric(w, "pulse_merge_forced_total"),
            0.0,
            "the merge let records pass a lagging input"
        );
    }
    let holder = holders(workers);
    let mut profiles = BTreeMap::new();
    for id in customers {
        let w = &workers[holder[&partition_of(id)]];
        let (status, body) = http_get(&w.addr, &format!("/v1/customers/{id}"));
        if status == 404 {
            continue; // every event of the customer was malformed
        }
        assert_eq!(status, 200, "{body}");
        let json: Value = serde_json::from_str(body_of(&body)).unwrap();
        profiles.insert(id.clone(), json);
    }
    for w in workers.iter_mut() {
        stop_cleanly(w);
    }
    Outcome {
        profiles,
        ids: cluster.output_ids().into_iter().collect(),
    }
}

/// Which worker holds which partition, once every partition is held by a ready worker: a 404
/// names the partitions the worker holds.
fn holders(workers: &[Proc]) -> BTreeMap<i32, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut holder = BTreeMap::new();
        for (i, w) in workers.iter().enumerate() {
            let (status, body) = http_get(&w.addr, "/v1/customers/nobody");
            assert_eq!(status, 404, "{body}");
            let json: Value = serde_json::from_str(body_of(&body)).unwrap();
            for p in json["held_partitions"].as_array().unwrap() {
                holder.insert(p.as_i64().unwrap() as i32, i);
            }
        }
        let ready = workers
            .iter()
            .all(|w| http_get(&w.addr, "/readyz").0 == 200);
        if ready && holder.len() == PARTITIONS as usize {
            return holder;
        }
        assert!(Instant::now() < deadline, "partitions held: {holder:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn body_of(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or_default()
}

struct Input {
    records: Vec<Record>,
    customers: BTreeSet<String>,
}

fn input() -> &'static Input {
    static INPUT: OnceLock<Input> = OnceLock::new();
    INPUT.get_or_init(|| {
        let records = traffic();
        let customers = records
            .iter()
            .filter(|r| r.expect.is_none())
            .map(|r| r.key.clone())
            .collect();
        Input { records, customers }
    })
}

/// The uninterrupted run of one worker over the interleaved input, once per broker.
fn reference(kind: Kind) -> &'static Outcome {
    static MOCK: OnceLock<Outcome> = OnceLock::new();
    static KAFKA: OnceLock<Outcome> = OnceLock::new();
    let cell = match kind {
        Kind::Mock => &MOCK,
        Kind::Kafka => &KAFKA,
    };
    cell.get_or_init(|| {
        let Input { records, customers } = input();
        assert!(records.len() > 20_000, "{} records", records.len());
        let cluster = Cluster::start(kind, "same-answer-reference");
        let ends = produce(&cluster, records, Order::Interleaved);
        let mut worker = [started(&cluster)];
        let outcome = finish(&cluster, &mut worker, &ends, customers);
        assert!(
            outcome.profiles.len() > 600,
            "{} profiles",
            outcome.profiles.len()
        );
        assert!(outcome.ids.len() > 1000, "{} outputs", outcome.ids.len());
        outcome
    })
}

fn assert_same_answer(kind: Kind, got: &Outcome) {
    let want = reference(kind);
    let differing: Vec<&String> = want
        .profiles
        .iter()
        .filter(|(id, p)| got.profiles.get(*id) != Some(p))
        .map(|(id, _)| id)
        .collect();
    if let Some(id) = differing.first() {
        panic!(
            "{} of {} profiles differ; {id}: reference {} against {}",
            differing.len(),
            want.profiles.len(),
            want.profiles[*id],
            got.profiles.get(*id).unwrap_or(&Value::Null)
        );
    }
    assert_eq!(got.profiles.len(), want.profiles.len(), "customers");
    let missing = want.ids.difference(&got.ids).count();
    let extra = got.ids.difference(&want.ids).count();
    assert!(
        missing == 0 && extra == 0,
        "{missing} output ids of the reference missing, {extra} it never made"
    );
}

fn three_workers(kind: Kind) {
    let Input { records, customers } = input();
    let cluster = Cluster::start(kind, "same-answer-three");
    let ends = produce(&cluster, records, Order::Interleaved);
    let mut workers: Vec<Proc> = (0..3).map(|_| started(&cluster)).collect();
    let got = finish(&cluster, &mut workers, &ends, customers);
    assert_same_answer(kind, &got);
}

/// A small generator of kill points, seeded from the clock; the seed is printed so a failing
/// run can be repeated.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let seed = std::env::var("PULSE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("kill points seeded with PULSE_TEST_SEED={seed}");
        Self(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn three_workers_killed_again_and_again(kind: Kind) {
    const KILLS: usize = 5;
    let Input { records, customers } = input();
    let cluster = Cluster::start(kind, "same-answer-killed");
    let ends = produce(&cluster, records, Order::Interleaved);
    let total: i64 = ends.iter().flat_map(|(_, end)| end).sum();
    let committed = || -> i64 {
        ends.iter()
            .flat_map(|(t, _)| cluster.committed(t))
            .map(|o| o.max(0))
            .sum()
    };
    // The kill points: random shares of the input committed, so that every kill finds input
    // left to apply however fast the host, each followed by a random delay so that kills land
    // within batches, restores and rebalances as well as between them.
    let mut rng = Rng::seeded();
    let mut points: Vec<i64> = (0..KILLS)
        .map(|_| total * (2 + rng.below(58) as i64) / 100)
        .collect();
    points.sort_unstable();
    // Small batches, so that the kills land between batches as well as within them, and
    // the batch boundaries differ from the reference's.
    let small = [
        ("PULSE__WORKER__MAX_BATCH", "200"),
        ("PULSE__KAFKA__SESSION_TIMEOUT", "6s"),
    ];
    let mut workers: Vec<Proc> = (0..3).map(|_| started_with(&cluster, &small)).collect();
    for (kill, point) in points.into_iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(180);
        let reached = loop {
            let c = committed();
            if c >= point {
                break c;
            }
            assert!(
                Instant::now() < deadline,
                "kill {kill}: {c} of {point} records committed after 180 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            reached < total,
            "everything was committed before kill {kill}; make the stream longer"
        );
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        let victim = rng.below(workers.len() as u64) as usize;
        let mut dead = workers.swap_remove(victim);
        signal(&dead.child, "-KILL");
        let _ = wait_exit(&mut dead.child, Duration::from_secs(10));
        workers.push(started_with(&cluster, &small));
    }
    // The last one killed leaves the group when its session times out, which moves the
    // partitions once more: the outcome is read after that.
    std::thread::sleep(Duration::from_secs(8));
    let got = finish(&cluster, &mut workers, &ends, customers);
    assert_same_answer(kind, &got);
}

fn topic_by_topic(kind: Kind) {
    let Input { records, customers } = input();
    let cluster = Cluster::start(kind, "same-answer-by-topic");
    let ends = produce(&cluster, records, Order::TopicByTopic);
    let mut worker = [started(&cluster)];
    let got = finish(&cluster, &mut worker, &ends, customers);
    assert_same_answer(kind, &got);
}

#[test]
fn mock_three_workers_give_the_same_answer_as_one() {
    three_workers(Kind::Mock);
}

#[test]
fn mock_three_workers_killed_five_times_give_the_same_answer_as_one_uninterrupted() {
    three_workers_killed_again_and_again(Kind::Mock);
}

#[test]
fn mock_the_topics_produced_one_after_another_give_the_same_answer_as_interleaved() {
    topic_by_topic(Kind::Mock);
}

#[test]
fn kafka_three_workers_give_the_same_answer_as_one() {
    three_workers(Kind::Kafka);
}

#[test]
fn kafka_three_workers_killed_five_times_give_the_same_answer_as_one_uninterrupted() {
    three_workers_killed_again_and_again(Kind::Kafka);
}

#[test]
fn kafka_the_topics_produced_one_after_another_give_the_same_answer_as_interleaved() {
    topic_by_topic(Kind::Kafka);
}
