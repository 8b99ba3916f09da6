//! Test and benchmark support: a real Kafka-compatible broker process on a loopback port, a
//! real Prometheus server and a real headless browser.
//!
//! The broker is tansu 0.6.0 with in-memory storage (`make deps` installs it), started on a free
//! port and stopped when dropped, so tests can each run their own. It can sit behind a proxy
//! that refuses produce requests for chosen topics ([`Tansu::refuse_produce`]).

mod browser;
mod kafka;
mod prometheus;
mod proxy;
mod wire;

pub use browser::Browser;
pub use kafka::{kafka_libs, kafka_version, namespace, Kafka, KafkaBuilder, Secured};
pub use prometheus::{http_get, Prometheus};
pub use proxy::FaultProxy;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Assigns partitions `0..partitions` of every topic to `consumer`, from the beginning.
pub fn assign_from_beginning(consumer: &BaseConsumer, topics: &[&str], partitions: i32) {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
}

/// Hands `record` to the producer, polling while its local queue is full.
pub fn send_waiting<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>)
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
        }
    }
}

/// An admin client of the cluster at `bootstrap`.
pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// Creates `(name, partitions, configs)` topics with `replication` replicas each, and waits
/// until every partition has a leader, so a client's first request finds them.
pub fn create_topics(bootstrap: &str, replication: i32, topics: &[(&str, i32, &[(&str, &str)])]) {
    let admin = admin(bootstrap);
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, partitions, configs)| {
            configs.iter().fold(
                NewTopic::new(t, *partitions, TopicReplication::Fixed(replication)),
                |n, (k, v)| n.set(k, v),
            )
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt
        .block_on(admin.create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (t, partitions, _) in topics {
        loop {
            let led = admin
                .inner()
                .fetch_metadata(Some(t), Duration::from_secs(5))
                .ok()
                .and_then(|m| {
                    m.topics().first().map(|topic| {
                        topic.error().is_none()
                            && topic.partitions().len() == *partitions as usize
                            && topic.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
                .unwrap_or(false);
            if led {
                break;
            }
            assert!(Instant::now() < deadline, "topic {t} has no leaders");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Sends `sig` (`-STOP`, `-KILL`, ...) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success(), "kill {sig} {pid} failed");
}

/// A real Kafka-compatible broker process (tansu, in-memory storage) on a free loopback port,
/// stopped when dropped. `make deps` installs tansu; `TANSU` names another binary. To see what
/// the broker did, set `TANSU_LOG` (a `RUST_LOG` filter) and `TANSU_LOG_FILE` (a path prefix;
/// the port is appended).
#[derive(Debug)]
pub struct Tansu {
    child: Child,
    pub bootstrap: String,
    proxy: Option<FaultProxy>,
}

fn tansu_binary() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("TANSU") {
        return p.into();
    }
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let installed = home.join("bin").join("tansu");
    if installed.exists() {
        installed
    } else {
        "tansu".into()
    }
}

impl Tansu {
    /// Whether the broker binary is there to start.
    pub fn installed() -> bool {
        let bin = tansu_binary();
        bin.exists()
            || Command::new(&bin)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
    }

    /// Starts the broker and creates `topics` with `partitions` partitions each.
    pub fn start(topics: &[&str], partitions: i32) -> Self {
        Self::start_with(topics, partitions, false)
    }

    /// Starts the broker behind a [`FaultProxy`]: clients reach it only through the proxy, and
    /// [`Tansu::refuse_produce`] can make topics unwritable.
    pub fn start_proxied(topics: &[&str], partitions: i32) -> Self {
        Self::start_with(topics, partitions, true)
    }

    fn start_with(topics: &[&str], partitions: i32, proxied: bool) -> Self {
        let free = || std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = free().local_addr().unwrap().port();
        let url = format!("tcp://127.0.0.1:{port}");
        let (proxy, advertised) = if proxied {
            let listener = free();
            let front = listener.local_addr().unwrap().port();
            let proxy = FaultProxy::start(listener, format!("127.0.0.1:{port}"));
            (Some(proxy), format!("tcp://127.0.0.1:{front}"))
        } else {
            (None, url.clone())
        };
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(match std::env::var("TANSU_LOG_FILE") {
                Ok(f) => Stdio::from(std::fs::File::create(format!("{f}.{port}")).unwrap()),
                Err(_) => Stdio::null(),
            })
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu is installed (make deps installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let bootstrap = advertised.trim_start_matches("tcp://").to_owned();
        let broker = Self {
            child,
            bootstrap,
            proxy,
        };
        broker.create_topics(topics, partitions);
        broker
    }

    fn create_topics(&self, topics: &[&str], partitions: i32) {
        let spec: Vec<(&str, i32, &[(&str, &str)])> =
            topics.iter().map(|t| (*t, partitions, &[][..])).collect();
        create_topics(&self.bootstrap, 1, &spec);
    }

    /// Freezes the broker process: connections hang, as with a stopped machine or a partition.
    pub fn pause(&self) {
        signal(self.child.id(), "-STOP");
    }

    pub fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }

    /// Refuses produce requests for `topics` as unauthorised until called with an empty list.
    /// Only for a broker started with [`Tansu::start_proxied`].
    pub fn refuse_produce(&self, topics: &[&str]) {
        self.proxy
            .as_ref()
            .expect("refusals need a broker started with start_proxied")
            .refuse_produce(topics);
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
