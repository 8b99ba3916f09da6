//! Who may reach the HTTP server, and how much of it at once: `[http]`'s bearer tokens, the
//! paths left open, TLS, the request timeout and the cap on requests in flight. Every refusal
//! is JSON, like the rest of the API.
//!
//! Two kinds of token: a full token reads everything; an aggregate token reads only the
//! population views (segment sizes, funnels, cohorts, `/metrics`), not one customer's profile,
//! segment member lists or the status page, so a dashboard never holds a key to personal data.
//! A token is accepted as `Authorization: Bearer <token>`, or as the password of HTTP Basic
//! authentication, which is what a browser sends for the status page after its own prompt.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use pulse_telemetry::Tls;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: String,
    /// Base URL other workers' query API points clients to; empty: derived from the bound
    /// address (the host name when listening on all interfaces).
    pub advertise: String,
    /// A file of full-access tokens, one per line; empty: none.
    pub token_file: PathBuf,
    /// A file of aggregate-only tokens, one per line; empty: none.
    pub aggregate_token_file: PathBuf,
    /// Paths served without a token, matched exactly.
    pub open: Vec<String>,
    /// PEM certificate chain and private key; both empty: plain HTTP.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Longest a request may take before it is answered 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Requests served at once; more are answered 429 at once.
    pub max_concurrent_requests: usize,
}

/// The population views an aggregate token may read, matched exactly.
const AGGREGATE_PATHS: &[&str] = &["/v1/segments", "/v1/funnels", "/v1/cohorts", "/metrics"];
/// Probes are never refused for load: a kubelet that sees 429 would restart a busy pod.
const PROBES: &[&str] = &["/healthz", "/readyz"];
/// Most requests `http.max_concurrent_requests` may allow at once.
const MAX_CONCURRENT: usize = 100_000;
/// Shortest token accepted: 16 characters of a random hex string are 64 bits.
const MIN_TOKEN_LEN: usize = 16;

/// A token as read from its file. Never printed: `Debug` shows its length only.
#[derive(Clone)]
struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({} bytes)", self.0.len())
    }
}

impl Token {
    /// Compares in time that depends on the lengths only, not on where the bytes differ.
    fn matches(&self, other: &[u8]) -> bool {
        self.0.len() == other.len()
            && self
                .0
                .iter()
                .zip(other)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// What a request may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Full,
    Aggregate,
}

/// The access rules and limits, built from `[http]` at start-up.
#[derive(Debug)]
pub struct Access {
    tokens: Vec<(Token, Grant)>,
    open: Vec<String>,
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    timeout: Duration,
}

/// Reads a token file: one token per line, blank lines and `#` comments skipped.
fn read_tokens(
    key: &str,
    path: &Path,
    grant: Grant,
    problems: &mut Vec<String>,
) -> Vec<(Token, Grant)> {
    if path.as_os_str().is_empty() {
        return Vec::new();
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{key}: {}: cannot read: {e}", path.display()));
            return Vec::new();
        }
    };
    let (mut tokens, refused) = (Vec::new(), problems.len());
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.len() < MIN_TOKEN_LEN || !line.bytes().all(|b| b.is_ascii_graphic()) {
            // The line itself is not quoted: it may be a real token, only too short.
            problems.push(format!(
                "{key}: {} line {}: a token is at least {MIN_TOKEN_LEN} printable characters without spaces",
                path.display(),
                n + 1
            ));
            continue;
        }
        tokens.push((Token(line.as_bytes().to_vec()), grant));
    }
    if tokens.is_empty() && problems.len() == refused {
        problems.push(format!("{key}: {} holds no token", path.display()));
    }
    tokens
}

impl Access {
    /// The access rules of `[http]`, or every problem found, each naming its key.
    pub fn from_config(http: &HttpConfig) -> Result<(Self, Option<Tls>), Vec<String>> {
        let mut problems = Vec::new();
        let mut tokens = read_tokens(
            "http.token_file",
            &http.token_file,
            Grant::Full,
            &mut problems,
        );
        tokens.extend(read_tokens(
            "http.aggregate_token_file",
            &http.aggregate_token_file,
            Grant::Aggregate,
            &mut problems,
        ));
        for p in &http.open {
            if !p.starts_with('/') {
                problems.push(format!("http.open: {p:?} is not a path (it starts with /)"));
            }
        }
        if http.request_timeout.is_zero() {
            problems.push("http.request_timeout: must be greater than zero".into());
        }
        if !(1..=MAX_CONCURRENT).contains(&http.max_concurrent_requests) {
            problems.push(format!(
                "http.max_concurrent_requests: must be from 1 to {MAX_CONCURRENT}"
            ));
        }
        let tls = match (
            http.tls_cert.as_os_str().is_empty(),
            http.tls_key.as_os_str().is_empty(),
        ) {
            (true, true) => None,
            (false, false) => match Tls::from_pem_files(&http.tls_cert, &http.tls_key) {
                Ok(tls) => Some(tls),
                Err(e) => {
                    problems.push(format!("http.tls_cert, http.tls_key: {e}"));
                    None
                }
            },
            _ => {
                problems.push("http.tls_cert, http.tls_key: set both or neither".into());
                None
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let access = Self {
            tokens,
            open: http.open.clone(),
            permits: Arc::new(Semaphore::new(http.max_concurrent_requests)),
            max_concurrent: http.max_concurrent_requests,
            timeout: http.request_timeout,
        };
        Ok((access, tls))
    }

    /// Whether any token is configured; without one every path is open.
    pub fn authenticates(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// `routes` behind the access rules and limits.
    pub fn guard(self, routes: Router) -> Router {
        routes.layer(axum::middleware::from_fn_with_state(Arc::new(self), guard))
    }

    /// Whether the request may reach `path`, or the status and message to refuse it with.
    fn authenticate(&self, headers: &HeaderMap, path: &str) -> Result<(), (StatusCode, String)> {
        if self.tokens.is_empty() || self.open.iter().any(|p| p == path) {
            return Ok(());
        }
        let Some(presented) = presented_token(headers) else {
            return Err((
                StatusCode::UNAUTHORIZED,
                "this endpoint needs a token: send `Authorization: Bearer <token>`".into(),
            ));
        };
        // Every token is compared, so the time taken does not tell which one nearly matched.
        let grant = self.tokens.iter().fold(None, |found, (t, g)| {
            if t.matches(&presented) {
                Some(*g)
            } else {
                found
            }
        });
        match grant {
            None => Err((StatusCode::UNAUTHORIZED, "the token is not accepted".into())),
            Some(Grant::Aggregate) if !AGGREGATE_PATHS.contains(&path) => Err((
                StatusCode::FORBIDDEN,
                format!(
                    "an aggregate token reads {} only, not {path}",
                    AGGREGATE_PATHS.join(", ")
                ),
            )),
            Some(_) => Ok(()),
        }
    }
}

/// The token of a `Bearer` credential, or the password of a `Basic` one.
fn presented_token(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    let credential = rest.trim_ascii();
    if scheme.eq_ignore_ascii_case(b"bearer") {
        Some(credential.to_vec())
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = base64_decode(credential)?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        Some(decoded[colon + 1..].to_vec())
    } else {
        None
    }
}

/// Standard base64 with padding (RFC 4648 §4), as Basic credentials are sent.
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        Some(u32::from(v))
    }
    if s.len() % 4 != 0 {
        return None;
    }
    let body = s
        .strip_suffix(b"==")
        .or_else(|| s.strip_suffix(b"="))
        .unwrap_or(s);
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in body {
        acc = (acc << 6) | sextet(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A refusal as JSON. 401s carry the challenges a client answers: `Bearer` for programs,
/// `Basic` so that a browser prompts for the token.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = (status, Json(json!({ "error": message.into() }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        let challenges = [
            r#"Bearer realm="pulse""#,
            r#"Basic realm="pulse", charset="UTF-8""#,
        ];
        for c in challenges {
            response
                .headers_mut()
                .append(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
    }
    response
}

async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if let Err((status, message)) = access.authenticate(request.headers(), &path) {
        return refuse(status, message);
    }
    if PROBES.contains(&path.as_str()) {
        return next.run(request).await;
    }
    let Ok(_permit) = access.permits.clone().try_acquire_owned() else {
        let mut response = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{} requests are being served (http.max_concurrent_requests); retry shortly",
                access.max_concurrent
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    match tokio::time::timeout(access.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no answer within {} (http.request_timeout)",
                humantime::format_duration(access.timeout)
            ),
        ),
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
