//! The subcommands other than `run`, each its arguments and its body: `main.rs` only parses
//! the command line and dispatches here.

pub mod check_config;
pub mod fit;
pub mod generate;
pub mod tail;

use crate::{Config, ConfigError};
use pulse_kafka::KafkaConfig;
use std::path::PathBuf;

/// The configuration from `--config` (or the shipped default), with the `PULSE__` environment
/// applied, as the worker loads it.
pub fn load(config: Option<&PathBuf>) -> Result<Config, ConfigError> {
    Config::load(config.map(PathBuf::as_path), std::env::vars())
}

/// `[kafka]` of the configuration with `--brokers` applied: the tools' clients are built from
/// it as the worker's are, `[kafka.librdkafka]` (TLS, SASL) included.
fn kafka_with(brokers: Option<String>, cfg: &Config) -> anyhow::Result<KafkaConfig> {
    let mut kafka = cfg.kafka.clone();
    if let Some(b) = brokers {
        kafka.brokers = b;
    }
    anyhow::ensure!(
        !kafka.brokers.is_empty(),
        "no brokers: pass --brokers (pulse run prints the embedded cluster's address) or set kafka.brokers"
    );
    Ok(kafka)
}
