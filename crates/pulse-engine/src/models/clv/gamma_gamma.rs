//! The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV"):
//! transaction values of a customer are Gamma(p, ν) with ν ~ Gamma(q, γ) across customers. A
//! customer is summarised by x transactions with mean value z̄.

use super::special::ln_gamma;
use crate::config::analytics::ClvConfig;

/// Gamma-Gamma parameters (`v` is the paper's γ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub v: f64,
}

impl GammaGamma {
    /// The CDNOW estimates (spend has no time unit; the shipped default).
    pub const CDNOW: Self = Self {
        p: ClvConfig::CDNOW.p,
        q: ClvConfig::CDNOW.q,
        v: ClvConfig::CDNOW.v,
    };

    /// ln of the density of a mean value `zbar` over `x` transactions (x ≥ 1, zbar > 0).
    pub fn ln_likelihood(&self, x: f64, zbar: f64) -> f64 {
        let Self { p, q, v } = *self;
        ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
            + q * v.ln()
            + (p * x - 1.0) * zbar.ln()
            + p * x * x.ln()
            - (p * x + q) * (x * zbar + v).ln()
    }

    /// E[mean transaction value | x, z̄]: the population mean shrunk toward the customer's.
    pub fn expected_spend(&self, x: f64, zbar: f64) -> f64 {
        let Self { p, q, v } = *self;
        let population = p * v / (q - 1.0);
        let weight = (q - 1.0) / (p * x + q - 1.0);
        weight * population + (1.0 - weight) * zbar
    }
}
