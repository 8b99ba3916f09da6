//! A customer's analytics at one instant, as the query API shows them: every field a segment
//! rule can read (so the API and the rules never disagree), the segments the customer is in,
//! the churn drivers and the funnel attempts. Computed on request from the profile.

use crate::customer::profile::Profile;
use crate::population::Population;
use crate::read::fields::{Field, FieldValue};
use crate::read::view::View;
use crate::spec::EngineSpec;
use pulse_events::time::{format_rfc3339, Millis};
use serde::Serialize;
use std::collections::BTreeMap;

/// One churn driver: its value (0..1) and its share of the score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriverReport {
    pub name: &'static str,
    pub value: f64,
    pub contribution: f64,
}

/// One funnel's current or last attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelReport {
    pub funnel: String,
    pub attempt: u32,
    /// 1-based index and name of the last step reached.
    pub step_index: u32,
    pub step: String,
    pub steps_total: u32,
    pub active: bool,
    pub converted: bool,
    pub entered: String,
    /// When the attempt expires if the next required step is not reached (active only).
    pub deadline: Option<String>,
}

/// A customer's analytics as of `as_of`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerReport {
    pub customer_id: String,
    pub as_of: String,
    /// Every rule field by its CEL name; `rfm.r` sits under `rfm` → `r`.
    pub fields: BTreeMap<String, Node>,
    pub segments: Vec<String>,
    pub churn_drivers: Vec<DriverReport>,
    pub funnels: Vec<FunnelReport>,
}

/// A field value, or a group of them sharing a prefix.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Node {
    Value(FieldValue),
    Text(String),
    Group(BTreeMap<String, Node>),
}

fn insert(tree: &mut BTreeMap<String, Node>, name: &str, value: Node) {
    match name.split_once('.') {
        None => {
            tree.insert(name.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = tree
                .entry(head.to_owned())
                .or_insert_with(|| Node::Group(BTreeMap::new()));
            if let Node::Group(g) = child {
                insert(g, rest, value);
            }
        }
    }
}

/// The report of `customer` as of `now` (event time).
pub fn report(
    spec: &EngineSpec,
    population: &Population,
    customer: &str,
    profile: &Profile,
    now: Millis,
) -> CustomerReport {
    let view = View::new(spec, population, profile, now);
    let mut fields = BTreeMap::new();
    for name in Field::all_names(spec) {
        if let Some((field, _)) = Field::parse(spec, &name) {
            let value = match field.value(&view) {
                // Times read better as timestamps than as epoch milliseconds.
                FieldValue::Int(ms) if matches!(field, Field::FirstSeen | Field::LastSeen) => {
                    Node::Text(format_rfc3339(ms))
                }
                v => Node::Value(v),
            };
            insert(&mut fields, &name, value);
        }
    }
    let segments = spec
        .segment_names()
        .enumerate()
        .filter(|(i, _)| profile.derived.segments & (1u64 << i) != 0)
        .map(|(_, n)| n.to_owned())
        .collect();
    let (_, drivers) = spec.churn.score(&view.churn_drivers());
    let churn_drivers = drivers
        .iter()
        .map(|&(name, value, contribution)| DriverReport {
            name,
            value,
            contribution,
        })
        .collect();
    let funnels = profile
        .funnels
        .iter()
        .filter_map(|a| {
            let f = spec.funnels.get(usize::from(a.funnel))?;
            let step = usize::from(a.step);
            Some(FunnelReport {
                funnel: f.name.to_string(),
                attempt: a.attempt,
                step_index: a.step as u32 + 1,
                step: f
                    .steps
                    .get(step)
                    .map_or_else(String::new, |s| s.name.to_string()),
                steps_total: f.steps.len() as u32,
                active: a.active,
                converted: !a.active && step + 1 == f.steps.len(),
                entered: format_rfc3339(a.entered),
                deadline: a.active.then(|| format_rfc3339(a.deadline)),
            })
        })
        .collect();
    CustomerReport {
        customer_id: customer.to_owned(),
        as_of: format_rfc3339(now),
        fields,
        segments,
        churn_drivers,
        funnels,
    }
}

/// Customers by how far their latest attempt at one funnel got.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelSummary {
    pub funnel: String,
    /// Customers with an attempt.
    pub started: u64,
    /// Attempts still open.
    pub active: u64,
    pub converted: u64,
    /// `converted / started`, 0 without attempts.
    pub conversion: f64,
    /// Per step, in order: customers whose latest attempt reached it or a later step.
    pub steps: Vec<StepCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepCount {
    pub step: String,
    pub reached: u64,
}

impl FunnelSummary {
    /// Adds another partition's counts.
    pub fn merge(&mut self, o: &FunnelSummary) {
        self.started += o.started;
        self.active += o.active;
        self.converted += o.converted;
        for (a, b) in self.steps.iter_mut().zip(&o.steps) {
            a.reached += b.reached;
        }
        self.update_conversion();
    }

    fn update_conversion(&mut self) {
        self.conversion = if self.started == 0 {
            0.0
        } else {
            self.converted as f64 / self.started as f64
        };
    }
}

/// Funnel summaries over `profiles`: one pass, reading each customer's latest attempts.
pub fn funnel_summaries<'a>(
    spec: &EngineSpec,
    profiles: impl Iterator<Item = &'a Profile>,
) -> Vec<FunnelSummary> {
    let mut out: Vec<FunnelSummary> = spec
        .funnels
        .iter()
        .map(|f| FunnelSummary {
            funnel: f.name.to_string(),
            started: 0,
            active: 0,
            converted: 0,
            conversion: 0.0,
            steps: f
                .steps
                .iter()
                .map(|s| StepCount {
                    step: s.name.to_string(),
                    reached: 0,
                })
                .collect(),
        })
        .collect();
    for p in profiles {
        for a in &p.funnels {
            let Some(s) = out.get_mut(usize::from(a.funnel)) else {
                continue;
            };
            s.started += 1;
            s.active += u64::from(a.active);
            let last = usize::from(a.step);
            s.converted += u64::from(!a.active && last + 1 == s.steps.len());
            for step in s.steps.iter_mut().take(last + 1) {
                step.reached += 1;
            }
        }
    }
    for s in &mut out {
        s.update_conversion();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn the_report_holds_every_rule_field_and_the_funnel_attempt() {
        let mut p = partition(vec![funnel(
            "onboarding",
            std::time::Duration::from_secs(86_400),
            vec![step("signup"), step("page_view")],
        )]);
        feed(&mut p, &[("a", "signup", T0), ("a", "purchase", T0 + MIN)]);
        let profile = p.profile("a").unwrap();
        let r = report(p.spec(), p.population(), "a", profile, T0 + 2 * MIN);
        let json = serde_json::to_value(&r).unwrap();
        for name in Field::all_names(p.spec()) {
            let mut node = &json["fields"];
            for part in name.split('.') {
                node = &node[part];
            }
            assert!(!node.is_null(), "{name} missing from {json}");
        }
        assert_eq!(json["fields"]["orders_total"], 1);
        assert_eq!(json["fields"]["funnels"]["onboarding"]["active"], true);
        assert_eq!(json["funnels"][0]["step"], "signup");
        assert_eq!(json["funnels"][0]["steps_total"], 2);
        assert!(json["fields"]["first_seen"]
            .as_str()
            .unwrap()
            .starts_with("20"));
        assert!(!r.churn_drivers.is_empty());
    }

    #[test]
    fn funnel_summaries_count_each_customers_latest_attempt() {
        let mut p = partition(vec![funnel(
            "checkout",
            std::time::Duration::from_secs(86_400),
            vec![step("view_cart"), step("begin_checkout"), step("purchase")],
        )]);
        feed(
            &mut p,
            &[
                ("a", "view_cart", T0),
                ("a", "begin_checkout", T0 + MIN),
                ("a", "purchase", T0 + 2 * MIN),
                ("b", "view_cart", T0 + 3 * MIN),
                ("b", "begin_checkout", T0 + 4 * MIN),
                ("c", "view_cart", T0 + 5 * MIN),
            ],
        );
        let s = &funnel_summaries(p.spec(), p.profiles().map(|(_, v)| v))[0];
        assert_eq!((s.started, s.active, s.converted), (3, 2, 1));
        let reached: Vec<u64> = s.steps.iter().map(|c| c.reached).collect();
        assert_eq!(reached, [3, 2, 1]);
        assert!((s.conversion - 1.0 / 3.0).abs() < 1e-12);
    }
}
