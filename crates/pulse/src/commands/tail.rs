//! `pulse tail`: print the records of an output or dead-letter topic readably.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
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
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = super::load(args.config.as_ref())?;
    let t = &cfg.kafka.topics;
    let topic = match args.topic.as_str() {
        "milestones" => t.milestones.clone(),
        "segments" => t.segments.clone(),
        "churn-risk" => t.churn_risk.clone(),
        "dead-letter" => t.dead_letter.clone(),
        _ => args.topic,
    };
    let kafka = super::kafka_with(args.brokers, &cfg)?;
    crate::tail::tail(&kafka, &topic, args.from_beginning, args.count).await?;
    Ok(())
}
