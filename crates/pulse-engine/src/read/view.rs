//! The read model: [`View`] is one customer at one instant together with the population's
//! cut-points, which is what segment rules, churn scoring and reports read. Its costly figures
//! (lifetime value) are computed only if something reads them.
//!
//! It lives apart from [`crate::evaluate`], which runs the rules: the names a rule reads
//! ([`crate::read::fields`]) and the rules themselves read a `View`, so it sits below them, and the
//! evaluation above them.

use crate::customer::funnel::FunnelAttempt;
use crate::customer::profile::Profile;
use crate::customer::survey::NpsCategory;
use crate::models::churn::Drivers;
use crate::models::clv::ClvValues;
use crate::models::rfm::Rfm;
use crate::population::Population;
use crate::spec::EngineSpec;
use pulse_events::time::{day_of, Millis};
use std::sync::OnceLock;

/// A customer at one instant, as rules and churn read them.
#[derive(Debug)]
pub struct View<'a> {
    pub spec: &'a EngineSpec,
    pub population: &'a Population,
    pub profile: &'a Profile,
    pub now: Millis,
    clv: OnceLock<ClvValues>,
}

impl<'a> View<'a> {
    pub fn new(
        spec: &'a EngineSpec,
        population: &'a Population,
        profile: &'a Profile,
        now: Millis,
    ) -> Self {
        Self {
            spec,
            population,
            profile,
            now,
            clv: OnceLock::new(),
        }
    }

    pub fn today(&self) -> i64 {
        day_of(self.now)
    }

    pub fn rfm(&self) -> Option<Rfm> {
        if self.profile.purchases.days == 0 {
            return None;
        }
        let values = self
            .profile
            .purchases
            .rfm_values(self.now, self.spec.rfm_lookback_days);
        self.population.rfm.score(values)
    }

    pub fn p_alive(&self) -> f64 {
        self.spec.clv.p_alive(&self.profile.purchases.rft(self.now))
    }

    pub fn clv(&self) -> &ClvValues {
        self.clv.get_or_init(|| {
            let p = &self.profile.purchases;
            self.spec
                .clv
                .values(&p.rft(self.now), p.orders, p.revenue_cents)
        })
    }

    pub fn funnel(&self, funnel: usize) -> Option<&FunnelAttempt> {
        self.profile
            .funnels
            .iter()
            .find(|a| usize::from(a.funnel) == funnel)
    }

    /// The churn drivers at this instant.
    pub fn churn_drivers(&self) -> Drivers {
        let p = self.profile;
        let c = &self.spec.churn;
        let today = self.today();
        let first_day = day_of(p.first_seen);
        let inactive_days = (today - day_of(p.last_seen)).max(0) as f64;
        let inactivity = p
            .activity
            .cadence_days(first_day)
            .map(|cadence| (inactive_days / (cadence.max(1.0) * c.inactivity_saturation)).min(1.0));
        let detractor = p.surveys.nps.is_some_and(|a| {
            NpsCategory::of(a.score()) == NpsCategory::Detractor
                && self.now - a.at <= c.detractor_window
        });
        Drivers {
            p_dead: (p.purchases.days > 0).then(|| 1.0 - self.p_alive()),
            engagement_drop: p.activity.drop(today),
            inactivity,
            detractor: if detractor { 1.0 } else { 0.0 },
        }
    }
}
