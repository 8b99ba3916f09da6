//! `pulse fit`: maximum-likelihood BG/NBD and Gamma-Gamma parameters from a transaction log
//! (CSV or NDJSON) or from the live population in the changelog, written as an `[engine.clv]`
//! configuration fragment with standard errors and log-likelihoods.

use pulse_engine::clv::{
    bgnbd_standard_errors, fit_bgnbd, fit_gamma_gamma, gamma_gamma_standard_errors, BgNbd, Clock,
    GammaGamma, Rft, Summary, Transactions,
};
use pulse_engine::ClvConfig;
use pulse_events::time::{format_rfc3339, parse_rfc3339, Millis};
use std::io::BufRead;

/// A transaction log problem, naming the line.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("reading the input: {0}")]
    Io(#[from] std::io::Error),
    #[error("no purchases to fit")]
    Empty,
    #[error("no customer with a repeat purchase: the spend model cannot be fitted")]
    NoRepeat,
}

/// Input formats of a transaction log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// A header naming `customer` (or `customer_id`), `timestamp` (or `date`) and `amount`.
    Csv,
    /// One object per line with `customer_id`, `timestamp` and `amount`; Pulse input events
    /// (also wrapped as `pulse generate` writes them) are read, keeping purchases only.
    Ndjson,
}

fn timestamp(v: &serde_json::Value) -> Option<Millis> {
    match v {
        serde_json::Value::String(s) => parse_rfc3339(s).or_else(|| {
            // A bare date, as many exports write it.
            parse_rfc3339(&format!("{s}T00:00:00Z"))
        }),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Reads a transaction log into per-customer transactions.
pub fn read_log(input: impl BufRead, format: LogFormat) -> Result<Transactions, FitError> {
    let mut tx = Transactions::default();
    let mut columns: Option<[usize; 3]> = None;
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        let n = i + 1;
        let bad = |message: String| FitError::Line { line: n, message };
        if line.trim().is_empty() {
            continue;
        }
        match format {
            LogFormat::Csv => {
                let cells: Vec<&str> = line
                    .split(',')
                    .map(|c| c.trim().trim_matches('"'))
                    .collect();
                let Some([c, t, a]) = columns else {
                    let find = |names: &[&str]| {
                        cells
                            .iter()
                            .position(|h| names.contains(&h.to_ascii_lowercase().as_str()))
                    };
                    let (Some(c), Some(t), Some(a)) = (
                        find(&["customer", "customer_id"]),
                        find(&["timestamp", "date", "time"]),
                        find(&["amount", "value", "monetary"]),
                    ) else {
                        return Err(bad(
                            "the header must name customer, timestamp and amount columns".into(),
                        ));
                    };
                    columns = Some([c, t, a]);
                    continue;
                };
                let cell = |k: usize| cells.get(k).copied().unwrap_or_default();
                let at = timestamp(&serde_json::Value::String(cell(t).into()))
                    .or_else(|| cell(t).parse().ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "timestamp `{}` is neither RFC 3339 nor epoch ms",
                            cell(t)
                        ))
                    })?;
                let amount: f64 = cell(a)
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| {
                        bad(format!("amount `{}` is not a non-negative number", cell(a)))
                    })?;
                tx.add(cell(c), at, amount);
            }
            LogFormat::Ndjson => {
                let v: serde_json::Value =
                    serde_json::from_str(&line).map_err(|e| bad(format!("not JSON: {e}")))?;
                let v = v.get("event").unwrap_or(&v);
                match v.get("type").and_then(|t| t.as_str()) {
                    None | Some("purchase") => {}
                    Some(_) => continue,
                }
                let customer = v
                    .get("customer_id")
                    .or_else(|| v.get("customer"))
                    .and_then(|c| c.as_str())
                    .ok_or_else(|| bad("no customer_id".into()))?;
                let at = v
                    .get("timestamp")
                    .and_then(timestamp)
                    .ok_or_else(|| bad("no readable timestamp".into()))?;
                let amount = v
                    .get("amount")
                    .and_then(|a| a.as_f64())
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| bad("no non-negative amount".into()))?;
                tx.add(customer, at, amount);
            }
        }
    }
    Ok(tx)
}

/// The summary of the live population: each profile's purchase statistics as of the newest
/// event time seen. A profile keeps totals rather than transactions, so a customer's spend is
/// the mean of all their orders, not of repeat purchase days only.
pub fn summary_of_profiles<'a>(
    profiles: impl Iterator<Item = &'a pulse_engine::Profile>,
) -> Summary {
    let profiles: Vec<_> = profiles.filter(|p| p.purchases.days > 0).collect();
    let until = profiles.iter().map(|p| p.last_seen).max().unwrap_or(0);
    let mut s = Summary {
        until,
        ..Summary::default()
    };
    for p in profiles {
        let st = &p.purchases;
        s.transactions += st.orders as usize;
        let rft = st.rft(until);
        if rft.x > 0.0 && st.revenue_cents > 0 {
            s.spend.push((
                rft.x,
                st.revenue_cents as f64 / 100.0 / f64::from(st.orders),
            ));
        }
        s.customers.push(rft);
    }
    s
}

/// Fitted parameters with their standard errors and log-likelihoods.
#[derive(Debug, Clone)]
pub struct Fit {
    pub bgnbd: BgNbd,
    pub bgnbd_se: [f64; 4],
    pub bgnbd_ll: f64,
    pub spend: GammaGamma,
    pub spend_se: [f64; 3],
    pub spend_ll: f64,
    pub customers: usize,
    pub repeat_customers: usize,
    pub transactions: usize,
    pub until: Millis,
    pub clock: Clock,
}

pub fn fit(s: &Summary, clock: Clock) -> Result<Fit, FitError> {
    if s.customers.is_empty() {
        return Err(FitError::Empty);
    }
    if s.spend.is_empty() {
        return Err(FitError::NoRepeat);
    }
    let rft: &[Rft] = &s.customers;
    let (bgnbd, bgnbd_ll) = fit_bgnbd(rft);
    let (spend, spend_ll) = fit_gamma_gamma(&s.spend);
    Ok(Fit {
        bgnbd_se: bgnbd_standard_errors(rft, &bgnbd),
        bgnbd,
        bgnbd_ll,
        spend_se: gamma_gamma_standard_errors(&s.spend, &spend),
        spend,
        spend_ll,
        customers: s.customers.len(),
        repeat_customers: s.spend.len(),
        transactions: s.transactions,
        until: s.until,
        clock,
    })
}

/// The fit as an `[engine.clv]` fragment; horizon and discount keep their defaults.
pub fn to_toml(f: &Fit) -> String {
    let d = ClvConfig::default();
    let m = &f.bgnbd;
    let g = &f.spend;
    let line = |k: &str, v: f64, se: f64| format!("{k} = {v:.6}  # standard error {se:.6}\n");
    let mut out = format!(
        "# Fitted by `pulse fit`: {} customers with purchases ({} with repeat purchases), {} \
         transactions, observed until {}. Time in days{}.\n\
         # BG/NBD log-likelihood {:.4}; Gamma-Gamma log-likelihood {:.4}.\n[engine.clv]\n",
        f.customers,
        f.repeat_customers,
        f.transactions,
        format_rfc3339(f.until),
        match f.clock {
            Clock::Days => ", purchases on one day counted once (the engine's convention)",
            Clock::Exact => ", every transaction counted at its exact time",
        },
        f.bgnbd_ll,
        f.spend_ll
    );
    for (k, v, se) in [
        ("r", m.r, f.bgnbd_se[0]),
        ("alpha", m.alpha, f.bgnbd_se[1]),
        ("a", m.a, f.bgnbd_se[2]),
        ("b", m.b, f.bgnbd_se[3]),
        ("p", g.p, f.spend_se[0]),
        ("q", g.q, f.spend_se[1]),
        ("v", g.v, f.spend_se[2]),
    ] {
        out += &line(k, v, se);
    }
    out += &format!(
        "horizon_months = {}\nmonthly_discount = {}\n",
        d.horizon_months, d.monthly_discount
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_ndjson_read_the_same_log() {
        let csv = "customer,timestamp,amount\nc1,2026-01-01T10:00:00Z,10\nc1,2026-01-03,20.5\nc2,1767225600000,3\n";
        let nd = r#"{"customer_id":"c1","timestamp":"2026-01-01T10:00:00Z","amount":10}
{"event":{"type":"page_view","customer_id":"c1","timestamp":"2026-01-02T00:00:00Z"}}
{"event":{"type":"purchase","customer_id":"c1","timestamp":"2026-01-03T00:00:00Z","amount":20.5}}
{"customer":"c2","timestamp":1767225600000,"amount":3}
"#;
        let a = read_log(csv.as_bytes(), LogFormat::Csv)
            .unwrap()
            .summarise(None, Clock::Days);
        let b = read_log(nd.as_bytes(), LogFormat::Ndjson)
            .unwrap()
            .summarise(None, Clock::Days);
        assert_eq!(a.customers, b.customers);
        assert_eq!(a.spend, vec![(1.0, 20.5)]);
        assert_eq!(a.transactions, 3);
    }

    #[test]
    fn bad_lines_are_named() {
        let e = read_log(
            "customer,timestamp,amount\nc1,yesterday,3\n".as_bytes(),
            LogFormat::Csv,
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            e.to_string().starts_with("line 2: timestamp `yesterday`"),
            "{e}"
        );
        let e = read_log("who,when\n".as_bytes(), LogFormat::Csv)
            .map(|_| ())
            .unwrap_err();
        assert!(e.to_string().contains("header"), "{e}");
        let e = read_log(
            "{\"customer_id\":\"c\",\"timestamp\":1,\"amount\":-1}\n".as_bytes(),
            LogFormat::Ndjson,
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            e.to_string().contains("line 1: no non-negative amount"),
            "{e}"
        );
    }
}
