//! Engagement: which days a customer was active (a 64-day bitmap anchored at the newest active
//! day), how many days in all, and which features they used. Everything the engagement fields,
//! stickiness, the drop against the customer's own baseline and churn's cadence are read from.

use pulse_events::IdHasher;
use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

/// Distinct features remembered per customer; beyond this the count stops growing.
pub const MAX_FEATURES: usize = 64;

/// Days of history in the bitmap.
const BITS: i64 = 64;
/// Recent period and the baseline period before it, in days, for the activity drop.
const RECENT: i64 = 7;
const BASELINE: i64 = 56;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// UTC day number of bit 0.
    pub newest_day: i64,
    /// Bit i set: active on day `newest_day - i`.
    pub days: u64,
    /// Active days since the first event.
    pub days_total: u32,
    /// 32-bit hashes of the distinct features used, sorted.
    pub features: ThinVec<u32>,
}

impl Activity {
    /// Marks `day` active; returns whether it was a new active day.
    pub fn touch(&mut self, day: i64) -> bool {
        let fresh = if self.days == 0 {
            self.newest_day = day;
            self.days = 1;
            true
        } else if day > self.newest_day {
            let shift = day - self.newest_day;
            self.days = if shift >= BITS { 0 } else { self.days << shift } | 1;
            self.newest_day = day;
            true
        } else {
            let i = self.newest_day - day;
            // A day older than the bitmap cannot be checked; count it as seen, so a late
            // event never inflates the total.
            i < BITS && {
                let was = self.days & (1 << i) != 0;
                self.days |= 1 << i;
                !was
            }
        };
        if fresh {
            self.days_total += 1;
        }
        fresh
    }

    /// Records a feature used; returns whether it is a new one.
    pub fn use_feature(&mut self, feature: &str) -> bool {
        let h = IdHasher::default().part(feature.as_bytes()).finish_u64() as u32;
        match self.features.binary_search(&h) {
            Err(i) if self.features.len() < MAX_FEATURES => {
                self.features.insert(i, h);
                true
            }
            _ => false,
        }
    }

    /// Active days among the `n` days ending with `today`.
    pub fn active_days(&self, n: i64, today: i64) -> u32 {
        self.active_between(today - n + 1, today)
    }

    /// Active days in `from..=to`.
    fn active_between(&self, from: i64, to: i64) -> u32 {
        // Bit i is day newest_day - i: days in range are bits newest_day-to ..= newest_day-from.
        let lo = (self.newest_day - to).max(0);
        let hi = (self.newest_day - from).min(BITS - 1);
        if self.days == 0 || lo > hi {
            return 0;
        }
        let width = hi - lo + 1;
        let mask = if width >= BITS {
            u64::MAX
        } else {
            ((1u64 << width) - 1) << lo
        };
        (self.days & mask).count_ones()
    }

    /// Active days in the last 30 over 30.
    pub fn stickiness(&self, today: i64) -> f64 {
        f64::from(self.active_days(30, today)) / 30.0
    }

    /// How far the share of active days in the last week fell below the customer's own share
    /// in the 8 weeks before it: 0 when it did not fall, 1 when activity stopped. 0 without a
    /// baseline.
    pub fn drop(&self, today: i64) -> f64 {
        let recent = f64::from(self.active_days(RECENT, today)) / RECENT as f64;
        let from = today - RECENT - BASELINE + 1;
        let base = f64::from(self.active_between(from, today - RECENT)) / BASELINE as f64;
        if base == 0.0 {
            0.0
        } else {
            (1.0 - recent / base).clamp(0.0, 1.0)
        }
    }

    /// The customer's usual gap between active days, in days: their active span over the
    /// gaps in it. None before a second active day.
    pub fn cadence_days(&self, first_day: i64) -> Option<f64> {
        (self.days_total >= 2)
            .then(|| (self.newest_day - first_day) as f64 / f64::from(self.days_total - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_active_days_by_period() {
        let mut a = Activity::default();
        for d in [100, 101, 101, 105, 110] {
            a.touch(d);
        }
        assert_eq!(a.days_total, 4);
        assert_eq!(a.active_days(7, 110), 2); // 105 and 110
        assert_eq!(a.active_days(30, 110), 4);
        assert_eq!(a.active_days(7, 120), 0);
        assert_eq!(a.active_days(30, 130), 3); // 101..=130 holds 101, 105, 110
                                               // A late day inside the bitmap counts once; one outside it is not counted.
        assert!(a.touch(103));
        assert!(!a.touch(103));
        assert!(!a.touch(10));
        assert_eq!(a.days_total, 5);
        assert_eq!(a.cadence_days(100), Some(10.0 / 4.0));
    }

    #[test]
    fn drop_compares_last_week_with_the_eight_before() {
        let mut a = Activity::default();
        // Active every other day for 63 days, then nothing.
        for d in (0..63).step_by(2) {
            a.touch(d);
        }
        assert!(a.drop(62) < 0.2, "steady activity: {}", a.drop(62));
        assert_eq!(a.drop(69), 1.0);
        let mut fresh = Activity::default();
        fresh.touch(5);
        assert_eq!(fresh.drop(5), 0.0, "no baseline yet");
    }

    #[test]
    fn features_are_distinct_and_capped() {
        let mut a = Activity::default();
        for i in 0..100 {
            a.use_feature(&format!("f{}", i % 70));
        }
        assert_eq!(a.features.len(), MAX_FEATURES);
        let mut b = Activity::default();
        b.use_feature("export");
        b.use_feature("export");
        assert_eq!(b.features.len(), 1);
    }
}
