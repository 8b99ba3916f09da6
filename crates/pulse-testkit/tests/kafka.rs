//! The Apache Kafka harness itself: a node serves produce and fetch, a secured node speaks
//! SASL_SSL with SCRAM, a DENY ACL refuses produce requests, and a three-node cluster keeps
//! serving with one node killed.

use pulse_testkit::{assign_from_beginning, namespace, Kafka};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use std::time::{Duration, Instant};

fn roundtrip(client: &ClientConfig, topic: &str) -> Result<(), KafkaError> {
    roundtrip_on(client, topic, 1)
}

fn roundtrip_on(client: &ClientConfig, topic: &str, partitions: i32) -> Result<(), KafkaError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let producer: FutureProducer = client.clone().set("message.timeout.ms", "30000").create()?;
    rt.block_on(producer.send(
        FutureRecord::to(topic).key("k").payload("hello"),
        Duration::from_secs(30),
    ))
    .map_err(|(e, _)| e)?;
    let consumer: BaseConsumer = client.clone().set("group.id", "smoke").create()?;
    assign_from_beginning(&consumer, &[topic], partitions);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        // Errors here are transient (a killed node's connection): librdkafka retries.
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            assert_eq!(m.payload(), Some(&b"hello"[..]));
            return Ok(());
        }
    }
    panic!("nothing read back from {topic}");
}

fn plain(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

#[test]
fn a_shared_node_serves_produce_and_fetch() {
    let kafka = Kafka::shared();
    let topic = format!("{}.smoke", namespace("harness"));
    kafka.create_topics(&[&topic], 1);
    roundtrip(&plain(&kafka.bootstrap), &topic).expect("round trip");
}

#[test]
fn a_deny_acl_refuses_produce_requests_until_removed() {
    let kafka = Kafka::builder().label("acl").start();
    kafka.create_topics(&["guarded"], 1);
    kafka.deny_write(&["guarded"]);
    let err = roundtrip(&plain(&kafka.bootstrap), "guarded").expect_err("refused");
    assert!(
        matches!(
            err,
            KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)
        ),
        "{err:?}"
    );
    kafka.allow_write(&["guarded"]);
    roundtrip(&plain(&kafka.bootstrap), "guarded").expect("allowed again");
}

#[test]
fn a_secured_node_speaks_sasl_ssl_with_scram() {
    let kafka = Kafka::builder().label("tls").secured().start();
    kafka.create_topics(&["secret"], 1);
    let s = kafka.secured.as_ref().unwrap();
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &s.bootstrap)
        .set("security.protocol", "sasl_ssl")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", &s.user)
        .set("sasl.password", &s.password)
        .set("ssl.ca.location", s.ca.display().to_string());
    roundtrip(&c, "secret").expect("round trip over SASL_SSL");
}

#[test]
fn three_nodes_keep_serving_with_one_killed() {
    let kafka = Kafka::builder().label("trio").nodes(3).start();
    kafka.create_topics(&["replicated"], 3);
    kafka.kill(2);
    roundtrip_on(&plain(&kafka.bootstrap), "replicated", 3).expect("served by two of three");
}
