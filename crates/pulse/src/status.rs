//! The built-in status page at `/`: server-rendered HTML with no scripts and no build step,
//! refreshed by the browser every five seconds. Worker state, partitions with their lag and
//! watermark, throughput and latency, segment populations, funnel conversion bars and a
//! customer lookup (a plain GET form, answered on the same page).

use crate::read::{self, ApiState};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use prometheus::core::Collector;
use pulse_events::time::format_rfc3339;
use pulse_telemetry::counter_total;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Input and output totals at the previous render, for rates over the refresh interval.
#[derive(Debug, Default)]
pub struct Rates {
    last: Option<(Instant, u64, u64)>,
    per_second: (f64, f64),
}

type SharedRates = Arc<Mutex<Rates>>;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Sample values of a gauge vector by label set.
fn gauge_values(c: &impl Collector) -> Vec<(BTreeMap<String, String>, f64)> {
    c.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| {
            let labels = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_owned(), l.value().to_owned()))
                .collect();
            (labels, m.get_gauge().get_value())
        })
        .collect()
}

fn bar(fraction: f64) -> String {
    let pct = (fraction.clamp(0.0, 1.0) * 100.0).round();
    format!("<span class=\"bar\"><span style=\"width:{pct}%\"></span></span>")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}\
h1{margin-bottom:0}table{border-collapse:collapse;margin:.5em 0 1.5em}\
td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}\
.bar{display:inline-block;width:12em;height:.8em;background:#eee}\
.bar span{display:block;height:100%;background:#3a7}\
.ready{color:#2a5}.not-ready{color:#c33}pre{background:#f6f6f6;padding:1em;overflow:auto}";

/// The page at `/`, with its own record of the previous render's totals.
pub fn routes(s: ApiState) -> Router {
    Router::new()
        .route("/", get(page))
        .with_state((s, SharedRates::default()))
}

async fn page(
    State((s, rates)): State<(ApiState, SharedRates)>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Html<String> {
    // A query that does not decode is a page without a lookup, not an error page.
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let lookup = q.get("customer").map(|c| c.trim().to_owned());
    let reader = s.clone();
    let (funnels, report) = tokio::task::spawn_blocking(move || {
        let report = lookup
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| (c.to_owned(), read::customer(&reader.state, c)));
        (read::kept_funnels(&reader), report)
    })
    .await
    .unwrap_or_default();
    Html(render(&s, &rates, &funnels, report))
}

fn render(
    s: &ApiState,
    rates: &SharedRates,
    funnels: &[pulse_engine::FunnelSummary],
    report: Option<(String, Option<pulse_engine::CustomerReport>)>,
) -> String {
    let m = &s.metrics;
    let ready = s.health.is_ready();
    let (inputs, outputs) = (
        counter_total(&m.input_records),
        counter_total(&m.output_events),
    );
    let (in_rate, out_rate) = {
        let mut r = rates.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some((at, i, o)) = r.last {
            let secs = now.duration_since(at).as_secs_f64();
            if secs >= 1.0 {
                r.per_second = (
                    inputs.saturating_sub(i) as f64 / secs,
                    outputs.saturating_sub(o) as f64 / secs,
                );
                r.last = Some((now, inputs, outputs));
            }
        } else {
            r.last = Some((now, inputs, outputs));
        }
        r.per_second
    };
    let tally = s.state.tally();

    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>Pulse</title><style>{STYLE}</style></head><body>"
    );
    let (class, word) = if ready {
        ("ready", "ready")
    } else {
        ("not-ready", "not ready")
    };
    let _ = write!(
        h,
        "<h1>Pulse</h1><p id=\"state\">Worker <b class=\"{class}\">{word}</b> · {} customers · {} partitions held</p>",
        tally.customers,
        s.state.partitions().len()
    );

    // Throughput and latency.
    let latency: BTreeMap<String, f64> = gauge_values(m.latency.exact())
        .into_iter()
        .filter_map(|(l, v)| Some((l.get("percentile")?.clone(), v)))
        .collect();
    let ms = |p: &str| {
        latency
            .get(p)
            .map_or("–".to_owned(), |v| format!("{:.1} ms", v * 1e3))
    };
    let _ = write!(
        h,
        "<h2>Throughput and latency</h2><table id=\"throughput\">\
         <tr><th>input</th><td>{in_rate:.0} records/s</td><td>{inputs} in all</td></tr>\
         <tr><th>output</th><td>{out_rate:.0} events/s</td><td>{outputs} in all</td></tr>\
         <tr><th>event → output</th><td>p50 {}</td><td>p99 {} · p99.9 {}</td></tr></table>",
        ms("50"),
        ms("99"),
        ms("99.9")
    );

    // Partitions: lag summed over the input topics, and the watermark.
    let mut lag: BTreeMap<i32, f64> = BTreeMap::new();
    for (labels, v) in gauge_values(&m.consumer_lag) {
        if let Some(p) = labels.get("partition").and_then(|p| p.parse().ok()) {
            *lag.entry(p).or_default() += v;
        }
    }
    let watermarks: BTreeMap<i32, i64> = s.state.watermarks().into_iter().collect();
    h.push_str("<h2>Partitions</h2><table id=\"partitions\"><tr><th>partition</th><th>lag (records)</th><th>watermark</th></tr>");
    for p in s.state.partitions() {
        let _ = write!(
            h,
            "<tr><td>{p}</td><td>{}</td><td>{}</td></tr>",
            lag.get(&p).map_or("–".to_owned(), |l| format!("{l:.0}")),
            watermarks
                .get(&p)
                .map_or("–".to_owned(), |w| format_rfc3339(*w))
        );
    }
    h.push_str("</table>");

    // Segments.
    let most = tally.segments.iter().copied().max().unwrap_or(0).max(1);
    h.push_str("<h2>Segments</h2><table id=\"segments\"><tr><th>segment</th><th>members</th><th></th></tr>");
    for (name, n) in s.engine.spec.segment_names().zip(&tally.segments) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{n}</td><td>{}</td></tr>",
            escape(name),
            bar(*n as f64 / most as f64)
        );
    }
    h.push_str("</table>");

    // Funnels: each step as a share of the customers who started.
    h.push_str("<h2>Funnels</h2><table id=\"funnels\">");
    for f in funnels {
        let _ = write!(
            h,
            "<tr><th colspan=\"3\">{} · {:.1}% converted of {} started</th></tr>",
            escape(&f.funnel),
            f.conversion * 100.0,
            f.started
        );
        for step in &f.steps {
            let share = step.reached as f64 / f.started.max(1) as f64;
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&step.step),
                step.reached,
                bar(share)
            );
        }
    }
    h.push_str("</table>");

    // Customer lookup.
    let value = report.as_ref().map_or(String::new(), |(c, _)| escape(c));
    let _ = write!(
        h,
        "<h2>Customer lookup</h2><form id=\"lookup\" method=\"get\" action=\"/\">\
         <input name=\"customer\" placeholder=\"customer id\" value=\"{value}\"> <button type=\"submit\">Look up</button></form>"
    );
    match report {
        Some((_, Some(r))) => {
            let json = serde_json::to_string_pretty(&r).unwrap_or_default();
            let _ = write!(
                h,
                "<div id=\"customer\"><p>Segments: <b>{}</b> · churn risk <b>{}</b> · \
                 <a href=\"/v1/customers/{}\">JSON</a></p><pre>{}</pre></div>",
                escape(&r.segments.join(", ")),
                churn_level(&r),
                escape(&r.customer_id),
                escape(&json)
            );
        }
        Some((c, None)) => {
            let _ = write!(
                h,
                "<p id=\"customer\">No customer {} on this worker.</p>",
                escape(&c)
            );
        }
        None => {}
    }
    h.push_str("<p><a href=\"/metrics\">metrics</a> · <a href=\"/v1/segments\">segments</a> · <a href=\"/v1/funnels\">funnels</a> · <a href=\"/v1/cohorts\">cohorts</a></p></body></html>");
    h
}

fn churn_level(r: &pulse_engine::CustomerReport) -> String {
    use pulse_engine::{FieldValue, Node};
    let level = match r.fields.get("churn") {
        Some(Node::Group(g)) => match g.get("level") {
            Some(Node::Value(FieldValue::Str(s))) => *s,
            _ => "unknown",
        },
        _ => "unknown",
    };
    level.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
