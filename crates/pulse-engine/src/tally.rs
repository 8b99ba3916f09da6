//! Live counts of a partition's customers by segment, churn-risk level and RFM segment, kept as
//! profiles change so that metrics and the query API read populations without scanning every
//! profile. Not persisted: a restore recounts from the restored profiles.

use crate::customer::profile::Profile;
use crate::models::rfm::{Rfm, RfmSegment};

/// Where one customer stands: what the tally counts them under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    segments: u64,
    churn: u8,
    rfm: u16,
}

impl Standing {
    pub(crate) fn of(p: &Profile) -> Self {
        Self {
            segments: p.derived.segments,
            churn: p.derived.churn_level,
            rfm: p.derived.rfm,
        }
    }
}

/// Customers per segment (by rule index), per churn level (low, medium, high) and per RFM
/// segment (by [`RfmSegment::ALL`] index; customers without a score are not counted there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub customers: u64,
    pub segments: Vec<u64>,
    pub churn: [u64; 3],
    pub rfm: [u64; RfmSegment::ALL.len()],
}

/// The RFM segment index of a stored code (e.g. 545), `None` for 0 (no score yet).
fn rfm_index(code: u16) -> Option<usize> {
    if code == 0 {
        return None;
    }
    let digit = |d: u16| (d % 10) as u8;
    let segment = Rfm {
        r: digit(code / 100),
        f: digit(code / 10),
        m: digit(code),
    }
    .segment();
    RfmSegment::ALL.iter().position(|s| *s == segment)
}

impl Tally {
    /// An empty tally for `segments` rules.
    pub(crate) fn new(segments: usize) -> Self {
        Self {
            segments: vec![0; segments],
            ..Self::default()
        }
    }

    fn count(&mut self, s: Standing, add: bool) {
        let step = |n: &mut u64| {
            *n = if add {
                *n + 1
            } else {
                // Never below zero, even if a caller got the order wrong.
                n.saturating_sub(1)
            }
        };
        let mut bits = s.segments;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            if let Some(n) = self.segments.get_mut(i) {
                step(n);
            }
            bits &= bits - 1;
        }
        step(&mut self.churn[usize::from(s.churn.min(2))]);
        if let Some(i) = rfm_index(s.rfm) {
            step(&mut self.rfm[i]);
        }
    }

    /// A new customer, standing at `s`.
    pub(crate) fn arrive(&mut self, s: Standing) {
        self.customers += 1;
        self.count(s, true);
    }

    /// A customer, standing at `s`, left (evicted).
    pub(crate) fn leave(&mut self, s: Standing) {
        self.customers = self.customers.saturating_sub(1);
        self.count(s, false);
    }

    /// A customer moved from `from` to `to`.
    pub(crate) fn moved(&mut self, from: Standing, to: Standing) {
        if from != to {
            self.count(from, false);
            self.count(to, true);
        }
    }

    /// Adds another partition's counts (for a worker-wide total).
    pub fn merge(&mut self, other: &Tally) {
        self.customers += other.customers;
        if self.segments.len() < other.segments.len() {
            self.segments.resize(other.segments.len(), 0);
        }
        for (a, b) in self.segments.iter_mut().zip(&other.segments) {
            *a += b;
        }
        for (a, b) in self.churn.iter_mut().zip(other.churn) {
            *a += b;
        }
        for (a, b) in self.rfm.iter_mut().zip(other.rfm) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segments: u64, churn: u8, rfm: u16) -> Standing {
        Standing {
            segments,
            churn,
            rfm,
        }
    }

    #[test]
    fn moves_count_out_of_the_old_standing_and_into_the_new() {
        let mut t = Tally::new(3);
        t.arrive(at(0, 0, 0));
        t.arrive(at(0b101, 1, 555));
        assert_eq!(t.segments, [1, 0, 1]);
        assert_eq!(t.churn, [1, 1, 0]);
        let champions = RfmSegment::ALL
            .iter()
            .position(|s| *s == RfmSegment::Champions)
            .unwrap();
        assert_eq!(t.rfm[champions], 1);
        t.moved(at(0b101, 1, 555), at(0b010, 2, 111));
        assert_eq!(t.segments, [0, 1, 0]);
        assert_eq!(t.churn, [1, 0, 1]);
        assert_eq!(t.rfm[champions], 0);
        assert_eq!(t.rfm.iter().sum::<u64>(), 1);
        assert_eq!(t.customers, 2);
    }

    #[test]
    fn merging_adds_partitions() {
        let mut a = Tally::new(2);
        a.arrive(at(0b01, 0, 0));
        let mut b = Tally::new(2);
        b.arrive(at(0b11, 2, 0));
        a.merge(&b);
        assert_eq!(a.segments, [2, 1]);
        assert_eq!(a.churn, [1, 0, 1]);
        assert_eq!(a.customers, 2);
    }
}
