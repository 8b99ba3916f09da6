//! Apache Kafka, the reference broker of the tests and benchmarks: KRaft nodes (combined
//! broker and controller) started from the jars `make kafka` resolves, on free loopback ports,
//! each in its own storage directory, and stopped when dropped, also when a test fails or its
//! process dies.
//!
//! A node runs `kafka.Kafka` on a JDK 17. Every broker runs the `StandardAuthorizer` with
//! `allow.everyone.if.no.acl.found`, so everything is allowed until a test adds a DENY ACL
//! ([`Kafka::deny_write`]). A secured cluster also has a `SASL_SSL` listener with SCRAM-SHA-512
//! users and a certificate authority made for it ([`Secured`]).

use crate::TopicSpec;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The Kafka version the suite runs, read from the pom `make kafka` resolves.
pub fn kafka_version() -> &'static str {
    const POM: &str = include_str!("../../../tests/kafka/pom.xml");
    let start = POM
        .find("<kafka.version>")
        .expect("pom names kafka.version")
        + 15;
    let end = start + POM[start..].find('<').expect("closed");
    &POM[start..end]
}

/// Where `make kafka` put the broker's jars: `PULSE_KAFKA_LIBS`, or the per-user cache.
pub fn kafka_libs() -> PathBuf {
    if let Ok(p) = std::env::var("PULSE_KAFKA_LIBS") {
        return p.into();
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
        });
    cache
        .join("pulse")
        .join(format!("kafka-{}", kafka_version()))
}

fn java() -> PathBuf {
    std::env::var("JAVA_HOME")
        .map(|h| Path::new(&h).join("bin").join("java"))
        .unwrap_or_else(|_| "java".into())
}

fn classpath() -> String {
    let libs = kafka_libs();
    assert!(
        libs.join("kafka-clients-".to_owned() + kafka_version() + ".jar")
            .exists(),
        "Apache Kafka {} is not in {}: run `make kafka` (or set PULSE_KAFKA_LIBS)",
        kafka_version(),
        libs.display()
    );
    format!("{}/*", libs.display())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A directory under the target directory for one cluster; removed when the cluster is dropped
/// unless the test failed, so its logs can be read.
fn scratch_dir(label: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::var("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = base.join(format!(
        "kafka-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// A unique prefix for one test's topics and consumer groups on a shared cluster.
pub fn namespace(label: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{label}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The `SASL_SSL` side of a secured cluster: where it listens and what a client needs.
#[derive(Debug, Clone)]
pub struct Secured {
    pub bootstrap: String,
    /// The certificate authority that signed the brokers' and the client's certificates (PEM).
    pub ca: PathBuf,
    /// A client certificate and key signed by the same authority, for mutual TLS.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub user: String,
    pub password: String,
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct KafkaBuilder {
    nodes: usize,
    secured: bool,
    label: String,
    props: Vec<(String, String)>,
}

impl KafkaBuilder {
    /// Three nodes: replication factor 3 and `min.insync.replicas = 2` for the internal topics
    /// and every topic created through the harness.
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Adds a `SASL_SSL` listener with SCRAM-SHA-512 and a test certificate authority.
    pub fn secured(mut self) -> Self {
        self.secured = true;
        self
    }

    /// A broker property for every node.
    pub fn property(mut self, key: &str, value: &str) -> Self {
        self.props.push((key.into(), value.into()));
        self
    }

    pub fn label(mut self, label: &str) -> Self {
        self.label = label.into();
        self
    }

    pub fn start(self) -> Kafka {
        Kafka::start_with(self)
    }
}

struct Ports {
    plain: u16,
    internal: u16,
    controller: u16,
    secured: u16,
}

/// One node's process and the watchdog that kills it if the test process dies first.
struct Process {
    child: Child,
    /// The watchdog reads this pipe; when the test process ends, the pipe closes and the
    /// watchdog kills the node, so no broker outlives the test that started it.
    _lifeline: ChildStdin,
}

struct Node {
    id: usize,
    dir: PathBuf,
    ports: Ports,
    process: Mutex<Option<Process>>,
}

/// A running Apache Kafka cluster on loopback ports.
pub struct Kafka {
    /// The plaintext bootstrap servers of every node.
    pub bootstrap: String,
    pub secured: Option<Secured>,
    dir: PathBuf,
    nodes: Vec<Node>,
    props: Vec<(String, String)>,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("bootstrap", &self.bootstrap)
            .field("nodes", &self.nodes.len())
            .field("dir", &self.dir)
            .finish()
    }
}

const SCRAM_USER: &str = "pulse";
const SCRAM_PASSWORD: &str = "pulse-scram-secret";

impl Kafka {
    pub fn builder() -> KafkaBuilder {
        KafkaBuilder {
            nodes: 1,
            secured: false,
            label: "test".into(),
            props: Vec::new(),
        }
    }

    /// One node with default settings.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// One node shared by every test of this process that leaves the broker alone (no
    /// outages, no ACLs): each test keeps to its own [`namespace`]. Stopped by its watchdog
    /// when the process ends.
    pub fn shared() -> &'static Kafka {
        static SHARED: OnceLock<Kafka> = OnceLock::new();
        SHARED.get_or_init(|| Self::builder().label("shared").start())
    }

    fn start_with(b: KafkaBuilder) -> Self {
        let dir = scratch_dir(&b.label);
        let nodes: Vec<Node> = (1..=b.nodes)
            .map(|id| Node {
                id,
                dir: dir.join(format!("node-{id}")),
                ports: Ports {
                    plain: free_port(),
                    internal: free_port(),
                    controller: free_port(),
                    secured: free_port(),
                },
                process: Mutex::new(None),
            })
            .collect();
        let secured = b.secured.then(|| make_certificates(&dir, &nodes));
        let bootstrap = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.ports.plain))
            .collect::<Vec<_>>()
            .join(",");
        let kafka = Kafka {
            bootstrap,
            secured,
            dir,
            nodes,
            props: b.props,
        };
        kafka.format();
        for n in &kafka.nodes {
            kafka.launch(n);
        }
        kafka.wait_ready();
        kafka
    }

    fn voters(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.ports.controller))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn properties(&self, n: &Node) -> String {
        let replicas = self.nodes.len().min(3);
        let min_isr = replicas.min(2);
        let mut p: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| p.push((k.into(), v));
        set("process.roles", "broker,controller".into());
        set("node.id", n.id.to_string());
        set("controller.quorum.voters", self.voters());
        set("controller.listener.names", "CONTROLLER".into());
        // Nodes talk to each other as a super user over SASL/PLAIN: the authorizer refuses
        // everyone else until it has loaded the metadata, controllers' votes included. Clients
        // on the plaintext listener are `User:ANONYMOUS`, not a super user, so ACLs bind them.
        set("inter.broker.listener.name", "INTERNAL".into());
        set("sasl.mechanism.inter.broker.protocol", "PLAIN".into());
        set("sasl.mechanism.controller.protocol", "PLAIN".into());
        let plain = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="broker" user_broker="broker";"#;
        for listener in ["internal", "controller"] {
            set(
                &format!("listener.name.{listener}.sasl.enabled.mechanisms"),
                "PLAIN".into(),
            );
            set(
                &format!("listener.name.{listener}.plain.sasl.jaas.config"),
                plain.into(),
            );
        }
        set("super.users", "User:broker".into());
        let mut listeners = format!(
            "PLAINTEXT://127.0.0.1:{},INTERNAL://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            n.ports.plain, n.ports.internal, n.ports.controller
        );
        let mut advertised = format!(
            "PLAINTEXT://127.0.0.1:{},INTERNAL://127.0.0.1:{}",
            n.ports.plain, n.ports.internal
        );
        let mut protocols =
            "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT".to_owned();
        if self.secured.is_some() {
            let tls = self.dir.join("tls");
            listeners += &format!(",SASL_SSL://127.0.0.1:{}", n.ports.secured);
            advertised += &format!(",SASL_SSL://127.0.0.1:{}", n.ports.secured);
            protocols += ",SASL_SSL:SASL_SSL";
            set(
                "listener.name.sasl_ssl.sasl.enabled.mechanisms",
                "SCRAM-SHA-512".into(),
            );
            set(
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required;".into(),
            );
            set("ssl.keystore.type", "PEM".into());
            set(
                "ssl.keystore.location",
                tls.join(format!("node-{}.keystore.pem", n.id))
                    .display()
                    .to_string(),
            );
            set("ssl.truststore.type", "PEM".into());
            set(
                "ssl.truststore.location",
                tls.join("ca.pem").display().to_string(),
            );
            // Client certificates are checked when a client presents one (mutual TLS).
            set("ssl.client.auth", "requested".into());
        }
        set("listeners", listeners);
        set("advertised.listeners", advertised);
        set("listener.security.protocol.map", protocols);
        set("log.dirs", n.dir.join("data").display().to_string());
        set(
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        );
        set("allow.everyone.if.no.acl.found", "true".into());
        set("offsets.topic.replication.factor", replicas.to_string());
        set("offsets.topic.num.partitions", "3".into());
        set(
            "transaction.state.log.replication.factor",
            replicas.to_string(),
        );
        set("transaction.state.log.min.isr", min_isr.to_string());
        set("transaction.state.log.num.partitions", "3".into());
        set("default.replication.factor", replicas.to_string());
        set("min.insync.replicas", min_isr.to_string());
        set("auto.create.topics.enable", "false".into());
        set("group.initial.rebalance.delay.ms", "0".into());
        // Groups of the consumer protocol (KIP-848) take their session timeout from the broker:
        // as short as the classic groups' in the tests (6 s), so a killed member's partitions
        // move as quickly under either protocol.
        for (k, v) in [
            ("group.consumer.min.session.timeout.ms", "6000"),
            ("group.consumer.session.timeout.ms", "6000"),
            ("group.consumer.min.heartbeat.interval.ms", "1000"),
            ("group.consumer.heartbeat.interval.ms", "1000"),
        ] {
            set(k, v.into());
        }
        // The cleaner looks for work every second, so compaction tests need not wait 15 s.
        set("log.cleaner.backoff.ms", "1000".into());
        set("num.partitions", "1".into());
        // A killed node's partitions get new leaders within seconds, not Kafka's default 9 s.
        set("broker.session.timeout.ms", "3000".into());
        set("broker.heartbeat.interval.ms", "500".into());
        for (k, v) in &self.props {
            p.retain(|(key, _)| key != k);
            p.push((k.clone(), v.clone()));
        }
        p.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    /// Formats every node's storage directory (KRaft), once, with SCRAM credentials when
    /// secured.
    fn format(&self) {
        let cluster_id = "pulse-test-cluster-id0"; // 22 characters: a base64 UUID's length
        let formats: Vec<Child> = self
            .nodes
            .iter()
            .map(|n| {
                std::fs::create_dir_all(&n.dir).expect("node directory");
                let props = n.dir.join("server.properties");
                std::fs::write(&props, self.properties(n)).expect("server.properties");
                std::fs::write(n.dir.join("log4j2.properties"), log_config(&n.dir))
                    .expect("log4j2.properties");
                let mut cmd = Command::new(java());
                cmd.arg("-cp")
                    .arg(classpath())
                    .arg("kafka.tools.StorageTool")
                    .args(["format", "--ignore-formatted", "-t", cluster_id, "-c"])
                    .arg(&props);
                if self.secured.is_some() {
                    cmd.args([
                        "--add-scram",
                        &format!("SCRAM-SHA-512=[name={SCRAM_USER},password={SCRAM_PASSWORD}]"),
                    ]);
                }
                cmd.stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("java runs (make kafka installs a JDK)")
            })
            .collect();
        for f in formats {
            let out = f.wait_with_output().expect("storage tool");
            assert!(
                out.status.success(),
                "formatting the KRaft storage failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn launch(&self, n: &Node) {
        let child = Command::new(java())
            .args([
                "-Xms256m",
                "-Xmx1g",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
            ])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                n.dir.join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(classpath())
            .arg("kafka.Kafka")
            .arg(n.dir.join("server.properties"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(n.dir.join("stderr.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("java runs (make kafka installs a JDK)");
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cat >/dev/null; kill -9 {} 2>/dev/null",
                child.id()
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        let lifeline = watchdog.stdin.take().expect("piped");
        // The watchdog is reaped by init when it exits after its node.
        drop(watchdog);
        *lock(&n.process) = Some(Process {
            child,
            _lifeline: lifeline,
        });
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        for n in &self.nodes {
            while TcpStream::connect(("127.0.0.1", n.ports.plain)).is_err() {
                self.assert_alive(n);
                assert!(
                    Instant::now() < deadline,
                    "Kafka node {} did not start; see {}",
                    n.id,
                    n.dir.display()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Listening is not serving: wait until every broker is in the metadata.
        let admin = crate::admin(&self.bootstrap);
        loop {
            let brokers = admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|m| m.brokers().len())
                .unwrap_or(0);
            if brokers == self.nodes.len() {
                return;
            }
            assert!(Instant::now() < deadline, "Kafka brokers did not register");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn assert_alive(&self, n: &Node) {
        if let Some(p) = lock(&n.process).as_mut() {
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = std::fs::read_to_string(n.dir.join("stderr.log")).unwrap_or_default();
                panic!("Kafka node {} exited with {status}:\n{log}", n.id);
            }
        }
    }

    fn node(&self, id: usize) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn pid(&self, id: usize) -> u32 {
        lock(&self.node(id).process)
            .as_ref()
            .map(|p| p.child.id())
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    /// The node ids, from 1.
    pub fn node_ids(&self) -> Vec<usize> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The plaintext address of node `id`.
    pub fn address(&self, id: usize) -> String {
        format!("127.0.0.1:{}", self.node(id).ports.plain)
    }

    /// SIGKILLs node `id`: it is gone until [`Kafka::restart`].
    pub fn kill(&self, id: usize) {
        if let Some(mut p) = lock(&self.node(id).process).take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// Stops node `id` as an operator would (SIGTERM, controlled shutdown) and waits for it.
    pub fn stop(&self, id: usize) {
        if let Some(mut p) = lock(&self.node(id).process).take() {
            crate::signal(p.child.id(), "-TERM");
            let deadline = Instant::now() + Duration::from_secs(60);
            while p.child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = p.child.kill();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Starts a stopped or killed node again on its ports and storage.
    pub fn restart(&self, id: usize) {
        self.launch(self.node(id));
        self.wait_ready();
    }

    /// Freezes node `id` (SIGSTOP): connections hang, as with a stalled machine.
    pub fn pause(&self, id: usize) {
        crate::signal(self.pid(id), "-STOP");
    }

    pub fn resume(&self, id: usize) {
        crate::signal(self.pid(id), "-CONT");
    }

    /// Creates `topics` with `partitions` partitions each and the cluster's replication.
    pub fn create_topics(&self, topics: &[&str], partitions: i32) {
        let spec: Vec<TopicSpec<'_>> = topics.iter().map(|t| (*t, partitions, &[][..])).collect();
        self.create_topics_with(&spec);
    }

    /// Creates topics with their own configuration (`cleanup.policy`, `segment.ms`, ...).
    pub fn create_topics_with(&self, topics: &[TopicSpec<'_>]) {
        crate::create_topics(&self.bootstrap, self.nodes.len().min(3) as i32, topics);
    }

    /// Runs a Kafka command-line tool (`org.apache.kafka.tools.AclCommand`, ...) against the
    /// cluster as its admin; panics with its output if it fails.
    pub fn tool(&self, class: &str, args: &[&str]) -> String {
        let out = Command::new(java())
            .arg("-cp")
            .arg(classpath())
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.nodes[0].dir.join("log4j2.properties").display()
            ))
            .arg(class)
            .args(args)
            .output()
            .expect("java runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{class} {args:?} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// Denies producing to `topics` for the plaintext listener's principal (`User:ANONYMOUS`)
    /// with DENY ACLs in the broker's `StandardAuthorizer`: produce requests for them are
    /// answered `TOPIC_AUTHORIZATION_FAILED` until [`Kafka::allow_write`].
    pub fn deny_write(&self, topics: &[&str]) {
        self.acl("--add", topics);
    }

    /// Removes the DENY ACLs [`Kafka::deny_write`] added.
    pub fn allow_write(&self, topics: &[&str]) {
        self.acl("--remove", topics);
    }

    fn acl(&self, op: &str, topics: &[&str]) {
        let mut args = vec![
            "--bootstrap-server",
            &self.bootstrap,
            op,
            "--force",
            "--deny-principal",
            "User:ANONYMOUS",
            "--operation",
            "Write",
        ];
        for t in topics {
            args.extend(["--topic", t]);
        }
        self.tool("org.apache.kafka.tools.AclCommand", &args);
    }

    /// The directory holding each node's storage, configuration and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        for n in &self.nodes {
            if let Some(mut p) = lock(&n.process).take() {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("Kafka logs kept in {}", self.dir.display());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Warnings and errors to `server.log` in the node's directory.
fn log_config(dir: &Path) -> String {
    format!(
        "status = error\n\
         appender.file.type = File\n\
         appender.file.name = file\n\
         appender.file.fileName = {}\n\
         appender.file.layout.type = PatternLayout\n\
         appender.file.layout.pattern = [%d] %p %m (%c)%n\n\
         rootLogger.level = warn\n\
         rootLogger.appenderRefs = file\n\
         rootLogger.appenderRef.file.ref = file\n",
        dir.join("server.log").display()
    )
}

/// A certificate authority, a certificate per node for 127.0.0.1 and a client certificate,
/// made with the `openssl` command for this cluster alone.
fn make_certificates(dir: &Path, nodes: &[Node]) -> Secured {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).expect("tls directory");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&tls)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=pulse-test-ca",
    ]);
    std::fs::write(
        tls.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("extensions");
    let sign = |name: &str, subject: &str| {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.rsa"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        // PKCS#8, which both Kafka's PEM keystore and OpenSSL read.
        openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &format!("{name}.rsa"),
            "-out",
            &format!("{name}.key"),
        ]);
    };
    for n in nodes {
        let name = format!("node-{}", n.id);
        sign(&name, "/CN=localhost");
        let key = std::fs::read_to_string(tls.join(format!("{name}.key"))).expect("key");
        let cert = std::fs::read_to_string(tls.join(format!("{name}.pem"))).expect("cert");
        let mut f =
            std::fs::File::create(tls.join(format!("{name}.keystore.pem"))).expect("keystore");
        write!(f, "{key}{cert}").expect("keystore written");
    }
    sign("client", &format!("/CN={SCRAM_USER}"));
    Secured {
        bootstrap: nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.ports.secured))
            .collect::<Vec<_>>()
            .join(","),
        ca: tls.join("ca.pem"),
        client_cert: tls.join("client.pem"),
        client_key: tls.join("client.key"),
        user: SCRAM_USER.into(),
        password: SCRAM_PASSWORD.into(),
    }
}
