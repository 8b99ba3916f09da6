//! RFM: recency, frequency and monetary value scored 1–5 against population quintiles, and
//! the 11-segment map of the 125 R-F-M codes.
//!
//! Cut-points come from a quantile sketch (a log-linear histogram, exact below 2048 and within
//! 0.1% above) filled from the partition's purchasers on a schedule in event time. They are
//! versioned and kept in the partition's checkpoint, so a restored partition scores exactly as
//! the one it replaces. The map is written out in docs/semantics.md.

use hdrhistogram::Histogram;
use pulse_events::time::Millis;
use serde::{Deserialize, Serialize};

/// The 11 RFM segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RfmSegment {
    Champions,
    Loyal,
    PotentialLoyalist,
    NewCustomers,
    Promising,
    NeedAttention,
    AboutToSleep,
    AtRisk,
    CannotLoseThem,
    Hibernating,
    Lost,
}

impl RfmSegment {
    pub const ALL: [RfmSegment; 11] = [
        Self::Champions,
        Self::Loyal,
        Self::PotentialLoyalist,
        Self::NewCustomers,
        Self::Promising,
        Self::NeedAttention,
        Self::AboutToSleep,
        Self::AtRisk,
        Self::CannotLoseThem,
        Self::Hibernating,
        Self::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Champions => "champions",
            Self::Loyal => "loyal",
            Self::PotentialLoyalist => "potential_loyalist",
            Self::NewCustomers => "new_customers",
            Self::Promising => "promising",
            Self::NeedAttention => "need_attention",
            Self::AboutToSleep => "about_to_sleep",
            Self::AtRisk => "at_risk",
            Self::CannotLoseThem => "cannot_lose_them",
            Self::Hibernating => "hibernating",
            Self::Lost => "lost",
        }
    }
}

use RfmSegment::*;

/// The map by R (row, 1..=5) and FM (column, 1..=5), FM being the mean of the F and M scores
/// rounded up. It follows the usual definitions: recent and frequent are champions, recent and
/// rare are new or promising, formerly frequent but gone quiet are at risk or cannot be lost.
const GRID: [[RfmSegment; 5]; 5] = [
    [Lost, Hibernating, AtRisk, CannotLoseThem, CannotLoseThem], // R = 1
    [Hibernating, Hibernating, AtRisk, AtRisk, CannotLoseThem],  // R = 2
    [AboutToSleep, AboutToSleep, NeedAttention, Loyal, Loyal],   // R = 3
    [
        Promising,
        PotentialLoyalist,
        PotentialLoyalist,
        Loyal,
        Champions,
    ], // R = 4
    [
        NewCustomers,
        PotentialLoyalist,
        PotentialLoyalist,
        Champions,
        Champions,
    ], // R = 5
];

/// One customer's scores, each 1..=5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfm {
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

impl Rfm {
    /// The segment of an R-F-M code; every score is clamped to 1..=5.
    pub fn segment(self) -> RfmSegment {
        let c = |s: u8| usize::from(s.clamp(1, 5));
        let fm = (c(self.f) + c(self.m)).div_ceil(2);
        GRID[c(self.r) - 1][fm - 1]
    }

    /// The code as a number, e.g. 545.
    pub fn code(self) -> u16 {
        u16::from(self.r) * 100 + u16::from(self.f) * 10 + u16::from(self.m)
    }
}

/// A customer's raw RFM values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RfmValues {
    /// Days since the last purchase.
    pub recency_days: i64,
    /// Purchases in the lookback.
    pub frequency: i64,
    /// Purchase amounts in the lookback, in cents.
    pub monetary_cents: i64,
}

/// Quintile cut-points: the 20th, 40th, 60th and 80th percentile of each value over the
/// population, by nearest rank.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutPoints {
    /// Incremented on every refresh; carried by outputs a refresh causes.
    pub version: u32,
    /// Event time of the refresh.
    pub computed_at: Millis,
    /// Purchasers the cut-points were computed from.
    pub customers: u64,
    pub recency: [i64; 4],
    pub frequency: [i64; 4],
    pub monetary: [i64; 4],
}

fn above(v: i64, cuts: &[i64; 4]) -> u8 {
    cuts.iter().filter(|c| v > **c).count() as u8
}

impl CutPoints {
    /// Scores values against the cut-points: higher F and M score higher, R is reversed (a
    /// recent purchase scores 5). None before the first refresh.
    pub fn score(&self, v: RfmValues) -> Option<Rfm> {
        (self.version > 0 && v.frequency > 0).then(|| Rfm {
            r: 5 - above(v.recency_days, &self.recency),
            f: 1 + above(v.frequency, &self.frequency),
            m: 1 + above(v.monetary_cents, &self.monetary),
        })
    }
}

/// Collects a population's values and yields their quintile cut-points.
#[derive(Debug)]
pub struct Sketch {
    hists: [Histogram<u64>; 3],
}

impl Default for Sketch {
    fn default() -> Self {
        // Three significant figures: exact below 2048, within 0.1% above.
        let h = || Histogram::new(3).unwrap_or_else(|_| unreachable!("3 figures is valid"));
        Self {
            hists: [h(), h(), h()],
        }
    }
}

impl Sketch {
    pub fn add(&mut self, v: RfmValues) {
        for (h, x) in self
            .hists
            .iter_mut()
            .zip([v.recency_days, v.frequency, v.monetary_cents])
        {
            // The histogram auto-resizes, so recording a non-negative value cannot fail.
            let _ = h.record(x.max(0) as u64);
        }
    }

    pub fn cut_points(&self, version: u32, at: Millis) -> CutPoints {
        let n = self.hists[0].len();
        let cuts = |h: &Histogram<u64>| -> [i64; 4] {
            std::array::from_fn(|k| {
                let rank = ((k as u64 + 1) * n).div_ceil(5).max(1);
                value_at_rank(h, rank) as i64
            })
        };
        CutPoints {
            version,
            computed_at: at,
            customers: n,
            recency: cuts(&self.hists[0]),
            frequency: cuts(&self.hists[1]),
            monetary: cuts(&self.hists[2]),
        }
    }
}

/// The value with `rank` values at or below it (1-based), by integer arithmetic so that no
/// rounding of a fractional quantile moves a cut-point.
fn value_at_rank(h: &Histogram<u64>, rank: u64) -> u64 {
    let mut seen = 0;
    for v in h.iter_recorded() {
        seen += v.count_at_value();
        if seen >= rank {
            return h.highest_equivalent(v.value_iterated_to());
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_map_covers_all_125_codes_with_all_11_segments() {
        let mut codes = BTreeSet::new();
        let mut used = BTreeSet::new();
        for r in 1..=5 {
            for f in 1..=5 {
                for m in 1..=5 {
                    let rfm = Rfm { r, f, m };
                    assert!(codes.insert(rfm.code()), "code {} twice", rfm.code());
                    used.insert(rfm.segment());
                }
            }
        }
        assert_eq!(codes.len(), 125);
        assert_eq!(used.len(), 11, "every segment is reachable");
        let seg = |r, f, m| Rfm { r, f, m }.segment();
        assert_eq!(seg(5, 5, 5), Champions);
        assert_eq!(seg(1, 1, 1), Lost);
        assert_eq!(seg(5, 1, 1), NewCustomers);
        assert_eq!(seg(4, 1, 1), Promising);
        assert_eq!(seg(1, 5, 5), CannotLoseThem);
        assert_eq!(seg(3, 3, 3), NeedAttention);
    }

    #[test]
    fn the_map_respects_the_published_definitions() {
        // Champions bought recently and often; Lost bought long ago and rarely; At risk and
        // Cannot lose them bought often but long ago; New customers bought once, recently.
        for r in 1..=5u8 {
            for f in 1..=5u8 {
                for m in 1..=5u8 {
                    let fm = (f + m).div_ceil(2);
                    match (Rfm { r, f, m }).segment() {
                        Champions => assert!(r >= 4 && fm >= 4),
                        Lost => assert!(r == 1 && fm == 1),
                        AtRisk | CannotLoseThem => assert!(r <= 2 && fm >= 3),
                        NewCustomers => assert!(r == 5 && fm == 1),
                        Hibernating => assert!(r <= 2 && fm <= 2),
                        Loyal => assert!(r >= 3 && fm >= 4),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Brute force: sort, take the value at rank ceil(k·n/5), count cut-points below.
    fn brute(values: &[i64]) -> [i64; 4] {
        let mut s = values.to_vec();
        s.sort_unstable();
        let n = s.len();
        std::array::from_fn(|k| s[((k + 1) * n).div_ceil(5) - 1])
    }

    #[test]
    fn quintile_scores_match_a_brute_force_sort() {
        // A fixed, skewed population: days up to 400, frequencies with many ties, and amounts
        // whose large values fall in the sketch's approximate range.
        let mut x: u64 = 7;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let pop: Vec<RfmValues> = (0..5_003)
            .map(|_| RfmValues {
                recency_days: (next() % 400) as i64,
                frequency: 1 + (next() % 1000).pow(2) as i64 / 50_000,
                monetary_cents: (next() % 2_000_000) as i64,
            })
            .collect();
        let mut sketch = Sketch::default();
        pop.iter().for_each(|v| sketch.add(*v));
        let cuts = sketch.cut_points(1, 0);
        let r: Vec<_> = pop.iter().map(|v| v.recency_days).collect();
        let f: Vec<_> = pop.iter().map(|v| v.frequency).collect();
        let m: Vec<_> = pop.iter().map(|v| v.monetary_cents).collect();
        let (br, bf, bm) = (brute(&r), brute(&f), brute(&m));
        // Values below 2048 are recorded exactly: their cut-points and scores are the sort's.
        assert_eq!(cuts.recency, br);
        assert_eq!(cuts.frequency, bf);
        let exact = CutPoints {
            monetary: bm,
            ..cuts.clone()
        };
        let mut differ = 0;
        for v in &pop {
            let (s, e) = (cuts.score(*v).unwrap(), exact.score(*v).unwrap());
            assert_eq!((s.r, s.f), (e.r, e.f));
            if s.m != e.m {
                differ += 1;
                // Only an amount within the sketch's 0.1% of a cut-point may score otherwise.
                let near = bm.iter().any(|c| (v.monetary_cents - c).abs() * 1000 <= *c);
                assert!(near, "{v:?} scored {} against {}", s.m, e.m);
            }
        }
        assert!(
            differ <= pop.len() / 100,
            "{differ} amounts scored differently"
        );
        for (c, b) in cuts.monetary.iter().zip(bm) {
            assert!((c - b).abs() * 1000 <= b, "monetary cut {c} vs {b}");
        }
    }

    #[test]
    fn scores_reverse_recency_and_need_a_refresh() {
        let cuts = CutPoints {
            version: 1,
            recency: [10, 20, 30, 40],
            frequency: [1, 2, 3, 4],
            monetary: [100, 200, 300, 400],
            ..Default::default()
        };
        let v = |r, f, m| RfmValues {
            recency_days: r,
            frequency: f,
            monetary_cents: m,
        };
        assert_eq!(cuts.score(v(0, 9, 999)).map(Rfm::code), Some(555));
        assert_eq!(cuts.score(v(41, 1, 100)).map(Rfm::code), Some(111));
        assert_eq!(cuts.score(v(10, 2, 101)).map(Rfm::code), Some(522));
        assert_eq!(
            cuts.score(v(5, 0, 0)),
            None,
            "not a purchaser in the lookback"
        );
        assert_eq!(CutPoints::default().score(v(0, 1, 1)), None);
    }
}
