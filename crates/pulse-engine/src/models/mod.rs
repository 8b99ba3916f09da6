//! Pure statistics, fed numbers rather than profiles so that they sit below a customer's
//! state and can be fitted and tested without an engine: lifetime value (BG/NBD and
//! Gamma-Gamma), the churn score, RFM scoring.

pub mod churn;
pub mod clv;
pub mod rfm;
