//! The read model: a customer at one instant ([`view::View`]) and the fields rules and
//! reports read off it by name ([`fields`], which imports `view`, not the other way). Below the
//! rules, which read it, and above the customer and the population, which it reads.

pub mod fields;
pub mod view;
