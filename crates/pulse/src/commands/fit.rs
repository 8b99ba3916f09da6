//! `pulse fit`: the lifetime-value models fitted to a transaction log or to the live
//! population, printed as an `[engine.clv]` fragment (the fitting itself is `crate::fit`).

use crate::fit::{fit, read_log, summary_of_profiles, to_toml, LogFormat};
use anyhow::Context;
use clap::ValueEnum;
use pulse_engine::clv::Clock;
use std::io::BufRead;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Ndjson,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A transaction log: CSV with customer, timestamp and amount columns, or NDJSON ("-" for
    /// stdin). Without it, the live population is read from the changelog topic.
    input: Option<PathBuf>,
    /// Format of the log (default: by extension, NDJSON unless it ends in .csv).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// End of the observation period (RFC 3339); default: the newest transaction.
    #[arg(long)]
    until: Option<String>,
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Brokers of the changelog (default: kafka.brokers from the configuration).
    #[arg(long)]
    brokers: Option<String>,
    /// Write the fragment here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Count every transaction at its exact time instead of whole days with one purchase per
    /// day (the engine's convention; see docs/semantics.md).
    #[arg(long)]
    exact_time: bool,
}

/// Blocking: reads a file or the whole changelog.
pub fn run(args: Args) -> anyhow::Result<()> {
    let clock = if args.exact_time {
        Clock::Exact
    } else {
        Clock::Days
    };
    let until = match &args.until {
        Some(s) => Some(
            pulse_events::time::parse_rfc3339(s)
                .with_context(|| format!("--until `{s}` is not RFC 3339"))?,
        ),
        None => None,
    };
    let summary = match &args.input {
        Some(path) => {
            let format = match args.format {
                Some(Format::Csv) => LogFormat::Csv,
                Some(Format::Ndjson) => LogFormat::Ndjson,
                None if path.extension().is_some_and(|e| e == "csv") => LogFormat::Csv,
                None => LogFormat::Ndjson,
            };
            let input: Box<dyn BufRead> = if path.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                let f = std::fs::File::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                Box::new(std::io::BufReader::new(f))
            };
            read_log(input, format)
                .with_context(|| format!("reading {}", path.display()))?
                .summarise(until, clock)
        }
        None => {
            let cfg = super::load(args.config.as_ref())?;
            let kafka = super::kafka_with(args.brokers, &cfg)?;
            let client = pulse_kafka::clients::reader(&kafka);
            let topic = &cfg.kafka.topics.profiles;
            let parts = pulse_kafka::read_all(&client, topic)
                .with_context(|| format!("reading the changelog topic {topic}"))?;
            summary_of_profiles(parts.iter().flat_map(|c| c.profiles.values()))
        }
    };
    let fitted = fit(&summary, clock)?;
    let text = to_toml(&fitted);
    match args.output {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}
