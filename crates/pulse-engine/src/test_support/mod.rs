//! Builders shared by the engine's unit tests, in two files so that tests low in the layout
//! can use the configurations without reaching the partition: [`build`] needs only
//! `config/`, [`drive`] runs a partition.

pub mod build;
pub mod drive;

pub use build::*;
pub use drive::*;
