//! The profile fields segment rules read, by their CEL names (`rfm.segment`, `clv.p_alive`,
//! `counts.page_view_7d`, …), what changes each of them, and their values for one customer at
//! one instant. docs/segments.md lists them.

use crate::customer::survey::{csat_satisfied, NpsCategory};
use crate::read::view::View;
use crate::spec::EngineSpec;
use pulse_events::time::{Millis, DAY};

/// What can change a field: a rule is re-evaluated only when one of its fields' sources fired.
pub mod source {
    /// Any applied event of the customer.
    pub const ACTIVITY: u16 = 1;
    pub const PURCHASE: u16 = 2;
    pub const SURVEY: u16 = 4;
    pub const FUNNEL: u16 = 8;
    /// Time passing alone (the customer's recheck timer).
    pub const TIME: u16 = 16;
    /// New RFM cut-points.
    pub const REFRESH: u16 = 32;
    /// The churn score moved.
    pub const CHURN: u16 = 64;
    /// A segment's hold (min_dwell or cooldown) ended.
    pub const HOLD: u16 = 128;
    /// The event is the customer's first on its UTC day. Fields counted in days and active
    /// days change only then (or with time), so the other events of an active day skip them.
    pub const NEW_DAY: u16 = 256;
    /// The event used a feature the customer had not used before.
    pub const FEATURE: u16 = 512;
}

use source::*;

/// One readable field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    FirstSeen,
    LastSeen,
    DaysSinceFirstSeen,
    DaysSinceLastSeen,
    DaysSinceLastPurchase,
    EventsTotal,
    SessionsTotal,
    OrdersTotal,
    RevenueTotal,
    /// A windowed metric: indices into the spec's metrics and windows.
    Count {
        metric: usize,
        window: usize,
    },
    RfmR,
    RfmF,
    RfmM,
    RfmCode,
    RfmSegment,
    ClvPAlive,
    ClvExpectedPurchases,
    ClvExpectedSpend,
    ClvPredicted,
    ClvHistoric,
    ClvFrequency,
    ClvRecency,
    ClvAge,
    ChurnScore,
    ChurnLevel,
    NpsScore,
    NpsCategory,
    NpsDaysSince,
    CsatScore,
    CsatSatisfied,
    ActiveDays7,
    ActiveDays30,
    Features,
    Stickiness,
    ActivityDrop,
    FunnelStep {
        funnel: usize,
    },
    FunnelActive {
        funnel: usize,
    },
    FunnelConverted {
        funnel: usize,
    },
}

/// Fixed names, with their sources.
const NAMED: &[(&str, Field, u16)] = &[
    ("first_seen", Field::FirstSeen, ACTIVITY),
    ("last_seen", Field::LastSeen, ACTIVITY),
    (
        "days_since_first_seen",
        Field::DaysSinceFirstSeen,
        NEW_DAY | TIME,
    ),
    (
        "days_since_last_seen",
        Field::DaysSinceLastSeen,
        NEW_DAY | TIME,
    ),
    (
        "days_since_last_purchase",
        Field::DaysSinceLastPurchase,
        PURCHASE | NEW_DAY | TIME,
    ),
    ("events_total", Field::EventsTotal, ACTIVITY),
    ("sessions_total", Field::SessionsTotal, ACTIVITY),
    ("orders_total", Field::OrdersTotal, PURCHASE),
    ("revenue_total", Field::RevenueTotal, PURCHASE),
    ("rfm.r", Field::RfmR, PURCHASE | TIME | REFRESH),
    ("rfm.f", Field::RfmF, PURCHASE | TIME | REFRESH),
    ("rfm.m", Field::RfmM, PURCHASE | TIME | REFRESH),
    ("rfm.code", Field::RfmCode, PURCHASE | TIME | REFRESH),
    ("rfm.segment", Field::RfmSegment, PURCHASE | TIME | REFRESH),
    ("clv.p_alive", Field::ClvPAlive, PURCHASE | TIME),
    (
        "clv.expected_purchases",
        Field::ClvExpectedPurchases,
        PURCHASE | TIME,
    ),
    ("clv.expected_spend", Field::ClvExpectedSpend, PURCHASE),
    ("clv.predicted", Field::ClvPredicted, PURCHASE | TIME),
    ("clv.historic", Field::ClvHistoric, PURCHASE),
    ("clv.frequency", Field::ClvFrequency, PURCHASE),
    ("clv.recency", Field::ClvRecency, PURCHASE),
    ("clv.t", Field::ClvAge, PURCHASE | TIME),
    ("churn.score", Field::ChurnScore, CHURN),
    ("churn.level", Field::ChurnLevel, CHURN),
    ("nps.score", Field::NpsScore, SURVEY),
    ("nps.category", Field::NpsCategory, SURVEY),
    (
        "nps.days_since",
        Field::NpsDaysSince,
        SURVEY | NEW_DAY | TIME,
    ),
    ("csat.score", Field::CsatScore, SURVEY),
    ("csat.satisfied", Field::CsatSatisfied, SURVEY),
    (
        "engagement.active_days_7",
        Field::ActiveDays7,
        NEW_DAY | TIME,
    ),
    (
        "engagement.active_days_30",
        Field::ActiveDays30,
        NEW_DAY | TIME,
    ),
    ("engagement.features", Field::Features, FEATURE),
    ("engagement.stickiness", Field::Stickiness, NEW_DAY | TIME),
    ("engagement.drop", Field::ActivityDrop, NEW_DAY | TIME),
];

/// A window length as rules write it: `90d`, `6h`, `30m` or `45s`, the largest whole unit.
fn short_duration(ms: Millis) -> String {
    const UNITS: [(Millis, &str); 4] = [(DAY, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    for (unit, suffix) in UNITS {
        if ms % unit == 0 {
            return format!("{}{suffix}", ms / unit);
        }
    }
    format!("{ms}ms")
}

/// A CEL value of a field.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    Int(i64),
    Float(f64),
    Str(&'static str),
    Bool(bool),
}

impl Field {
    /// The field a qualified CEL name refers to, and its sources.
    pub fn parse(spec: &EngineSpec, name: &str) -> Option<(Field, u16)> {
        if let Some((_, f, s)) = NAMED.iter().find(|(n, _, _)| *n == name) {
            return Some((*f, *s));
        }
        if let Some(rest) = name.strip_prefix("counts.") {
            // `counts.<metric>_<window>`: the metric may itself contain underscores.
            let (metric, window) = rest.rsplit_once('_')?;
            let metric = spec.metrics.iter().position(|m| m.name() == metric)?;
            let ms = humantime::parse_duration(window).ok()?.as_millis();
            let window = spec.windows.iter().position(|w| *w as u128 == ms)?;
            return Some((Field::Count { metric, window }, ACTIVITY | TIME));
        }
        let rest = name.strip_prefix("funnels.")?;
        let (funnel, what) = rest.rsplit_once('.')?;
        let funnel = spec.funnels.iter().position(|f| *f.name == *funnel)?;
        let field = match what {
            "step" => Field::FunnelStep { funnel },
            "active" => Field::FunnelActive { funnel },
            "converted" => Field::FunnelConverted { funnel },
            _ => return None,
        };
        Some((field, FUNNEL | TIME))
    }

    /// Every concrete field name of this configuration: the fixed ones, one per windowed
    /// metric and window, three per funnel.
    pub fn all_names(spec: &EngineSpec) -> Vec<String> {
        let mut names: Vec<String> = NAMED.iter().map(|(n, _, _)| (*n).to_owned()).collect();
        for m in &spec.metrics {
            for w in &spec.windows {
                let window = short_duration(*w);
                names.push(format!("counts.{}_{window}", m.name()));
            }
        }
        for f in &spec.funnels {
            for what in ["step", "active", "converted"] {
                names.push(format!("funnels.{}.{what}", f.name));
            }
        }
        names
    }

    /// Every name a rule may use, for error messages.
    pub fn known_names() -> String {
        let mut names: Vec<&str> = NAMED.iter().map(|(n, _, _)| *n).collect();
        names.extend([
            "counts.<metric>_<window>",
            "funnels.<name>.step",
            "funnels.<name>.active",
            "funnels.<name>.converted",
        ]);
        names.join(", ")
    }

    /// The field's value for the customer in `view`.
    pub fn value(self, v: &View<'_>) -> FieldValue {
        use FieldValue::*;
        let p = v.profile;
        let days = |since: Millis| (v.now - since).max(0) / DAY;
        match self {
            Field::FirstSeen => Int(p.first_seen),
            Field::LastSeen => Int(p.last_seen),
            Field::DaysSinceFirstSeen => Int(days(p.first_seen)),
            Field::DaysSinceLastSeen => Int(days(p.last_seen)),
            Field::DaysSinceLastPurchase => Int(if p.purchases.days == 0 {
                -1
            } else {
                (v.today() - p.purchases.last_day).max(0)
            }),
            Field::EventsTotal => Int(p.events_total as i64),
            Field::SessionsTotal => Int(i64::from(p.sessions_total)),
            Field::OrdersTotal => Int(i64::from(p.purchases.orders)),
            Field::RevenueTotal => Float(p.purchases.net_revenue()),
            Field::Count { metric, window } => {
                let w = v.spec.windows[window];
                Int(p.windows.sum(v.spec, metric, w, v.now) as i64)
            }
            Field::RfmR => Int(v.rfm().map_or(0, |r| i64::from(r.r))),
            Field::RfmF => Int(v.rfm().map_or(0, |r| i64::from(r.f))),
            Field::RfmM => Int(v.rfm().map_or(0, |r| i64::from(r.m))),
            Field::RfmCode => Int(v.rfm().map_or(0, |r| i64::from(r.code()))),
            Field::RfmSegment => Str(v.rfm().map_or("none", |r| r.segment().as_str())),
            Field::ClvPAlive => Float(v.p_alive()),
            Field::ClvExpectedPurchases => Float(v.clv().expected_purchases),
            Field::ClvExpectedSpend => Float(v.clv().expected_spend),
            Field::ClvPredicted => Float(v.clv().predicted),
            Field::ClvHistoric => Float(p.purchases.net_revenue()),
            Field::ClvFrequency => Int(i64::from(p.purchases.frequency())),
            Field::ClvRecency => Int(p.purchases.recency_days()),
            Field::ClvAge => Int(p.purchases.age_days(v.now)),
            Field::ChurnScore => Float(f64::from(p.derived.churn_score)),
            Field::ChurnLevel => {
                Str(crate::models::churn::Level::from_u8(p.derived.churn_level).as_str())
            }
            Field::NpsScore => Int(p.surveys.nps.map_or(-1, |a| i64::from(a.score()))),
            Field::NpsCategory => Str(p
                .surveys
                .nps
                .map_or("none", |a| NpsCategory::of(a.score()).as_str())),
            Field::NpsDaysSince => Int(p.surveys.nps.map_or(-1, |a| days(a.at))),
            Field::CsatScore => Int(p.surveys.csat.map_or(-1, |a| i64::from(a.score()))),
            Field::CsatSatisfied => Bool(p.surveys.csat.is_some_and(|a| csat_satisfied(a.score()))),
            Field::ActiveDays7 => Int(i64::from(p.activity.active_days(7, v.today()))),
            Field::ActiveDays30 => Int(i64::from(p.activity.active_days(30, v.today()))),
            Field::Features => Int(p.activity.features.len() as i64),
            Field::Stickiness => Float(p.activity.stickiness(v.today())),
            Field::ActivityDrop => Float(p.activity.drop(v.today())),
            Field::FunnelStep { funnel } => {
                Int(v.funnel(funnel).map_or(
                    0,
                    |a| {
                        if a.active {
                            i64::from(a.step) + 1
                        } else {
                            0
                        }
                    },
                ))
            }
            Field::FunnelActive { funnel } => Bool(v.funnel(funnel).is_some_and(|a| a.active)),
            Field::FunnelConverted { funnel } => Bool(v.funnel(funnel).is_some_and(|a| {
                let steps = v.spec.funnels.get(funnel).map_or(0, |f| f.steps.len());
                !a.active && usize::from(a.step) + 1 == steps
            })),
        }
    }
}
