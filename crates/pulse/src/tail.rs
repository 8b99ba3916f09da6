//! `pulse tail`: follow an output or dead-letter topic and print each record readably.

use pulse_events::{dead_letter, Encoding, OutputData, OutputEvent};
use pulse_kafka::clients::Guard;
use pulse_kafka::{header, KafkaConfig, KafkaError};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::Message;
use std::time::Duration;

fn human_ms(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// One readable line for an output event.
pub fn render(o: &OutputEvent) -> String {
    let detail = match &o.data {
        OutputData::Milestone {
            funnel,
            attempt,
            step_index,
            step,
            steps_total,
            since_entry_ms,
        } => {
            format!(
                "{funnel}#{attempt} step {step_index}/{steps_total} {step} (+{})",
                human_ms(*since_entry_ms)
            )
        }
        OutputData::ChurnRisk {
            level,
            previous_level,
            score,
            drivers,
        } => {
            let top: Vec<String> = drivers
                .iter()
                .map(|d| format!("{} {:.2}", d.name, d.contribution))
                .collect();
            format!(
                "{previous_level} -> {level} (score {score:.2}; {})",
                top.join(", ")
            )
        }
        OutputData::Converted {
            funnel,
            attempt,
            duration_ms,
        } => {
            format!("{funnel}#{attempt} converted in {}", human_ms(*duration_ms))
        }
        OutputData::Abandoned {
            funnel,
            attempt,
            reason,
            last_step_index,
            since_entry_ms,
        } => format!(
            "{funnel}#{attempt} {reason:?} after step {last_step_index} (+{})",
            human_ms(*since_entry_ms)
        ),
        OutputData::Segment { segment } => segment.to_string(),
    };
    format!(
        "{}  {:<18}  {:<12}  {detail}",
        pulse_events::time::format_rfc3339(o.at),
        o.kind.as_str(),
        o.customer_id
    )
}

fn render_message(m: &BorrowedMessage<'_>) -> String {
    let payload = m.payload().unwrap_or_default();
    if let Some(kind) = header(m, dead_letter::ERROR_KIND) {
        return format!(
            "dead letter  {kind:<19} {}[{}]@{}  {}",
            header(m, dead_letter::SOURCE_TOPIC).unwrap_or("?"),
            header(m, dead_letter::SOURCE_PARTITION).unwrap_or("?"),
            header(m, dead_letter::SOURCE_OFFSET).unwrap_or("?"),
            header(m, dead_letter::ERROR_MESSAGE).unwrap_or(""),
        );
    }
    let encoding = header(m, "content-type")
        .and_then(|c| Encoding::from_content_type(c.as_bytes()))
        .unwrap_or(Encoding::Json);
    match OutputEvent::decode(payload, encoding) {
        Ok(o) => render(&o),
        Err(_) => format!(
            "{} bytes: {}",
            payload.len(),
            String::from_utf8_lossy(&payload[..payload.len().min(200)])
        ),
    }
}

/// Follows `topic`, printing up to `limit` records (all if `None`). Stops with the reason if
/// the brokers refuse the client (credentials, TLS).
pub async fn tail(
    kafka: &KafkaConfig,
    topic: &str,
    from_beginning: bool,
    limit: Option<u64>,
) -> Result<(), KafkaError> {
    let group = format!(
        "pulse-tail-{}-{}",
        std::process::id(),
        pulse_kafka::wall_clock_ms()
    );
    let client = |source| KafkaError::Client {
        role: "tail consumer",
        source,
    };
    let config = pulse_kafka::clients::tail(kafka, &group, from_beginning);
    let guard = Guard::for_client(&config);
    let fatal = guard.fatal.clone();
    let consumer: StreamConsumer<Guard> = config.create_with_context(guard).map_err(client)?;
    consumer.subscribe(&[topic]).map_err(client)?;
    let mut seen = 0u64;
    let mut check = tokio::time::interval(Duration::from_millis(500));
    while limit.is_none_or(|l| seen < l) {
        tokio::select! {
            received = consumer.recv() => match received {
                Ok(m) => {
                    println!("{}", render_message(&m));
                    seen += 1;
                }
                Err(e) => {
                    eprintln!("fetch failed: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            _ = check.tick() => {
                if let Some(e) = fatal.take() {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
