//! A changelog record the worker cannot read, with the real binary: the worker stops with an
//! error naming the partition, the offset and the reason, rather than restoring a state that
//! silently lacks what the record held; told to drop such records, it restores the rest and
//! runs.

mod common;

use common::cluster::*;
use common::*;
use pulse_testkit::{http_get, send_waiting};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant};

/// A profile record of a format this worker does not read, in partition 0 of the changelog.
fn damage(cluster: &Cluster) {
    let producer: BaseProducer = cluster.client().create().expect("producer");
    send_waiting(
        &producer,
        BaseRecord::to(&cluster.topic("pulse.profiles"))
            .key("c-0000001")
            .payload(&[0x93u8, 9, 0xc0, 0xc0][..])
            .partition(0),
    );
    producer.flush(Duration::from_secs(10)).expect("flushed");
}

#[test]
fn an_unreadable_changelog_record_stops_the_worker_unless_told_to_drop_it() {
    let cluster = Cluster::start(Kind::Mock, "undecodable");
    damage(&cluster);
    let env = cluster.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut stopped = start(&env);
    let error = wait_for(&stopped.err, Duration::from_secs(60), |l| {
        l.contains("A changelog record cannot be read")
    })
    .expect("an error naming the record");
    assert!(error.contains(r#""level":"ERROR""#), "{error}");
    assert_eq!(
        json_field(&error, "offset").as_deref(),
        Some("0"),
        "{error}"
    );
    assert!(error.contains(r#""partition":0"#), "{error}");
    assert!(error.contains("format version 9"), "{error}");
    let status = wait_exit(&mut stopped.child, Duration::from_secs(40));
    assert_eq!(status.code(), Some(1), "a fatal error exits with status 1");

    let mut dropping = env.clone();
    dropping.push(("PULSE__WORKER__ON_UNDECODABLE_CHANGELOG", "drop"));
    let mut running = start(&dropping);
    let dropped = wait_for(&running.err, Duration::from_secs(60), |l| {
        l.contains("could not be read and was dropped")
    })
    .expect("the dropped record logged");
    assert!(dropped.contains(r#""level":"ERROR""#), "{dropped}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(&running.addr, "/readyz").map(|(s, _)| s).ok() != Some(200) {
        assert!(Instant::now() < deadline, "not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop_cleanly(&mut running);
}
