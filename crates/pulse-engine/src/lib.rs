//! Pulse's engine: per-customer profiles, event-time rolling windows, sessions, BG/NBD
//! statistics, funnels, the partition watermark and the timer index.
//!
//! Sans-I/O by design: no async runtime, no Kafka client, no clock. Time arrives as event time
//! in the records and as an explicit `now` where the caller's wall clock matters (idle
//! partitions), so the same input in the same order always gives the same state and outputs.

pub mod clv;
mod config;
mod funnel;
mod partition;
mod profile;
mod session;
mod spec;
mod timer;
mod window;

#[cfg(test)]
mod test_support;

pub use config::{EngineConfig, FunnelConfig, HumanDuration, StepConfig, WindowConfig};
pub use funnel::FunnelAttempt;
pub use partition::{Partition, Source, FORWARDED, INPUTS};
pub use profile::{Profile, PurchaseStats};
pub use session::Session;
pub use spec::{EngineSpec, Metric, SpecError};
pub use timer::{TimerIndex, TimerKind};
pub use window::Windows;

pub use pulse_events::time::Millis;
