//! Wiring: the HTTP server, the worker, and with no brokers configured the embedded cluster
//! and its demo traffic. [`run`] is what `pulse run` calls; [`Running`] is the same thing
//! held open, for tests.

use crate::config::Config;
use crate::produce::{produce_records, traffic_producer};
use pulse_kafka::{run_worker, EmbeddedCluster, KafkaError, StateRegistry, WorkerDeps};
use pulse_loadgen::{Generator, GeneratorConfig};
use pulse_telemetry::{Health, HttpError, Metrics};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("a background task failed: {0}")]
    Task(String),
}

/// A running Pulse: the handles a caller (or a test) needs.
#[derive(Debug)]
pub struct Running {
    pub brokers: String,
    pub http_addr: SocketAddr,
    pub state: StateRegistry,
    pub metrics: Metrics,
    pub health: Health,
    stop: watch::Sender<bool>,
    /// `None` once the worker task has been awaited.
    worker: Option<JoinHandle<Result<(), KafkaError>>>,
    traffic: Option<JoinHandle<()>>,
    summary: Option<JoinHandle<()>>,
    http: JoinHandle<()>,
    // Dropped last: the cluster must outlive every client.
    embedded: Option<EmbeddedCluster>,
}

impl Running {
    /// Starts everything `config` describes.
    pub async fn start(mut config: Config) -> Result<Self, RunError> {
        let engine = Arc::new(config.compile_engine()?);
        let (stop, stop_rx) = watch::channel(false);
        let metrics = Metrics::new();
        let health = Health::default();
        let state = StateRegistry::default();

        let embedded = if config.kafka.brokers.is_empty() {
            let p = config.kafka.embedded_partitions;
            let topics: Vec<(&str, i32)> =
                config.kafka.topics.all().iter().map(|t| (*t, p)).collect();
            let cluster = EmbeddedCluster::start(1, &topics)?;
            config.kafka.brokers = cluster.bootstrap_servers().to_owned();
            tracing::info!(brokers = %config.kafka.brokers, "Embedded Kafka cluster started.");
            Some(cluster)
        } else {
            None
        };

        let mut http_stop = stop_rx.clone();
        let api = crate::api::routes(crate::api::ApiState {
            state: state.clone(),
            engine: engine.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            partitioner: config.kafka.partitioner.clone(),
            owners: Arc::new(crate::owners::Owners::new(config.kafka.clone())),
            views: Arc::default(),
        });
        // Checked by `Config::load`; read again here, where the server starts.
        let (access, tls) = crate::http::Access::from_config(&config.http)
            .map_err(|problems| crate::ConfigError { problems })?;
        let authenticates = access.authenticates();
        let app =
            access.guard(pulse_telemetry::probe_routes(metrics.clone(), health.clone()).merge(api));
        let https = tls.is_some();
        let server = pulse_telemetry::serve(&config.http.listen, app, tls, async move {
            let _ = http_stop.wait_for(|s| *s).await;
        })
        .await?;
        if !authenticates && !server.addr.ip().is_loopback() {
            tracing::warn!(addr = %server.addr, "The query API and the status page are open to anyone who reaches this address: set http.token_file.");
        }
        tracing::info!(addr = %server.addr, https, authenticates, "Serving the status page, /metrics, /healthz, /readyz and the query API.");

        let deps = WorkerDeps {
            advertise: Some(advertised_url(&config.http.advertise, server.addr)),
            metrics: metrics.clone(),
            health: health.clone(),
            state: state.clone(),
        };
        let (kafka, worker_cfg) = (config.kafka.clone(), config.worker.clone());
        let worker_stop = stop_rx.clone();
        let worker = tokio::spawn(async move {
            run_worker(&kafka, &worker_cfg, engine, deps, worker_stop).await
        });

        let (traffic, summary) = if embedded.is_some() {
            (
                Some(spawn_demo_traffic(&config, stop_rx.clone())?),
                Some(tokio::spawn(crate::summary::print_every_second(
                    metrics.clone(),
                    state.clone(),
                    stop_rx,
                ))),
            )
        } else {
            (None, None)
        };

        Ok(Self {
            brokers: config.kafka.brokers,
            http_addr: server.addr,
            state,
            metrics,
            health,
            stop,
            worker: Some(worker),
            traffic,
            summary,
            http: server.task,
            embedded,
        })
    }

    /// Whether the worker has ended by itself (an error such as being fenced); `stop` returns
    /// why.
    pub fn worker_finished(&self) -> bool {
        self.worker.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops fetching, finishes in-flight work, commits, leaves the group and shuts down.
    pub async fn stop(mut self) -> Result<(), RunError> {
        let _ = self.stop.send(true);
        for t in [self.traffic.take(), self.summary.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.await;
        }
        let worker = match self.worker.take() {
            Some(w) => w.await.map_err(|e| RunError::Task(e.to_string()))?,
            None => Ok(()),
        };
        let _ = (&mut self.http).await;
        drop(self.embedded.take());
        worker.map_err(RunError::from)
    }
}

/// The base URL other workers give out for this one: the configured one, or the bound
/// address with the host name in place of an unspecified IP.
fn advertised_url(configured: &str, bound: SocketAddr) -> String {
    if !configured.is_empty() {
        return configured.trim_end_matches('/').to_owned();
    }
    if bound.ip().is_unspecified() {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("http://{host}:{}", bound.port())
    } else {
        format!("http://{bound}")
    }
}

fn spawn_demo_traffic(
    config: &Config,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, RunError> {
    let producer = traffic_producer(&config.kafka)?;
    let demo = config.demo.clone();
    let history = i64::try_from(demo.history.as_millis()).unwrap_or(i64::MAX / 2);
    let mut gen = GeneratorConfig::new(
        demo.customers,
        demo.seed,
        pulse_kafka::wall_clock_ms() - history,
        10 * 365 * 86_400_000,
    );
    gen.acquisition = history;
    gen.bad_ratio = demo.bad_ratio;
    gen.encoding = config.kafka.input_encoding;
    let topics = config.kafka.topics.clone();
    Ok(tokio::spawn(async move {
        // Generating a record costs about a microsecond, so it runs inline with producing.
        match produce_records(&producer, &topics, Generator::new(gen), demo.rate, stop).await {
            Ok(n) => tracing::info!(records = n, "Demo traffic stopped."),
            Err(e) => {
                tracing::error!(error = %e, "Demo traffic failed; no more input will arrive.")
            }
        }
    }))
}

/// Runs Pulse until `shutdown` completes, then stops it cleanly.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let mut running = Running::start(config).await?;
    let exited = match running.worker.as_mut() {
        Some(worker) => tokio::select! {
            _ = shutdown => None,
            r = worker => Some(r),
        },
        None => None,
    };
    match exited {
        None => tracing::info!("Shutdown requested; finishing in-flight work."),
        Some(r) => {
            running.worker = None;
            tracing::error!(result = ?r, "Worker stopped unexpectedly; shutting down.");
            running.stop().await?;
            return r
                .map_err(|e| RunError::Task(e.to_string()))?
                .map_err(RunError::from);
        }
    }
    running.stop().await
}
