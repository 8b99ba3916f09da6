//! One customer's lifetime-value figures from their BG/NBD summary ([`Rft`]) and their orders:
//! P(alive), expected purchases and spend, and predicted CLV discounted monthly over the
//! configured horizon. The model reads plain numbers, not a profile, so that it sits below the
//! customer's state: the profile says how its purchases read as an [`Rft`].

use super::bgnbd::{BgNbd, Rft};
use super::gamma_gamma::GammaGamma;
use crate::config::analytics::ClvConfig;

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

    /// P(alive); 1 for a customer without repeat purchases (`lifetimes` convention).
    pub fn p_alive(&self, rft: &Rft) -> f64 {
        self.model.p_alive(rft)
    }

    /// The figures of a customer summarised as `rft`, with `orders` orders worth
    /// `revenue_cents` in all (their mean is the spend Gamma-Gamma starts from).
    pub fn values(&self, rft: &Rft, orders: u32, revenue_cents: i64) -> ClvValues {
        let spend = if orders == 0 || revenue_cents <= 0 {
            self.spend.expected_spend(0.0, 0.0)
        } else {
            let x = f64::from(orders);
            self.spend
                .expected_spend(x, revenue_cents as f64 / 100.0 / x)
        };
        let mut predicted = 0.0;
        let mut before = 0.0;
        for m in 1..=self.horizon_months {
            let upto = self
                .model
                .expected_purchases(rft, f64::from(m) * MONTH_DAYS);
            predicted += (upto - before) * spend / (1.0 + self.monthly_discount).powi(m as i32);
            before = upto;
        }
        ClvValues {
            p_alive: self.model.p_alive(rft),
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
}
