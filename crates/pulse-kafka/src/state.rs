//! The registry of partition states, shared between the partition tasks that own the
//! processing and the readers (the gauges, the summary line, the query API and the status
//! page, whose read model is the application's). Each partition's engine sits behind its own
//! mutex, taken only in synchronous sections, never across `.await`.

use dashmap::DashMap;
use pulse_engine::{Partition, PopulationScores, Profile, Tally};
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

    /// The first answer `f` gives, asking each partition of this worker under its lock, one
    /// at a time.
    pub fn find_map<T>(&self, mut f: impl FnMut(&Partition) -> Option<T>) -> Option<T> {
        self.snapshot().iter().find_map(|p| f(&lock(p)))
    }

    /// Calls `f` with each partition of this worker under its lock, one at a time (a reader
    /// that scans never holds two locks, nor the registry's).
    pub fn for_each_partition(&self, mut f: impl FnMut(&Partition)) {
        for p in self.snapshot() {
            f(&lock(&p));
        }
    }

    /// The partition numbers this worker holds state for, ascending.
    pub fn partitions(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.partitions.iter().map(|e| *e.key()).collect();
        v.sort_unstable();
        v
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
