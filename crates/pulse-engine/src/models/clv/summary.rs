//! From a transaction log to what the models are fitted on. By default with `lifetimes`'
//! conventions, the ones the engine's profiles follow: time in whole days, purchases on one
//! day counted as one, T from the first purchase to the end of observation, and a customer's
//! spend the mean of their repeat purchase days. [`Clock::Exact`] keeps every transaction and
//! fractional days instead, which is what the continuous-time models assume.

use super::bgnbd::{BgNbd, Rft};
use super::gamma_gamma::GammaGamma;
use pulse_events::time::{day_of, Millis, DAY};
use std::collections::HashMap;

/// How transaction times are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// Whole days; purchases on one day are one purchase (`lifetimes`, the engine).
    #[default]
    Days,
    /// Fractional days; every transaction counts.
    Exact,
}

/// Transactions by customer, as read.
#[derive(Debug, Default)]
pub struct Transactions {
    by_customer: HashMap<String, Vec<(Millis, f64)>>,
    count: usize,
    newest: Option<Millis>,
}

/// The fitting input.
#[derive(Debug, Default)]
pub struct Summary {
    /// One per customer with at least one purchase.
    pub customers: Vec<Rft>,
    /// (repeat purchase days, mean spend of those days) of customers with repeat purchases.
    pub spend: Vec<(f64, f64)>,
    pub transactions: usize,
    /// End of observation.
    pub until: Millis,
}

impl Transactions {
    pub fn add(&mut self, customer: &str, at: Millis, amount: f64) {
        self.count += 1;
        self.newest = Some(self.newest.map_or(at, |n| n.max(at)));
        match self.by_customer.get_mut(customer) {
            Some(v) => v.push((at, amount)),
            None => {
                self.by_customer
                    .insert(customer.to_owned(), vec![(at, amount)]);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Summarises every customer as observed until `until` (default: the newest transaction).
    pub fn summarise(mut self, until: Option<Millis>, clock: Clock) -> Summary {
        let until = until.or(self.newest).unwrap_or(0);
        let time = |t: Millis| match clock {
            Clock::Days => day_of(t) as f64,
            Clock::Exact => t as f64 / DAY as f64,
        };
        let end = time(until);
        let mut s = Summary {
            transactions: self.count,
            until,
            ..Summary::default()
        };
        let mut keys: Vec<String> = self.by_customer.keys().cloned().collect();
        keys.sort_unstable(); // a stable order, so fits are reproducible
        for k in keys {
            let Some(mut tx) = self.by_customer.remove(&k) else {
                continue;
            };
            tx.retain(|(t, _)| *t <= until);
            tx.sort_by_key(|t| t.0);
            let mut days: Vec<(f64, f64)> = Vec::new();
            for (t, a) in tx {
                let d = time(t);
                match days.last_mut() {
                    Some(last) if clock == Clock::Days && last.0 == d => last.1 += a,
                    _ => days.push((d, a)),
                }
            }
            let (Some(first), Some(last)) = (days.first(), days.last()) else {
                continue;
            };
            let x = (days.len() - 1) as f64;
            s.customers.push(Rft {
                x,
                t_x: last.0 - first.0,
                t: end - first.0,
            });
            if x > 0.0 {
                let mean = days[1..].iter().map(|d| d.1).sum::<f64>() / x;
                if mean > 0.0 {
                    s.spend.push((x, mean));
                }
            }
        }
        s
    }
}

/// Standard errors of a maximum-likelihood estimate: the square roots of the diagonal of the
/// inverse Hessian of the negative log-likelihood at `at`, by central differences.
pub fn standard_errors<const N: usize>(
    neg_ll: impl Fn(&[f64; N]) -> f64,
    at: [f64; N],
) -> [f64; N] {
    let h: [f64; N] = std::array::from_fn(|i| 1e-4 * at[i].abs().max(1.0));
    let f = |d: &[(usize, f64)]| {
        let mut x = at;
        for (i, v) in d {
            x[*i] += v;
        }
        neg_ll(&x)
    };
    let mut hess = [[0.0; N]; N];
    for i in 0..N {
        for j in i..N {
            let v = if i == j {
                (f(&[(i, h[i])]) - 2.0 * f(&[]) + f(&[(i, -h[i])])) / (h[i] * h[i])
            } else {
                (f(&[(i, h[i]), (j, h[j])])
                    - f(&[(i, h[i]), (j, -h[j])])
                    - f(&[(i, -h[i]), (j, h[j])])
                    + f(&[(i, -h[i]), (j, -h[j])]))
                    / (4.0 * h[i] * h[j])
            };
            hess[i][j] = v;
            hess[j][i] = v;
        }
    }
    let inv = invert(hess);
    std::array::from_fn(|i| inv.map_or(f64::NAN, |m| m[i][i].max(0.0).sqrt()))
}

/// Gauss-Jordan inversion with partial pivoting; None if singular.
fn invert<const N: usize>(mut a: [[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let mut inv = [[0.0; N]; N];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for c in 0..N {
        let p = (c..N).max_by(|x, y| a[*x][c].abs().total_cmp(&a[*y][c].abs()))?;
        if a[p][c].abs() < 1e-300 {
            return None;
        }
        a.swap(c, p);
        inv.swap(c, p);
        let d = a[c][c];
        for k in 0..N {
            a[c][k] /= d;
            inv[c][k] /= d;
        }
        for r in 0..N {
            if r != c {
                let m = a[r][c];
                for k in 0..N {
                    a[r][k] -= m * a[c][k];
                    inv[r][k] -= m * inv[c][k];
                }
            }
        }
    }
    Some(inv)
}

/// Standard errors of fitted BG/NBD parameters (r, α, a, b).
pub fn bgnbd_standard_errors(customers: &[Rft], m: &BgNbd) -> [f64; 4] {
    let nll = |p: &[f64; 4]| {
        let m = BgNbd {
            r: p[0],
            alpha: p[1],
            a: p[2],
            b: p[3],
        };
        -customers.iter().map(|c| m.ln_likelihood(c)).sum::<f64>()
    };
    standard_errors(nll, [m.r, m.alpha, m.a, m.b])
}

/// Standard errors of fitted Gamma-Gamma parameters (p, q, v).
pub fn gamma_gamma_standard_errors(spend: &[(f64, f64)], m: &GammaGamma) -> [f64; 3] {
    let nll = |p: &[f64; 3]| {
        let m = GammaGamma {
            p: p[0],
            q: p[1],
            v: p[2],
        };
        -spend
            .iter()
            .map(|(x, z)| m.ln_likelihood(*x, *z))
            .sum::<f64>()
    };
    standard_errors(nll, [m.p, m.q, m.v])
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_events::time::DAY;

    #[test]
    fn summarises_by_distinct_days_like_lifetimes() {
        let mut t = Transactions::default();
        let t0 = 1_767_225_600_000;
        t.add("a", t0, 10.0);
        t.add("a", t0 + 3_600_000, 5.0); // same day: one purchase day
        t.add("a", t0 + 2 * DAY, 20.0);
        t.add("a", t0 + 5 * DAY, 40.0);
        t.add("b", t0 + 9 * DAY, 7.0);
        let s = t.summarise(Some(t0 + 10 * DAY), Clock::Days);
        assert_eq!(s.transactions, 5);
        assert_eq!(
            s.customers,
            vec![
                Rft {
                    x: 2.0,
                    t_x: 5.0,
                    t: 10.0
                },
                Rft {
                    x: 0.0,
                    t_x: 0.0,
                    t: 1.0
                }
            ]
        );
        assert_eq!(s.spend, vec![(2.0, 30.0)]);
    }

    #[test]
    fn the_exact_clock_keeps_every_transaction() {
        let mut t = Transactions::default();
        let t0 = 1_767_225_600_000;
        t.add("a", t0, 10.0);
        t.add("a", t0 + DAY / 2, 5.0);
        let s = t.summarise(Some(t0 + 2 * DAY), Clock::Exact);
        assert_eq!(
            s.customers,
            vec![Rft {
                x: 1.0,
                t_x: 0.5,
                t: 2.0
            }]
        );
        assert_eq!(s.spend, vec![(1.0, 5.0)]);
    }

    #[test]
    fn standard_errors_of_a_normal_mean() {
        // n observations of N(μ, 1): the SE of μ̂ is 1/√n.
        let xs: Vec<f64> = (0..400).map(|i| f64::from(i % 7) - 3.0).collect();
        let nll = |p: &[f64; 1]| xs.iter().map(|x| (x - p[0]).powi(2) / 2.0).sum::<f64>();
        let se = standard_errors(nll, [0.0]);
        assert!((se[0] - 0.05).abs() < 1e-6, "{se:?}");
    }
}
