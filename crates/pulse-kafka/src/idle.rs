//! Where a live partition's event time goes while none of its inputs has records: its newest
//! event time, moved on by the time that has passed since the partition reached it, measured
//! on the monotonic clock. The wall clock serves only as an upper bound. A worker whose wall
//! clock runs an hour ahead would otherwise move an idle partition's event time an hour past
//! its producers', and every record they send after the pause would be an hour behind the
//! watermark: dead-lettered as late. A duration measured here is the same on every clock.

use pulse_engine::Millis;
use std::time::Instant;

/// A partition's newest event time when last looked at, and when it was first seen there. A
/// restored partition's clock starts when the task first looks, after the restore: the time
/// the partition spent elsewhere is not counted, which errs on the late side.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IdleClock {
    newest: Option<(Millis, Instant)>,
}

impl IdleClock {
    /// Notes the partition's newest event time at `now`; the clock restarts when it moved.
    pub fn observe(&mut self, newest: Option<Millis>, now: Instant) {
        if newest != self.newest.map(|(n, _)| n) {
            self.newest = newest.map(|n| (n, now));
        }
    }

    /// The event time an idle partition has reached at `now`: its newest event time plus the
    /// time since, never past the wall clock `wall` (nor back). `None` before any event.
    pub fn time(&self, now: Instant, wall: Millis) -> Option<Millis> {
        let (newest, since) = self.newest?;
        let passed = Millis::try_from(now.saturating_duration_since(since).as_millis())
            .unwrap_or(Millis::MAX);
        Some(newest.saturating_add(passed).min(wall).max(newest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const T: Millis = 1_767_225_600_000;
    const HOUR: Millis = 3_600_000;

    #[test]
    fn an_idle_partition_moves_on_by_the_time_passed_whatever_the_wall_clock_says() {
        let start = Instant::now();
        let mut c = IdleClock::default();
        c.observe(Some(T), start);
        let later = start + Duration::from_secs(40);
        // The worker's wall clock runs an hour ahead: event time still moves by 40 s.
        assert_eq!(c.time(later, T + HOUR + 40_000), Some(T + 40_000));
        // An hour behind: the wall clock is the bound, and time never goes back.
        assert_eq!(c.time(later, T - HOUR), Some(T));
        assert_eq!(c.time(later, T + 10_000), Some(T + 10_000));
    }

    #[test]
    fn the_clock_restarts_when_the_newest_event_time_moves() {
        let start = Instant::now();
        let mut c = IdleClock::default();
        assert_eq!(c.time(start, T), None);
        c.observe(Some(T), start);
        let later = start + Duration::from_secs(30);
        c.observe(Some(T), later);
        assert_eq!(
            c.time(later, Millis::MAX),
            Some(T + 30_000),
            "not moved: kept"
        );
        c.observe(Some(T + 5_000), later);
        assert_eq!(c.time(later, Millis::MAX), Some(T + 5_000));
    }
}
