//! One customer's lifetime-value figures from their purchase statistics: P(alive), expected
//! purchases and spend, and predicted CLV discounted monthly over the configured horizon.

use super::bgnbd::{BgNbd, Rft};
use super::gamma_gamma::GammaGamma;
use crate::analytics_config::ClvConfig;
use crate::profile::PurchaseStats;
use pulse_events::time::Millis;

/// Days in an average month.
const MONTH_DAYS: f64 = 365.25 / 12.0;

/// The compiled `[engine.clv]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClvSpec {
    pub model: BgNbd,
    pub spend: GammaGamma,
    pub horizon_months: u32,
    pub monthly_discount: f64,
}

/// Lifetime-value figures of one customer at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClvValues {
    pub p_alive: f64,
    /// Expected purchases over the horizon.
    pub expected_purchases: f64,
    /// Expected value of one future purchase.
    pub expected_spend: f64,
    /// Discounted value of the purchases expected over the horizon.
    pub predicted: f64,
}

impl ClvSpec {
    pub fn new(c: &ClvConfig) -> Self {
        Self {
            model: BgNbd {
                r: c.r,
                alpha: c.alpha,
                a: c.a,
                b: c.b,
            },
            spend: GammaGamma {
                p: c.p,
                q: c.q,
                v: c.v,
            },
            horizon_months: c.horizon_months,
            monthly_discount: c.monthly_discount,
        }
    }

    /// The customer as BG/NBD sees them at `now`, in days. A customer without purchases is
    /// one just acquired.
    pub fn rft(stats: &PurchaseStats, now: Millis) -> Rft {
        Rft {
            x: f64::from(stats.frequency()),
            t_x: stats.recency_days() as f64,
            t: stats.age_days(now) as f64,
        }
    }

    /// P(alive); 1 for a customer without repeat purchases (`lifetimes` convention).
    pub fn p_alive(&self, stats: &PurchaseStats, now: Millis) -> f64 {
        self.model.p_alive(&Self::rft(stats, now))
    }

    pub fn values(&self, stats: &PurchaseStats, now: Millis) -> ClvValues {
        let rft = Self::rft(stats, now);
        let spend = if stats.orders == 0 || stats.revenue_cents <= 0 {
            self.spend.expected_spend(0.0, 0.0)
        } else {
            let x = f64::from(stats.orders);
            self.spend
                .expected_spend(x, stats.revenue_cents as f64 / 100.0 / x)
        };
        let mut predicted = 0.0;
        let mut before = 0.0;
        for m in 1..=self.horizon_months {
            let upto = self
                .model
                .expected_purchases(&rft, f64::from(m) * MONTH_DAYS);
            predicted += (upto - before) * spend / (1.0 + self.monthly_discount).powi(m as i32);
            before = upto;
        }
        ClvValues {
            p_alive: self.model.p_alive(&rft),
            expected_purchases: before,
            expected_spend: spend,
            predicted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_histories_stay_finite() {
        let spec = ClvSpec::new(&ClvConfig::default());
        for (x, t_x, t) in [
            (0.0, 0.0, 0.0),
            (5e3, 9e3, 1e4),
            (1e5, 2e5, 2e5),
            (3.0, 10.0, 1e7),
        ] {
            let rft = Rft { x, t_x, t };
            let p = spec.model.p_alive(&rft);
            let e = spec.model.expected_purchases(&rft, 365.0);
            assert!(p.is_finite() && (0.0..=1.0).contains(&p), "{rft:?}: {p}");
            assert!(e.is_finite() && e >= 0.0, "{rft:?}: {e}");
        }
        // A daily buyer for years who just bought is alive and keeps buying about daily.
        let daily = Rft {
            x: 2000.0,
            t_x: 2000.0,
            t: 2000.0,
        };
        let e = spec.model.expected_purchases(&daily, 30.0);
        assert!((20.0..40.0).contains(&e), "{e}");
    }

    #[test]
    fn predicted_clv_discounts_expected_purchases() {
        let spec = ClvSpec::new(&ClvConfig::default());
        let mut stats = PurchaseStats::default();
        let day = 86_400_000;
        for d in [0, 10, 20, 30] {
            stats.record_purchase(1_767_225_600_000 + d * day, 5_000);
        }
        let now = 1_767_225_600_000 + 31 * day;
        let v = spec.values(&stats, now);
        assert!(v.p_alive > 0.5 && v.p_alive <= 1.0);
        assert!(v.predicted > 0.0 && v.predicted < v.expected_purchases * v.expected_spend);
        let undiscounted = ClvSpec {
            monthly_discount: 0.0,
            ..spec.clone()
        };
        let u = undiscounted.values(&stats, now);
        assert!((u.predicted - u.expected_purchases * u.expected_spend).abs() < 1e-9);
    }
}
