//! Crash points for the fault tests, which must crash a worker at the worst moment rather than
//! at a random one. `PULSE_FAILPOINT=<point>:<n>` aborts the process (as a crash would: no
//! flush, no commit, no drain) the n-th time it reaches `<point>`, or panics there for a point
//! that stands for a bug. Unset, as in production, reaching a point costs one atomic load.
//!
//! `PULSE_FAILPOINT_CLOCK_OFFSET=<ms>` sets Pulse's reading of the wall clock off by that many
//! milliseconds (negative: behind), as on a host whose clock is wrong. Only Pulse's own reading
//! moves, the one event time is judged against; `faketime` would move librdkafka's clocks too,
//! and its timed waits then never end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// After a batch's profile records are acknowledged, before its checkpoint is sent.
pub(crate) const BEFORE_CHECKPOINT: &str = "before-checkpoint";
/// In exactly-once mode, after a batch's records are sent in its transaction, before the
/// commit: the transaction stays open until the partition's next owner aborts it.
pub(crate) const BEFORE_COMMIT: &str = "before-commit";
/// While a batch is applied, under the partition's lock, as a bug in the engine would: the
/// task panics.
pub(crate) const PANIC_IN_BATCH: &str = "panic-in-batch";

/// Milliseconds to add to the wall clock: 0 unless a fault test sets it.
pub(crate) fn clock_offset() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var("PULSE_FAILPOINT_CLOCK_OFFSET")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

fn armed() -> Option<&'static (String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("PULSE_FAILPOINT").ok()?;
            let (point, n) = spec.split_once(':')?;
            Some((point.to_owned(), n.parse().ok()?))
        })
        .as_ref()
}

/// Whether `point` is armed at all, for work only a crash there needs.
pub(crate) fn armed_at(point: &str) -> bool {
    armed().is_some_and(|(p, _)| p == point)
}

/// Whether `point` is armed and this is its n-th arrival.
fn nth_arrival(point: &str) -> Option<u64> {
    static ARRIVALS: AtomicU64 = AtomicU64::new(0);
    let (armed, n) = armed()?;
    (armed == point && ARRIVALS.fetch_add(1, Ordering::Relaxed) + 1 == *n).then_some(*n)
}

/// Aborts the process if `point` is armed and this is its n-th arrival.
pub(crate) fn reached(point: &str) {
    if let Some(n) = nth_arrival(point) {
        eprintln!("Failpoint {point} reached, arrival {n}; aborting.");
        std::process::abort();
    }
}

/// Panics if `point` is armed and this is its n-th arrival.
pub(crate) fn panics(point: &str) {
    if let Some(n) = nth_arrival(point) {
        panic!("failpoint {point} reached, arrival {n}");
    }
}
