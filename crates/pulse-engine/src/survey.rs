//! NPS and CSAT: each customer's last answer, and the population's rolling scores kept in daily
//! buckets per partition (the query API adds partitions up).

use crate::Millis;
use pulse_events::time::day_of;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One survey answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub score: u8,
    pub at: Millis,
}

/// NPS category of a 0–10 score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpsCategory {
    Promoter,
    Passive,
    Detractor,
}

impl NpsCategory {
    pub fn of(score: u8) -> Self {
        match score {
            9.. => Self::Promoter,
            7 | 8 => Self::Passive,
            _ => Self::Detractor,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promoter => "promoter",
            Self::Passive => "passive",
            Self::Detractor => "detractor",
        }
    }
}

/// A validated standard-survey score as stored: scores are integers in range, so rounding
/// and clamping only guard the conversion.
pub fn stored_score(score: f64) -> u8 {
    score.round().clamp(0.0, 255.0) as u8
}

/// CSAT counts a 4 or 5 on 1–5 as satisfied.
pub fn csat_satisfied(score: u8) -> bool {
    score >= 4
}

/// A customer's latest NPS and CSAT answers (by event time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Surveys {
    pub nps: Option<Answer>,
    pub csat: Option<Answer>,
}

impl Surveys {
    /// Records an answer if it is the customer's newest for that survey.
    pub fn record(slot: &mut Option<Answer>, score: u8, at: Millis) {
        if slot.is_none_or(|a| a.at <= at) {
            *slot = Some(Answer { score, at });
        }
    }
}

/// Answers of one day: NPS promoters, passives, detractors; CSAT satisfied, all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayAnswers {
    pub promoters: u32,
    pub passives: u32,
    pub detractors: u32,
    pub satisfied: u32,
    pub csat_answers: u32,
}

/// Rolling population scores over the last `window` days of event time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SurveyPopulation {
    days: BTreeMap<i64, DayAnswers>,
}

/// Population scores summed over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PopulationScores {
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    pub satisfied: u64,
    pub csat_answers: u64,
}

impl PopulationScores {
    /// %promoters − %detractors, in −100..=100; None without answers.
    pub fn nps(&self) -> Option<f64> {
        let n = self.promoters + self.passives + self.detractors;
        (n > 0).then(|| (self.promoters as f64 - self.detractors as f64) * 100.0 / n as f64)
    }

    /// Share of satisfied CSAT answers, in percent.
    pub fn csat(&self) -> Option<f64> {
        (self.csat_answers > 0).then(|| self.satisfied as f64 * 100.0 / self.csat_answers as f64)
    }

    pub fn add(&mut self, o: &PopulationScores) {
        self.promoters += o.promoters;
        self.passives += o.passives;
        self.detractors += o.detractors;
        self.satisfied += o.satisfied;
        self.csat_answers += o.csat_answers;
    }
}

impl SurveyPopulation {
    pub fn record_nps(&mut self, score: u8, at: Millis) {
        let d = self.days.entry(day_of(at)).or_default();
        match NpsCategory::of(score) {
            NpsCategory::Promoter => d.promoters += 1,
            NpsCategory::Passive => d.passives += 1,
            NpsCategory::Detractor => d.detractors += 1,
        }
    }

    pub fn record_csat(&mut self, score: u8, at: Millis) {
        let d = self.days.entry(day_of(at)).or_default();
        d.csat_answers += 1;
        d.satisfied += u32::from(csat_satisfied(score));
    }

    /// Drops days that left every window ending at or after `t`.
    pub fn expire(&mut self, window_days: i64, t: Millis) {
        let keep_from = day_of(t) - window_days + 1;
        self.days = self.days.split_off(&keep_from);
    }

    /// Scores over the `window_days` days ending with the day of `t`.
    pub fn scores(&self, window_days: i64, t: Millis) -> PopulationScores {
        let to = day_of(t);
        let mut s = PopulationScores::default();
        for d in self.days.range(to - window_days + 1..=to).map(|(_, d)| d) {
            s.promoters += u64::from(d.promoters);
            s.passives += u64::from(d.passives);
            s.detractors += u64::from(d.detractors);
            s.satisfied += u64::from(d.satisfied);
            s.csat_answers += u64::from(d.csat_answers);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_events::time::DAY;

    #[test]
    fn categories_follow_the_standard_bands() {
        let cats: Vec<_> = (0..=10).map(|s| NpsCategory::of(s).as_str()).collect();
        assert_eq!(&cats[..7], &["detractor"; 7]);
        assert_eq!(&cats[7..9], &["passive"; 2]);
        assert_eq!(&cats[9..], &["promoter"; 2]);
        assert!(!csat_satisfied(3) && csat_satisfied(4));
    }

    #[test]
    fn population_nps_rolls_over_the_window() {
        let t0 = 1_767_225_600_000;
        let mut p = SurveyPopulation::default();
        for s in [10, 9, 8, 3] {
            p.record_nps(s, t0);
        }
        p.record_nps(0, t0 + 40 * DAY);
        p.record_csat(5, t0);
        p.record_csat(2, t0);
        assert_eq!(p.scores(30, t0).nps(), Some(25.0));
        assert_eq!(p.scores(30, t0).csat(), Some(50.0));
        // 40 days later only the new detractor is inside the 30-day window.
        assert_eq!(p.scores(30, t0 + 40 * DAY).nps(), Some(-100.0));
        p.expire(30, t0 + 40 * DAY);
        assert_eq!(p.scores(60, t0 + 40 * DAY).nps(), Some(-100.0));
        assert_eq!(PopulationScores::default().nps(), None);
    }
}
