//! Failure is loud: a partition task that panics (a bug) stops the worker, which drains its
//! other partitions, commits, and exits with a non-zero status naming the partition and the
//! panic, so a supervisor restarts it and the partition is read again.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_panicking_partition_task_ends_the_worker_with_an_error_after_draining_the_others() {
    // The embedded default, with its demo traffic; the third batch applied panics.
    let mut pulse = start(&[("PULSE_FAILPOINT", "panic-in-batch:3")]);
    let status = wait_exit(&mut pulse.child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{status:?}");
    let log: Vec<String> = pulse.err.try_iter().collect();
    let panicked = log
        .iter()
        .position(|l| l.contains("Partition task panicked"))
        .unwrap_or_else(|| panic!("no ERROR for the panic in {log:#?}"));
    let partition = json_field(&log[panicked], "partition").expect("the partition is named");
    assert_eq!(
        json_field(&log[panicked], "level").as_deref(),
        Some("ERROR")
    );
    // The others were drained and the offsets committed before the worker stopped ...
    let after = &log[panicked..];
    assert!(
        after
            .iter()
            .any(|l| l.contains("Draining partition tasks.")),
        "{after:#?}"
    );
    assert!(
        after.iter().any(|l| l.contains("Worker stopped.")),
        "{after:#?}"
    );
    // ... and the last word says why.
    let last = log.last().expect("a log");
    assert_eq!(
        last,
        &format!(
            "error: the task of partition {partition} panicked: failpoint panic-in-batch reached, arrival 3"
        ),
        "{log:#?}"
    );
}
