//! The Pulse application: configuration loading and the wiring of the engine, the Kafka worker,
//! the HTTP server and, with no brokers configured, the embedded cluster and demo traffic.
//! `main.rs` is a thin command-line shell around [`run`] and the other [`commands`].

pub mod api;
mod app;
pub mod commands;
pub mod config;
pub mod fit;
pub mod http;
mod kept;
pub mod owners;
pub mod produce;
pub mod read;
mod status;
mod summary;
pub mod tail;

pub use app::{run, RunError, Running};
pub use config::{Config, ConfigError};
