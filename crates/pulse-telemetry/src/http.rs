//! The HTTP server: `/metrics` (Prometheus text), `/healthz` (the process is up) and
//! `/readyz` (the worker can process its partitions), plus whatever routes the caller adds
//! (the query API and the status page). Handlers only read shared state, so a scrape never
//! blocks processing.

use crate::tls::{Tls, TlsListener};
use crate::{Health, Metrics};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Not retryable without a configuration change: the address is taken or not ours.
    #[error("cannot listen on {addr}: {source} (set http.listen to a free address)")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A running HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Health,
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Percent-encodes `s` for a URL path segment or query value (RFC 3986 unreserved characters
/// stay as they are).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The probes and `/metrics`, to merge with the caller's routes.
pub fn probe_routes(metrics: Metrics, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health })
}

/// Binds `addr` and serves `app` (over TLS when given) until `shutdown` completes.
pub async fn serve(
    addr: &str,
    app: Router,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<HttpServer, HttpError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: addr.to_owned(),
        source,
    })?;
    let task = tokio::spawn(async move {
        let served = match tls {
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Some(tls) => {
                let listener = TlsListener::new(listener, bound, &tls);
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server stopped; metrics and probes are unavailable.");
        }
    });
    Ok(HttpServer { addr: bound, task })
}
