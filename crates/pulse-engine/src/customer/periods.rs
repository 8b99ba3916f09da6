//! The weeks and months a customer was active in, counted from the period of their first event:
//! what cohort retention is made of. Kept per customer so that the population's retention
//! counts are a sum over profiles, rebuilt exactly on restore, and the same whatever order the
//! customer's events arrived in.

use pulse_events::time::{civil_from_days, day_of, Millis};
use serde::{Deserialize, Serialize};

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

/// Active periods as bits: bit i is the period `i` after the first event's. The first 64 of
/// each granularity live inline (over a year of weeks, five of months); longer lives spill.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivePeriods {
    weeks: u64,
    months: u64,
    #[serde(default)]
    spill: Option<Box<Spill>>,
}

/// Bits 64 and up, in words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Spill {
    weeks: Vec<u64>,
    months: Vec<u64>,
}

/// A period that became active: its cohort (the period of the customer's first event) and how
/// many periods after the cohort it lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub period: Period,
    pub cohort: i64,
    pub offset: u32,
}

impl ActivePeriods {
    fn parts(&mut self, period: Period) -> (&mut u64, &mut Option<Box<Spill>>) {
        match period {
            Period::Week => (&mut self.weeks, &mut self.spill),
            Period::Month => (&mut self.months, &mut self.spill),
        }
    }

    /// Sets bit `i` of `period`'s set; returns whether it was clear.
    fn set(&mut self, period: Period, i: u32) -> bool {
        let (inline, spill) = self.parts(period);
        if i < 64 {
            let was = *inline & (1 << i) != 0;
            *inline |= 1 << i;
            return !was;
        }
        let spill = spill.get_or_insert_with(Box::default);
        let words = match period {
            Period::Week => &mut spill.weeks,
            Period::Month => &mut spill.months,
        };
        let (w, b) = ((i / 64 - 1) as usize, i % 64);
        if words.len() <= w {
            words.resize(w + 1, 0);
        }
        let was = words[w] & (1 << b) != 0;
        words[w] |= 1 << b;
        !was
    }

    /// The offsets (from the cohort) of `period`'s active periods, ascending.
    pub fn offsets(&self, period: Period) -> impl Iterator<Item = u32> + '_ {
        let (inline, spill) = match period {
            Period::Week => (self.weeks, self.spill.as_ref().map(|s| &s.weeks[..])),
            Period::Month => (self.months, self.spill.as_ref().map(|s| &s.months[..])),
        };
        std::iter::once(inline)
            .chain(spill.unwrap_or_default().iter().copied())
            .enumerate()
            .flat_map(|(w, word)| {
                (0..64u32)
                    .filter(move |b| word & (1 << b) != 0)
                    .map(move |b| w as u32 * 64 + b)
            })
    }

    /// Whether an event at `ts` moves the first event of a customer first seen at
    /// `previous_first` to an earlier week or month: then every bit is re-anchored, and the
    /// customer's whole contribution to the cohort counts moves.
    pub fn rebases(previous_first: Option<Millis>, ts: Millis) -> bool {
        // Period numbers never fall as time goes on, so only an event before the first can
        // move it: the calendar is worked out for those alone.
        previous_first.is_some_and(|p| {
            ts < p
                && [Period::Week, Period::Month]
                    .iter()
                    .any(|period| period.of(ts) < period.of(p))
        })
    }

    /// Marks the periods of an event at `ts` active, for a customer whose first event is at
    /// `first_seen` (this one included, so `first_seen <= ts`) and was at `previous_first`
    /// before it. Returns the periods this event opened.
    pub fn touch(
        &mut self,
        first_seen: Millis,
        previous_first: Option<Millis>,
        ts: Millis,
    ) -> [Option<Opened>; 2] {
        let mut opened = [None; 2];
        for (slot, period) in opened.iter_mut().zip([Period::Week, Period::Month]) {
            let cohort = period.of(first_seen);
            let shift = match previous_first {
                Some(p) if p != first_seen => period.of(p) - cohort,
                _ => 0,
            };
            if shift > 0 {
                let old: Vec<u32> = self.offsets(period).collect();
                let (inline, spill) = self.parts(period);
                *inline = 0;
                if let Some(s) = spill.as_mut() {
                    match period {
                        Period::Week => s.weeks.clear(),
                        Period::Month => s.months.clear(),
                    }
                }
                for o in old {
                    self.set(period, o + shift as u32);
                }
            }
            let offset = u32::try_from(period.of(ts) - cohort).unwrap_or(0);
            if self.set(period, offset) {
                *slot = Some(Opened {
                    period,
                    cohort,
                    offset,
                });
            }
        }
        opened
    }

    /// Whether nothing is recorded (a profile written before periods were kept).
    pub fn is_empty(&self) -> bool {
        self.weeks == 0 && self.months == 0
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

    fn weeks(p: &ActivePeriods) -> Vec<u32> {
        p.offsets(Period::Week).collect()
    }

    #[test]
    fn an_earlier_first_event_re_anchors_every_period() {
        let mut p = ActivePeriods::default();
        p.touch(MON + 14 * DAY, None, MON + 14 * DAY);
        p.touch(MON + 14 * DAY, Some(MON + 14 * DAY), MON + 21 * DAY);
        assert_eq!(weeks(&p), [0, 1]);
        // A late event two weeks before the first: offsets move up by two.
        assert!(ActivePeriods::rebases(Some(MON + 14 * DAY), MON));
        assert!(!ActivePeriods::rebases(
            Some(MON + 15 * DAY),
            MON + 14 * DAY
        ));
        p.touch(MON, Some(MON + 14 * DAY), MON);
        assert_eq!(weeks(&p), [0, 2, 3]);
    }

    #[test]
    fn long_lives_spill_past_sixty_four_periods() {
        let mut p = ActivePeriods::default();
        let mut offsets = Vec::new();
        for w in [0, 63, 64, 130, 64] {
            let [week, _] = p.touch(MON, Some(MON), MON + w * 7 * DAY);
            offsets.extend(week.map(|o| o.offset));
        }
        assert_eq!(weeks(&p), [0, 63, 64, 130]);
        assert_eq!(offsets, [0, 63, 64, 130]);
        let copy = rmp_serde::from_slice::<ActivePeriods>(&rmp_serde::to_vec(&p).unwrap());
        assert_eq!(copy.unwrap(), p);
    }
}
