//! One customer's state and how an event changes it. Within this floor, imports go one way:
//!
//! - `session`, `engagement`, `survey`, `periods` and `funnel` are the parts, and know none of
//!   the others;
//! - `window` keeps the rolling counters, by the spec's metrics;
//! - `profile` holds them all and applies an event to them;
//! - `migration` carries a stored profile to another configuration's layout.

pub mod engagement;
pub mod funnel;
pub mod migration;
pub mod periods;
pub mod profile;
pub mod session;
pub mod survey;
pub mod window;
