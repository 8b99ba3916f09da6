//! The live one-line summary printed every second in the embedded demo: throughput, customers,
//! outputs by type and dead letters, read from the same metrics Prometheus scrapes.

use pulse_events::OutputKind;
use pulse_kafka::StateRegistry;
use pulse_telemetry::{counter_total, Metrics};
use std::fmt::Write;
use std::time::{Duration, Instant};
use tokio::sync::watch;

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints a line per second until `stop` turns true.
pub async fn print_every_second(
    metrics: Metrics,
    state: StateRegistry,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let inputs = counter_total(&metrics.input_records);
        let rate = inputs.saturating_sub(last);
        last = inputs;
        let mut outs = String::new();
        for k in OutputKind::ALL {
            let n = metrics.output_events.with_label_values(&[k.as_str()]).get();
            if n > 0 {
                let _ = write!(outs, " {k} {}", group(n));
            }
        }
        if outs.is_empty() {
            outs.push_str(" none yet");
        }
        let watermark = state
            .watermarks()
            .iter()
            .map(|(_, w)| *w)
            .min()
            .map(|w| pulse_events::time::format_rfc3339(w)[..16].to_owned())
            .unwrap_or_else(|| "-".into());
        println!(
            "[{:>4}s] in {:>6} ev/s ({} total) | customers {} | out:{} | dead letters {} | watermark {}",
            started.elapsed().as_secs(),
            group(rate),
            group(inputs),
            group(state.customers() as u64),
            outs,
            group(counter_total(&metrics.dead_letters)),
            watermark,
        );
    }
}
