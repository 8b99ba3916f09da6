//! Pulse's observability: tracing setup, the Prometheus registry with every metric defined in
//! one place, and the HTTP server
//! (plain or TLS) for `/metrics`, `/healthz` and `/readyz`.

mod health;
mod http;
mod latency;
mod logging;
mod metrics;
pub mod names;
mod tls;

pub use health::Health;
pub use http::{percent_encode, probe_routes, serve, HttpError, HttpServer};
pub use latency::Latency;
pub use logging::{init_tracing, LogFormat};
pub use metrics::{counter_total, Metrics};
pub use tls::Tls;
