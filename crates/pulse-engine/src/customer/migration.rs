//! How a profile stored under one configuration's [`Layout`] is carried to another's, by
//! name:
//!
//! - a metric, funnel or segment kept (under its name, or under a new one that says
//!   `renamed_from` the old) keeps its counts, attempts and membership, wherever it moved;
//! - one added starts empty: its window counts start at zero, its funnel has no attempt, and a
//!   new segment is entered at the customer's next evaluation if its rule holds;
//! - one removed is dropped with what it held, without an output: an open funnel attempt ends
//!   unannounced, a membership of a removed segment ends without a `segment.exited`;
//! - a funnel whose number of steps changed starts over: its attempts are dropped, since a step
//!   index no longer means the same step.

use crate::customer::profile::Profile;
use crate::spec::layout::Layout;
use crate::spec::EngineSpec;

fn names(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Per old position, the new one (`None`: dropped).
fn positions<'a>(
    old: impl Iterator<Item = &'a str>,
    new: &[&str],
    renames: &[(String, String)],
) -> Vec<Option<usize>> {
    old.map(|o| {
        new.iter().position(|n| *n == o).or_else(|| {
            renames
                .iter()
                .find(|(_, from)| from == o)
                .and_then(|(to, _)| new.iter().position(|n| n == to))
        })
    })
    .collect()
}

/// How to carry a profile written under one layout to the current configuration's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Per old window column, the new column.
    metrics: Vec<Option<usize>>,
    /// Per old funnel index, the new index.
    funnels: Vec<Option<u16>>,
    /// Per old segment bit, the new bit.
    segments: Vec<Option<u8>>,
    new_metrics: usize,
}

impl Migration {
    /// From profiles written under `from` to `to`'s layout.
    pub fn between(from: &Layout, to: &EngineSpec) -> Self {
        let target = &to.layout;
        let metrics = positions(
            from.metrics.iter().map(String::as_str),
            &names(&target.metrics),
            &to.renames.metrics,
        );
        let funnel_names: Vec<&str> = target.funnels.iter().map(|(n, _)| n.as_str()).collect();
        let funnels = positions(
            from.funnels.iter().map(|(n, _)| n.as_str()),
            &funnel_names,
            &to.renames.funnels,
        )
        .into_iter()
        .zip(&from.funnels)
        // A funnel whose steps changed in number starts over.
        .map(|(at, (_, steps))| at.filter(|j| target.funnels[*j].1 == *steps))
        .map(|at| at.and_then(|j| u16::try_from(j).ok()))
        .collect();
        let segments = positions(
            from.segments.iter().map(String::as_str),
            &names(&target.segments),
            &to.renames.segments,
        )
        .into_iter()
        .map(|at| at.and_then(|j| u8::try_from(j).ok()))
        .collect();
        Self {
            metrics,
            funnels,
            segments,
            new_metrics: target.metrics.len(),
        }
    }

    /// Whether every position stays where it is: profiles are used as stored.
    pub fn is_identity(&self) -> bool {
        let same = |v: &[Option<usize>]| v.iter().enumerate().all(|(i, j)| *j == Some(i));
        let funnels: Vec<Option<usize>> = self.funnels.iter().map(|j| j.map(usize::from)).collect();
        let segments: Vec<Option<usize>> =
            self.segments.iter().map(|j| j.map(usize::from)).collect();
        same(&self.metrics)
            && self.metrics.len() == self.new_metrics
            && same(&funnels)
            && same(&segments)
    }

    /// Carries `p` over: counters, attempts and memberships move to their new positions.
    pub fn apply(&self, p: &mut Profile) {
        p.windows.remap(&self.metrics, self.new_metrics);
        p.funnels.retain_mut(|a| {
            match self.funnels.get(usize::from(a.funnel)).copied().flatten() {
                Some(j) => {
                    a.funnel = j;
                    true
                }
                None => false,
            }
        });
        let old = p.derived.segments;
        p.derived.segments = (0..64)
            .filter(|i| old & (1u64 << i) != 0)
            .filter_map(|i| self.segments.get(i).copied().flatten())
            .fold(0, |bits, j| bits | (1u64 << j));
        p.derived.entered = p
            .derived
            .entered
            .iter()
            .filter_map(|(i, at)| {
                let j = self.segments.get(usize::from(*i)).copied().flatten()?;
                Some((j, *at))
            })
            .collect();
    }
}

#[cfg(test)]
#[path = "migration_tests.rs"]
mod tests;
