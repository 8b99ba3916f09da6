//! The BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way"):
//! purchases while alive follow a Poisson process with rate λ ~ Gamma(r, α); after each
//! purchase the customer drops out with probability p ~ Beta(a, b). A customer is summarised by
//! (x, t_x, T): repeat purchases, time of the last one and age, all in the same time unit.

use super::special::{hyp2f1, ln_beta, ln_gamma};
use crate::config::analytics::ClvConfig;

/// BG/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// One customer's purchase history as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rft {
    /// Repeat purchases (all purchases but the first).
    pub x: f64,
    /// Time of the last purchase, from the first.
    pub t_x: f64,
    /// Time from the first purchase to the end of observation.
    pub t: f64,
}

impl BgNbd {
    /// The CDNOW estimates, time in days (the engine's unit; the shipped default).
    pub const CDNOW: Self = Self {
        r: ClvConfig::CDNOW.r,
        alpha: ClvConfig::CDNOW.alpha,
        a: ClvConfig::CDNOW.a,
        b: ClvConfig::CDNOW.b,
    };

    /// The same in weeks, as the paper states them: α is a time scale, r, a and b are not.
    pub const CDNOW_WEEKS: Self = Self {
        alpha: ClvConfig::CDNOW.alpha / 7.0,
        ..Self::CDNOW
    };

    /// ln of the likelihood of one customer's (x, t_x, T) (equation 6 of the paper), summed in
    /// log space so that large x and T neither overflow nor underflow.
    pub fn ln_likelihood(&self, c: &Rft) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = c.x;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_beta(a, b + x) - ln_beta(a, b);
        let a3 = -(r + x) * (alpha + c.t).ln();
        if x > 0.0 {
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + c.t_x).ln();
            let m = a3.max(a4);
            a1 + a2 + m + ((a3 - m).exp() + (a4 - m).exp()).ln()
        } else {
            a1 + a2 + a3
        }
    }

    /// The odds term of P(alive): 0 for a customer without repeat purchases.
    fn dead_odds(&self, c: &Rft) -> f64 {
        if c.x > 0.0 {
            let ln = (self.a / (self.b + c.x - 1.0)).ln()
                + (self.r + c.x) * ((self.alpha + c.t) / (self.alpha + c.t_x)).ln();
            ln.exp()
        } else {
            0.0
        }
    }

    /// P(the customer is still alive | x, t_x, T).
    pub fn p_alive(&self, c: &Rft) -> f64 {
        1.0 / (1.0 + self.dead_odds(c))
    }

    /// E[purchases in the next `t` | x, t_x, T] (equation 10 of the paper).
    ///
    /// Equation 10 multiplies ₂F₁(r+x, b+x; a+b+x−1; z) by ((α+T)/(α+T+t))^(r+x): for large x
    /// the series grows past f64 before the tiny factor can cancel it. Euler's transformation
    /// ₂F₁(A, B; C; z) = (1−z)^(C−A−B) ₂F₁(C−A, C−B; C; z), with 1−z = (α+T)/(α+T+t), folds the
    /// two into (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z), whose terms shrink at once.
    pub fn expected_purchases(&self, c: &Rft, t: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = c.x;
        let z = t / (alpha + c.t + t);
        let hyp = hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z);
        let scaled = ((a - 1.0) * (1.0 - z).ln()).exp() * hyp;
        let first = (a + b + x - 1.0) / (a - 1.0);
        first * (1.0 - scaled) / (1.0 + self.dead_odds(c))
    }

    /// P(X(t) = 0) for a customer just acquired: no repeat purchase within `t`.
    pub fn p_no_purchase(&self, t: f64) -> f64 {
        (self.alpha / (self.alpha + t)).powf(self.r)
    }
}
