//! The read model of the query API and the status page: what they share (`ApiState`) and the
//! reads they make of this worker's partitions. Every read here is blocking: it takes each
//! partition's lock in turn, so callers run it on a blocking thread.

use pulse_engine::{funnel_summaries, report, CustomerReport, Engine, FunnelSummary, Period};
use pulse_kafka::StateRegistry;
use pulse_telemetry::{Health, Metrics};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What the query API and the status page read.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub state: StateRegistry,
    pub engine: Arc<Engine>,
    pub metrics: Metrics,
    pub health: Health,
    /// The producers' partitioner (`kafka.partitioner`), to say where a customer lives.
    pub partitioner: String,
    /// Which worker holds a partition (from the changelog's checkpoints), kept a few seconds.
    pub owners: Arc<crate::owners::Owners>,
    /// The views that scan every profile, kept a moment so requests share a scan.
    pub views: Arc<crate::kept::Views>,
}

/// A customer's analytics as of their partition's event time (the later of its watermark and
/// the customer's own latest evaluation), wherever they live on this worker.
pub fn customer(state: &StateRegistry, customer: &str) -> Option<CustomerReport> {
    state.find_map(|p| {
        let profile = p.profile(customer)?;
        let now = p
            .watermark()
            .unwrap_or(i64::MIN)
            .max(profile.last_seen)
            .max(profile.derived.evaluated_at);
        Some(report(p.spec(), p.population(), customer, profile, now))
    })
}

/// Whether a partition of this worker evicted `customer` (`engine.evict_after`) since it was
/// restored, and they have not come back.
pub fn evicted(state: &StateRegistry, customer: &str) -> bool {
    state
        .find_map(|p| p.was_evicted(customer).then_some(()))
        .is_some()
}

/// Up to `limit` members of segment `index` with ids after `after`, in id order, and whether
/// more follow. Each partition is scanned once under its lock.
pub fn members(
    state: &StateRegistry,
    index: usize,
    after: Option<&str>,
    limit: usize,
) -> (Vec<String>, bool) {
    let bit = 1u64 << index;
    // The `limit + 1` smallest matching ids: one more than a page says whether more follow.
    let mut page = BTreeSet::new();
    state.for_each_partition(|p| {
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
    });
    let more = page.len() > limit;
    (page.into_iter().take(limit).collect(), more)
}

/// Funnel summaries over this worker's customers (one pass over each partition).
pub fn funnels(state: &StateRegistry) -> Vec<FunnelSummary> {
    let mut total: Option<Vec<FunnelSummary>> = None;
    state.for_each_partition(|p| {
        let part = funnel_summaries(p.spec(), p.profiles().map(|(_, v)| v));
        match &mut total {
            None => total = Some(part),
            Some(t) => t.iter_mut().zip(&part).for_each(|(a, b)| a.merge(b)),
        }
    });
    total.unwrap_or_default()
}

/// The funnel summaries, from a scan at most [`crate::kept::KEEP`] old.
pub fn kept_funnels(s: &ApiState) -> Arc<Vec<FunnelSummary>> {
    s.views
        .funnels
        .get(std::time::Instant::now(), || funnels(&s.state))
}

/// Retention counts, `(cohort period, offset) → customers active`, summed over partitions.
pub fn cohorts(state: &StateRegistry, period: Period) -> BTreeMap<(i64, u32), u64> {
    let mut total = BTreeMap::new();
    state.for_each_partition(|p| {
        for (k, n) in p.population().cohorts.counts(period) {
            *total.entry(*k).or_default() += u64::from(*n);
        }
    });
    total
}

/// The cohort counts, from a scan at most [`crate::kept::KEEP`] old.
pub fn kept_cohorts(s: &ApiState, period: Period) -> Arc<BTreeMap<(i64, u32), u64>> {
    s.views
        .cohorts(period)
        .get(std::time::Instant::now(), || cohorts(&s.state, period))
}
