//! Event-time rolling windows as tiered buckets. Recent activity is kept in 5-minute buckets,
//! older activity is folded into hourly and then daily buckets, and buckets older than the
//! longest window are dropped. Only buckets with activity exist, so an occasional customer
//! costs a few dozen bytes while a daily user costs at most ~126 buckets.
//!
//! A window of length W read at time t covers event times from t − W on (newer events that
//! are already applied included): it sums every bucket that starts at or after t − W. That is
//! exact when t − W falls on a bucket boundary, and otherwise leaves out at most the one bucket
//! that straddles it (5 min for windows up to 1 h, 1 h up to 24 h, 1 day beyond).

use crate::spec::EngineSpec;
use pulse_events::time::{Millis, DAY, HOUR, MINUTE, MIN_EVENT_TIME};
use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

/// Bucket granularity by tier, and the age (behind the customer's newest event) from which a
/// bucket is folded into the next tier.
const TIERS: [(Millis, Millis); 3] = [(5 * MINUTE, HOUR), (HOUR, DAY), (DAY, Millis::MAX)];
const LEVEL_SHIFT: u32 = 30;
const START_MASK: u32 = (1 << LEVEL_SHIFT) - 1;

/// Per-customer rolling counters for every metric of the [`EngineSpec`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    /// Buckets laid out flat, oldest first: a header (tier in the top two bits, start in
    /// minutes since 2000-01-01 below) followed by one counter per metric.
    data: ThinVec<u32>,
    /// The hour (since 2000) of the last fold, so folding runs at most hourly per customer.
    folded_hour: u32,
}

fn header(level: usize, start: Millis) -> u32 {
    ((level as u32) << LEVEL_SHIFT) | (((start - MIN_EVENT_TIME) / MINUTE) as u32 & START_MASK)
}

fn start_of(h: u32) -> Millis {
    MIN_EVENT_TIME + Millis::from(h & START_MASK) * MINUTE
}

fn level_of(h: u32) -> usize {
    (h >> LEVEL_SHIFT) as usize
}

fn level_for_age(age: Millis) -> usize {
    TIERS
        .iter()
        .position(|(_, fold_after)| age < *fold_after)
        .unwrap_or(TIERS.len() - 1)
}

fn floor(t: Millis, g: Millis) -> Millis {
    MIN_EVENT_TIME + (t - MIN_EVENT_TIME).div_euclid(g) * g
}

/// The tier a time `ts` belongs in when the customer's newest event is in the hour starting
/// at `reference`, from tier `from` up: a bucket's age counts from its own start, and a
/// coarser bucket starts earlier, so this climbs until it settles. It depends on the hour of
/// the newest event and `ts` alone, so every order of the same events ends in the same
/// buckets.
fn tier(ts: Millis, reference: Millis, from: usize) -> usize {
    let mut level = from;
    loop {
        let aged = level_for_age(reference - floor(ts, TIERS[level].0));
        if aged <= level {
            return level;
        }
        level = aged;
    }
}

impl Windows {
    fn stride(spec: &EngineSpec) -> usize {
        spec.metrics.len() + 1
    }

    /// Moves the counters to a new column layout: `columns[i]` is where old column `i` goes
    /// (`None`: dropped), and a bucket has `metrics` counters after. New columns start at zero.
    pub(crate) fn remap(&mut self, columns: &[Option<usize>], metrics: usize) {
        let (old, new) = (columns.len() + 1, metrics + 1);
        let mut data = ThinVec::with_capacity(self.data.len() / old * new);
        for bucket in self.data.chunks_exact(old) {
            let at = data.len();
            data.push(bucket[0]);
            data.resize(at + new, 0);
            for (i, to) in columns.iter().enumerate() {
                if let Some(j) = to.filter(|j| *j < metrics) {
                    data[at + 1 + j] = bucket[1 + i];
                }
            }
        }
        self.data = data;
    }

    /// Number of buckets held.
    pub fn buckets(&self, spec: &EngineSpec) -> usize {
        self.data.len() / Self::stride(spec)
    }

    /// Adds `incs` (metric index, amount) at event time `ts`. `newest` is the customer's newest
    /// event time including this one; its hour decides the tier an old event lands in and when
    /// to fold, so the result depends on this customer's events only, not on their order.
    pub fn add(&mut self, spec: &EngineSpec, ts: Millis, newest: Millis, incs: &[(usize, u32)]) {
        let stride = Self::stride(spec);
        let hour = ((newest - MIN_EVENT_TIME) / HOUR) as u32;
        if hour != self.folded_hour {
            self.folded_hour = hour;
            self.fold(spec, newest);
        }
        let reference = floor(newest, HOUR);
        let level = tier(ts, reference, 0);
        let bucket = floor(ts, TIERS[level].0);
        if bucket + TIERS[level].0 <= reference - spec.retention - DAY {
            return; // older than any window, as a fold would drop it
        }
        let h = header(level, bucket);
        let start = start_of(h);
        // Most events land in the newest bucket, so search from the end.
        let mut at = self.data.len();
        let mut found = false;
        while at > 0 {
            let prev = at - stride;
            let ph = self.data[prev];
            if ph == h {
                at = prev;
                found = true;
                break;
            }
            if start_of(ph) < start || (start_of(ph) == start && level_of(ph) > level) {
                break;
            }
            at = prev;
        }
        if !found {
            if self.data.capacity() < self.data.len() + stride {
                // Grow two buckets at a time: half the reallocations of exact growth, with at
                // most one bucket of slack (folding trims more than that).
                self.data.reserve_exact(2 * stride);
            }
            let len = self.data.len();
            self.data.resize(len + stride, 0);
            if at < len {
                self.data.copy_within(at..len, at + stride);
                self.data[at + 1..at + stride].fill(0);
            }
            self.data[at] = h;
        }
        for &(m, v) in incs {
            let c = &mut self.data[at + 1 + m];
            *c = c.saturating_add(v);
        }
    }

    /// Takes `v` of metric `m` back from the bucket holding event time `ts` (a session whose
    /// start moved, or that merged into another). Nothing happens if that bucket has been
    /// dropped; of two buckets covering `ts` (one not folded yet), the finer one first.
    pub fn take(&mut self, spec: &EngineSpec, ts: Millis, m: usize, v: u32) {
        let stride = Self::stride(spec);
        let holding = self
            .data
            .chunks_exact_mut(stride)
            .filter(|b| {
                let (start, level) = (start_of(b[0]), level_of(b[0]));
                start <= ts && ts < start + TIERS[level].0 && b[1 + m] > 0
            })
            .min_by_key(|b| level_of(b[0]));
        if let Some(b) = holding {
            b[1 + m] = b[1 + m].saturating_sub(v);
        }
    }

    /// Moves buckets that have aged into a coarser tier, merging as they go, and drops buckets
    /// older than the longest window. A day of margin is kept beyond the longest window because
    /// reads happen at the partition watermark, which can trail this customer's newest event.
    fn fold(&mut self, spec: &EngineSpec, newest: Millis) {
        let stride = Self::stride(spec);
        let reference = floor(newest, HOUR);
        let horizon = reference - spec.retention - DAY;
        // In place: the write cursor never passes the read cursor, as buckets only merge or drop.
        let d = &mut self.data;
        let mut w = 0;
        for r in (0..d.len()).step_by(stride) {
            let h = d[r];
            let start = start_of(h);
            let level = tier(start, reference, level_of(h));
            let g = TIERS[level].0;
            let coarse = floor(start, g);
            if coarse + g <= horizon {
                continue;
            }
            let nh = header(level, coarse);
            // Buckets are sorted by start, so a merge target can only be the last one written.
            if w >= stride && d[w - stride] == nh {
                for k in 1..stride {
                    d[w - stride + k] = d[w - stride + k].saturating_add(d[r + k]);
                }
            } else {
                d.copy_within(r..r + stride, w);
                d[w] = nh;
                w += stride;
            }
        }
        d.truncate(w);
        if d.capacity() > w + 2 * stride {
            // Keep one bucket of slack, as growth adds two.
            let mut kept = ThinVec::with_capacity(w + stride);
            kept.extend_from_slice(d);
            *d = kept;
        }
    }

    /// The sum of metric `m` over the window of length `w` read at time `t`.
    pub fn sum(&self, spec: &EngineSpec, m: usize, w: Millis, t: Millis) -> u64 {
        let stride = Self::stride(spec);
        let from = t - w;
        self.data
            .chunks_exact(stride)
            .filter(|b| start_of(b[0]) >= from)
            .map(|b| u64::from(b[1 + m]))
            .sum()
    }

    /// Every metric over every configured window at time `t`: `result[window][metric]`.
    pub fn table(&self, spec: &EngineSpec, t: Millis) -> Vec<Vec<u64>> {
        spec.windows
            .iter()
            .map(|w| {
                (0..spec.metrics.len())
                    .map(|m| self.sum(spec, m, *w, t))
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn spec() -> EngineSpec {
        EngineSpec::compile(&crate::test_support::build::config(vec![])).expect("valid test config")
    }

    const T0: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z, on every bucket boundary

    #[test]
    fn window_boundaries_are_exact_on_bucket_edges() {
        let s = spec();
        let mut w = Windows::default();
        w.add(&s, T0, T0, &[(0, 1)]);
        // Read one hour later the event sits exactly on the window's closed start: in.
        assert_eq!(w.sum(&s, 0, HOUR, T0 + HOUR), 1);
        // One bucket later it is out.
        assert_eq!(w.sum(&s, 0, HOUR, T0 + HOUR + 5 * MINUTE), 0);
        let mut w = Windows::default();
        w.add(&s, T0 - 1, T0 - 1, &[(0, 1)]);
        // One millisecond before the start of the window: out; one bucket wider: in.
        assert_eq!(w.sum(&s, 0, HOUR, T0 + HOUR), 0);
        assert_eq!(w.sum(&s, 0, HOUR, T0 + HOUR - 5 * MINUTE), 1);
        assert_eq!(w.sum(&s, 0, DAY, T0 + HOUR), 1);
    }

    #[test]
    fn windows_expire_as_time_passes() {
        let s = spec();
        let mut w = Windows::default();
        w.add(&s, T0, T0, &[(0, 1), (3, 1999)]);
        let table = w.table(&s, T0 + 30 * MINUTE);
        assert_eq!(
            table.iter().map(|r| r[0]).collect::<Vec<_>>(),
            vec![1, 1, 1, 1, 1]
        );
        assert_eq!(table[0][3], 1999);
        let after_day = w.table(&s, T0 + DAY + HOUR);
        assert_eq!(
            after_day.iter().map(|r| r[0]).collect::<Vec<_>>(),
            vec![0, 0, 1, 1, 1]
        );
        let after_quarter = w.table(&s, T0 + 91 * DAY);
        assert_eq!(
            after_quarter.iter().map(|r| r[0]).collect::<Vec<_>>(),
            vec![0; 5]
        );
    }

    #[test]
    fn folding_keeps_totals_and_bounds_buckets() {
        let s = spec();
        let mut w = Windows::default();
        let mut n = 0u64;
        // One event every 10 minutes for 120 days.
        let mut t = T0;
        while t < T0 + 120 * DAY {
            w.add(&s, t, t, &[(0, 1)]);
            n += 1;
            t += 10 * MINUTE;
        }
        let last = t - 10 * MINUTE;
        assert!(w.buckets(&s) <= 12 + 24 + 92, "{} buckets", w.buckets(&s));
        // The 30-day window read on a day boundary counts exactly 30 days of events.
        let day_edge = floor(last, DAY) + DAY;
        assert_eq!(w.sum(&s, 0, 30 * DAY, day_edge), 30 * 144);
        assert_eq!(w.sum(&s, 0, HOUR, last + 10 * MINUTE), 6);
        assert!(n > 90 * 144);
        assert_eq!(w.sum(&s, 0, 90 * DAY, day_edge), 90 * 144);
    }

    #[test]
    fn out_of_order_events_land_in_their_own_bucket() {
        let s = spec();
        let mut w = Windows::default();
        w.add(&s, T0 + 20 * MINUTE, T0 + 20 * MINUTE, &[(0, 1)]);
        w.add(&s, T0 + 2 * MINUTE, T0 + 20 * MINUTE, &[(0, 1)]);
        w.add(&s, T0 + 10 * MINUTE, T0 + 20 * MINUTE, &[(0, 1)]);
        assert_eq!(w.buckets(&s), 3);
        assert_eq!(w.sum(&s, 0, HOUR, T0 + HOUR + 5 * MINUTE), 2);
        assert_eq!(w.sum(&s, 0, HOUR, T0 + HOUR), 3);
        assert_eq!(w.sum(&s, 0, HOUR, T0 + HOUR + 15 * MINUTE), 1);
    }
}
