//! Fault tolerance with the real binary: SIGKILL workers mid-stream, take the broker away; the
//! final state equals an uninterrupted run's, customer by customer and field by field, and
//! every output of the uninterrupted run is present. The uninterrupted run also goes through
//! a real broker process (tansu) and must agree exactly with the embedded cluster.
//!
//! The traffic is clickstream only. Records of different input topics reach a partition task
//! in fetch order, which differs between runs; with one input the order per partition is fixed,
//! so two runs must agree exactly.

mod common;

use common::*;
use pulse_engine::Profile;
use pulse_events::{Cause, OutputEvent, TopicRole};
use pulse_kafka::{read_changelog, EmbeddedCluster};
use pulse_loadgen::{Generator, GeneratorConfig, Record};
use pulse_testkit::{send_waiting, Tansu};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 3;
const TOPICS: [&str; 9] = [
    "clickstream",
    "purchases",
    "surveys",
    "pulse.segments",
    "pulse.churn-risk",
    "pulse.milestones",
    "pulse.profiles",
    "pulse.dead-letter",
    "pulse.repartition",
];

fn partition_of(customer: &str) -> i32 {
    let h = customer.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    (h % PARTITIONS as u64) as i32
}

fn traffic() -> Vec<Record> {
    let day = 86_400_000;
    let start = 1_767_225_600_000; // 2026-01-01
    Generator::new(GeneratorConfig::new(600, 3, start, 20 * day))
        .filter(|r| r.topic == TopicRole::Clickstream)
        .collect()
}

/// The broker a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Mock,
    Tansu,
}

enum Broker {
    Mock(EmbeddedCluster),
    Tansu(Tansu),
}

impl Broker {
    fn start(kind: Kind) -> Self {
        match kind {
            Kind::Mock => {
                let topics: Vec<(&str, i32)> = TOPICS.iter().map(|t| (*t, PARTITIONS)).collect();
                Broker::Mock(EmbeddedCluster::start(1, &topics).expect("cluster"))
            }
            Kind::Tansu => Broker::Tansu(Tansu::start(&TOPICS, PARTITIONS)),
        }
    }

    fn bootstrap_servers(&self) -> &str {
        match self {
            Broker::Mock(c) => c.bootstrap_servers(),
            Broker::Tansu(t) => &t.bootstrap,
        }
    }

    /// A broker whose output topics can be made unwritable: the embedded cluster, or the real
    /// broker behind a proxy that answers produce requests in its place.
    fn start_refusable(kind: Kind) -> Self {
        match kind {
            Kind::Mock => Self::start(kind),
            Kind::Tansu => Broker::Tansu(Tansu::start_proxied(&TOPICS, PARTITIONS)),
        }
    }

    /// Refuses produce requests as unauthorised (`on`) or stops refusing. The embedded cluster
    /// refuses every produce request; the real broker's proxy refuses the output topics and
    /// lets the rest of each request through, as a broker with a revoked ACL does.
    fn refuse_outputs(&self, on: bool) {
        match self {
            Broker::Mock(c) => c.refuse_produce(on).expect("refusing"),
            Broker::Tansu(t) => t.refuse_produce(if on { &TOPICS[3..6] } else { &[] }),
        }
    }

    /// Takes the broker away for `d`: the mock refuses connections, the real one is frozen.
    fn outage(&self, d: Duration) {
        match self {
            Broker::Mock(c) => {
                c.broker_down(1).expect("broker down");
                std::thread::sleep(d);
                c.broker_up(1).expect("broker up");
            }
            Broker::Tansu(t) => {
                t.pause();
                std::thread::sleep(d);
                t.resume();
            }
        }
    }
}

fn cluster_with(kind: Kind, records: &[Record]) -> (Broker, Vec<i64>) {
    let cluster = Broker::start(kind);
    let end = produce(kind, cluster.bootstrap_servers(), records);
    (cluster, end)
}

/// Produces `records` to the clickstream topic, each on its customer's partition; returns the
/// end offset per partition.
fn produce(kind: Kind, brokers: &str, records: &[Record]) -> Vec<i64> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5");
    if kind == Kind::Tansu {
        // tansu 0.6.0 answers a fetch from an offset inside a record batch with the batches
        // after it, skipping the rest of that batch. A restarted or rebalanced worker resumes
        // from such offsets; with one record per batch every offset is a batch boundary.
        config.set("batch.num.messages", "1");
    }
    let producer: BaseProducer = config.create().expect("producer");
    let mut end = vec![0i64; PARTITIONS as usize];
    for r in records {
        let p = partition_of(&r.key);
        end[p as usize] += 1;
        send_waiting(
            &producer,
            BaseRecord::to("clickstream")
                .key(&r.key)
                .payload(&r.value)
                .partition(p),
        );
    }
    producer.flush(Duration::from_secs(60)).expect("flushed");
    end
}

/// How long the broker keeps a silent member in the group: short, so a killed worker's
/// partitions move quickly.
const SESSION: Duration = Duration::from_secs(4);

fn env(brokers: &str) -> Vec<(&'static str, &str)> {
    with_session(brokers, "4s")
}

fn with_session<'a>(brokers: &'a str, session: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("PULSE__KAFKA__BROKERS", brokers),
        ("PULSE__KAFKA__SESSION_TIMEOUT", session),
        ("PULSE__KAFKA__GROUP_ID", "crash-test"),
        ("PULSE__WORKER__MAX_BATCH", "64"),
        // Time must not move by the wall clock in this test: runs differ in duration.
        ("PULSE__WORKER__IDLE_TIMEOUT", "1h"),
    ]
}

fn committed(brokers: &str) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "crash-test")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition("clickstream", p);
    }
    match c.committed_offsets(tpl, Duration::from_secs(5)) {
        Ok(got) => (0..PARTITIONS)
            .map(
                |p| match got.find_partition("clickstream", p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => -1,
                },
            )
            .collect(),
        Err(_) => vec![-1; PARTITIONS as usize],
    }
}

/// Waits until the group has committed every input record.
fn wait_caught_up(brokers: &str, end: &[i64]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed(brokers) != end {
        assert!(
            Instant::now() < deadline,
            "not caught up: {:?} of {end:?}",
            committed(brokers)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn final_state(brokers: &str) -> BTreeMap<String, Profile> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", brokers);
    let mut all = BTreeMap::new();
    for p in 0..PARTITIONS {
        let c = read_changelog(&client, "pulse.profiles", p).expect("changelog reads");
        all.extend(c.profiles);
    }
    all
}

fn output_ids(brokers: &str) -> HashSet<String> {
    outputs(brokers).into_iter().map(|o| o.event_id).collect()
}

fn outputs(brokers: &str) -> Vec<OutputEvent> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "ids-reader")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("pulse.milestones", p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    // Read until the topic has been quiet for a while: not every broker's high watermark can
    // be trusted to say where the end is.
    let mut all = Vec::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            quiet_since = Instant::now();
            let o =
                OutputEvent::decode(m.payload().unwrap(), pulse_events::Encoding::Json).unwrap();
            all.push(o);
        }
    }
    all
}

/// An uninterrupted run over [`traffic`]: its records, the end offset per partition, the final
/// profiles and the output event ids.
struct Reference {
    records: Vec<Record>,
    end: Vec<i64>,
    state: BTreeMap<String, Profile>,
    ids: HashSet<String>,
    /// Each output caused by an input record: its id, and the record's partition and offset.
    caused_by: Vec<(String, i32, i64)>,
}

/// The reference run on each kind of broker, computed once per test binary and shared by the
/// tests comparing with it.
fn reference(kind: Kind) -> &'static Reference {
    static MOCK: OnceLock<Reference> = OnceLock::new();
    static TANSU: OnceLock<Reference> = OnceLock::new();
    let cell = match kind {
        Kind::Mock => &MOCK,
        Kind::Tansu => &TANSU,
    };
    cell.get_or_init(|| {
        let records = traffic();
        let (cluster, end) = cluster_with(kind, &records);
        let b = cluster.bootstrap_servers().to_owned();
        let mut run = start(&env(&b));
        wait_caught_up(&b, &end);
        stop_cleanly(&mut run);
        let state = final_state(&b);
        let outputs = outputs(&b);
        let ids = outputs.iter().map(|o| o.event_id.clone()).collect();
        let caused_by = outputs
            .into_iter()
            .filter_map(|o| match o.cause {
                Cause::Event {
                    partition, offset, ..
                } => Some((o.event_id, partition, offset)),
                Cause::Timer { .. } => None,
            })
            .collect();
        Reference {
            records,
            end,
            state,
            ids,
            caused_by,
        }
    })
}

/// Polls the workers' metrics until together they consumed at least `fraction` of the input.
fn wait_consumed(workers: &[&Proc], total: f64, fraction: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: f64 = workers
            .iter()
            .map(|w| {
                metric_sum(
                    &http_get(&w.addr, "/metrics").1,
                    "pulse_input_records_total",
                )
            })
            .sum();
        if n >= total * fraction {
            return n;
        }
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_matches_reference(kind: Kind, brokers: &str) {
    assert_state_matches_reference(kind, brokers);
    assert_outputs_present(kind, &output_ids(brokers));
}

/// Every output id of the uninterrupted run is among `have`.
fn assert_outputs_present(kind: Kind, have: &HashSet<String>) {
    let want = &reference(kind).ids;
    assert!(!want.is_empty());
    let missing: Vec<&String> = want.difference(have).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} outputs of the uninterrupted run missing, e.g. {missing:?}",
        want.difference(have).count()
    );
}

fn assert_state_matches_reference(kind: Kind, brokers: &str) {
    let expected = &reference(kind).state;
    let got = final_state(brokers);
    assert!(expected.len() > 100, "{} customers", expected.len());
    let absent: Vec<&String> = expected
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "customers; absent e.g. {absent:?}"
    );
    for (id, p) in expected {
        assert_eq!(got.get(id), Some(p), "profile of {id}");
    }
}

fn sigkill_mid_stream_then_restart(kind: Kind) {
    let Reference { records, end, .. } = reference(kind);
    let total = records.len() as f64;
    assert!(total > 20_000.0, "{total}");

    let (crashed, end2) = cluster_with(kind, records);
    assert_eq!(end, &end2);
    let c = crashed.bootstrap_servers().to_owned();
    let mut first = start(&env(&c));
    let consumed = wait_consumed(&[&first], total, 1.0 / 3.0);
    signal(&first.child, "-KILL");
    let _ = wait_exit(&mut first.child, Duration::from_secs(10));
    assert!(
        consumed < total,
        "killed only after everything was consumed; make the stream longer"
    );

    if kind == Kind::Tansu {
        // tansu 0.6.0's coordinator completes a rebalance with an empty assignment when the
        // leader's session expires while a new member is joining (the follower's SyncGroup
        // ends the generation without the leader's plan), leaving the new worker idle. Against
        // it the worker restarts after the dead one's session has expired, as a supervisor
        // with a restart backoff would; the embedded cluster covers the immediate restart.
        std::thread::sleep(SESSION + Duration::from_secs(1));
    }
    let mut second = start(&env(&c));
    let restored = wait_for(&second.err, Duration::from_secs(30), |l| {
        l.contains("Partition restored.")
    });
    assert!(restored.is_some(), "no restore logged");
    wait_caught_up(&c, end);
    let (_, scrape) = http_get(&second.addr, "/metrics");
    assert!(
        metric_sum(&scrape, "pulse_restore_profiles_total") > 0.0,
        "nothing was restored"
    );
    stop_cleanly(&mut second);
    assert_matches_reference(kind, &c);
}

fn three_workers_one_killed(kind: Kind) {
    let Reference { records, end, .. } = reference(kind);
    let total = records.len() as f64;
    let cluster = Broker::start(kind);
    let c = cluster.bootstrap_servers().to_owned();
    let mut workers: Vec<Proc> = (0..3).map(|_| start(&env(&c))).collect();
    // Every worker owns a partition before the stream starts, so the one killed has work.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !workers.iter().all(|w| {
        metric_sum(
            &http_get(&w.addr, "/metrics").1,
            "pulse_assigned_partitions",
        ) > 0.0
    }) {
        assert!(Instant::now() < deadline, "the group did not settle");
        std::thread::sleep(Duration::from_millis(200));
    }
    let producer = {
        let c = c.clone();
        std::thread::spawn(move || produce(kind, &c, records))
    };
    let consumed = wait_consumed(&workers.iter().collect::<Vec<_>>(), total, 0.4);
    assert!(
        consumed < total,
        "killed only after everything was consumed; make the stream longer"
    );
    let mut victim = workers.remove(1);
    signal(&victim.child, "-KILL");
    let _ = wait_exit(&mut victim.child, Duration::from_secs(10));
    assert_eq!(&producer.join().expect("produced"), end);
    wait_caught_up(&c, end);
    let restored: f64 = workers
        .iter()
        .map(|w| {
            metric_sum(
                &http_get(&w.addr, "/metrics").1,
                "pulse_restore_profiles_total",
            )
        })
        .sum();
    assert!(restored > 0.0, "the survivors restored nothing");
    for w in &mut workers {
        signal(&w.child, "-INT");
    }
    for w in &mut workers {
        assert_eq!(
            wait_exit(&mut w.child, Duration::from_secs(35)).code(),
            Some(0)
        );
    }
    assert_matches_reference(kind, &c);
}

fn broker_outage(kind: Kind) {
    let Reference { records, end, .. } = reference(kind);
    let total = records.len() as f64;
    let (cluster, _) = cluster_with(kind, records);
    let c = cluster.bootstrap_servers().to_owned();
    // The session outlasts the outage, as Kafka's default of 45 s does: the worker keeps its
    // partitions. (A frozen tansu 0.6.0 expires every member on waking, and its coordinator then
    // may leave the rejoining worker without partitions.)
    let mut worker = start(&with_session(&c, "30s"));
    let consumed = wait_consumed(&[&worker], total, 1.0 / 3.0);
    assert!(
        consumed < total,
        "the outage came after everything was consumed; make the stream longer"
    );
    cluster.outage(Duration::from_secs(10));
    wait_caught_up(&c, end);
    stop_cleanly(&mut worker);
    assert_matches_reference(kind, &c);
}

/// The output side refuses produce requests as unauthorised for a while, mid-stream. The
/// worker must not commit input whose outputs it could not produce, and must carry on by itself
/// once producing works again.
///
/// tansu has no authorisation, and it went on acknowledging produce requests for a deleted
/// topic; on it, a proxy in front of the broker does the refusing.
fn outputs_refused_for_a_while(kind: Kind) {
    let Reference {
        records,
        end,
        caused_by,
        ..
    } = reference(kind);
    let total = records.len() as f64;
    let broker = Broker::start_refusable(kind);
    let c = broker.bootstrap_servers().to_owned();
    produce(kind, &c, records);
    // A long session: the worker is frozen below while the outputs so far are read.
    let mut env = with_session(&c, "30s");
    if kind == Kind::Tansu {
        // A refused batch leaves a gap in the idempotent producer's sequence numbers. Apache
        // Kafka answers the next batch with OUT_OF_ORDER_SEQUENCE_NUMBER and librdkafka bumps
        // the producer epoch; tansu 0.6.0 answers PRODUCER_FENCED, from which a
        // non-transactional producer does not recover. Without idempotence there is no gap.
        env.push(("PULSE__KAFKA__LIBRDKAFKA__ENABLE.IDEMPOTENCE", "false"));
    }
    let mut worker = start(&env);
    wait_consumed(&[&worker], total, 0.05);
    // Outputs acknowledged before the refusals start.
    signal(&worker.child, "-STOP");
    let have = output_ids(&c);
    broker.refuse_outputs(true);
    signal(&worker.child, "-CONT");
    // The first input record, per partition, whose output is not produced yet.
    let mut blocked = vec![i64::MAX; PARTITIONS as usize];
    for (id, p, offset) in caused_by {
        if !have.contains(id) {
            blocked[*p as usize] = blocked[*p as usize].min(*offset);
        }
    }
    assert!(
        blocked.iter().any(|b| *b < i64::MAX),
        "every output was produced before the refusals started; start them earlier"
    );
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let during = committed(&c);
        for p in 0..PARTITIONS as usize {
            assert!(
                during[p] <= blocked[p],
                "partition {p} committed up to {} past record {} whose output is not produced",
                during[p],
                blocked[p]
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    broker.refuse_outputs(false);
    wait_caught_up(&c, end);
    let (_, scrape) = http_get(&worker.addr, "/metrics");
    assert!(
        metric_sum(&scrape, "pulse_produce_errors_total") > 0.0,
        "no produce request was refused"
    );
    stop_cleanly(&mut worker);
    assert_matches_reference(kind, &c);
}

#[test]
fn mock_output_refused_as_unauthorised_for_a_while_nothing_is_committed_past_it() {
    outputs_refused_for_a_while(Kind::Mock);
}

#[test]
fn tansu_output_topics_unauthorised_for_a_while_nothing_is_committed_past_them() {
    outputs_refused_for_a_while(Kind::Tansu);
}

#[test]
fn mock_sigkill_mid_stream_then_restart_matches_an_uninterrupted_run() {
    sigkill_mid_stream_then_restart(Kind::Mock);
}

#[test]
fn mock_three_workers_one_killed_mid_stream_the_others_take_over() {
    three_workers_one_killed(Kind::Mock);
}

#[test]
fn mock_broker_down_for_ten_seconds_the_worker_recovers_by_itself() {
    broker_outage(Kind::Mock);
}

/// The whole pipeline through a real broker process: produce, consumer group, outputs and
/// changelog reach exactly the state and outputs they reach on the embedded cluster.
#[test]
fn tansu_run_reaches_the_same_state_and_outputs_as_the_embedded_cluster() {
    let real = reference(Kind::Tansu);
    let mock = reference(Kind::Mock);
    assert!(real.state.len() > 100, "{} customers", real.state.len());
    assert_eq!(real.state.len(), mock.state.len(), "customers");
    for (id, p) in &mock.state {
        assert_eq!(real.state.get(id), Some(p), "profile of {id}");
    }
    assert_eq!(real.ids, mock.ids, "output ids");
}

#[test]
fn tansu_sigkill_mid_stream_then_restart_matches_an_uninterrupted_run() {
    sigkill_mid_stream_then_restart(Kind::Tansu);
}

#[test]
fn tansu_three_workers_one_killed_mid_stream_the_others_take_over() {
    three_workers_one_killed(Kind::Tansu);
}

#[test]
fn tansu_broker_frozen_for_ten_seconds_the_worker_recovers_by_itself() {
    broker_outage(Kind::Tansu);
}
