//! Rebalances on Apache Kafka. Under the consumer group protocol (KIP-848,
//! `kafka.group_protocol = "consumer"`), a worker joining a group under load takes only the
//! partitions that move to it: the others keep theirs without a revoke or a restore
//! (`pulse_restore_profiles_total` and `pulse_restore_seconds_count` do not move on them), and
//! the group's lag returns to zero. Under either protocol, a group whose worker is SIGKILLed
//! and restarted again and again settles within twice the session timeout of the last restart
//! and stays settled.

mod common;

use common::cluster::*;
use common::*;
use pulse_loadgen::{Generator, GeneratorConfig, Record};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The session timeout of both protocols in these tests: the classic one's is the worker's
/// (`kafka.session_timeout`), the consumer protocol's the test broker's.
const SESSION: Duration = Duration::from_secs(6);

/// Partitions of every subscribed topic: the three inputs and the repartition topic.
const ASSIGNABLE: f64 = PARTITIONS as f64 * 4.0;

fn traffic() -> Vec<Record> {
    let day = 86_400_000;
    let start = 1_767_225_600_000; // 2026-01-01
    Generator::new(GeneratorConfig::new(600, 5, start, 20 * day)).collect()
}

fn produce(cluster: &Cluster, records: &[Record]) -> Ends {
    let keyed: Vec<(String, &Record)> = records.iter().map(|r| (r.key.clone(), r)).collect();
    cluster.produce(&keyed, fnv_partition)
}

fn metric(w: &Proc, name: &str) -> f64 {
    metric_sum(&http_get(&w.addr, "/metrics").1, name)
}

fn worker(cluster: &Cluster, protocol: &str, instance: &str) -> Proc {
    let mut env = cluster.env();
    env.extend(
        [
            ("PULSE__KAFKA__GROUP_PROTOCOL", protocol),
            ("PULSE__KAFKA__SESSION_TIMEOUT", "6s"),
            ("PULSE__KAFKA__GROUP_INSTANCE_ID", instance),
            ("PULSE__WORKER__MAX_BATCH", "64"),
            ("PULSE__WORKER__IDLE_TIMEOUT", "1h"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    start(&env)
}

/// Every partition held by exactly the `workers`, each holding some, each ready.
fn held(workers: &[&Proc]) -> bool {
    let counts: Vec<f64> = workers
        .iter()
        .map(|w| metric(w, "pulse_assigned_partitions"))
        .collect();
    counts.iter().all(|c| *c > 0.0)
        && counts.iter().sum::<f64>() == ASSIGNABLE
        && workers
            .iter()
            .all(|w| http_get(&w.addr, "/readyz").0 == 200)
}

fn rebalances(workers: &[&Proc]) -> Vec<f64> {
    workers
        .iter()
        .map(|w| metric(w, "pulse_rebalances_total"))
        .collect()
}

/// Waits until the `workers` hold every partition and no rebalance happens for three seconds;
/// returns how long the first part took.
fn wait_settled(workers: &[&Proc], within: Duration) -> Duration {
    let started = Instant::now();
    let deadline = started + within.max(Duration::from_secs(60));
    let mut first_held = None;
    loop {
        assert!(Instant::now() < deadline, "the group did not settle");
        let before = rebalances(workers);
        if held(workers) {
            let at = *first_held.get_or_insert_with(|| started.elapsed());
            std::thread::sleep(Duration::from_secs(3));
            if held(workers) && rebalances(workers) == before {
                return at;
            }
        } else {
            first_held = None;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What a worker's log says about its partitions since the last look: assignments,
/// revocations and restores, by partition number, in order.
#[derive(Debug, Default)]
struct Moves {
    assigned: BTreeSet<i32>,
    revoked: BTreeSet<i32>,
    restored: Vec<i32>,
    /// The partition numbers held after these moves.
    held: BTreeSet<i32>,
}

fn numbers(line: &str) -> BTreeSet<i32> {
    json_field(line, "numbers")
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Reads the log lines of `w` written since the last call, starting from `held`.
fn moves(w: &Proc, held: &BTreeSet<i32>) -> Moves {
    let mut m = Moves {
        held: held.clone(),
        ..Moves::default()
    };
    for line in w.err.try_iter() {
        match json_field(&line, "message").as_deref() {
            Some("Partitions assigned.") => {
                let n = numbers(&line);
                m.held.extend(&n);
                m.assigned.extend(n);
            }
            Some("Partitions revoked; draining.") => {
                let n = numbers(&line);
                m.held.retain(|p| !n.contains(p));
                m.revoked.extend(n);
            }
            Some("Partition restored.") => {
                m.restored
                    .extend(json_field(&line, "partition").and_then(|p| p.parse::<i32>().ok()));
            }
            _ => {}
        }
    }
    m
}

#[test]
fn kafka_a_third_worker_under_load_restores_only_the_partitions_that_move() {
    let cluster = Cluster::start(Kind::Kafka, "scale-out");
    let records = traffic();
    let (first, second) = records.split_at(records.len() / 2);
    let mut ends = produce(&cluster, first);
    let a = worker(&cluster, "consumer", "");
    let b = worker(&cluster, "consumer", "");
    wait_settled(&[&a, &b], Duration::from_secs(60));
    cluster.wait_caught_up(&ends);
    let restores = |w: &Proc| metric(w, "pulse_restore_seconds_count");
    let profiles = |w: &Proc| metric(w, "pulse_restore_profiles_total");
    let held: Vec<BTreeSet<i32>> = [&a, &b]
        .iter()
        .map(|w| moves(w, &BTreeSet::new()).held)
        .collect();
    let before: Vec<(f64, f64)> = [&a, &b]
        .iter()
        .map(|w| (restores(w), profiles(w)))
        .collect();

    // The rest of the traffic goes in while the third worker joins.
    let c = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let mut more = Vec::new();
            for chunk in second.chunks(second.len() / 8 + 1) {
                more.push(produce(&cluster, chunk));
                std::thread::sleep(Duration::from_millis(250));
            }
            more
        });
        std::thread::sleep(Duration::from_millis(300));
        let c = worker(&cluster, "consumer", "");
        for more in load.join().expect("the producer") {
            add_ends(&mut ends, &more);
        }
        c
    });
    wait_settled(&[&a, &b, &c], Duration::from_secs(60));
    cluster.wait_caught_up(&ends);

    let after: Vec<Moves> = [&a, &b]
        .iter()
        .zip(&held)
        .map(|(w, h)| moves(w, h))
        .chain([moves(&c, &BTreeSet::new())])
        .collect();
    let mut everything = BTreeSet::new();
    for (i, m) in after.iter().enumerate() {
        let was = held.get(i).cloned().unwrap_or_default();
        let kept: BTreeSet<i32> = was.intersection(&m.held).copied().collect();
        let gained: BTreeSet<i32> = m.held.difference(&was).copied().collect();
        // A partition that stays is neither revoked nor restored.
        assert!(
            kept.is_disjoint(&m.revoked),
            "worker {i} revoked {:?}, of which it kept {kept:?}",
            m.revoked
        );
        let restored: BTreeSet<i32> = m.restored.iter().copied().collect();
        assert_eq!(
            restored, gained,
            "worker {i} restored {:?}, having gained {gained:?}",
            m.restored
        );
        assert_eq!(
            m.restored.len(),
            restored.len(),
            "worker {i} restored twice"
        );
        // Every partition number goes to one worker with all four of its topics.
        assert_eq!(
            metric([&a, &b, &c][i], "pulse_assigned_partitions"),
            4.0 * m.held.len() as f64
        );
        assert!(
            everything.is_disjoint(&m.held),
            "two workers hold one partition"
        );
        everything.extend(&m.held);
        if let Some((restores_then, profiles_then)) = before.get(i) {
            let w = [&a, &b][i];
            assert_eq!(restores(w) - restores_then, gained.len() as f64);
            if gained.is_empty() {
                assert_eq!(profiles(w), *profiles_then, "worker {i} restored profiles");
            } else {
                assert!(profiles(w) > *profiles_then);
            }
        }
    }
    assert_eq!(everything.len(), PARTITIONS as usize);
    assert!(!after[2].held.is_empty(), "the new worker took nothing");
    assert!(
        after.iter().any(|m| m.restored.is_empty()),
        "every worker restored something: {after:?}"
    );
    assert_eq!(restores(&c), after[2].held.len() as f64);
    assert!(
        profiles(&c) > 0.0,
        "it restored the moved partition's customers"
    );

    // Lag of the inputs back to zero on every worker (librdkafka reports it every 5 s; the
    // repartition topic keeps receiving markers, so its lag is rarely zero at a glance).
    let input_lag = |w: &Proc| -> Vec<String> {
        http_get(&w.addr, "/metrics")
            .1
            .lines()
            .filter(|l| l.starts_with("pulse_consumer_lag_records{"))
            .filter(|l| !l.contains("repartition") && !l.ends_with(" 0"))
            .map(str::to_owned)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lagging: Vec<String> = [&a, &b, &c]
            .iter()
            .enumerate()
            .flat_map(|(i, w)| {
                let held = &after[i].held;
                input_lag(w)
                    .into_iter()
                    .map(move |l| format!("worker {i} holding {held:?}: {l}"))
            })
            .collect();
        if lagging.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lag stayed above zero: {lagging:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // And nothing was lost on the way: every customer is in the changelog.
    let customers: BTreeSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(cluster.changelog_state().len(), customers.len());
}

/// Kills one of two workers four times, each time at once restarting it (a supervisor's
/// restart), then checks the group settles within twice the session timeout of the last
/// restart, and that nothing rebalances for the minute after.
fn survives_repeated_kills(protocol: &str, static_members: bool) {
    let cluster = Cluster::start(Kind::Kafka, &format!("kills-{protocol}"));
    let records = traffic();
    let ends = produce(&cluster, &records);
    let id = |n: &str| {
        if static_members {
            n.to_owned()
        } else {
            String::new()
        }
    };
    let a = worker(&cluster, protocol, &id("pulse-0"));
    let mut b = worker(&cluster, protocol, &id("pulse-1"));
    wait_settled(&[&a, &b], Duration::from_secs(60));
    for round in 0..4u64 {
        // At different points of the restore and of the traffic.
        std::thread::sleep(Duration::from_millis(300 + 700 * round));
        signal(&b.child, "-KILL");
        let _ = b.child.wait();
        b = worker(&cluster, protocol, &id("pulse-1"));
    }
    let took = wait_settled(&[&a, &b], 2 * SESSION);
    assert!(
        took <= 2 * SESSION,
        "{protocol}: settled only after {took:?}"
    );
    let (settled, assigned) = (
        rebalances(&[&a, &b]),
        [
            metric(&a, "pulse_assigned_partitions"),
            metric(&b, "pulse_assigned_partitions"),
        ],
    );
    std::thread::sleep(Duration::from_secs(60));
    assert_eq!(
        rebalances(&[&a, &b]),
        settled,
        "{protocol}: rebalanced again"
    );
    assert_eq!(
        [
            metric(&a, "pulse_assigned_partitions"),
            metric(&b, "pulse_assigned_partitions"),
        ],
        assigned
    );
    cluster.wait_caught_up(&ends);
}

#[test]
fn kafka_classic_group_of_static_members_settles_after_repeated_kills() {
    survives_repeated_kills("classic", true);
}

#[test]
fn kafka_consumer_protocol_group_settles_after_repeated_kills() {
    survives_repeated_kills("consumer", false);
}

/// Two workers given the same `kafka.group_instance_id`: under the classic protocol the group
/// fences the first, under the consumer protocol it refuses the second. Either way librdkafka's
/// client is dead for good, and that worker must exit with an error naming the id, not idle
/// on with nothing fetched; the other holds every partition.
fn one_instance_id_twice(protocol: &str) {
    let cluster = Cluster::start(Kind::Kafka, &format!("same-id-{protocol}"));
    let ends = produce(&cluster, &traffic()[..2000]);
    let mut first = worker(&cluster, protocol, "pulse-same");
    wait_settled(&[&first], Duration::from_secs(60));
    let mut second = worker(&cluster, protocol, "pulse-same");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (gone, kept) = loop {
        if let Some(status) = first.child.try_wait().unwrap() {
            break ((first, status), second);
        }
        if let Some(status) = second.child.try_wait().unwrap() {
            break ((second, status), first);
        }
        assert!(Instant::now() < deadline, "{protocol}: both went on");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (gone, status) = gone;
    assert!(!status.success(), "{protocol}: exited with {status}");
    let log: Vec<String> = gone.err.try_iter().collect();
    assert!(
        log.iter().any(|l| l.contains("kafka.group_instance_id")),
        "{protocol}: the reason is not given: {log:?}"
    );
    // The other holds the id, and every partition, and reads on.
    wait_settled(&[&kept], Duration::from_secs(60));
    cluster.wait_caught_up(&ends);
}

#[test]
fn kafka_classic_worker_fenced_by_its_own_instance_id_exits_with_the_reason() {
    one_instance_id_twice("classic");
}

#[test]
fn kafka_consumer_protocol_worker_refused_its_instance_id_exits_with_the_reason() {
    one_instance_id_twice("consumer");
}
