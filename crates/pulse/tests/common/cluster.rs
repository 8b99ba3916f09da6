//! The brokers the binary's fault tests run against: the embedded mock cluster, for speed, and
//! Apache Kafka, for proof. Each test keeps to its own topics and consumer group (a namespace),
//! so tests that leave the broker alone share one Kafka node; tests that stop brokers, change
//! ACLs or need three nodes start their own.
//!
//! On Kafka the changelog is compacted as users are told to create it, and compacted hard: its
//! segments roll every 100 ms and the cleaner takes any of them, so every Kafka test restores
//! from a log the cleaner may have compacted at any point.

use pulse_engine::Profile;
use pulse_events::{Cause, Encoding, OutputEvent, TopicRole};
use pulse_kafka::{read_changelog, EmbeddedCluster};
use pulse_loadgen::Record;
use pulse_testkit::{namespace, send_waiting, Kafka, KafkaBuilder, TopicSpec};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const PARTITIONS: i32 = 3;

/// Pulse's topics: the `kafka.topics` key and the default name each is prefixed from.
pub const TOPICS: [(&str, &str); 9] = [
    ("CLICKSTREAM", "clickstream"),
    ("PURCHASES", "purchases"),
    ("SURVEYS", "surveys"),
    ("SEGMENTS", "pulse.segments"),
    ("CHURN_RISK", "pulse.churn-risk"),
    ("MILESTONES", "pulse.milestones"),
    ("PROFILES", "pulse.profiles"),
    ("DEAD_LETTER", "pulse.dead-letter"),
    ("REPARTITION", "pulse.repartition"),
];

/// The output topics, by default name.
pub const OUTPUTS: [&str; 3] = ["pulse.segments", "pulse.churn-risk", "pulse.milestones"];

/// Topic configuration of the changelog on Kafka: compacted, and compacted soon.
pub const COMPACTED: [(&str, &str); 4] = [
    ("cleanup.policy", "compact"),
    ("segment.ms", "100"),
    ("min.cleanable.dirty.ratio", "0.01"),
    ("delete.retention.ms", "100"),
];

/// The input topics by role, under their default names.
pub const INPUT_TOPICS: [(TopicRole, &str); 3] = [
    (TopicRole::Clickstream, "clickstream"),
    (TopicRole::Purchases, "purchases"),
    (TopicRole::Surveys, "surveys"),
];

/// The number of records per input topic (by default name) and partition.
pub type Ends = Vec<(&'static str, Vec<i64>)>;

/// Adds the per-partition counts of `more` to `ends`: the ends after producing both.
pub fn add_ends(ends: &mut Ends, more: &Ends) {
    for ((topic, end), (other, extra)) in ends.iter_mut().zip(more) {
        assert_eq!(topic, other);
        for (e, x) in end.iter_mut().zip(extra) {
            *e += x;
        }
    }
}

/// A partition for a customer id by FNV-1a, not by Pulse's partitioner: a test producing with
/// it puts some customers on partitions that do not own them, so their records take the
/// repartition path.
pub fn fnv_partition(customer: &str) -> i32 {
    let h = customer.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    (h % PARTITIONS as u64) as i32
}

/// The broker a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Mock,
    Kafka,
}

enum Inner {
    Mock(EmbeddedCluster),
    Shared(&'static Kafka),
    Own(Kafka),
}

/// A broker with one test's topics on it.
pub struct Cluster {
    pub kind: Kind,
    inner: Inner,
    ns: String,
}

impl Cluster {
    /// The embedded cluster, or a namespace on the shared Kafka node.
    pub fn start(kind: Kind, label: &str) -> Self {
        match kind {
            Kind::Mock => Self::mock(label),
            Kind::Kafka => Self::create(Inner::Shared(Kafka::shared()), label, &COMPACTED),
        }
    }

    /// [`Cluster::start`] with a changelog the cleaner leaves alone while the test runs (it
    /// never rolls a segment), so what was written to it stays there to be looked at.
    pub fn uncleaned(kind: Kind, label: &str) -> Self {
        match kind {
            Kind::Mock => Self::mock(label),
            Kind::Kafka => Self::create(
                Inner::Shared(Kafka::shared()),
                label,
                &[("cleanup.policy", "compact")],
            ),
        }
    }

    /// The embedded cluster, or a Kafka cluster of the test's own (to stop, or to change ACLs
    /// on) built from `builder`.
    pub fn own(kind: Kind, label: &str, builder: KafkaBuilder) -> Self {
        match kind {
            Kind::Mock => Self::mock(label),
            Kind::Kafka => {
                Self::create(Inner::Own(builder.label(label).start()), label, &COMPACTED)
            }
        }
    }

    fn mock(label: &str) -> Self {
        let ns = namespace(label);
        let names: Vec<String> = TOPICS.iter().map(|(_, t)| format!("{ns}.{t}")).collect();
        let topics: Vec<(&str, i32)> = names.iter().map(|t| (t.as_str(), PARTITIONS)).collect();
        Cluster {
            kind: Kind::Mock,
            inner: Inner::Mock(EmbeddedCluster::start(1, &topics).expect("embedded cluster")),
            ns,
        }
    }

    fn create(inner: Inner, label: &str, changelog: &[(&str, &str)]) -> Self {
        let c = Cluster {
            kind: Kind::Kafka,
            inner,
            ns: namespace(label),
        };
        let names: Vec<String> = TOPICS.iter().map(|(_, t)| c.topic(t)).collect();
        let spec: Vec<TopicSpec<'_>> = names
            .iter()
            .map(|t| {
                let config: &[(&str, &str)] = if t.ends_with("pulse.profiles") {
                    changelog
                } else {
                    &[]
                };
                (t.as_str(), PARTITIONS, config)
            })
            .collect();
        c.kafka().create_topics_with(&spec);
        c
    }

    pub fn kafka(&self) -> &Kafka {
        match &self.inner {
            Inner::Shared(k) => k,
            Inner::Own(k) => k,
            Inner::Mock(_) => panic!("not a Kafka cluster"),
        }
    }

    pub fn mock_cluster(&self) -> &EmbeddedCluster {
        match &self.inner {
            Inner::Mock(c) => c,
            _ => panic!("not the embedded cluster"),
        }
    }

    pub fn bootstrap(&self) -> String {
        match &self.inner {
            Inner::Mock(c) => c.bootstrap_servers().to_owned(),
            Inner::Shared(k) => k.bootstrap.clone(),
            Inner::Own(k) => k.bootstrap.clone(),
        }
    }

    /// This test's name for one of Pulse's topics (by default name).
    pub fn topic(&self, default: &str) -> String {
        format!("{}.{default}", self.ns)
    }

    /// A topic's default name, given this test's name for it.
    pub fn default_name<'a>(&self, topic: &'a str) -> &'a str {
        topic
            .strip_prefix(&format!("{}.", self.ns))
            .unwrap_or(topic)
    }

    pub fn group(&self) -> String {
        format!("{}.group", self.ns)
    }

    /// Environment pointing a worker at this cluster, its topics and its group.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PULSE__KAFKA__BROKERS".to_owned(), self.bootstrap()),
            ("PULSE__KAFKA__GROUP_ID".to_owned(), self.group()),
        ];
        for (key, default) in TOPICS {
            env.push((format!("PULSE__KAFKA__TOPICS__{key}"), self.topic(default)));
        }
        env
    }

    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap());
        c
    }

    /// The group's committed offset per partition of `topic` (by default name); -1 where none.
    pub fn committed(&self, topic: &str) -> Vec<i64> {
        let c: BaseConsumer = self
            .client()
            .set("group.id", self.group())
            .create()
            .expect("consumer");
        let topic = self.topic(topic);
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(&topic, p);
        }
        match c.committed_offsets(tpl, Duration::from_secs(5)) {
            Ok(got) => (0..PARTITIONS)
                .map(
                    |p| match got.find_partition(&topic, p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => o,
                        _ => -1,
                    },
                )
                .collect(),
            Err(_) => vec![-1; PARTITIONS as usize],
        }
    }

    /// Waits until the group has committed `end` on `topic`.
    pub fn wait_committed(&self, topic: &str, end: &[i64], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.committed(topic) != end {
            assert!(
                Instant::now() < deadline,
                "not caught up: {:?} of {end:?}",
                self.committed(topic)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Waits until the group has committed every input record counted in `ends`.
    pub fn wait_caught_up(&self, ends: &Ends) {
        for (topic, end) in ends {
            self.wait_committed(topic, end, Duration::from_secs(180));
        }
    }

    /// Waits until the group has committed at least `end` on every partition of `topic`.
    pub fn wait_committed_past(&self, topic: &str, end: &[i64], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.committed(topic).iter().zip(end).any(|(c, e)| c < e) {
            assert!(
                Instant::now() < deadline,
                "not caught up: {:?} of at least {end:?}",
                self.committed(topic)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Produces each record under its key to its input topic, on the partition `partition`
    /// gives the key, in the order given; returns how many records went to each input
    /// partition (their end offsets, if they were the first there).
    pub fn produce(&self, records: &[(String, &Record)], partition: impl Fn(&str) -> i32) -> Ends {
        let producer: BaseProducer = self
            .client()
            .set("linger.ms", "5")
            // Retries must not reorder a partition's records: tests compare exact states.
            .set("enable.idempotence", "true")
            .create()
            .expect("producer");
        let names: Vec<String> = INPUT_TOPICS.iter().map(|(_, t)| self.topic(t)).collect();
        let mut ends: Ends = INPUT_TOPICS
            .iter()
            .map(|(_, t)| (*t, vec![0i64; PARTITIONS as usize]))
            .collect();
        for (key, r) in records {
            let (i, p) = (r.topic.index(), partition(key));
            ends[i].1[p as usize] += 1;
            send_waiting(
                &producer,
                BaseRecord::to(&names[i])
                    .key(key)
                    .payload(&r.value)
                    .partition(p),
            );
        }
        producer.flush(Duration::from_secs(60)).expect("flushed");
        ends
    }

    /// Every customer's profile as a restore reads it from the changelog.
    pub fn changelog_state(&self) -> BTreeMap<String, Profile> {
        let mut client = self.client();
        client.set("isolation.level", "read_committed");
        let mut all = BTreeMap::new();
        for p in 0..PARTITIONS {
            let c = read_changelog(&client, &self.topic("pulse.profiles"), p, None)
                .expect("changelog reads");
            all.extend(c.profiles);
        }
        all
    }

    /// Records of every partition of `topic` (by default name), read to its end as a
    /// `read_committed` consumer sees them: until the consumer's position reaches each
    /// partition's high watermark as it stood when the read began.
    pub fn read_all(&self, topic: &str) -> Vec<rdkafka::message::OwnedMessage> {
        self.read_isolated(topic, "read_committed")
    }

    /// [`Cluster::read_all`] at `isolation` (`read_uncommitted` also sees aborted records).
    pub fn read_isolated(
        &self,
        topic: &str,
        isolation: &str,
    ) -> Vec<rdkafka::message::OwnedMessage> {
        let c: BaseConsumer = self
            .client()
            .set("group.id", format!("{}.reader", self.ns))
            .set("isolation.level", isolation)
            .create()
            .expect("consumer");
        let topic = self.topic(topic);
        let mut tpl = TopicPartitionList::new();
        let mut high = Vec::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .unwrap();
            let (_, h) = c
                .fetch_watermarks(&topic, p, Duration::from_secs(10))
                .expect("watermarks");
            high.push(h);
        }
        c.assign(&tpl).unwrap();
        let reached = |c: &BaseConsumer| {
            let pos = c.position().expect("position");
            (0..PARTITIONS).all(|p| {
                high[p as usize] == 0
                    || matches!(
                        pos.find_partition(&topic, p).map(|e| e.offset()),
                        Some(Offset::Offset(o)) if o >= high[p as usize]
                    )
            })
        };
        let mut all = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reached(&c) {
            assert!(Instant::now() < deadline, "{topic} not read to its end");
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                all.push(m.detach());
            }
        }
        all
    }

    /// Every output event on the three output topics.
    pub fn outputs(&self) -> Vec<OutputEvent> {
        OUTPUTS
            .iter()
            .flat_map(|t| self.read_all(t))
            .map(|m| OutputEvent::decode(m.payload().unwrap(), Encoding::Json).unwrap())
            .collect()
    }

    /// Every output's id as it would be were Pulse's topics named without this test's
    /// namespace: recomputed from the output's content with the cause's topic unprefixed, so
    /// runs on differently named topics compare.
    pub fn output_ids(&self) -> Vec<String> {
        self.outputs()
            .iter()
            .map(|o| self.canonical_id(o))
            .collect()
    }

    /// One output's id as [`Cluster::output_ids`] gives it.
    pub fn canonical_id(&self, o: &OutputEvent) -> String {
        let prefix = format!("{}.", self.ns);
        let cause = match o.cause.clone() {
            Cause::Event {
                event_id,
                topic,
                partition,
                offset,
            } => Cause::Event {
                event_id,
                topic: topic.strip_prefix(&prefix).unwrap_or(&topic).into(),
                partition,
                offset,
            },
            timer => timer,
        };
        let (rule, numbers) = o.data.rule();
        OutputEvent::new(
            o.kind,
            &o.customer_id,
            (rule, &numbers),
            o.at,
            cause,
            o.rule_version,
            o.data.clone(),
            o.profile.clone(),
        )
        .event_id
        .to_string()
    }

    /// How many records the changelog holds now, and how many were ever written to it.
    pub fn changelog_size(&self) -> (usize, i64) {
        let held = self.read_all("pulse.profiles").len();
        let c: BaseConsumer = self.client().create().expect("consumer");
        let written = (0..PARTITIONS)
            .map(|p| {
                c.fetch_watermarks(&self.topic("pulse.profiles"), p, Duration::from_secs(5))
                    .expect("watermarks")
                    .1
            })
            .sum();
        (held, written)
    }
}
