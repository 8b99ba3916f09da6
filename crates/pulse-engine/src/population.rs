//! What a partition knows about its population as a whole: RFM cut-points and when they are
//! next refreshed, rolling NPS/CSAT, and cohort retention. It cannot be rebuilt from the
//! profiles, so it travels in the partition's checkpoint.

use crate::rfm::CutPoints;
use crate::survey::SurveyPopulation;
use crate::Millis;
use pulse_events::time::{civil_from_days, day_of};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The partition-wide analytics state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Population {
    pub rfm: CutPoints,
    /// Event time of the next RFM refresh; 0 until the partition has a watermark.
    pub next_refresh: Millis,
    pub surveys: SurveyPopulation,
    pub cohorts: Cohorts,
}

/// Cohort period granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Week,
    Month,
}

impl Period {
    /// The period number of an instant: weeks since 1970-01-05 (a Monday), or months since
    /// 1970-01.
    pub fn of(self, t: Millis) -> i64 {
        let day = day_of(t);
        match self {
            Self::Week => (day - 4).div_euclid(7),
            Self::Month => {
                let (y, m, _) = civil_from_days(day);
                (y - 1970) * 12 + m - 1
            }
        }
    }
}

/// Retention counts: for each cohort (period of first activity) and each offset from it, the
/// customers active in that period. Offset 0 is the cohort's size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cohorts {
    pub weekly: BTreeMap<(i64, u32), u32>,
    pub monthly: BTreeMap<(i64, u32), u32>,
}

impl Cohorts {
    /// Counts an event at `ts` of a customer first seen at `first_seen`, whose newest event
    /// before this one was at `previous` (None for a new customer). A customer counts once
    /// per period: when the event opens a period later than any they were active in.
    pub fn record(&mut self, first_seen: Millis, previous: Option<Millis>, ts: Millis) {
        for (period, counts) in [
            (Period::Week, &mut self.weekly),
            (Period::Month, &mut self.monthly),
        ] {
            let now = period.of(ts);
            let opens = previous.is_none_or(|p| now > period.of(p));
            if opens {
                let cohort = period.of(first_seen.min(ts));
                let offset = u32::try_from(now - cohort).unwrap_or(0);
                *counts.entry((cohort, offset)).or_default() += 1;
            }
        }
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
    use pulse_events::time::DAY;

    const MON: Millis = 1_767_571_200_000; // 2026-01-05, a Monday

    #[test]
    fn periods_start_on_monday_and_the_first_of_the_month() {
        assert_eq!(
            Period::Week.of(MON),
            Period::Week.of(MON + 6 * DAY + DAY - 1)
        );
        assert_eq!(Period::Week.of(MON) + 1, Period::Week.of(MON + 7 * DAY));
        assert_eq!(Period::Week.of(MON - 1) + 1, Period::Week.of(MON));
        assert_eq!(Period::Month.of(MON), (2026 - 1970) * 12);
        assert_eq!(Period::Month.of(MON + 27 * DAY), (2026 - 1970) * 12 + 1);
    }

    #[test]
    fn retention_counts_each_customer_once_per_period() {
        let mut c = Cohorts::default();
        let w0 = Period::Week.of(MON);
        // a: weeks 0, 0, 1, 3. b: week 0 only. c: joins in week 1.
        c.record(MON, None, MON);
        c.record(MON, Some(MON), MON + DAY);
        c.record(MON, Some(MON + DAY), MON + 8 * DAY);
        c.record(MON, Some(MON + 8 * DAY), MON + 22 * DAY);
        c.record(MON + HOUR_, None, MON + HOUR_);
        c.record(MON + 7 * DAY, None, MON + 7 * DAY);
        let w = c.counts(Period::Week);
        assert_eq!(w.get(&(w0, 0)), Some(&2));
        assert_eq!(w.get(&(w0, 1)), Some(&1));
        assert_eq!(w.get(&(w0, 2)), None);
        assert_eq!(w.get(&(w0, 3)), Some(&1));
        assert_eq!(w.get(&(w0 + 1, 0)), Some(&1));
    }

    const HOUR_: Millis = 3_600_000;
}
