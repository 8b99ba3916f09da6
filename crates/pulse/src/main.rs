//! The `pulse` command line: a thin shell around the library.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use pulse::{produce, tail, Config};
use pulse_events::Encoding;
use pulse_loadgen::{Generator, GeneratorConfig};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pulse",
    version,
    about = "Real-time customer analytics over Kafka."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker. With no brokers configured, starts the embedded cluster and demo traffic.
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Generate synthetic customer traffic: to Kafka with --brokers, else NDJSON to --output.
    Generate(GenerateArgs),
    /// Print the records of an output or dead-letter topic readably.
    Tail {
        /// Topic name, or one of: milestones, segments, churn-risk, dead-letter.
        topic: String,
        #[arg(long)]
        brokers: Option<String>,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this many records.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Validate a configuration file (with the PULSE__ environment applied) and print it.
    CheckConfig { file: PathBuf },
    /// Fit the lifetime-value models (BG/NBD, Gamma-Gamma) by maximum likelihood and print an
    /// [engine.clv] fragment with standard errors.
    Fit(FitArgs),
}

#[derive(clap::Args)]
struct FitArgs {
    /// A transaction log: CSV with customer, timestamp and amount columns, or NDJSON ("-" for
    /// stdin). Without it, the live population is read from the changelog topic.
    input: Option<PathBuf>,
    /// Format of the log (default: by extension, NDJSON unless it ends in .csv).
    #[arg(long, value_enum)]
    format: Option<FitFormat>,
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

#[derive(Clone, Copy, ValueEnum)]
enum FitFormat {
    Csv,
    Ndjson,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Msgpack,
}

#[derive(clap::Args)]
struct GenerateArgs {
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

fn load(config: Option<&PathBuf>) -> Result<Config, pulse::ConfigError> {
    Config::load(config.map(PathBuf::as_path), std::env::vars())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `[kafka]` of the configuration with `--brokers` applied: the tools' clients are built from
/// it as the worker's are, `[kafka.librdkafka]` (TLS, SASL) included.
fn kafka_or_error(flag: Option<String>, cfg: &Config) -> anyhow::Result<pulse_kafka::KafkaConfig> {
    let mut kafka = cfg.kafka.clone();
    if let Some(b) = flag {
        kafka.brokers = b;
    }
    anyhow::ensure!(
        !kafka.brokers.is_empty(),
        "no brokers: pass --brokers (pulse run prints the embedded cluster's address) or set kafka.brokers"
    );
    Ok(kafka)
}

async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let cfg = load(args.config.as_ref())?;
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
    let mut g = GeneratorConfig::new(args.customers, args.seed, start, duration);
    g.skew = args.skew;
    g.bad_ratio = args.bad_ratio;
    anyhow::ensure!(
        args.sessions_per_day.is_finite() && args.sessions_per_day >= 0.0,
        "--sessions-per-day must be a non-negative number"
    );
    g.sessions_per_day = args.sessions_per_day;
    g.encoding = match args.format {
        Format::Json => Encoding::Json,
        Format::Msgpack => Encoding::Msgpack,
    };
    let records = Generator::new(g);
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
    let kafka = kafka_or_error(args.brokers, &cfg)?;
    let producer = produce::traffic_producer(&kafka)?;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let n = produce::produce_records(&producer, &kafka.topics, records, args.rate, stop).await?;
    eprintln!("produced {n} records to {}", kafka.brokers);
    Ok(())
}

fn fit(args: FitArgs) -> anyhow::Result<()> {
    use pulse::fit::{fit, read_log, summary_of_profiles, to_toml, LogFormat};
    use pulse_engine::clv::Clock;
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
                Some(FitFormat::Csv) => LogFormat::Csv,
                Some(FitFormat::Ndjson) => LogFormat::Ndjson,
                None if path.extension().is_some_and(|e| e == "csv") => LogFormat::Csv,
                None => LogFormat::Ndjson,
            };
            let input: Box<dyn std::io::BufRead> = if path.as_os_str() == "-" {
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
            let cfg = load(args.config.as_ref())?;
            let kafka = kafka_or_error(args.brokers, &cfg)?;
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

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => {
            let cfg = load(config.as_ref())?;
            pulse_telemetry::init_tracing(cfg.log.format, &cfg.log.level);
            pulse::run(cfg, shutdown_signal()).await?;
        }
        Command::Generate(args) => generate(args).await?,
        Command::Fit(args) => tokio::task::spawn_blocking(move || fit(args)).await??,
        Command::Tail {
            topic,
            brokers,
            config,
            from_beginning,
            count,
        } => {
            let cfg = load(config.as_ref())?;
            let t = &cfg.kafka.topics;
            let topic = match topic.as_str() {
                "milestones" => t.milestones.clone(),
                "segments" => t.segments.clone(),
                "churn-risk" => t.churn_risk.clone(),
                "dead-letter" => t.dead_letter.clone(),
                _ => topic,
            };
            let kafka = kafka_or_error(brokers, &cfg)?;
            tail::tail(&kafka, &topic, from_beginning, count).await?;
        }
        Command::CheckConfig { file } => {
            let mut cfg = load(Some(&file))?;
            println!("{}: OK", file.display());
            // Resolved as the worker would run it, secrets (passwords, keys, tokens) redacted.
            cfg.kafka = pulse_kafka::clients::redacted(&cfg.kafka);
            println!("{}", toml::to_string(&cfg).unwrap_or_default());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(real_main(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<pulse::ConfigError>().is_some() => {
            eprint!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
