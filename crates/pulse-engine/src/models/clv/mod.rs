//! Customer lifetime value: the BG/NBD model of purchase counts and dropout, the Gamma-Gamma
//! model of spend, and their maximum-likelihood fits.

mod bgnbd;
mod customer;
mod fit;
mod gamma_gamma;
mod special;
mod summary;

pub use bgnbd::{BgNbd, Rft};
pub use customer::{ClvSpec, ClvValues};
pub use fit::{fit_bgnbd, fit_gamma_gamma, nelder_mead};
pub use gamma_gamma::GammaGamma;
pub use special::{hyp2f1, ln_beta, ln_gamma};
pub use summary::{
    bgnbd_standard_errors, gamma_gamma_standard_errors, standard_errors, Clock, Summary,
    Transactions,
};
