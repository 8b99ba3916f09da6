//! What a partition knows about its population as a whole, of two kinds:
//!
//! - The RFM cut-points and when they are next refreshed. Segment rules read them, so a replay
//!   must see the ones the original run saw: they travel in the partition's checkpoint.
//! - Retention counts and rolling NPS/CSAT: sums over the profiles (each customer's active
//!   periods, each customer's latest answers), kept as profiles change and rebuilt from them on
//!   restore. Nothing reads them but reports, and a sum over profiles is exact whatever the
//!   changelog's compaction kept and whatever order the events came in.

use crate::customer::periods::{ActivePeriods, Opened, Period};
use crate::customer::profile::Profile;
use crate::customer::survey::SurveyPopulation;
use crate::models::rfm::CutPoints;
use pulse_events::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The partition-wide analytics state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Population {
    pub rfm: CutPoints,
    /// Event time of the next RFM refresh; 0 until the partition has a watermark.
    pub next_refresh: Millis,
    /// Derived from the profiles: not stored.
    #[serde(skip)]
    pub surveys: SurveyPopulation,
    /// Derived from the profiles: not stored.
    #[serde(skip)]
    pub cohorts: Cohorts,
}

impl Population {
    /// Takes an evicted profile out of the sums.
    pub(crate) fn forget(&mut self, profile: &Profile) {
        self.cohorts.remove(&profile.periods, profile.first_seen);
        self.surveys.replace_nps(profile.surveys.nps, None);
        self.surveys.replace_csat(profile.surveys.csat, None);
    }

    /// Adds a restored profile to the sums.
    pub(crate) fn count(&mut self, profile: &Profile) {
        self.cohorts.add(&profile.periods, profile.first_seen);
        self.surveys.replace_nps(None, profile.surveys.nps);
        self.surveys.replace_csat(None, profile.surveys.csat);
    }
}

/// Retention counts: for each cohort (period of first activity) and each offset from it, the
/// customers active in that period. Offset 0 is the cohort's size. Offsets beyond the
/// retention (`engine.cohort_retention`) are not counted, so a row is at most that long;
/// cohorts whose customers were all evicted disappear with them.
#[derive(Debug, Clone, PartialEq)]
pub struct Cohorts {
    weekly: BTreeMap<(i64, u32), u32>,
    monthly: BTreeMap<(i64, u32), u32>,
    /// The last offset counted, in weeks and in months.
    max_offset: [u32; 2],
}

impl Default for Cohorts {
    fn default() -> Self {
        Self::bounded(0)
    }
}

impl Cohorts {
    /// Counts offsets up to `retention` after the cohort (in days; 0: every offset).
    pub(crate) fn bounded(retention_days: i64) -> Self {
        let (weeks, months) = match retention_days {
            d if d <= 0 => (u32::MAX, u32::MAX),
            d => ((d / 7) as u32, (d * 12 / 365) as u32),
        };
        Self {
            weekly: BTreeMap::new(),
            monthly: BTreeMap::new(),
            max_offset: [weeks, months],
        }
    }

    fn max_offset(&self, period: Period) -> u32 {
        match period {
            Period::Week => self.max_offset[0],
            Period::Month => self.max_offset[1],
        }
    }

    fn counts_mut(&mut self, period: Period) -> &mut BTreeMap<(i64, u32), u32> {
        match period {
            Period::Week => &mut self.weekly,
            Period::Month => &mut self.monthly,
        }
    }

    /// Counts a period a customer became active in.
    pub(crate) fn open(&mut self, o: Opened) {
        if o.offset > self.max_offset(o.period) {
            return;
        }
        *self
            .counts_mut(o.period)
            .entry((o.cohort, o.offset))
            .or_default() += 1;
    }

    /// Adds (`sign` 1) or removes (-1) every active period of a customer whose periods are
    /// `periods` and whose cohort is `cohort(period)`.
    fn apply(&mut self, periods: &ActivePeriods, cohort: impl Fn(Period) -> i64, sign: i32) {
        for period in [Period::Week, Period::Month] {
            let c = cohort(period);
            let max = self.max_offset(period);
            let offsets: Vec<u32> = periods.offsets(period).take_while(|o| *o <= max).collect();
            let counts = self.counts_mut(period);
            for o in offsets {
                let n = counts.entry((c, o)).or_default();
                *n = n.saturating_add_signed(sign);
                if *n == 0 {
                    counts.remove(&(c, o));
                }
            }
        }
    }

    /// Adds a customer first seen at `first_seen`.
    pub(crate) fn add(&mut self, periods: &ActivePeriods, first_seen: Millis) {
        self.apply(periods, |p| p.of(first_seen), 1);
    }

    /// Removes a customer that was first seen at `first_seen`.
    pub(crate) fn remove(&mut self, periods: &ActivePeriods, first_seen: Millis) {
        self.apply(periods, |p| p.of(first_seen), -1);
    }

    pub fn counts(&self, period: Period) -> &BTreeMap<(i64, u32), u32> {
        match period {
            Period::Week => &self.weekly,
            Period::Month => &self.monthly,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_events::time::{DAY, HOUR};

    const MON: Millis = 1_767_571_200_000; // 2026-01-05, a Monday

    /// One customer's events, in arrival order, counted as the partition counts them.
    fn customer(cohorts: &mut Cohorts, events: &[Millis]) {
        let (mut periods, mut first) = (ActivePeriods::default(), None::<Millis>);
        for &ts in events {
            let new_first = first.map_or(ts, |f| f.min(ts));
            if ActivePeriods::rebases(first, ts) {
                let old = periods.clone();
                periods.touch(new_first, first, ts);
                cohorts.remove(&old, first.unwrap());
                cohorts.add(&periods, new_first);
            } else {
                for o in periods.touch(new_first, first, ts).into_iter().flatten() {
                    cohorts.open(o);
                }
            }
            first = Some(new_first);
        }
    }

    #[test]
    fn retention_counts_each_customer_once_per_period() {
        let mut c = Cohorts::default();
        let w0 = Period::Week.of(MON);
        // a: weeks 0, 0, 1, 3. b: week 0 only. c: joins in week 1.
        customer(&mut c, &[MON, MON + DAY, MON + 8 * DAY, MON + 22 * DAY]);
        customer(&mut c, &[MON + HOUR]);
        customer(&mut c, &[MON + 7 * DAY]);
        let w = c.counts(Period::Week);
        assert_eq!(w.get(&(w0, 0)), Some(&2));
        assert_eq!(w.get(&(w0, 1)), Some(&1));
        assert_eq!(w.get(&(w0, 2)), None);
        assert_eq!(w.get(&(w0, 3)), Some(&1));
        assert_eq!(w.get(&(w0 + 1, 0)), Some(&1));
    }

    #[test]
    fn offsets_beyond_the_retention_are_not_counted_in_any_arrival_order() {
        let w0 = Period::Week.of(MON);
        let events = [MON, MON + 15 * DAY, MON + 400 * DAY, MON + 7 * DAY];
        let (mut a, mut b) = (Cohorts::bounded(14), Cohorts::bounded(14));
        customer(&mut a, &events);
        let mut sorted = events;
        sorted.sort_unstable();
        customer(&mut b, &sorted);
        assert_eq!(a, b);
        let w = a.counts(Period::Week);
        let offsets: Vec<u32> = w.keys().map(|(_, o)| *o).collect();
        assert_eq!(offsets, [0, 1, 2], "weeks 0 to 2 of 14 days, not week 57");
        assert_eq!(w.get(&(w0, 2)), Some(&1));
        assert!(a.counts(Period::Month).keys().all(|(_, o)| *o == 0));
    }

    #[test]
    fn retention_is_the_same_in_any_arrival_order() {
        let events = [
            MON + 22 * DAY,
            MON + 8 * DAY,
            MON,
            MON + DAY,
            MON + 40 * DAY,
        ];
        let mut sorted = events;
        sorted.sort_unstable();
        let (mut a, mut b) = (Cohorts::default(), Cohorts::default());
        customer(&mut a, &events);
        customer(&mut b, &sorted);
        assert_eq!(a, b);
        assert_eq!(a.counts(Period::Week).len(), 4);
    }
}
