//! Synthetic customer traffic with known ground truth. Customers are drawn from the BG/NBD
//! generative process (purchase rate λ ~ Gamma(r, α), dropout p ~ Beta(a, b)) with spend from
//! Gamma-Gamma, so fitting Pulse's models to this traffic can be checked against the true
//! parameters. Around purchases it adds sessions with heavy-tailed page views, feature use,
//! searches, an onboarding journey and checkout journeys with drop-off, and survey answers that
//! correlate with churn.
//!
//! Pure and deterministic: a seed fixes every record, and the caller decides where records go
//! and how fast (see `pulse generate`).

mod bad;
mod population;

pub use population::TrueParams;

use population::{Customer, Journey};
use pulse_events::time::{Millis, DAY, MINUTE, SECOND};
use pulse_events::{Encoding, ErrorKind, RawEvent, RawItem, RawTimestamp, TopicRole};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub customers: u32,
    pub seed: u64,
    /// Event time at which the simulation starts; customers are acquired from then on.
    pub start: Millis,
    /// Simulated event-time span; generation stops at `start + duration`.
    pub duration: Millis,
    /// Customers are acquired uniformly over `[start, start + acquisition)`.
    pub acquisition: Millis,
    /// Zipf exponent of per-customer activity: 0 is uniform, 1 is a heavy head.
    pub skew: f64,
    /// Mean sessions per customer per day while engaged.
    pub sessions_per_day: f64,
    /// Fraction of records replaced by malformed ones of every dead-letter kind.
    pub bad_ratio: f64,
    pub encoding: Encoding,
    pub params: TrueParams,
}

impl GeneratorConfig {
    pub fn new(customers: u32, seed: u64, start: Millis, duration: Millis) -> Self {
        Self {
            customers,
            seed,
            start,
            duration,
            acquisition: duration,
            skew: 0.8,
            sessions_per_day: 0.6,
            bad_ratio: 0.0,
            encoding: Encoding::Json,
            params: TrueParams::default(),
        }
    }
}

/// One record to produce: its topic, key (the customer id), event time and encoded value.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub topic: TopicRole,
    pub key: String,
    pub timestamp: Millis,
    pub value: Vec<u8>,
    pub encoding: Encoding,
    /// The dead-letter kind this record is built to trigger, if it is a bad one.
    pub expect: Option<ErrorKind>,
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    /// The customer's first visit: signup and onboarding.
    Acquire,
    Session,
    Purchase,
    /// A prepared event.
    Emit(Box<Pending>),
}

#[derive(Debug, Clone, PartialEq)]
struct Pending {
    topic: TopicRole,
    kind: &'static str,
    fields: Fields,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Fields {
    url: Option<String>,
    feature: Option<&'static str>,
    query: Option<&'static str>,
    order_id: Option<String>,
    amount: Option<f64>,
    survey: Option<&'static str>,
    score: Option<f64>,
    channel: Option<&'static str>,
    device: Option<&'static str>,
}

/// The record stream, in event-time order.
#[derive(Debug)]
pub struct Generator {
    cfg: GeneratorConfig,
    rng: StdRng,
    customers: Vec<Customer>,
    queue: BinaryHeap<Reverse<(Millis, u64, u32, ActionKey)>>,
    actions: Vec<Option<Action>>,
    free: Vec<u64>,
    seq: u64,
    emitted: u64,
    end: Millis,
}

/// Heap entries refer to actions by slot so the heap stays small and `Ord`.
type ActionKey = u64;

const FEATURES: [&str; 6] = [
    "export",
    "dashboards",
    "alerts",
    "sharing",
    "api",
    "reports",
];
const QUERIES: [&str; 5] = [
    "pricing",
    "shoes",
    "refund policy",
    "gift card",
    "size guide",
];
const PAGES: [&str; 6] = ["/", "/pricing", "/products", "/blog", "/docs", "/account"];
const CHANNELS: [&str; 4] = ["organic", "paid", "email", "referral"];
const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];

impl Generator {
    pub fn new(cfg: GeneratorConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let customers = population::draw(&cfg, &mut rng);
        let mut g = Self {
            end: cfg.start.saturating_add(cfg.duration),
            cfg,
            rng,
            queue: BinaryHeap::new(),
            actions: Vec::new(),
            free: Vec::new(),
            seq: 0,
            emitted: 0,
            customers,
        };
        for i in 0..g.customers.len() {
            let born = g.customers[i].born;
            g.schedule(born, i as u32, Action::Acquire);
        }
        g
    }

    /// The customers with their true latent parameters, for checking fits.
    pub fn customers(&self) -> impl Iterator<Item = (String, &Journey)> {
        self.customers
            .iter()
            .enumerate()
            .map(|(i, c)| (customer_id(i as u32), &c.journey))
    }

    fn schedule(&mut self, at: Millis, customer: u32, action: Action) {
        if at >= self.end {
            return;
        }
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                self.actions[s as usize] = Some(action);
                s
            }
            None => {
                self.actions.push(Some(action));
                (self.actions.len() - 1) as u64
            }
        };
        self.queue.push(Reverse((at, self.seq, customer, slot)));
    }

    fn emit_later(
        &mut self,
        at: Millis,
        c: u32,
        topic: TopicRole,
        kind: &'static str,
        fields: Fields,
    ) {
        self.schedule(
            at,
            c,
            Action::Emit(Box::new(Pending {
                topic,
                kind,
                fields,
            })),
        );
    }

    fn gap(&mut self, mean: Millis) -> Millis {
        let e = Exp::new(1.0 / mean as f64)
            .map(|d| d.sample(&mut self.rng))
            .unwrap_or(0.0);
        (e as Millis).max(SECOND)
    }

    fn next_session_at(&mut self, c: u32, now: Millis) -> Millis {
        let rate = self.cfg.sessions_per_day * self.customers[c as usize].activity;
        let rate = if self.customers[c as usize].journey.alive {
            rate
        } else {
            rate * 0.1
        };
        if rate <= 0.0 {
            return Millis::MAX;
        }
        now + self.gap((DAY as f64 / rate) as Millis)
    }

    /// Plans one session: page views with a heavy tail, feature use, searches, sometimes a
    /// checkout that stops short of paying, sometimes a survey answer.
    fn plan_session(&mut self, c: u32, at: Millis, signup: bool) {
        let mut t = at;
        let channel = CHANNELS[self.rng.random_range(0..CHANNELS.len())];
        let device = DEVICES[self.rng.random_range(0..DEVICES.len())];
        self.emit_later(
            t,
            c,
            TopicRole::Clickstream,
            "session_start",
            Fields {
                channel: Some(channel),
                device: Some(device),
                ..Fields::default()
            },
        );
        if signup {
            t += self.gap(20 * SECOND);
            self.emit_later(t, c, TopicRole::Clickstream, "signup", Fields::default());
        }
        // Pareto-like page views: most sessions are short, a few are very long.
        let u: f64 = self.rng.random_range(0.0001..1.0);
        let views = (u.powf(-1.0 / 1.6)).floor().min(200.0) as u32;
        for _ in 0..views {
            t += self.gap(40 * SECOND);
            let url = PAGES[self.rng.random_range(0..PAGES.len())].to_owned();
            self.emit_later(
                t,
                c,
                TopicRole::Clickstream,
                "page_view",
                Fields {
                    url: Some(url),
                    channel: Some(channel),
                    device: Some(device),
                    ..Fields::default()
                },
            );
        }
        let engaged = self.customers[c as usize].activity.min(3.0) / 3.0;
        if self
            .rng
            .random_bool(if signup { 0.6 } else { 0.2 + 0.3 * engaged })
        {
            t += self.gap(60 * SECOND);
            let f = FEATURES[self.rng.random_range(0..FEATURES.len())];
            self.emit_later(
                t,
                c,
                TopicRole::Clickstream,
                "feature_used",
                Fields {
                    feature: Some(f),
                    ..Fields::default()
                },
            );
        }
        if self.rng.random_bool(0.2) {
            t += self.gap(30 * SECOND);
            let q = QUERIES[self.rng.random_range(0..QUERIES.len())];
            self.emit_later(
                t,
                c,
                TopicRole::Clickstream,
                "search",
                Fields {
                    query: Some(q),
                    ..Fields::default()
                },
            );
        }
        if self.rng.random_bool(0.08) {
            // A checkout journey that is abandoned: no purchase follows.
            t += self.gap(30 * SECOND);
            self.emit_later(t, c, TopicRole::Clickstream, "view_cart", Fields::default());
            if self.rng.random_bool(0.5) {
                t += self.gap(30 * SECOND);
                self.emit_later(
                    t,
                    c,
                    TopicRole::Clickstream,
                    "begin_checkout",
                    Fields::default(),
                );
            }
        }
        if self.rng.random_bool(0.05) {
            t += self.gap(30 * SECOND);
            let score = self.customers[c as usize].nps_answer(&mut self.rng);
            self.emit_later(
                t,
                c,
                TopicRole::Surveys,
                "survey_response",
                Fields {
                    survey: Some("nps"),
                    score: Some(score),
                    ..Fields::default()
                },
            );
        }
        t += self.gap(30 * SECOND);
        self.emit_later(
            t,
            c,
            TopicRole::Clickstream,
            "session_end",
            Fields::default(),
        );
    }

    /// A purchase with its checkout steps, then the BG/NBD dropout coin and the next purchase.
    fn plan_purchase(&mut self, c: u32, at: Millis) {
        let mut t = at;
        self.emit_later(t, c, TopicRole::Clickstream, "view_cart", Fields::default());
        t += self.gap(30 * SECOND);
        self.emit_later(
            t,
            c,
            TopicRole::Clickstream,
            "begin_checkout",
            Fields::default(),
        );
        t += self.gap(60 * SECOND);
        let amount = self.customers[c as usize].spend(&mut self.rng);
        let n = self.customers[c as usize].journey.purchases;
        let order_id = format!("{}-o{n}", customer_id(c));
        self.emit_later(
            t,
            c,
            TopicRole::Purchases,
            "purchase",
            Fields {
                order_id: Some(order_id.clone()),
                amount: Some(amount),
                ..Fields::default()
            },
        );
        if self.rng.random_bool(0.1) {
            let score = self.customers[c as usize].csat_answer(&mut self.rng);
            let when = t + self.gap(5 * MINUTE);
            self.emit_later(
                when,
                c,
                TopicRole::Surveys,
                "survey_response",
                Fields {
                    survey: Some("csat"),
                    score: Some(score),
                    ..Fields::default()
                },
            );
        }
        if self.rng.random_bool(0.03) {
            let when = t + self.gap(2 * DAY);
            self.emit_later(
                when,
                c,
                TopicRole::Purchases,
                "refund",
                Fields {
                    order_id: Some(order_id),
                    amount: Some(amount),
                    ..Fields::default()
                },
            );
        }
        let cust = &mut self.customers[c as usize];
        cust.journey.purchases += 1;
        // BG/NBD: after every repeat purchase the customer drops out with probability p.
        if cust.journey.purchases > 1 && self.rng.random_bool(cust.journey.p.clamp(0.0, 1.0)) {
            cust.journey.alive = false;
            cust.journey.dropped_at = Some(t);
            return;
        }
        let next = t + population::exp_days(cust.journey.lambda, &mut self.rng);
        self.schedule(next, c, Action::Purchase);
    }

    fn encode(&mut self, c: u32, at: Millis, p: &Pending) -> Record {
        self.emitted += 1;
        let key = customer_id(c);
        let f = &p.fields;
        let raw = RawEvent {
            event_id: Some(Cow::Owned(format!("{key}-{}", self.emitted))),
            customer_id: Some(Cow::Borrowed(&key)),
            kind: Some(Cow::Borrowed(p.kind)),
            timestamp: Some(RawTimestamp::rfc3339(at)),
            url: f.url.as_deref().map(Cow::Borrowed),
            channel: f.channel.map(Cow::Borrowed),
            device: f.device.map(Cow::Borrowed),
            feature: f.feature.map(Cow::Borrowed),
            query: f.query.map(Cow::Borrowed),
            order_id: f.order_id.as_deref().map(Cow::Borrowed),
            amount: f.amount,
            currency: f.amount.map(|_| Cow::Borrowed("EUR")),
            items: (p.kind == "purchase").then(|| {
                vec![RawItem {
                    sku: Some(Cow::Borrowed("sku-1")),
                    category: Some(Cow::Borrowed("general")),
                    quantity: Some(1),
                    price: f.amount,
                }]
            }),
            survey: f.survey.map(Cow::Borrowed),
            score: f.score,
            ..RawEvent::default()
        };
        let value = encode_raw(&raw, self.cfg.encoding);
        let record = Record {
            topic: p.topic,
            key: key.clone(),
            timestamp: at,
            value,
            encoding: self.cfg.encoding,
            expect: None,
        };
        if self.cfg.bad_ratio > 0.0 && self.rng.random_bool(self.cfg.bad_ratio.min(1.0)) {
            return bad::corrupt(record, raw, self.emitted, &mut self.rng);
        }
        record
    }
}

fn customer_id(i: u32) -> String {
    format!("c-{i:07}")
}

/// Serialises a wire event in the given encoding (MessagePack with field names).
pub fn encode_raw(raw: &RawEvent<'_>, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Json => serde_json::to_vec(raw).unwrap_or_default(),
        Encoding::Msgpack => rmp_serde::to_vec_named(raw).unwrap_or_default(),
    }
}

impl Iterator for Generator {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            let Reverse((at, _, c, slot)) = self.queue.pop()?;
            let action = self.actions[slot as usize].take()?;
            self.free.push(slot);
            match action {
                Action::Emit(p) => return Some(self.encode(c, at, &p)),
                Action::Acquire => {
                    self.plan_session(c, at, true);
                    let j = &self.customers[c as usize].journey;
                    if let Some(first) = j.first_purchase_after {
                        self.schedule(at + first, c, Action::Purchase);
                    }
                    let next = self.next_session_at(c, at);
                    self.schedule(next, c, Action::Session);
                }
                Action::Session => {
                    self.plan_session(c, at, false);
                    let next = self.next_session_at(c, at);
                    self.schedule(next, c, Action::Session);
                }
                Action::Purchase => {
                    if self.customers[c as usize].journey.alive {
                        self.plan_purchase(c, at);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
