//! NPS and CSAT: each customer's last answer, and the population's rolling scores over those
//! latest answers, kept in daily buckets per partition (the query API adds partitions up).

use pulse_events::time::{day_of, Millis};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::num::NonZeroU8;

/// One survey answer. The score is held as one more than itself in a `NonZeroU8`, so that an
/// `Option<Answer>` needs no tag beside it: 16 bytes instead of 24, twice in every profile.
/// It is written as the score itself, as before.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    #[serde(serialize_with = "write_score", deserialize_with = "read_score")]
    score: NonZeroU8,
    pub at: Millis,
}

impl Answer {
    /// An answer of `score` (0–254; validated scores are 0–10) at `at`.
    pub fn new(score: u8, at: Millis) -> Self {
        Self {
            score: NonZeroU8::MIN.saturating_add(score),
            at,
        }
    }

    pub fn score(&self) -> u8 {
        self.score.get() - 1
    }
}

fn write_score<S: Serializer>(score: &NonZeroU8, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u8(score.get() - 1)
}

fn read_score<'de, D: Deserializer<'de>>(d: D) -> Result<NonZeroU8, D::Error> {
    Ok(NonZeroU8::MIN.saturating_add(u8::deserialize(d)?))
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Surveys {
    pub nps: Option<Answer>,
    pub csat: Option<Answer>,
}

impl Surveys {
    /// Records an answer if it is the customer's newest for that survey.
    pub fn record(slot: &mut Option<Answer>, score: u8, at: Millis) {
        if slot.is_none_or(|a| a.at <= at) {
            *slot = Some(Answer::new(score, at));
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

/// Rolling population scores: each customer's latest answer counts on the day it was given, so
/// the scores over the last `window` days are those of the customers who answered within them,
/// each once. A sum over profiles: the same whatever order answers arrive in.
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
    fn count_nps(&mut self, a: Answer, sign: i32) {
        let Some(d) = self.day(a.at, sign) else {
            return;
        };
        let n = match NpsCategory::of(a.score()) {
            NpsCategory::Promoter => &mut d.promoters,
            NpsCategory::Passive => &mut d.passives,
            NpsCategory::Detractor => &mut d.detractors,
        };
        *n = n.saturating_add_signed(sign);
        self.drop_if_empty(a.at);
    }

    /// An emptied day is dropped: the buckets are the same as if its answers never came.
    fn drop_if_empty(&mut self, at: Millis) {
        let day = day_of(at);
        if self.days.get(&day) == Some(&DayAnswers::default()) {
            self.days.remove(&day);
        }
    }

    fn count_csat(&mut self, a: Answer, sign: i32) {
        let Some(d) = self.day(a.at, sign) else {
            return;
        };
        d.csat_answers = d.csat_answers.saturating_add_signed(sign);
        if csat_satisfied(a.score()) {
            d.satisfied = d.satisfied.saturating_add_signed(sign);
        }
        self.drop_if_empty(a.at);
    }

    /// The bucket of `at`'s day; a removal from a day already expired finds none.
    fn day(&mut self, at: Millis, sign: i32) -> Option<&mut DayAnswers> {
        let day = day_of(at);
        if sign < 0 {
            self.days.get_mut(&day)
        } else {
            Some(self.days.entry(day).or_default())
        }
    }

    /// A customer's latest NPS answer changed from `old` to `new`.
    pub fn replace_nps(&mut self, old: Option<Answer>, new: Option<Answer>) {
        if old != new {
            old.into_iter().for_each(|a| self.count_nps(a, -1));
            new.into_iter().for_each(|a| self.count_nps(a, 1));
        }
    }

    /// A customer's latest CSAT answer changed from `old` to `new`.
    pub fn replace_csat(&mut self, old: Option<Answer>, new: Option<Answer>) {
        if old != new {
            old.into_iter().for_each(|a| self.count_csat(a, -1));
            new.into_iter().for_each(|a| self.count_csat(a, 1));
        }
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
    fn an_answer_is_written_as_its_score_and_needs_no_tag_when_optional() {
        let a = Answer::new(0, 7);
        assert_eq!(a.score(), 0);
        assert_eq!(
            serde_json::to_string(&Answer::new(10, 7)).unwrap(),
            r#"{"score":10,"at":7}"#
        );
        let back: Answer = serde_json::from_str(r#"{"score":0,"at":7}"#).unwrap();
        assert_eq!(back, a);
        let packed = rmp_serde::to_vec_named(&Some(Answer::new(9, 1))).unwrap();
        let read: Option<Answer> = rmp_serde::from_slice(&packed).unwrap();
        assert_eq!(read.map(|a| a.score()), Some(9));
        assert_eq!(std::mem::size_of::<Option<Answer>>(), 16);
    }

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
        // Four customers answer on day 0; the third answers again 40 days later.
        let answer = |score, at| Some(Answer::new(score, at));
        for s in [10, 9, 8, 3] {
            p.replace_nps(None, answer(s, t0));
        }
        p.replace_nps(answer(8, t0), answer(0, t0 + 40 * DAY));
        p.replace_csat(None, answer(5, t0));
        p.replace_csat(None, answer(2, t0));
        assert_eq!(p.scores(60, t0 + 40 * DAY).nps(), Some(0.0));
        assert_eq!(p.scores(30, t0).nps(), Some(100.0 / 3.0));
        assert_eq!(p.scores(30, t0).csat(), Some(50.0));
        // 40 days later only the new detractor is inside the 30-day window.
        assert_eq!(p.scores(30, t0 + 40 * DAY).nps(), Some(-100.0));
        p.expire(30, t0 + 40 * DAY);
        assert_eq!(p.scores(60, t0 + 40 * DAY).nps(), Some(-100.0));
        assert_eq!(PopulationScores::default().nps(), None);
    }
}
