//! Validated input events: what the engine sees after decoding and validation.

use crate::time::Millis;
use std::borrow::Cow;
use std::fmt;

/// Which input topic a record came from; it decides which event types are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopicRole {
    Clickstream,
    Purchases,
    Surveys,
}

impl TopicRole {
    pub const ALL: [TopicRole; 3] = [Self::Clickstream, Self::Purchases, Self::Surveys];

    /// Position in [`TopicRole::ALL`], for per-input arrays.
    pub fn index(self) -> usize {
        match self {
            Self::Clickstream => 0,
            Self::Purchases => 1,
            Self::Surveys => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clickstream => "clickstream",
            Self::Purchases => "purchases",
            Self::Surveys => "surveys",
        }
    }
}

impl fmt::Display for TopicRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded and validated input event. Strings borrow from the record where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct InputEvent<'a> {
    pub event_id: Cow<'a, str>,
    pub customer_id: Cow<'a, str>,
    /// Event time.
    pub timestamp: Millis,
    pub body: EventBody<'a>,
}

/// The type-specific part of an input event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody<'a> {
    PageView {
        url: Cow<'a, str>,
        referrer: Option<Cow<'a, str>>,
        channel: Option<Cow<'a, str>>,
        device: Option<Cow<'a, str>>,
    },
    SessionStart,
    SessionEnd,
    FeatureUsed {
        feature: Cow<'a, str>,
    },
    Search {
        query: Cow<'a, str>,
    },
    Signup,
    /// A clickstream event with a name of the producer's choosing, counted under that name.
    Custom {
        name: Cow<'a, str>,
    },
    Purchase {
        order_id: Cow<'a, str>,
        amount: f64,
        currency: Cow<'a, str>,
        items: Vec<Item<'a>>,
    },
    Refund {
        order_id: Cow<'a, str>,
        amount: f64,
        currency: Cow<'a, str>,
    },
    SurveyResponse {
        survey: SurveyKind<'a>,
        score: f64,
        comment: Option<Cow<'a, str>>,
    },
}

impl EventBody<'_> {
    /// The event's `type` as sent (custom events report their own name).
    pub fn type_name(&self) -> &str {
        match self {
            Self::Custom { name } => name,
            other => other.type_label(),
        }
    }

    /// The event's type with every custom name collapsed to `custom`: a bounded set, safe
    /// as a metric label.
    pub fn type_label(&self) -> &'static str {
        match self {
            Self::PageView { .. } => "page_view",
            Self::SessionStart => "session_start",
            Self::SessionEnd => "session_end",
            Self::FeatureUsed { .. } => "feature_used",
            Self::Search { .. } => "search",
            Self::Signup => "signup",
            Self::Custom { .. } => "custom",
            Self::Purchase { .. } => "purchase",
            Self::Refund { .. } => "refund",
            Self::SurveyResponse { .. } => "survey_response",
        }
    }
}

/// A validated purchase line item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item<'a> {
    pub sku: Cow<'a, str>,
    pub category: Option<Cow<'a, str>>,
    pub quantity: u32,
    pub price: f64,
}

/// The survey a response answers; the standard ones have fixed score ranges.
#[derive(Debug, Clone, PartialEq)]
pub enum SurveyKind<'a> {
    /// Net Promoter Score, 0–10.
    Nps,
    /// Customer satisfaction, 1–5.
    Csat,
    /// Customer effort score, 1–7.
    Ces,
    Custom(Cow<'a, str>),
}

impl<'a> SurveyKind<'a> {
    pub fn parse(name: Cow<'a, str>) -> Self {
        match &*name {
            "nps" => Self::Nps,
            "csat" => Self::Csat,
            "ces" => Self::Ces,
            _ => Self::Custom(name),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Nps => "nps",
            Self::Csat => "csat",
            Self::Ces => "ces",
            Self::Custom(n) => n,
        }
    }

    /// The inclusive integer score range of a standard survey; custom surveys take any finite
    /// score.
    pub fn range(&self) -> Option<(f64, f64)> {
        match self {
            Self::Nps => Some((0.0, 10.0)),
            Self::Csat => Some((1.0, 5.0)),
            Self::Ces => Some((1.0, 7.0)),
            Self::Custom(_) => None,
        }
    }
}
