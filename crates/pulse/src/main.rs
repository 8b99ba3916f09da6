//! The `pulse` command line: parses the arguments and runs the command (`pulse::commands`);
//! maps the outcome to an exit status (2 for a configuration error, 1 for any other failure).

use clap::{Parser, Subcommand};
use pulse::commands::{self, check_config, fit, generate, tail};
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
    Generate(generate::Args),
    /// Print the records of an output or dead-letter topic readably.
    Tail(tail::Args),
    /// Validate a configuration file (with the PULSE__ environment applied) and print it.
    CheckConfig(check_config::Args),
    /// Fit the lifetime-value models (BG/NBD, Gamma-Gamma) by maximum likelihood and print an
    /// [engine.clv] fragment with standard errors.
    Fit(fit::Args),
}

/// Ctrl-C, or SIGTERM (what Kubernetes and Docker send), starts a clean shutdown.
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

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => {
            let cfg = commands::load(config.as_ref())?;
            pulse_telemetry::init_tracing(cfg.log.format, &cfg.log.level);
            pulse::run(cfg, shutdown_signal()).await?;
        }
        Command::Generate(args) => generate::run(args).await?,
        Command::Fit(args) => tokio::task::spawn_blocking(move || fit::run(args)).await??,
        Command::Tail(args) => tail::run(args).await?,
        Command::CheckConfig(args) => check_config::run(args)?,
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
