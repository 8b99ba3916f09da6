//! The registry of partition states, shared between the partition tasks that own the
//! processing and the readers (the summary line, the query API and the status page). Each partition's
//! engine sits behind its own mutex, taken only in synchronous sections, never across
//! `.await`.

use dashmap::DashMap;
use pulse_engine::{
    funnel_summaries, report, CustomerReport, FunnelSummary, Partition, Period, PopulationScores,
    Profile, Tally,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Shared handle to every partition state of this worker.
#[derive(Debug, Clone, Default)]
pub struct StateRegistry {
    partitions: Arc<DashMap<i32, Arc<Mutex<Partition>>>>,
    /// The input topics' partition count, once the topic layout was checked; 0 before.
    input_partitions: Arc<std::sync::atomic::AtomicI32>,
}

/// A poisoned lock means a panic mid-update; the state is still the best we have, so reads go on.
pub(crate) fn lock(p: &Mutex<Partition>) -> MutexGuard<'_, Partition> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl StateRegistry {
    /// A registry holding `partitions` of `input_partitions`, for serving a fixed state (the
    /// query API's fuzz target) rather than a worker's.
    pub fn serving(
        input_partitions: i32,
        partitions: impl IntoIterator<Item = (i32, Partition)>,
    ) -> Self {
        let registry = Self::default();
        registry.set_input_partitions(input_partitions);
        for (p, state) in partitions {
            registry.replace(p, state);
        }
        registry
    }

    pub(crate) fn set_input_partitions(&self, n: i32) {
        self.input_partitions
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The input topics' partition count (0 until known).
    pub fn input_partitions(&self) -> i32 {
        self.input_partitions
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn get_or_insert(
        &self,
        partition: i32,
        make: impl FnOnce() -> Partition,
    ) -> Arc<Mutex<Partition>> {
        self.partitions
            .entry(partition)
            .or_insert_with(|| Arc::new(Mutex::new(make())))
            .clone()
    }

    /// Installs a partition's state, replacing any held (a restore is authoritative).
    pub(crate) fn replace(&self, partition: i32, state: Partition) {
        self.partitions
            .insert(partition, Arc::new(Mutex::new(state)));
    }

    /// Drops a partition's state (it was revoked).
    pub(crate) fn remove(&self, partition: i32) {
        self.partitions.remove(&partition);
    }

    fn snapshot(&self) -> Vec<Arc<Mutex<Partition>>> {
        // Collected first so no dashmap guard is held while partition locks are taken.
        self.partitions.iter().map(|e| e.value().clone()).collect()
    }

    /// The profile of one customer, wherever it lives on this worker.
    pub fn profile(&self, customer: &str) -> Option<Profile> {
        self.snapshot()
            .iter()
            .find_map(|p| lock(p).profile(customer).cloned())
    }

    /// The partition numbers this worker holds state for, ascending.
    pub fn partitions(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.partitions.iter().map(|e| *e.key()).collect();
        v.sort_unstable();
        v
    }

    /// A customer's analytics as of their partition's event time (the later of its watermark
    /// and the customer's own latest evaluation).
    /// Whether a partition of this worker evicted `customer` (`engine.evict_after`) since it
    /// was restored, and they have not come back.
    pub fn evicted(&self, customer: &str) -> bool {
        self.snapshot()
            .iter()
            .any(|p| lock(p).was_evicted(customer))
    }

    pub fn report(&self, customer: &str) -> Option<CustomerReport> {
        self.snapshot().iter().find_map(|p| {
            let p = lock(p);
            let profile = p.profile(customer)?;
            let now = p
                .watermark()
                .unwrap_or(i64::MIN)
                .max(profile.last_seen)
                .max(profile.derived.evaluated_at);
            Some(report(p.spec(), p.population(), customer, profile, now))
        })
    }

    /// Up to `limit` members of segment `index` with ids after `after`, in id order, and
    /// whether more follow. Each partition is scanned once under its lock, one partition at a
    /// time.
    pub fn members(&self, index: usize, after: Option<&str>, limit: usize) -> (Vec<String>, bool) {
        let bit = 1u64 << index;
        // The `limit + 1` smallest matching ids: one more than a page says whether more follow.
        let mut page = std::collections::BTreeSet::new();
        for p in self.snapshot() {
            let p = lock(&p);
            for (id, profile) in p.profiles() {
                if profile.derived.segments & bit == 0 || after.is_some_and(|a| id <= a) {
                    continue;
                }
                if page.len() <= limit {
                    page.insert(id.to_owned());
                } else if page.last().is_some_and(|last: &String| id < last.as_str()) {
                    page.insert(id.to_owned());
                    page.pop_last();
                }
            }
        }
        let more = page.len() > limit;
        (page.into_iter().take(limit).collect(), more)
    }

    /// Funnel summaries over this worker's customers (one pass over each partition).
    pub fn funnels(&self) -> Vec<FunnelSummary> {
        let mut total: Option<Vec<FunnelSummary>> = None;
        for p in self.snapshot() {
            let p = lock(&p);
            let part = funnel_summaries(p.spec(), p.profiles().map(|(_, v)| v));
            match &mut total {
                None => total = Some(part),
                Some(t) => t.iter_mut().zip(&part).for_each(|(a, b)| a.merge(b)),
            }
        }
        total.unwrap_or_default()
    }

    /// Retention counts, `(cohort period, offset) → customers active`, summed over partitions.
    pub fn cohorts(&self, period: Period) -> BTreeMap<(i64, u32), u64> {
        let mut total = BTreeMap::new();
        for p in self.snapshot() {
            let p = lock(&p);
            for (k, n) in p.population().cohorts.counts(period) {
                *total.entry(*k).or_default() += u64::from(*n);
            }
        }
        total
    }

    /// Every profile held by this worker, sorted by customer id.
    pub fn profiles(&self) -> Vec<(String, Profile)> {
        let mut all: Vec<(String, Profile)> = self
            .snapshot()
            .iter()
            .flat_map(|p| {
                lock(p)
                    .profiles()
                    .map(|(k, v)| (k.to_owned(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    pub fn customers(&self) -> usize {
        self.snapshot().iter().map(|p| lock(p).customers()).sum()
    }

    /// Customers by segment, churn level and RFM segment, over this worker's partitions.
    pub fn tally(&self) -> Tally {
        let mut total = Tally::default();
        for p in self.snapshot() {
            total.merge(lock(&p).tally());
        }
        total
    }

    /// Survey answers in each partition's rolling window (ending at its watermark), summed.
    pub fn survey_scores(&self) -> PopulationScores {
        let mut total = PopulationScores::default();
        for p in self.snapshot() {
            let p = lock(&p);
            if let Some(wm) = p.watermark() {
                let window = p.spec().survey_window_days();
                total.add(&p.population().surveys.scores(window, wm));
            }
        }
        total
    }

    pub fn pending_timers(&self) -> usize {
        self.snapshot()
            .iter()
            .map(|p| lock(p).pending_timers())
            .sum()
    }

    /// `(partition, watermark)` for every partition that has one.
    pub fn watermarks(&self) -> Vec<(i32, i64)> {
        let mut v: Vec<(i32, i64)> = self
            .partitions
            .iter()
            .map(|e| (*e.key(), e.value().clone()))
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|(k, p)| lock(&p).watermark().map(|w| (k, w)))
            .collect();
        v.sort_unstable();
        v
    }
}
