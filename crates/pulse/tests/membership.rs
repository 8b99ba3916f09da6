//! Static group membership on Apache Kafka: a worker with `kafka.group_instance_id` that
//! restarts within the session timeout rejoins with the partitions it had, and the other
//! workers of the group neither revoke nor restore anything: a rolling restart moves nothing.

mod common;

use common::cluster::*;
use common::*;
use std::time::{Duration, Instant};

fn metric(w: &Proc, name: &str) -> f64 {
    metric_sum(&http_get(&w.addr, "/metrics").1, name)
}

/// Waits until `done`, failing with `what` after a minute.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kafka_a_static_member_restarted_within_the_session_timeout_moves_nothing() {
    let cluster = Cluster::start(Kind::Kafka, "static");
    let env = cluster.env();
    let start_as = |id: &str| {
        let mut e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        e.push(("PULSE__KAFKA__SESSION_TIMEOUT", "45s"));
        e.push(("PULSE__KAFKA__GROUP_INSTANCE_ID", id));
        start(&e)
    };
    let a = start_as("pulse-0");
    let mut b = start_as("pulse-1");
    let total = f64::from(PARTITIONS) * 4.0;
    // Settled: every partition held, both ready (restores done), and no rebalance for a while.
    let settled = || {
        let (x, y) = (
            metric(&a, "pulse_assigned_partitions"),
            metric(&b, "pulse_assigned_partitions"),
        );
        let ready = [&a, &b]
            .iter()
            .all(|w| http_get(&w.addr, "/readyz").0 == 200);
        x > 0.0 && y > 0.0 && x + y == total && ready
    };
    wait_until("the group did not settle", || {
        let before = metric(&a, "pulse_rebalances_total");
        settled() && {
            std::thread::sleep(Duration::from_secs(3));
            settled() && metric(&a, "pulse_rebalances_total") == before
        }
    });
    let kept = metric(&a, "pulse_assigned_partitions");
    let rebalances = metric(&a, "pulse_rebalances_total");
    let restored = metric(&a, "pulse_restore_seconds_count");

    stop_cleanly(&mut b);
    let back = start_as("pulse-1");
    wait_until("the restarted member got no partitions", || {
        metric(&back, "pulse_assigned_partitions") > 0.0 && http_get(&back.addr, "/readyz").0 == 200
    });
    // Long enough for a rebalance the restart would have caused to reach the other member.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        metric(&a, "pulse_rebalances_total"),
        rebalances,
        "the other worker went through a rebalance"
    );
    assert_eq!(metric(&a, "pulse_assigned_partitions"), kept);
    assert_eq!(
        metric(&a, "pulse_restore_seconds_count"),
        restored,
        "it restored again"
    );
    assert_eq!(metric(&back, "pulse_assigned_partitions"), total - kept);
}
