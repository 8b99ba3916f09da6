//! Fault tolerance with the real binary, on the embedded cluster and on Apache Kafka: workers
//! SIGKILLed mid-stream, a crash between a batch's profile records and its checkpoint, the
//! broker stopped, one of three brokers lost for good, the output topics unauthorised, the
//! changelog compacted. Every run's final state equals an uninterrupted run's, customer by
//! customer and field by field, and every output of the uninterrupted run is present. The
//! uninterrupted run on Kafka must agree exactly with the one on the embedded cluster.
//!
//! The traffic is every input topic's (clickstream, purchases, surveys), keyed by customer. A
//! partition task applies its inputs in event-time order, whatever order they are fetched in,
//! so two runs over the same stored records must agree exactly.

mod common;

use common::cluster::*;
use common::*;
use pulse_engine::Profile;
use pulse_events::Cause;
use pulse_loadgen::{Generator, GeneratorConfig, Record};
use pulse_testkit::Kafka;
use rdkafka::message::Message;
use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn traffic() -> Vec<Record> {
    let day = 86_400_000;
    let start = 1_767_225_600_000; // 2026-01-01
    Generator::new(GeneratorConfig::new(600, 3, start, 20 * day)).collect()
}

/// Produces `records` to their input topics, each on its customer's partition; returns the
/// end offsets if they were the first records there.
fn produce(cluster: &Cluster, records: &[Record]) -> Ends {
    let keyed: Vec<(String, &Record)> = records.iter().map(|r| (r.key.clone(), r)).collect();
    cluster.produce(&keyed, fnv_partition)
}

fn started(cluster: &Cluster, extra: &[(&str, &str)]) -> Proc {
    let mut env = cluster.env();
    env.extend(
        [
            // A short session, so a killed worker's partitions move quickly.
            ("PULSE__KAFKA__SESSION_TIMEOUT", "6s"),
            ("PULSE__WORKER__MAX_BATCH", "64"),
            // Time must not move by the wall clock in this test: runs differ in duration.
            ("PULSE__WORKER__IDLE_TIMEOUT", "1h"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    start(&env)
}

/// An uninterrupted run over [`traffic`]: its records, the end offset per partition, the final
/// profiles and the output event ids.
struct Reference {
    records: Vec<Record>,
    end: Ends,
    state: BTreeMap<String, Profile>,
    ids: HashSet<String>,
    /// Each output caused by an input record: its id, and the record's topic (by default
    /// name), partition and offset.
    caused_by: Vec<(String, String, i32, i64)>,
}

/// The reference run on each kind of broker, computed once per test binary and shared by the
/// tests comparing with it.
fn reference(kind: Kind) -> &'static Reference {
    static MOCK: OnceLock<Reference> = OnceLock::new();
    static KAFKA: OnceLock<Reference> = OnceLock::new();
    let cell = match kind {
        Kind::Mock => &MOCK,
        Kind::Kafka => &KAFKA,
    };
    cell.get_or_init(|| {
        let records = traffic();
        let cluster = Cluster::start(kind, "reference");
        let end = produce(&cluster, &records);
        let mut run = started(&cluster, &[]);
        cluster.wait_caught_up(&end);
        // The reference must be the plain replay: one assignment, the merge never forced.
        let scrape = http_get(&run.addr, "/metrics").1;
        assert_not_forced(&run);
        assert_eq!(
            metric_sum(&scrape, "pulse_restore_profiles_total"),
            0.0,
            "the reference run restored"
        );
        stop_cleanly(&mut run);
        let state = cluster.changelog_state();
        let outputs = cluster.outputs();
        let ids = outputs.iter().map(|o| cluster.canonical_id(o)).collect();
        let caused_by = outputs
            .iter()
            .filter_map(|o| match &o.cause {
                Cause::Event {
                    topic,
                    partition,
                    offset,
                    ..
                } => Some((
                    cluster.canonical_id(o),
                    cluster.default_name(topic).to_owned(),
                    *partition,
                    *offset,
                )),
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

/// The run is comparable with the reference only if the event-time merge never gave up
/// waiting for a lagging input (`worker.max_hold`): then the order was the records' alone.
fn assert_not_forced(worker: &Proc) {
    let scrape = http_get(&worker.addr, "/metrics").1;
    assert_eq!(
        metric_sum(&scrape, "pulse_merge_forced_total"),
        0.0,
        "the merge let records pass a lagging input"
    );
}

/// Polls the workers' metrics until together they consumed at least `fraction` of the input.
fn wait_consumed(workers: &[&Proc], total: f64, fraction: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(120);
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

fn assert_matches_reference(cluster: &Cluster) {
    assert_state_matches_reference(cluster);
    let have: HashSet<String> = cluster.output_ids().into_iter().collect();
    assert_outputs_present(cluster.kind, &have);
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

fn assert_state_matches_reference(cluster: &Cluster) {
    let expected = &reference(cluster.kind).state;
    let got = cluster.changelog_state();
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
        if got.get(id) != Some(p) {
            let differ = expected
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(v))
                .count();
            eprintln!("{differ} profiles differ; the changelog's records of {id}:");
            for line in history(cluster, id) {
                eprintln!("  {line}");
            }
        }
        assert_eq!(got.get(id), Some(p), "profile of {id}");
    }
}

/// Every changelog record of `customer`, oldest first: where it is, which writer generation
/// wrote it, the input offsets it reflects and a few of its counts.
fn history(cluster: &Cluster, customer: &str) -> Vec<String> {
    cluster
        .read_all("pulse.profiles")
        .iter()
        .filter(|m| m.key() == Some(customer.as_bytes()))
        .map(|m| {
            let mut r = pulse_kafka::Restorer::new(m.partition());
            let read = r
                .push(m.offset(), customer.as_bytes(), m.payload())
                .and_then(|()| r.finish(None));
            match read {
                Ok(c) => match c.profiles.get(customer) {
                    Some(p) => format!(
                        "offset {} generation {} input offsets {:?}: events {} sessions {} first {} last {}",
                        m.offset(),
                        c.next_generation - 1,
                        c.ahead.get(customer),
                        p.events_total,
                        p.sessions_total,
                        p.first_seen,
                        p.last_seen
                    ),
                    None => format!("offset {}: removed", m.offset()),
                },
                Err(e) => format!("offset {}: {e}", m.offset()),
            }
        })
        .collect()
}

/// Waits until the log cleaner has removed records from the changelog.
fn wait_compacted(cluster: &Cluster) -> (usize, i64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (held, written) = cluster.changelog_size();
        if (held as i64) < written {
            return (held, written);
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner removed nothing: {held} of {written} records held"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn sigkill_mid_stream_then_restart(kind: Kind) {
    let Reference { records, end, .. } = reference(kind);
    let total = records.len() as f64;
    assert!(total > 20_000.0, "{total}");

    let cluster = Cluster::start(kind, "sigkill");
    assert_eq!(end, &produce(&cluster, records));
    let mut first = started(&cluster, &[]);
    let consumed = wait_consumed(&[&first], total, 1.0 / 3.0);
    assert_not_forced(&first);
    signal(&first.child, "-KILL");
    let _ = wait_exit(&mut first.child, Duration::from_secs(10));
    assert!(
        consumed < total,
        "killed only after everything was consumed; make the stream longer"
    );

    let mut second = started(&cluster, &[]);
    let restored = wait_for(&second.err, Duration::from_secs(60), |l| {
        l.contains("Partition restored.")
    });
    assert!(restored.is_some(), "no restore logged");
    cluster.wait_caught_up(end);
    let (_, scrape) = http_get(&second.addr, "/metrics");
    assert!(
        metric_sum(&scrape, "pulse_restore_profiles_total") > 0.0,
        "nothing was restored"
    );
    assert_not_forced(&second);
    stop_cleanly(&mut second);
    assert_matches_reference(&cluster);
}

fn three_workers_one_killed(kind: Kind) {
    let Reference { records, end, .. } = reference(kind);
    let total = records.len() as f64;
    let cluster = Cluster::start(kind, "three");
    let mut workers: Vec<Proc> = (0..3).map(|_| started(&cluster, &[])).collect();
    let mut killed = None;
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
    std::thread::scope(|s| {
        let producer = s.spawn(|| produce(&cluster, records));
        let consumed = wait_consumed(&workers.iter().collect::<Vec<_>>(), total, 0.4);
        assert!(
            consumed < total,
            "killed only after everything was consumed; make the stream longer"
        );
        let mut victim = workers.remove(1);
        signal(&victim.child, "-KILL");
        let _ = wait_exit(&mut victim.child, Duration::from_secs(10));
        // Kept until the end: a failing comparison shows the victim's log too.
        killed = Some(victim);
        assert_eq!(&producer.join().expect("produced"), end);
    });
    cluster.wait_caught_up(end);
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
    assert_matches_reference(&cluster);
    drop(killed);
}

/// The broker goes away for ten seconds mid-stream: the embedded one refuses connections, the
/// Kafka node is stopped and started again.
fn broker_outage(kind: Kind) {
    let Reference { records, end, .. } = reference(kind);
    let total = records.len() as f64;
    let cluster = Cluster::own(kind, "outage", Kafka::builder());
    produce(&cluster, records);
    // The session outlasts the outage, as Kafka's default of 45 s does: the worker keeps its
    // partitions.
    let mut worker = started(&cluster, &[("PULSE__KAFKA__SESSION_TIMEOUT", "45s")]);
    let consumed = wait_consumed(&[&worker], total, 1.0 / 3.0);
    assert!(
        consumed < total,
        "the outage came after everything was consumed; make the stream longer"
    );
    match kind {
        Kind::Mock => {
            let c = cluster.mock_cluster();
            c.broker_down(1).expect("broker down");
            std::thread::sleep(Duration::from_secs(10));
            c.broker_up(1).expect("broker up");
        }
        Kind::Kafka => {
            let kafka = cluster.kafka();
            kafka.stop(1);
            std::thread::sleep(Duration::from_secs(10));
            kafka.restart(1);
        }
    }
    cluster.wait_caught_up(end);
    assert_not_forced(&worker);
    stop_cleanly(&mut worker);
    assert_matches_reference(&cluster);
}

/// The output side refuses produce requests as unauthorised for a while, mid-stream. The
/// worker must not commit input whose outputs it could not produce, and must carry on by itself
/// once producing works again. On Kafka the refusal is a DENY ACL in the broker's authorizer.
fn outputs_refused_for_a_while(kind: Kind) {
    let Reference {
        records,
        end,
        caused_by,
        ..
    } = reference(kind);
    let total = records.len() as f64;
    let cluster = Cluster::start(kind, "refused");
    let refuse = |on: bool| refuse_outputs(&cluster, on);
    produce(&cluster, records);
    // A long session: the worker is frozen below while the outputs so far are read.
    let mut worker = started(&cluster, &[("PULSE__KAFKA__SESSION_TIMEOUT", "45s")]);
    wait_consumed(&[&worker], total, 0.05);
    // Outputs acknowledged before the refusals start.
    signal(&worker.child, "-STOP");
    let have: HashSet<String> = cluster.output_ids().into_iter().collect();
    refuse(true);
    signal(&worker.child, "-CONT");
    // The first input record, per topic and partition, whose output is not produced yet.
    let mut blocked: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (id, topic, p, offset) in caused_by {
        if !have.contains(id) {
            let b = blocked.entry((topic.clone(), *p)).or_insert(i64::MAX);
            *b = (*b).min(*offset);
        }
    }
    assert!(
        !blocked.is_empty(),
        "every output was produced before the refusals started; start them earlier"
    );
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        for (_, topic) in INPUT_TOPICS {
            let during = cluster.committed(topic);
            for p in 0..PARTITIONS {
                if let Some(b) = blocked.get(&(topic.to_owned(), p)) {
                    assert!(
                        during[p as usize] <= *b,
                        "{topic} partition {p} committed up to {} past record {b} whose output is not produced",
                        during[p as usize],
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    refuse(false);
    cluster.wait_caught_up(end);
    let (_, scrape) = http_get(&worker.addr, "/metrics");
    assert!(
        metric_sum(&scrape, "pulse_produce_errors_total") > 0.0,
        "no produce request was refused"
    );
    assert_not_forced(&worker);
    stop_cleanly(&mut worker);
    assert_matches_reference(&cluster);
}

/// Refuses (or accepts again) every produce request on the embedded cluster, and writes to the
/// output topics by ACL on Apache Kafka.
fn refuse_outputs(cluster: &Cluster, on: bool) {
    let outputs: Vec<String> = OUTPUTS.iter().map(|t| cluster.topic(t)).collect();
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    match cluster.kind {
        Kind::Mock => cluster.mock_cluster().refuse_produce(on).expect("refusing"),
        Kind::Kafka if on => cluster.kafka().deny_write(&outputs),
        Kind::Kafka => cluster.kafka().allow_write(&outputs),
    }
}

/// Retries stop at shutdown: a worker told to stop while its outputs are refused does not
/// re-send until its shutdown deadline (set far beyond the wait below) but stops at once,
/// saying what it left, and commits nothing past it: the next worker produces every output.
fn stopped_while_outputs_refused(kind: Kind) {
    let Reference { records, end, .. } = reference(kind);
    let total = records.len() as f64;
    let cluster = Cluster::start(kind, "stop-refused");
    produce(&cluster, records);
    let mut worker = started(&cluster, &[("PULSE__WORKER__SHUTDOWN_DEADLINE", "10m")]);
    wait_consumed(&[&worker], total, 0.05);
    signal(&worker.child, "-STOP");
    refuse_outputs(&cluster, true);
    signal(&worker.child, "-CONT");
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric_sum(
        &http_get(&worker.addr, "/metrics").1,
        "pulse_produce_errors_total",
    ) == 0.0
    {
        assert!(
            Instant::now() < deadline,
            "no produce request was refused; start the refusals earlier"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(&worker.child, "-INT");
    let status = wait_exit(&mut worker.child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{status:?}");
    let log: Vec<String> = worker.err.try_iter().collect();
    assert!(
        log.iter()
            .any(|l| l.contains("Stopping with outputs unacknowledged")),
        "no partition said it stopped with outputs unacknowledged: {log:#?}"
    );
    refuse_outputs(&cluster, false);
    let mut next = started(&cluster, &[]);
    cluster.wait_caught_up(end);
    stop_cleanly(&mut next);
    assert_matches_reference(&cluster);
}

#[test]
fn mock_a_worker_stopped_while_its_outputs_are_refused_stops_retrying_and_loses_nothing() {
    stopped_while_outputs_refused(Kind::Mock);
}

#[test]
fn mock_output_refused_as_unauthorised_for_a_while_nothing_is_committed_past_it() {
    outputs_refused_for_a_while(Kind::Mock);
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

/// The whole pipeline through Apache Kafka: produce, consumer group, outputs and a compacted
/// changelog reach exactly the state and outputs they reach on the embedded cluster.
#[test]
fn kafka_run_reaches_the_same_state_and_outputs_as_the_embedded_cluster() {
    let real = reference(Kind::Kafka);
    let mock = reference(Kind::Mock);
    assert!(real.state.len() > 100, "{} customers", real.state.len());
    assert_eq!(real.state.len(), mock.state.len(), "customers");
    for (id, p) in &mock.state {
        assert_eq!(real.state.get(id), Some(p), "profile of {id}");
    }
    assert_eq!(real.ids, mock.ids, "output ids");
}

#[test]
fn kafka_sigkill_mid_stream_then_restart_matches_an_uninterrupted_run() {
    sigkill_mid_stream_then_restart(Kind::Kafka);
}

#[test]
fn kafka_three_workers_one_killed_mid_stream_the_others_take_over() {
    three_workers_one_killed(Kind::Kafka);
}

#[test]
fn kafka_broker_stopped_for_ten_seconds_the_worker_recovers_by_itself() {
    broker_outage(Kind::Kafka);
}

#[test]
fn kafka_output_topics_denied_by_acl_for_a_while_nothing_is_committed_past_them() {
    outputs_refused_for_a_while(Kind::Kafka);
}

#[test]
fn kafka_a_worker_stopped_while_its_outputs_are_denied_stops_retrying_and_loses_nothing() {
    stopped_while_outputs_refused(Kind::Kafka);
}

/// Three Kafka nodes (replication factor 3, `min.insync.replicas` 2); one is SIGKILLed
/// mid-stream and never comes back. The worker rides the leader elections out.
#[test]
fn kafka_one_of_three_brokers_killed_for_good_the_worker_carries_on() {
    let Reference { records, end, .. } = reference(Kind::Kafka);
    let total = records.len() as f64;
    let cluster = Cluster::own(Kind::Kafka, "trio", Kafka::builder().nodes(3));
    produce(&cluster, records);
    let mut worker = started(&cluster, &[("PULSE__KAFKA__SESSION_TIMEOUT", "45s")]);
    let consumed = wait_consumed(&[&worker], total, 1.0 / 3.0);
    assert!(consumed < total, "killed after everything was consumed");
    cluster.kafka().kill(2);
    cluster.wait_caught_up(end);
    assert_not_forced(&worker);
    stop_cleanly(&mut worker);
    assert_matches_reference(&cluster);
}

/// A worker applies the first half of the traffic and stops; the log cleaner compacts the
/// changelog; a new worker restores from what is left and applies the rest. The result is the
/// uninterrupted run's: compaction loses no customer and no update.
#[test]
fn kafka_restore_from_a_compacted_changelog_matches_an_uninterrupted_run() {
    let Reference { records, end, .. } = reference(Kind::Kafka);
    let cluster = Cluster::start(Kind::Kafka, "compacted");
    let half = records.len() / 2;
    let first_end = produce(&cluster, &records[..half]);
    let mut first = started(&cluster, &[]);
    cluster.wait_caught_up(&first_end);
    stop_cleanly(&mut first);
    let (held, written) = wait_compacted(&cluster);
    eprintln!("changelog compacted: {held} of {written} records left");
    produce(&cluster, &records[half..]);
    let mut second = started(&cluster, &[]);
    cluster.wait_caught_up(end);
    stop_cleanly(&mut second);
    assert_matches_reference(&cluster);
}

/// The worst moment for the changelog: a worker dies after a batch's profile records are
/// acknowledged and before its checkpoint; the cleaner then compacts the log, so those records
/// may be all that is left of their customers. A new worker restores and catches up: the state
/// is the uninterrupted run's.
#[test]
fn kafka_crash_between_profiles_and_checkpoint_then_compaction_matches_an_uninterrupted_run() {
    let Reference { records, end, .. } = reference(Kind::Kafka);
    let cluster = Cluster::start(Kind::Kafka, "torn");
    produce(&cluster, records);
    let mut first = started(&cluster, &[("PULSE_FAILPOINT", "before-checkpoint:40")]);
    let status = wait_exit(&mut first.child, Duration::from_secs(120));
    assert!(!status.success(), "the failpoint did not crash the worker");
    wait_compacted(&cluster);
    let mut second = started(&cluster, &[]);
    cluster.wait_caught_up(end);
    stop_cleanly(&mut second);
    assert_matches_reference(&cluster);
}

fn exactly_once(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut env = vec![("PULSE__KAFKA__DELIVERY", "exactly-once")];
    env.extend_from_slice(extra);
    env
}

/// A `read_committed` consumer of the output topics sees each output of the uninterrupted run
/// once: no duplicate, none missing.
fn assert_each_output_once(cluster: &Cluster) {
    let ids = cluster.output_ids();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    let want = &reference(cluster.kind).ids;
    assert_eq!(ids.len(), want.len(), "outputs read_committed");
    assert_eq!(&unique, want, "output ids");
}

/// Exactly-once mode on Kafka: a worker crashes with a transaction open (its records sent, the
/// commit not), the next owner aborts it by claiming the partition's transactional id and
/// restores without it. A `read_committed` consumer of the outputs sees every output once.
#[test]
fn kafka_exactly_once_a_crash_mid_transaction_shows_each_output_once() {
    let Reference { records, end, .. } = reference(Kind::Kafka);
    // The cleaner also removes aborted records: held off, so that they can be seen.
    let cluster = Cluster::uncleaned(Kind::Kafka, "eos-crash");
    produce(&cluster, records);
    let mut first = started(
        &cluster,
        &exactly_once(&[("PULSE_FAILPOINT", "before-commit:40")]),
    );
    let status = wait_exit(&mut first.child, Duration::from_secs(120));
    assert!(!status.success(), "the failpoint did not crash the worker");
    let mut second = started(&cluster, &exactly_once(&[]));
    cluster.wait_caught_up(end);
    stop_cleanly(&mut second);
    // The aborted transaction's records are in the log, and invisible to the restore (the
    // state matches) and to the outputs' consumers.
    for topic in ["pulse.profiles", "pulse.milestones"] {
        let all = cluster.read_isolated(topic, "read_uncommitted").len();
        let committed = cluster.read_all(topic).len();
        assert!(
            all > committed,
            "{topic}: no aborted records ({all} in all, {committed} committed)"
        );
    }
    assert_state_matches_reference(&cluster);
    assert_each_output_once(&cluster);
}

/// Exactly-once mode on Kafka: a worker is frozen past its session, a second takes its
/// partitions over and claims their transactional ids; the first, woken, is fenced: it stops
/// with the reason, and nothing it sent after waking is visible.
#[test]
fn kafka_exactly_once_a_zombie_with_the_same_transactional_id_is_fenced() {
    let Reference { records, end, .. } = reference(Kind::Kafka);
    let total = records.len() as f64;
    let cluster = Cluster::start(Kind::Kafka, "eos-zombie");
    produce(&cluster, records);
    let mut zombie = started(&cluster, &exactly_once(&[]));
    let consumed = wait_consumed(&[&zombie], total, 0.2);
    assert!(consumed < total, "frozen after everything was consumed");
    signal(&zombie.child, "-STOP");
    let mut owner = started(&cluster, &exactly_once(&[]));
    let restored = wait_for(&owner.err, Duration::from_secs(60), |l| {
        l.contains("Partition restored.")
    });
    assert!(restored.is_some(), "the new owner restored nothing");
    wait_consumed(&[&owner], total - consumed, 0.1);
    signal(&zombie.child, "-CONT");
    let status = wait_exit(&mut zombie.child, Duration::from_secs(60));
    assert!(!status.success(), "the zombie was not stopped");
    let fenced = zombie
        .err
        .try_iter()
        .any(|l| l.contains("fenced") || l.contains("taken over"));
    assert!(fenced, "the zombie did not say it was fenced");
    cluster.wait_caught_up(end);
    stop_cleanly(&mut owner);
    assert_state_matches_reference(&cluster);
    assert_each_output_once(&cluster);
}
