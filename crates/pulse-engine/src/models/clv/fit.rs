//! Maximum-likelihood fits of the lifetime-value models: Nelder-Mead over the logarithms of the
//! parameters (which keeps them positive), restarted from its own optimum until it stops
//! improving.

use super::bgnbd::{BgNbd, Rft};
use super::gamma_gamma::GammaGamma;

/// Minimises `f` from `start` with the Nelder-Mead simplex method.
pub fn nelder_mead<const N: usize>(f: impl Fn(&[f64; N]) -> f64, start: [f64; N]) -> [f64; N] {
    let mut best = start;
    let mut best_value = f(&best);
    // Restarts: a fresh simplex around the optimum guards against a collapsed one.
    for _ in 0..20 {
        let (x, value) = simplex(&f, best);
        let improved = best_value - value > 1e-12 * best_value.abs().max(1.0);
        best = x;
        best_value = value;
        if !improved {
            break;
        }
    }
    best
}

fn simplex<const N: usize>(f: &impl Fn(&[f64; N]) -> f64, start: [f64; N]) -> ([f64; N], f64) {
    let mut points: Vec<([f64; N], f64)> = Vec::with_capacity(N + 1);
    points.push((start, f(&start)));
    for i in 0..N {
        let mut p = start;
        p[i] += if p[i].abs() > 1e-3 {
            0.1 * p[i].abs()
        } else {
            0.1
        };
        points.push((p, f(&p)));
    }
    for _ in 0..20_000 {
        points.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (lo, hi) = (points[0].1, points[N].1);
        if (hi - lo).abs() <= 1e-13 * (lo.abs() + hi.abs()).max(1e-300) {
            break;
        }
        let mut centroid = [0.0; N];
        for (p, _) in &points[..N] {
            for (c, v) in centroid.iter_mut().zip(p) {
                *c += v / N as f64;
            }
        }
        let along = |t: f64| -> [f64; N] {
            let mut q = [0.0; N];
            for i in 0..N {
                q[i] = centroid[i] + t * (points[N].0[i] - centroid[i]);
            }
            q
        };
        let reflected = along(-1.0);
        let fr = f(&reflected);
        if fr < points[0].1 {
            let expanded = along(-2.0);
            let fe = f(&expanded);
            points[N] = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
        } else if fr < points[N - 1].1 {
            points[N] = (reflected, fr);
        } else {
            let t = if fr < points[N].1 { -0.5 } else { 0.5 };
            let contracted = along(t);
            let fc = f(&contracted);
            if fc < fr.min(points[N].1) {
                points[N] = (contracted, fc);
            } else {
                // Shrink toward the best point.
                let best = points[0].0;
                for (p, v) in points.iter_mut().skip(1) {
                    for i in 0..N {
                        p[i] = best[i] + 0.5 * (p[i] - best[i]);
                    }
                    *v = f(p);
                }
            }
        }
    }
    points.sort_by(|a, b| a.1.total_cmp(&b.1));
    points[0]
}

fn finite_or_huge(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        f64::MAX
    }
}

/// The BG/NBD parameters that maximise the likelihood of `customers`, and that likelihood.
pub fn fit_bgnbd(customers: &[Rft]) -> (BgNbd, f64) {
    let params = |l: &[f64; 4]| BgNbd {
        r: l[0].exp(),
        alpha: l[1].exp(),
        a: l[2].exp(),
        b: l[3].exp(),
    };
    let neg_ll = |l: &[f64; 4]| {
        let m = params(l);
        finite_or_huge(-customers.iter().map(|c| m.ln_likelihood(c)).sum::<f64>())
    };
    let best = nelder_mead(neg_ll, [0.0; 4]);
    (params(&best), -neg_ll(&best))
}

/// The Gamma-Gamma parameters that maximise the likelihood of `(x, z̄)` pairs (x ≥ 1), and that
/// likelihood.
pub fn fit_gamma_gamma(customers: &[(f64, f64)]) -> (GammaGamma, f64) {
    let params = |l: &[f64; 3]| GammaGamma {
        p: l[0].exp(),
        q: l[1].exp(),
        v: l[2].exp(),
    };
    let neg_ll = |l: &[f64; 3]| {
        let m = params(l);
        finite_or_huge(
            -customers
                .iter()
                .map(|(x, z)| m.ln_likelihood(*x, *z))
                .sum::<f64>(),
        )
    };
    let best = nelder_mead(neg_ll, [0.0; 3]);
    (params(&best), -neg_ll(&best))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nelder_mead_finds_the_minimum_of_a_shifted_bowl() {
        let f = |x: &[f64; 3]| {
            (x[0] - 1.0).powi(2) + 10.0 * (x[1] + 2.0).powi(2) + (x[2] - 0.5).powi(4)
        };
        let m = nelder_mead(f, [0.0; 3]);
        assert!(
            (m[0] - 1.0).abs() < 1e-5 && (m[1] + 2.0).abs() < 1e-5,
            "{m:?}"
        );
    }
}
