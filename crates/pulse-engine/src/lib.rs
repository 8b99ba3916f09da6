//! Pulse's engine: per-customer profiles, event-time rolling windows, sessions, BG/NBD
//! statistics, funnels, the partition watermark and the timer index.
//!
//! Sans-I/O by design: no async runtime, no Kafka client, no clock. Time arrives as event time
//! in the records and as an explicit `now` where the caller's wall clock matters (idle
//! partitions), so the same input in the same order always gives the same state and outputs.

mod analytics_config;
mod churn;
pub mod clv;
mod config;
mod engagement;
mod engine;
mod evaluate;
mod fields;
mod funnel;
mod layout;
mod migration;
mod partition;
mod periods;
mod population;
mod profile;
mod report;
mod rfm;
mod rule;
mod segment;
mod session;
mod spec;
mod survey;
mod tally;
mod timer;
mod view;
mod window;

#[cfg(test)]
mod test_support;

pub use analytics_config::{
    ChurnConfig, ChurnWeights, ClvConfig, RfmConfig, SegmentConfig, SurveyConfig,
};
pub use churn::Level as ChurnLevel;
pub use config::{EngineConfig, FunnelConfig, HumanDuration, StepConfig, WindowConfig};
pub use engagement::Activity;
pub use engine::Engine;
pub use fields::FieldValue;
pub use funnel::FunnelAttempt;
pub use layout::{Layout, Renames};
pub use migration::Migration;
pub use partition::{ForwardSource, Partition, Source, FORWARDED, INPUTS};
pub use periods::{ActivePeriods, Period};
pub use population::{Cohorts, Population};
pub use profile::{Derived, Profile, PurchasePeriod, PurchaseStats};
pub use report::{
    funnel_summaries, report, CustomerReport, DriverReport, FunnelReport, FunnelSummary, Node,
    StepCount,
};
pub use rfm::{CutPoints, Rfm, RfmSegment, RfmValues};
pub use segment::SegmentSpec;
pub use session::Session;
pub use spec::{EngineSpec, Metric, SpecError};
pub use survey::{Answer, NpsCategory, PopulationScores, SurveyPopulation, Surveys};
pub use tally::Tally;
pub use timer::{TimerIndex, TimerKind};
pub use view::View;
pub use window::Windows;

pub use pulse_events::time::Millis;
