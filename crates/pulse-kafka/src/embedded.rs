//! The embedded cluster: librdkafka's in-process mock brokers, listening on loopback ports,
//! with Pulse's topics created. Used when no brokers are configured, and by the fast tests.

use crate::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// A running mock cluster. The mock handle is not `Send`, so it lives on a thread of its own
/// that holds it, and takes commands, until this value is dropped.
#[derive(Debug)]
pub struct EmbeddedCluster {
    bootstrap: String,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

/// Fault injection, for tests of how Pulse rides out broker trouble.
#[derive(Debug)]
enum Command {
    BrokerDown(i32, mpsc::Sender<Result<(), String>>),
    BrokerUp(i32, mpsc::Sender<Result<(), String>>),
    RequestErrors(
        RDKafkaApiKey,
        Vec<RDKafkaRespErr>,
        mpsc::Sender<Result<(), String>>,
    ),
}

impl EmbeddedCluster {
    /// Starts `brokers` mock brokers and creates each `(topic, partitions)`.
    pub fn start(brokers: i32, topics: &[(&str, i32)]) -> Result<Self, KafkaError> {
        let topics: Vec<(String, i32)> =
            topics.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
        let thread = std::thread::Builder::new()
            .name("pulse-embedded-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                for (t, p) in &topics {
                    if let Err(e) = cluster.create_topic(t, *p, 1) {
                        let _ = ready_tx.send(Err(format!("creating topic {t}: {e}")));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Held, serving commands, until the owner drops its sender.
                while let Ok(cmd) = cmd_rx.recv() {
                    match cmd {
                        Command::BrokerDown(id, reply) => {
                            let _ = reply.send(cluster.broker_down(id).map_err(|e| e.to_string()));
                        }
                        Command::BrokerUp(id, reply) => {
                            let _ = reply.send(cluster.broker_up(id).map_err(|e| e.to_string()));
                        }
                        Command::RequestErrors(api, errors, reply) => {
                            if errors.is_empty() {
                                cluster.clear_request_errors(api);
                            } else {
                                cluster.request_errors(api, &errors);
                            }
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
                drop(cluster);
            })
            .map_err(|e| KafkaError::Embedded(e.to_string()))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| KafkaError::Embedded("the cluster thread exited".into()))?
            .map_err(KafkaError::Embedded)?;
        Ok(Self {
            bootstrap,
            commands: Some(cmd_tx),
            thread: Some(thread),
        })
    }

    /// The `bootstrap.servers` of the mock brokers.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    fn command(
        &self,
        make: impl FnOnce(mpsc::Sender<Result<(), String>>) -> Command,
    ) -> Result<(), KafkaError> {
        let (tx, rx) = mpsc::channel();
        let gone = || KafkaError::Embedded("the cluster thread exited".into());
        self.commands
            .as_ref()
            .ok_or_else(gone)?
            .send(make(tx))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?.map_err(KafkaError::Embedded)
    }

    /// Disconnects broker `id` (1-based) and refuses new connections to it.
    pub fn broker_down(&self, id: i32) -> Result<(), KafkaError> {
        self.command(|r| Command::BrokerDown(id, r))
    }

    /// Lets clients connect to broker `id` again.
    pub fn broker_up(&self, id: i32) -> Result<(), KafkaError> {
        self.command(|r| Command::BrokerUp(id, r))
    }

    /// While `on`, the brokers refuse every produce request as unauthorised, as a cluster does
    /// when the producer's ACL is taken away.
    pub fn refuse_produce(&self, on: bool) -> Result<(), KafkaError> {
        let errors = if on {
            // One error per request; more than a test sends.
            vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 100_000]
        } else {
            Vec::new()
        };
        self.request_errors(RDKafkaApiKey::Produce, errors)
    }

    /// The next requests of kind `api` fail with `errors`, one each, in order; an empty list
    /// clears what is left.
    pub fn request_errors(
        &self,
        api: RDKafkaApiKey,
        errors: Vec<RDKafkaRespErr>,
    ) -> Result<(), KafkaError> {
        self.command(|r| Command::RequestErrors(api, errors, r))
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
