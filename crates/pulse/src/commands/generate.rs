//! `pulse generate`: synthetic customer traffic, produced to Kafka or written as NDJSON.

use crate::produce;
use anyhow::Context;
use clap::ValueEnum;
use pulse_events::Encoding;
use pulse_loadgen::{Generator, GeneratorConfig};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Msgpack,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Produce to these brokers (default: kafka.brokers from the configuration).
    #[arg(long)]
    brokers: Option<String>,
    /// Write NDJSON here instead of producing ("-" for stdout).
    #[arg(long)]
    output: Option<PathBuf>,
    #[arg(long, default_value_t = 10_000)]
    customers: u32,
    /// Records per second; 0 produces as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// Simulated event-time span, e.g. 90d.
    #[arg(long, default_value = "30d")]
    duration: humantime::Duration,
    /// Event time of the start (RFC 3339); default: now minus the duration.
    #[arg(long)]
    start: Option<String>,
    /// Zipf exponent of per-customer activity (0 uniform).
    #[arg(long, default_value_t = 0.8)]
    skew: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Fraction of records made malformed.
    #[arg(long, default_value_t = 0.0)]
    bad_ratio: f64,
    /// Mean sessions per customer per day while engaged (purchases do not depend on it).
    #[arg(long, default_value_t = 0.6)]
    sessions_per_day: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = super::load(args.config.as_ref())?;
    let records = Generator::new(generator(&args)?);
    if let Some(path) = args.output {
        anyhow::ensure!(
            matches!(args.format, Format::Json),
            "NDJSON output needs --format json"
        );
        let out: Box<dyn Write> = if path.as_os_str() == "-" {
            Box::new(std::io::stdout().lock())
        } else {
            Box::new(
                std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?,
            )
        };
        let mut out = std::io::BufWriter::new(out);
        for r in records {
            let event: serde_json::Value =
                serde_json::from_slice(&r.value).unwrap_or(serde_json::Value::Null);
            let line = serde_json::json!({"topic": cfg.kafka.topics.input(r.topic), "key": r.key, "event": event});
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        return Ok(());
    }
    let kafka = super::kafka_with(args.brokers, &cfg)?;
    let producer = produce::traffic_producer(&kafka)?;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let n = produce::produce_records(&producer, &kafka.topics, records, args.rate, stop).await?;
    eprintln!("produced {n} records to {}", kafka.brokers);
    Ok(())
}

/// The generator's settings from the arguments, each checked.
fn generator(args: &Args) -> anyhow::Result<GeneratorConfig> {
    let duration = i64::try_from(args.duration.as_millis()).context("duration too long")?;
    let start = match &args.start {
        Some(s) => pulse_events::time::parse_rfc3339(s)
            .with_context(|| format!("--start `{s}` is not RFC 3339"))?,
        None => pulse_kafka::wall_clock_ms() - duration,
    };
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.bad_ratio),
        "--bad-ratio must be between 0 and 1"
    );
    anyhow::ensure!(
        args.sessions_per_day.is_finite() && args.sessions_per_day >= 0.0,
        "--sessions-per-day must be a non-negative number"
    );
    let mut g = GeneratorConfig::new(args.customers, args.seed, start, duration);
    g.skew = args.skew;
    g.bad_ratio = args.bad_ratio;
    g.sessions_per_day = args.sessions_per_day;
    g.encoding = match args.format {
        Format::Json => Encoding::Json,
        Format::Msgpack => Encoding::Msgpack,
    };
    Ok(g)
}
