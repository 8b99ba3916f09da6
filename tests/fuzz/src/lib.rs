//! What the fuzz targets share: the shipped configuration, the framing that packs several
//! records into one fuzz input, and the checks run on whatever the records built.
//!
//! A target fails on a panic, an arithmetic overflow or a debug assertion anywhere below it,
//! and on a state that does not read back from the changelog records it writes.

use pulse_engine::{report, Engine, Partition, Source};
use pulse_events::{decode, peek, Encoding, Limits, TopicRole};
use pulse_kafka::{encode_checkpoint, encode_layout, encode_profile, BatchTag, Checkpoint};
use pulse_kafka::{Contents, KafkaError, Restorer};
use std::sync::{Arc, LazyLock};

/// The engine compiled from `config/default.toml`, every analytic on.
pub static ENGINE: LazyLock<Arc<Engine>> = LazyLock::new(|| {
    let config = pulse::Config::embedded_default();
    Arc::new(Engine::compile(&config.engine).expect("the shipped configuration compiles"))
});

/// Input records per fuzz input: enough for sessions, funnels and segments to develop, few
/// enough for thousands of executions a second.
const MAX_RECORDS: usize = 32;

/// Reads a two-byte little-endian length, then that many bytes (fewer at the end).
fn chunk<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    if data.len() < 2 {
        return None;
    }
    let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let rest = &data[2..];
    let (bytes, left) = rest.split_at(len.min(rest.len()));
    *data = left;
    Some(bytes)
}

/// Input records framed as `[role byte][u16 LE length][value]`, repeated.
pub fn input_records(mut data: &[u8]) -> Vec<(TopicRole, &[u8])> {
    let mut out = Vec::new();
    while let Some((&role, rest)) = data.split_first() {
        data = rest;
        let Some(value) = chunk(&mut data) else { break };
        out.push((ROLES[usize::from(role) % ROLES.len()], value));
    }
    out
}

/// Frames one input record as [`input_records`] reads it.
pub fn frame_input(role: TopicRole, value: &[u8], out: &mut Vec<u8>) {
    out.push(role.index() as u8);
    frame(value, out);
}

fn frame(bytes: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(bytes.len()).expect("a seed record under 64 KiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

const ROLES: [TopicRole; 3] = [
    TopicRole::Clickstream,
    TopicRole::Purchases,
    TopicRole::Surveys,
];

/// Applies the records to one partition under the shipped configuration, serialises every
/// output, reads a few profiles as the query API does, and checks that the changelog records of
/// the state restore it equal.
pub fn apply_input(data: &[u8], encoding: Encoding) {
    let mut partition = Partition::new(ENGINE.clone());
    let mut outputs = Vec::new();
    let now = apply_framed(&mut partition, data, encoding, MAX_RECORDS, &mut outputs);
    for output in &outputs {
        serde_json::to_vec(output).expect("an output serialises");
    }
    // Reading is the same code for every customer: a few are enough, and keep the target fast.
    read_profiles(&partition, now, 4);
    round_trip(&mut partition);
}

/// Applies up to `max` framed records to `partition` as a task does: peek, then decode and
/// validate, then apply what is valid. The wall clock follows the records, so none is refused
/// for being ahead of it; returns where it ended.
fn apply_framed(
    partition: &mut Partition,
    data: &[u8],
    encoding: Encoding,
    max: usize,
    outputs: &mut Vec<pulse_events::OutputEvent>,
) -> i64 {
    let limits = Limits::default();
    let mut now = i64::MIN;
    for (offset, (role, value)) in input_records(data).into_iter().take(max).enumerate() {
        let _ = peek(value, encoding);
        let Ok(event) = decode(value, encoding, role, &limits) else {
            continue;
        };
        now = now.max(event.timestamp);
        let src = Source {
            role,
            forwarded: false,
            topic: role.as_str(),
            partition: 0,
            offset: offset as i64,
        };
        let _ = partition.apply(&event, &src, now, outputs);
    }
    now
}

/// Up to `n` profiles as `GET /v1/customers/{id}` renders them.
pub fn read_profiles(partition: &Partition, now: i64, n: usize) {
    for (customer, profile) in partition.profiles().take(n) {
        let r = report(
            partition.spec(),
            partition.population(),
            customer,
            profile,
            now,
        );
        serde_json::to_vec(&r).expect("a report serialises");
    }
}

/// Writes the partition's changed profiles and a checkpoint as changelog records, restores
/// them, and compares.
fn round_trip(partition: &mut Partition) {
    let spec = &ENGINE.spec;
    let tag = BatchTag {
        generation: 1,
        batch: 1,
        layout: spec.layout.id(),
        ..BatchTag::default()
    };
    let mut log = vec![encode_layout(&spec.layout)];
    partition
        .drain_changes(|customer, profile| log.push(encode_profile(&tag, customer, profile, &[])));
    log.push(encode_checkpoint(&Checkpoint {
        tag,
        frontiers: partition.frontiers(),
        rfm: partition.population().rfm.clone(),
        next_refresh: partition.population().next_refresh,
        ..Checkpoint::default()
    }));
    let mut restorer = Restorer::new(0);
    for (offset, (key, value)) in log.iter().enumerate() {
        restorer
            .push(offset as i64, key, Some(value))
            .expect("a record just written reads back");
    }
    let contents = restorer
        .finish(Some(spec))
        .expect("a log just written restores");
    assert_eq!(contents.profiles.len(), partition.customers());
    for (customer, profile) in partition.profiles() {
        assert!(
            contents.profiles.get(customer) == Some(profile),
            "customer {customer:?} restores unequal"
        );
    }
}

/// Changelog records framed as `[flags][u16 LE key length][key][u16 LE value length][value]`,
/// repeated; flag bit 0 makes the record a tombstone (no value).
pub fn changelog_records(mut data: &[u8]) -> Vec<(&[u8], Option<&[u8]>)> {
    let mut out = Vec::new();
    while let Some((&flags, rest)) = data.split_first() {
        data = rest;
        let Some(key) = chunk(&mut data) else { break };
        let value = chunk(&mut data).unwrap_or_default();
        out.push((key, (flags & 1 == 0).then_some(value)));
    }
    out
}

/// Frames one changelog record as [`changelog_records`] reads it.
pub fn frame_changelog(key: &[u8], value: Option<&[u8]>, out: &mut Vec<u8>) {
    out.push(u8::from(value.is_none()));
    frame(key, out);
    frame(value.unwrap_or_default(), out);
}

/// Restores a partition from changelog records as a worker does (the first byte picks
/// `on_undecodable_changelog`: bit 0 set drops what cannot be read), then lets a year of event
/// time pass so every restored timer fires, and reads every profile.
pub fn restore(data: &[u8]) {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let mut restorer = Restorer::new(0);
    if mode & 1 == 1 {
        restorer = restorer.dropping_undecodable();
    }
    for (offset, (key, value)) in changelog_records(data).into_iter().enumerate() {
        match restorer.push(offset as i64, key, value) {
            Ok(()) => {}
            Err(KafkaError::Changelog { .. }) => return,
            Err(e) => panic!("a changelog record fails other than as undecodable: {e}"),
        }
    }
    let contents: Contents = match restorer.finish(Some(&ENGINE.spec)) {
        Ok(c) => c,
        Err(KafkaError::Changelog { .. }) => return,
        Err(e) => panic!("a restore fails other than as undecodable: {e}"),
    };
    let c = &contents.checkpoint;
    let mut partition = Partition::restore(
        ENGINE.clone(),
        contents.profiles.clone(),
        c.frontiers,
        c.population(),
    );
    let newest = partition.newest().unwrap_or(0);
    read_profiles(&partition, newest, 4);
    let mut outputs = Vec::new();
    partition.advance_to(newest.saturating_add(366 * 86_400_000), &mut outputs);
    read_profiles(&partition, newest.saturating_add(366 * 86_400_000), 4);
}

/// A partition of generated traffic: a few dozen customers over a fortnight, under the
/// shipped configuration; and its records, each framed as [`input_records`] reads them.
pub fn generated_partition(encoding: Encoding) -> (Partition, Vec<Vec<u8>>) {
    const DAY: i64 = 86_400_000;
    let start = 1_767_225_600_000; // 2026-01-01
    let mut cfg = pulse_loadgen::GeneratorConfig::new(40, 7, start, 14 * DAY);
    cfg.encoding = encoding;
    cfg.bad_ratio = 0.02;
    let mut framed = Vec::new();
    for record in pulse_loadgen::Generator::new(cfg).take(400) {
        let mut frame = Vec::new();
        frame_input(record.topic, &record.value, &mut frame);
        framed.push(frame);
    }
    let mut partition = Partition::new(ENGINE.clone());
    apply_framed(
        &mut partition,
        &framed.concat(),
        encoding,
        usize::MAX,
        &mut Vec::new(),
    );
    (partition, framed)
}

/// The full token the query API target's server accepts.
pub const TOKEN: &str = "fuzz-token-0123456789abcdef";

/// The HTTP server's routes (probes, metrics, the query API, the status page) behind its
/// access rules, over one partition of generated traffic, the worker's only one.
pub struct Api {
    runtime: tokio::runtime::Runtime,
    routes: axum::Router,
}

impl Api {
    pub fn new() -> Self {
        let (partition, _) = generated_partition(Encoding::Json);
        let mut config = pulse::Config::embedded_default();
        let tokens = std::env::temp_dir().join(format!("pulse-fuzz-tokens-{}", std::process::id()));
        std::fs::write(&tokens, format!("{TOKEN}\n")).expect("a token file");
        config.http.token_file = tokens;
        let (access, _) =
            pulse::http::Access::from_config(&config.http).expect("valid access rules");
        let metrics = pulse_telemetry::Metrics::new();
        let health = pulse_telemetry::Health::default();
        health.set_ready(true);
        let api = pulse::api::routes(pulse::api::ApiState {
            state: pulse_kafka::StateRegistry::serving(1, [(0, partition)]),
            engine: ENGINE.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            partitioner: config.kafka.partitioner.clone(),
            owners: Arc::new(pulse::owners::Owners::new(config.kafka)),
            views: Arc::default(),
        });
        let routes = access.guard(pulse_telemetry::probe_routes(metrics, health).merge(api));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        Self { runtime, routes }
    }

    /// Sends a request from a fuzz input: its first line is the `Authorization` header's
    /// value (none when empty), the rest the request target, a path and query of any bytes the
    /// HTTP layer would accept. Every answer must be JSON, or the status page's HTML, and none
    /// a server error.
    pub fn get(&self, input: &[u8]) {
        use tower::ServiceExt;
        let (authorization, target) = match input.iter().position(|b| *b == b'\n') {
            Some(n) => (&input[..n], &input[n + 1..]),
            None => (&b""[..], input),
        };
        let mut uri = Vec::with_capacity(target.len() + 1);
        if target.first() != Some(&b'/') {
            uri.push(b'/');
        }
        uri.extend_from_slice(target);
        let Ok(uri) = axum::http::Uri::try_from(uri) else {
            return;
        };
        let text = ["/healthz", "/readyz", "/metrics"].contains(&uri.path());
        let mut request = axum::http::Request::get(uri);
        if !authorization.is_empty() {
            let Ok(value) = axum::http::HeaderValue::from_bytes(authorization) else {
                return;
            };
            request = request.header(axum::http::header::AUTHORIZATION, value);
        }
        let request = request.body(axum::body::Body::empty()).expect("a request");
        let routes = self.routes.clone();
        self.runtime.block_on(async move {
            let response = routes.oneshot(request).await.expect("the router answers");
            let status = response.status();
            let response_type = response
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("a body");
            assert!(!status.is_server_error(), "{status} for a query: {body:?}");
            let kind = response_type.as_deref().unwrap_or_default();
            if kind.starts_with("application/json") {
                let json = serde_json::from_slice::<serde_json::Value>(&body);
                assert!(json.is_ok(), "{status}: JSON that does not parse: {body:?}");
            } else {
                // The probes and /metrics answer text; everything else is JSON or the page.
                assert!(
                    kind.starts_with("text/html") || (text && status.is_success()),
                    "{status} as {kind:?}: {body:?}"
                );
            }
        });
    }
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}
