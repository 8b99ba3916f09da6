//! Pulse's engine: per-customer profiles, event-time rolling windows, sessions, BG/NBD
//! statistics, funnels, the partition watermark and the timer index.
//!
//! Sans-I/O by design: no async runtime, no Kafka client, no clock. Time arrives as event time
//! in the records and as an explicit `now` where the caller's wall clock matters (idle
//! partitions), so the same input in the same order always gives the same state and outputs.
//!
//! # Layout
//!
//! The modules stand on floors, and a file imports only from floors below its own (within a
//! directory, in the one direction its `mod.rs` states). So each floor can be read, and
//! changed, knowing only what is under it, and nothing below moves when a floor above does.
//!
//! 0. `few.rs`: a short list held inline, for the lists the hot path builds per event. It
//!    imports nothing of the engine, so every floor may use it.
//! 1. `config/`: what operators write (`[engine]` and its analytics sections), as serde
//!    reads it. Plain data, so every other floor may read it.
//! 2. `models/`: pure statistics (lifetime value, churn score, RFM). They take numbers, never
//!    a profile, so they can be fitted and tested apart from the engine.
//! 3. `spec.rs`: [`EngineSpec`], the configuration compiled to numbers (milliseconds, metric
//!    indices, model parameters, funnel steps) and its [`Layout`]. No rules: they compile
//!    against it.
//! 4. `customer/`: one customer's state and how an event changes it: session, engagement,
//!    surveys, active periods, funnel attempts, windows, the [`Profile`] holding them all, and
//!    the [`Migration`] of a stored profile to another layout.
//! 5. `population.rs`, `tally.rs`, `timer.rs`, `input.rs`, `slots.rs`: what a partition
//!    keeps: population-wide sums and cut-points, live counts, pending timers, input
//!    frontiers, and the table of its customers' profiles.
//! 6. `read/`: the read model: [`View`] (a customer at one instant) and the field names a rule
//!    or a report reads off it.
//! 7. `rules/`: segment rules, compiled to typed trees (`fast.rs`) or run on the CEL
//!    interpreter (`cel.rs`).
//! 8. `evaluate.rs`: a changed profile to churn and segment outputs.
//! 9. `engine.rs`: [`Engine`], the spec and the rules compiled against it.
//! 10. `partition.rs`, `report.rs`: a partition's state and its hot path, and a customer's
//!     analytics as the query API shows them.
//!
mod config;
mod customer;
mod engine;
mod evaluate;
mod few;
mod input;
mod models;
mod partition;
mod population;
mod read;
mod report;
mod rules;
mod slots;
mod spec;
mod tally;
mod timer;

#[cfg(test)]
mod test_support;

pub use config::analytics::{
    ChurnConfig, ChurnWeights, ClvConfig, RfmConfig, SegmentConfig, SurveyConfig,
};
pub use config::engine::{EngineConfig, FunnelConfig, HumanDuration, StepConfig, WindowConfig};
pub use customer::engagement::Activity;
pub use customer::funnel::FunnelAttempt;
pub use customer::migration::Migration;
pub use customer::periods::{ActivePeriods, Period};
pub use customer::profile::{Derived, Profile, PurchasePeriod, PurchaseStats};
pub use customer::session::Session;
pub use customer::survey::{Answer, NpsCategory, PopulationScores, SurveyPopulation, Surveys};
pub use customer::window::Windows;
pub use engine::Engine;
pub use input::{ForwardSource, Source, FORWARDED, INPUTS};
pub use models::churn::Level as ChurnLevel;
pub use models::clv;
pub use models::rfm::{CutPoints, Rfm, RfmSegment, RfmValues};
pub use partition::Partition;
pub use population::{Cohorts, Population};
pub use read::fields::FieldValue;
pub use read::view::View;
pub use report::{
    funnel_summaries, report, CustomerReport, DriverReport, FunnelReport, FunnelSummary, Node,
    StepCount,
};
pub use rules::cel::SegmentSpec;
pub use spec::layout::{Layout, Renames};
pub use spec::{EngineSpec, Metric, SpecError};
pub use tally::Tally;
pub use timer::{TimerIndex, TimerKind};

pub use pulse_events::time::Millis;
