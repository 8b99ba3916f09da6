//! The per-customer profile and how one event updates its counters, windows, sessions and
//! purchase statistics. The profile holds its funnel attempts, but an event moves them in
//! [`crate::customer::funnel`]; outputs are assembled by the partition.

use crate::customer::engagement::Activity;
use crate::customer::funnel::FunnelAttempt;
use crate::customer::periods::{ActivePeriods, Opened};
use crate::customer::session::{Mark, Session};
use crate::customer::survey::Surveys;
use crate::customer::window::Windows;
use crate::models::clv::Rft;
use crate::models::rfm::RfmValues;
use crate::spec::{EngineSpec, BUILTIN_METRICS, M_EVENTS, M_ORDERS, M_REVENUE, M_SESSIONS};
use pulse_events::time::{day_of, Millis};
use pulse_events::{EventBody, InputEvent, ProfileExcerpt, SurveyKind};
use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

/// Purchase history in the form the BG/NBD model reads (`lifetimes` conventions: days, with
/// repeat purchases counted on distinct days).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PurchaseStats {
    pub orders: u32,
    pub refunds: u32,
    /// Gross purchase amounts, in cents.
    pub revenue_cents: i64,
    pub refunded_cents: i64,
    /// UTC day numbers of the first and last purchase; meaningful when `days > 0`.
    pub first_day: i64,
    pub last_day: i64,
    /// Distinct purchase days.
    pub days: u32,
    /// Purchases by 30-day period (day number / 30), oldest first, for RFM's lookback. Only
    /// periods with purchases are kept, and none older than the lookback.
    pub periods: ThinVec<PurchasePeriod>,
}

/// Purchases of one 30-day period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchasePeriod {
    pub period: i32,
    pub orders: u32,
    pub cents: u32,
}

/// Length of an RFM lookback period, in days.
pub const PERIOD_DAYS: i64 = 30;

impl PurchaseStats {
    /// BG/NBD frequency: purchase days after the first.
    pub fn frequency(&self) -> u32 {
        self.days.saturating_sub(1)
    }

    /// BG/NBD recency: age in days at the last purchase.
    pub fn recency_days(&self) -> i64 {
        if self.days == 0 {
            0
        } else {
            self.last_day - self.first_day
        }
    }

    /// BG/NBD T: age in days at time `t` (the watermark).
    pub fn age_days(&self, t: Millis) -> i64 {
        if self.days == 0 {
            0
        } else {
            (day_of(t) - self.first_day).max(self.recency_days())
        }
    }

    /// The customer as BG/NBD sees them at `now`, in days. A customer without purchases is
    /// one just acquired.
    pub fn rft(&self, now: Millis) -> Rft {
        Rft {
            x: f64::from(self.frequency()),
            t_x: self.recency_days() as f64,
            t: self.age_days(now) as f64,
        }
    }

    /// Net revenue (historic CLV), in currency units.
    pub fn net_revenue(&self) -> f64 {
        (self.revenue_cents - self.refunded_cents) as f64 / 100.0
    }

    /// RFM values at `now` over the `lookback_days` before it, counted in whole 30-day
    /// periods.
    pub fn rfm_values(&self, now: Millis, lookback_days: i64) -> RfmValues {
        let today = day_of(now);
        let from = (today - lookback_days).div_euclid(PERIOD_DAYS) + 1;
        let (mut orders, mut cents) = (0i64, 0i64);
        for p in self.periods.iter().filter(|p| i64::from(p.period) >= from) {
            orders += i64::from(p.orders);
            cents += i64::from(p.cents);
        }
        RfmValues {
            recency_days: (today - self.last_day).max(0),
            frequency: orders,
            monetary_cents: cents,
        }
    }

    /// Drops periods that left the lookback at `now`.
    fn prune(&mut self, now: Millis, lookback_days: i64) {
        let from = (day_of(now) - lookback_days).div_euclid(PERIOD_DAYS) + 1;
        self.periods.retain(|p| i64::from(p.period) >= from);
    }

    pub(crate) fn record_purchase(&mut self, ts: Millis, cents: u32) {
        let day = day_of(ts);
        let period = day.div_euclid(PERIOD_DAYS) as i32;
        match self.periods.binary_search_by_key(&period, |p| p.period) {
            Ok(i) => {
                let p = &mut self.periods[i];
                p.orders += 1;
                p.cents = p.cents.saturating_add(cents);
            }
            Err(i) => self.periods.insert(
                i,
                PurchasePeriod {
                    period,
                    orders: 1,
                    cents,
                },
            ),
        }
        self.orders += 1;
        self.revenue_cents += i64::from(cents);
        if self.days == 0 {
            self.first_day = day;
            self.last_day = day;
            self.days = 1;
        } else if day > self.last_day {
            self.last_day = day;
            self.days += 1;
        } else if day < self.first_day {
            self.first_day = day;
            self.days += 1;
        }
        // A late purchase strictly between the first and last purchase day may or may not be
        // on a day already counted; without a per-day set it is treated as already counted,
        // which keeps `frequency` from over-counting (documented in docs/semantics.md).
    }
}

/// What recording an event changed beyond the counters, for deciding what to re-evaluate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecordChange {
    /// The event is the customer's first on its UTC day.
    pub new_day: bool,
    /// The event used a feature not used before.
    pub new_feature: bool,
    /// The cohort periods (week, month) the event made the customer active in.
    pub opened: [Option<Opened>; 2],
}

/// Everything Pulse keeps about one customer.
///
/// Its lists (here and in the parts) are `ThinVec`s: one pointer inline, with the length and
/// capacity kept beside the elements, and no allocation while empty. Most customers' lists
/// are empty or short, and there are millions of profiles: 8 bytes inline instead of a
/// `Vec`'s 24, six times over. They are written as sequences, as a `Vec` is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub first_seen: Millis,
    /// The newest event time seen for this customer.
    pub last_seen: Millis,
    pub events_total: u64,
    pub sessions_total: u32,
    pub session: Session,
    pub purchases: PurchaseStats,
    pub windows: Windows,
    /// One entry per funnel this customer ever entered.
    pub funnels: ThinVec<FunnelAttempt>,
    pub activity: Activity,
    pub surveys: Surveys,
    /// Analytics results the engine compares against to emit changes.
    pub derived: Derived,
    /// Weeks and months active in, for cohort retention. Absent in profiles stored before it.
    #[serde(default)]
    pub periods: ActivePeriods,
}

/// What the engine last concluded about a customer: outputs fire when these change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    pub churn_level: u8,
    pub churn_score: f32,
    pub p_alive: f32,
    /// The RFM code (e.g. 545), 0 without one.
    pub rfm: u16,
    /// Bit i: member of segment i.
    pub segments: u64,
    /// Last entry time per segment with `min_dwell` or `cooldown`, by segment index.
    pub entered: ThinVec<(u8, Millis)>,
    /// Due time of the customer's pending recheck timer, 0 when none is pending.
    pub recheck: Millis,
    /// The latest instant the customer's analytics were evaluated at.
    pub evaluated_at: Millis,
}

impl Derived {
    /// What an evaluation concluded, apart from when it ran and the segment entry times: those
    /// change only with an entry, which is an output. Compared to tell whether an evaluation
    /// changed anything, without a copy of the entry list. Every field is named, so a field
    /// added to `Derived` does not compile until it is placed on one side or the other:
    /// one left out would never be written to the changelog by an RFM refresh.
    pub(crate) fn conclusions(&self) -> (u8, f32, f32, u16, u64, Millis) {
        let Derived {
            churn_level,
            churn_score,
            p_alive,
            rfm,
            segments,
            entered: _,
            recheck,
            evaluated_at: _,
        } = *self;
        (churn_level, churn_score, p_alive, rfm, segments, recheck)
    }
}

fn cents(amount: f64) -> u32 {
    // Amounts are validated finite and >= 0; `as` saturates anything beyond u32.
    (amount * 100.0).round() as u32
}

impl Profile {
    /// Applies the counter, window, session and purchase effects of one event.
    pub(crate) fn record(&mut self, spec: &EngineSpec, ev: &InputEvent<'_>) -> RecordChange {
        let ts = ev.timestamp;
        let mut change = RecordChange {
            new_day: self.activity.touch(day_of(ts)),
            new_feature: false,
            opened: [None; 2],
        };
        let previous_first = (self.events_total > 0).then_some(self.first_seen);
        if self.events_total == 0 {
            self.first_seen = ts;
            self.last_seen = ts;
        } else {
            self.first_seen = self.first_seen.min(ts);
            self.last_seen = self.last_seen.max(ts);
        }
        change.opened = self.periods.touch(self.first_seen, previous_first, ts);
        self.events_total += 1;

        let mut incs = [(0usize, 0u32); 8];
        let mut n = 0;
        let mut push = |m: usize, v: u32| {
            if n < incs.len() {
                incs[n] = (m, v);
                n += 1;
            }
        };
        push(M_EVENTS, 1);
        let mark = match ev.body {
            EventBody::SessionStart => Mark::Start,
            EventBody::SessionEnd => Mark::End,
            _ => Mark::Plain,
        };
        let touch = self
            .session
            .touch(ts, spec.session_gap, mark, spec.allowed_lateness);
        let total = i64::from(self.sessions_total) + touch.delta();
        self.sessions_total = u32::try_from(total.max(0)).unwrap_or(u32::MAX);
        // Sessions are counted in the windows at their start: where a late event moved or
        // merged one, its count moves too.
        let mut moved_start = None;
        match touch.added {
            Some(at) if at == ts => push(M_SESSIONS, 1),
            other => moved_start = other,
        }
        match &ev.body {
            EventBody::Purchase { amount, .. } => {
                let c = cents(*amount);
                self.purchases.record_purchase(ts, c);
                self.purchases.prune(self.last_seen, spec.rfm_lookback_days);
                push(M_ORDERS, 1);
                push(M_REVENUE, c);
            }
            EventBody::Refund { amount, .. } => {
                self.purchases.refunds += 1;
                self.purchases.refunded_cents += i64::from(cents(*amount));
            }
            EventBody::FeatureUsed { feature } => {
                change.new_feature = self.activity.use_feature(feature);
            }
            EventBody::SurveyResponse { survey, score, .. } => {
                let score = crate::customer::survey::stored_score(*score);
                match survey {
                    SurveyKind::Nps => Surveys::record(&mut self.surveys.nps, score, ts),
                    SurveyKind::Csat => Surveys::record(&mut self.surveys.csat, score, ts),
                    _ => {}
                }
            }
            _ => {}
        }
        let name = ev.body.type_name();
        if let Some(i) = spec.metrics[BUILTIN_METRICS..]
            .iter()
            .position(|m| m.name() == name)
        {
            push(BUILTIN_METRICS + i, 1);
        }
        self.windows.add(spec, ts, self.last_seen, &incs[..n]);
        if let Some(at) = moved_start {
            self.windows
                .add(spec, at, self.last_seen, &[(M_SESSIONS, 1)]);
        }
        for at in touch.removed.into_iter().flatten() {
            self.windows.take(spec, at, M_SESSIONS, 1);
        }
        change
    }

    /// The excerpt carried in output events.
    pub fn excerpt(&self) -> ProfileExcerpt {
        ProfileExcerpt {
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            events_total: self.events_total,
            sessions_total: self.sessions_total,
            orders_total: self.purchases.orders,
            revenue_total: self.purchases.net_revenue(),
            frequency: self.purchases.frequency(),
            rfm_segment: (self.derived.rfm > 0).then(|| {
                let d = |i: u16| (self.derived.rfm / i % 10) as u8;
                let code = crate::models::rfm::Rfm {
                    r: d(100),
                    f: d(10),
                    m: d(1),
                };
                code.segment().as_str().into()
            }),
            churn_level: crate::models::churn::Level::from_u8(self.derived.churn_level)
                .as_str()
                .into(),
            p_alive: f64::from(self.derived.p_alive),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::analytics::ClvConfig;
    use crate::models::clv::ClvSpec;

    #[test]
    fn predicted_clv_discounts_expected_purchases() {
        let spec = ClvSpec::new(&ClvConfig::default());
        let mut stats = PurchaseStats::default();
        let day = 86_400_000;
        for d in [0, 10, 20, 30] {
            stats.record_purchase(1_767_225_600_000 + d * day, 5_000);
        }
        let now = 1_767_225_600_000 + 31 * day;
        let v = spec.values(&stats.rft(now), stats.orders, stats.revenue_cents);
        assert!(v.p_alive > 0.5 && v.p_alive <= 1.0);
        assert!(v.predicted > 0.0 && v.predicted < v.expected_purchases * v.expected_spend);
        let undiscounted = ClvSpec {
            monthly_discount: 0.0,
            ..spec.clone()
        };
        let u = undiscounted.values(&stats.rft(now), stats.orders, stats.revenue_cents);
        assert!((u.predicted - u.expected_purchases * u.expected_spend).abs() < 1e-9);
    }
}
