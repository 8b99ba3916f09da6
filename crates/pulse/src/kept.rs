//! Population views that only a scan of every profile can give (funnel summaries, cohort
//! matrices), computed at most once per interval and shared by every request in it. A loop of
//! requests, or a status page left open in many browsers, then costs one scan per interval
//! rather than one per request; what it shows is at most that old.

use pulse_engine::{FunnelSummary, Period};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How old a view may be when it is answered.
pub const KEEP: Duration = Duration::from_secs(2);

/// One view and when it was computed.
#[derive(Debug)]
pub struct Kept<T> {
    keep: Duration,
    slot: Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> Kept<T> {
    pub fn new(keep: Duration) -> Self {
        Self {
            keep,
            slot: Mutex::new(None),
        }
    }

    /// The view, computed now if the one kept is older than the interval. Blocking: callers
    /// that arrive during a computation wait for it and share its result.
    pub fn get(&self, now: Instant, compute: impl FnOnce() -> T) -> Arc<T> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some((at, view)) if now.saturating_duration_since(*at) < self.keep => view.clone(),
            _ => {
                let view = Arc::new(compute());
                *slot = Some((now, view.clone()));
                view
            }
        }
    }
}

/// The scanned views of the query API and the status page.
#[derive(Debug)]
pub struct Views {
    pub funnels: Kept<Vec<FunnelSummary>>,
    pub weeks: Kept<BTreeMap<(i64, u32), u64>>,
    pub months: Kept<BTreeMap<(i64, u32), u64>>,
}

impl Views {
    pub fn new(keep: Duration) -> Self {
        Self {
            funnels: Kept::new(keep),
            weeks: Kept::new(keep),
            months: Kept::new(keep),
        }
    }

    pub fn cohorts(&self, period: Period) -> &Kept<BTreeMap<(i64, u32), u64>> {
        match period {
            Period::Week => &self.weeks,
            Period::Month => &self.months,
        }
    }
}

impl Default for Views {
    fn default() -> Self {
        Self::new(KEEP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn requests_within_the_interval_share_one_scan() {
        let kept = Kept::new(Duration::from_secs(2));
        let scans = AtomicUsize::new(0);
        let scan = || scans.fetch_add(1, Ordering::Relaxed) + 1;
        let t0 = Instant::now();
        for ms in [0, 10, 500, 1999] {
            assert_eq!(*kept.get(t0 + Duration::from_millis(ms), scan), 1);
        }
        assert_eq!(*kept.get(t0 + Duration::from_secs(2), scan), 2);
        assert_eq!(scans.load(Ordering::Relaxed), 2);
    }
}
