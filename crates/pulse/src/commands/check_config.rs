//! `pulse check-config`: validate a configuration file and print it as the worker resolves it.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = super::load(Some(&args.file))?;
    println!("{}: OK", args.file.display());
    // Resolved as the worker would run it, secrets (passwords, keys, tokens) redacted.
    cfg.kafka = pulse_kafka::clients::redacted(&cfg.kafka);
    println!("{}", toml::to_string(&cfg).unwrap_or_default());
    Ok(())
}
