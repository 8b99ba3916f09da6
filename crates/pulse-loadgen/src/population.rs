//! Drawing the customer population and each customer's latent traits from the BG/NBD and
//! Gamma-Gamma generative processes.

use crate::GeneratorConfig;
use pulse_engine::clv::{BgNbd, GammaGamma};
use pulse_events::time::{Millis, DAY};
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma, Normal};

/// The generator's true model parameters, in days (BG/NBD) and currency units (Gamma-Gamma).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrueParams {
    /// BG/NBD: λ ~ Gamma(shape r, rate α), λ in purchases per day.
    pub r: f64,
    pub alpha: f64,
    /// BG/NBD: dropout p ~ Beta(a, b).
    pub a: f64,
    pub b: f64,
    /// Gamma-Gamma: spend z ~ Gamma(p, ν), ν ~ Gamma(q, γ).
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
    /// Share of acquired customers who ever purchase.
    pub buyer_share: f64,
}

impl Default for TrueParams {
    /// The published CDNOW estimates, time in days: the engine's default model parameters.
    fn default() -> Self {
        let BgNbd { r, alpha, a, b } = BgNbd::CDNOW;
        let GammaGamma { p, q, v } = GammaGamma::CDNOW;
        Self {
            r,
            alpha,
            a,
            b,
            p,
            q,
            gamma: v,
            buyer_share: 0.5,
        }
    }
}

/// A customer's latent traits and progress, the ground truth behind its records.
#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    /// Purchase rate per day while alive.
    pub lambda: f64,
    /// Dropout probability after each repeat purchase.
    pub p: f64,
    /// Gamma-Gamma spend rate ν (mean spend p/ν).
    pub nu: f64,
    pub alive: bool,
    pub purchases: u32,
    /// Delay from acquisition to the first purchase, for buyers.
    pub first_purchase_after: Option<Millis>,
    pub dropped_at: Option<Millis>,
}

#[derive(Debug, Clone)]
pub(crate) struct Customer {
    pub born: Millis,
    /// Relative activity (mean about 1), Zipf-distributed across customers.
    pub activity: f64,
    pub journey: Journey,
    spend_shape: f64,
}

pub(crate) fn exp_days(rate_per_day: f64, rng: &mut StdRng) -> Millis {
    if rate_per_day <= 0.0 || !rate_per_day.is_finite() {
        return Millis::MAX / 4;
    }
    let days = Exp::new(rate_per_day)
        .map(|d| d.sample(rng))
        .unwrap_or(f64::INFINITY);
    if days * DAY as f64 > (Millis::MAX / 4) as f64 {
        Millis::MAX / 4
    } else {
        (days * DAY as f64) as Millis
    }
}

fn sample(
    d: Result<impl Distribution<f64>, impl std::fmt::Debug>,
    rng: &mut StdRng,
    fallback: f64,
) -> f64 {
    d.map(|d| d.sample(rng)).unwrap_or(fallback)
}

pub(crate) fn draw(cfg: &GeneratorConfig, rng: &mut StdRng) -> Vec<Customer> {
    let n = cfg.customers.max(1);
    let tp = cfg.params;
    // Zipf weights by rank, normalised to mean 1.
    let weights: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-cfg.skew)).collect();
    let mean = weights.iter().sum::<f64>() / f64::from(n);
    let lambda_d = Gamma::new(tp.r, 1.0 / tp.alpha);
    let p_d = Beta::new(tp.a, tp.b);
    let nu_d = Gamma::new(tp.q, 1.0 / tp.gamma);
    (0..n)
        .map(|i| {
            let born =
                cfg.start + rng.random_range(0..cfg.acquisition.clamp(1, cfg.duration.max(1)));
            let buyer = rng.random_bool(tp.buyer_share.clamp(0.0, 1.0));
            let lambda = sample(lambda_d, rng, 0.0);
            let p = sample(p_d, rng, 0.5);
            let nu = sample(nu_d, rng, 1.0).max(1e-6);
            Customer {
                born,
                activity: weights[i as usize] / mean,
                spend_shape: tp.p,
                journey: Journey {
                    lambda,
                    p,
                    nu,
                    alive: true,
                    purchases: 0,
                    first_purchase_after: buyer.then(|| exp_days(0.5, rng)),
                    dropped_at: None,
                },
            }
        })
        .collect()
}

impl Customer {
    /// One transaction value from Gamma(p, ν), rounded to cents.
    pub fn spend(&self, rng: &mut StdRng) -> f64 {
        let z = sample(
            Gamma::new(self.spend_shape, 1.0 / self.journey.nu),
            rng,
            1.0,
        );
        (z * 100.0).round() / 100.0
    }

    /// An NPS answer: likely dropouts and inactive customers answer lower.
    pub fn nps_answer(&self, rng: &mut StdRng) -> f64 {
        let base = 9.5 - 7.0 * self.journey.p - if self.journey.alive { 0.0 } else { 3.0 };
        (base + sample(Normal::new(0.0, 1.5), rng, 0.0))
            .round()
            .clamp(0.0, 10.0)
    }

    pub fn csat_answer(&self, rng: &mut StdRng) -> f64 {
        let base = 4.7 - 3.0 * self.journey.p;
        (base + sample(Normal::new(0.0, 0.8), rng, 0.0))
            .round()
            .clamp(1.0, 5.0)
    }
}
