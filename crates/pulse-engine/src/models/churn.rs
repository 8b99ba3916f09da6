//! Churn risk: a score in [0, 1] from four drivers, levels with hysteresis, and the drivers'
//! contributions for the output event.

use crate::config::analytics::ChurnConfig;
use crate::few::Few;
use pulse_events::time::Millis;
use serde::{Deserialize, Serialize};

/// Churn risk levels, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    Medium,
    High,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Low,
            1 => Self::Medium,
            _ => Self::High,
        }
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The drivers, in the order of [`Drivers::values`].
pub const DRIVERS: [&str; 4] = ["p_dead", "engagement_drop", "inactivity", "detractor"];

/// Each applicable driver's (name, value, contribution), as [`ChurnSpec::score`] gives them.
pub type Parts = Few<(&'static str, f64, f64), { DRIVERS.len() }>;

/// Each driver's value in [0, 1]; None where it does not apply to the customer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Drivers {
    /// 1 − P(alive), for customers who purchased.
    pub p_dead: Option<f64>,
    /// Recent activity against the customer's own baseline.
    pub engagement_drop: f64,
    /// Days inactive against the customer's usual gap, saturating.
    pub inactivity: Option<f64>,
    /// A detractor answer within the detractor window.
    pub detractor: f64,
}

/// The compiled churn settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnSpec {
    weights: [f64; 4],
    medium: f64,
    high: f64,
    hysteresis: f64,
    pub detractor_window: Millis,
    pub inactivity_saturation: f64,
}

impl ChurnSpec {
    pub fn new(c: &ChurnConfig) -> Self {
        let w = &c.weights;
        Self {
            weights: [w.p_dead, w.engagement_drop, w.inactivity, w.detractor],
            medium: c.medium,
            high: c.high,
            hysteresis: c.hysteresis,
            detractor_window: Millis::try_from(c.detractor_window.as_millis())
                .unwrap_or(Millis::MAX),
            inactivity_saturation: c.inactivity_saturation,
        }
    }

    /// The score and each applicable driver's (name, value, contribution = weight share ×
    /// value), largest contribution first. Weights of drivers that do not apply are spread over the rest.
    /// The parts are held inline: a score is taken on most events.
    pub fn score(&self, d: &Drivers) -> (f64, Parts) {
        let values = [
            d.p_dead,
            Some(d.engagement_drop),
            d.inactivity,
            Some(d.detractor),
        ];
        let total: f64 = values
            .iter()
            .zip(self.weights)
            .filter_map(|(v, w)| v.map(|_| w))
            .sum();
        if total <= 0.0 {
            return (0.0, Parts::default());
        }
        let mut parts: Parts = values
            .iter()
            .zip(self.weights)
            .zip(DRIVERS)
            .filter_map(|((v, w), name)| {
                v.map(|v| {
                    let v = v.clamp(0.0, 1.0);
                    (name, v, w / total * v)
                })
            })
            .collect();
        let score = parts.iter().map(|p| p.2).sum::<f64>().clamp(0.0, 1.0);
        parts.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(b.0)));
        (score, parts)
    }

    /// The level for `score` given the current level: rising takes the threshold, falling
    /// takes the threshold minus the hysteresis, so a score hovering at a threshold does not
    /// flap.
    pub fn level(&self, score: f64, current: Level) -> Level {
        let raw = if score >= self.high {
            Level::High
        } else if score >= self.medium {
            Level::Medium
        } else {
            Level::Low
        };
        if raw >= current {
            return raw;
        }
        // Falling: leave each level only when clearly below the threshold that raised it.
        let mut level = current;
        while level > Level::Low && score < self.threshold(level) - self.hysteresis {
            level = Level::from_u8(level.as_u8() - 1);
        }
        level
    }

    fn threshold(&self, level: Level) -> f64 {
        match level {
            Level::High => self.high,
            Level::Medium => self.medium,
            Level::Low => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ChurnSpec {
        ChurnSpec::new(&ChurnConfig::default())
    }

    #[test]
    fn levels_rise_at_thresholds_and_fall_with_hysteresis() {
        let s = spec();
        assert_eq!(s.level(0.39, Level::Low), Level::Low);
        assert_eq!(s.level(0.40, Level::Low), Level::Medium);
        assert_eq!(s.level(0.72, Level::Low), Level::High);
        // Hovering just under the threshold keeps the level.
        assert_eq!(s.level(0.38, Level::Medium), Level::Medium);
        assert_eq!(s.level(0.34, Level::Medium), Level::Low);
        assert_eq!(s.level(0.66, Level::High), Level::High);
        assert_eq!(s.level(0.5, Level::High), Level::Medium);
        assert_eq!(s.level(0.1, Level::High), Level::Low);
    }

    #[test]
    fn inapplicable_drivers_are_reweighted() {
        let s = spec();
        let all = Drivers {
            p_dead: Some(1.0),
            engagement_drop: 1.0,
            inactivity: Some(1.0),
            detractor: 1.0,
        };
        assert!((s.score(&all).0 - 1.0).abs() < 1e-12);
        let never_bought = Drivers {
            p_dead: None,
            ..all
        };
        let (score, parts) = s.score(&never_bought);
        assert!((score - 1.0).abs() < 1e-12);
        assert_eq!(parts.len(), 3);
        let quiet = Drivers {
            p_dead: Some(0.0),
            engagement_drop: 0.0,
            inactivity: Some(0.5),
            detractor: 0.0,
        };
        let (score, parts) = s.score(&quiet);
        assert!((score - 0.15).abs() < 1e-12, "{score}");
        assert_eq!(parts[0].0, "inactivity");
    }
}
