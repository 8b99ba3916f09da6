//! End to end through Apache Kafka (one KRaft node on loopback, started by the bench): Pulse's
//! throughput against a bare consume-and-produce loop over the same input on the same broker,
//! and event-to-output latency at fixed input rates. Prints its figures; run with `make bench`.
//!
//! - `pipeline/bare`: a consumer reads every input record and a producer writes each one to
//!   another topic; done when every copy is acknowledged. The ceiling for any processor on this
//!   machine and broker.
//! - `pipeline/pulse`: a Pulse worker (in this process) reads the same records; done when every
//!   record's outputs, dead letters and changelog records are acknowledged.
//! - `pipeline/latency`: signups of new customers at a fixed rate, each causing one
//!   `milestone.reached`; latency is from handing the input to the producer to reading the
//!   output back from the broker, recorded in an HDR histogram.
//!
//! `PULSE_PIPELINE_EVENTS` (default 200,000), `PULSE_LATENCY_RATES` (events/s, default
//! `1000,10000,50000`) and `PULSE_LATENCY_SECONDS` (default 20) size the runs;
//! `PULSE_BENCH_MAX_HOLD` and `PULSE_BENCH_LIBRDKAFKA` (`key=value,...`) change Pulse's
//! settings, to compare them in one build.

use hdrhistogram::Histogram;
use pulse::Config;
use pulse_events::{Cause, Encoding, OutputEvent, TopicRole};
use pulse_loadgen::{Generator, GeneratorConfig, Record};
use pulse_telemetry::counter_total;
use pulse_testkit::{send_waiting, Kafka, TopicSpec};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PARTITIONS: i32 = 4;
const BARE_OUT: &str = "bench.bare-out";
const WARMUP_SECONDS: u64 = 2;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn partition_of(customer: &str) -> i32 {
    let h = customer.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    (h % PARTITIONS as u64) as i32
}

fn producer(brokers: &str, linger_ms: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", linger_ms)
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

fn send(p: &BaseProducer, topic: &str, partition: i32, key: &[u8], value: &[u8]) {
    send_waiting(
        p,
        BaseRecord::to(topic)
            .key(key)
            .payload(value)
            .partition(partition),
    );
}

/// Realistic traffic (clickstream, purchases, surveys) produced to the input topics.
fn fill_inputs(brokers: &str, cfg: &Config, n: usize) -> usize {
    let day = 86_400_000;
    let now = pulse_kafka::wall_clock_ms();
    let records: Vec<Record> =
        Generator::new(GeneratorConfig::new(20_000, 7, now - 40 * day, 30 * day))
            .take(n)
            .collect();
    let p = producer(brokers, "20");
    for r in &records {
        let topic = cfg.kafka.topics.input(r.topic);
        send(&p, topic, partition_of(&r.key), r.key.as_bytes(), &r.value);
    }
    p.flush(Duration::from_secs(300)).expect("inputs flushed");
    records.len()
}

fn input_topics(cfg: &Config) -> Vec<&str> {
    TopicRole::ALL
        .iter()
        .map(|r| cfg.kafka.topics.input(*r))
        .collect()
}

/// A consumer of every partition of `topics` from the beginning.
fn reader(brokers: &str, group: &str, topics: &[&str]) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    pulse_testkit::assign_from_beginning(&c, topics, PARTITIONS);
    c
}

/// The bare loop's producer, set up as Pulse's is: idempotent, `acks=all`, `linger.ms=5`.
fn copier(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// What the bare loop does with each record: write it unchanged to [`BARE_OUT`].
fn copy(p: &BaseProducer, m: &BorrowedMessage<'_>) {
    send(
        p,
        BARE_OUT,
        m.partition(),
        m.key().unwrap_or_default(),
        m.payload().unwrap_or_default(),
    );
}

/// Copies every input record to another topic; seconds from the first fetch to the last copy
/// acknowledged.
fn bare_copy(brokers: &str, cfg: &Config, n: usize, group: &str) -> f64 {
    let c = reader(brokers, group, &input_topics(cfg));
    let p = copier(brokers);
    let started = Instant::now();
    let mut seen = 0usize;
    let deadline = started + Duration::from_secs(600);
    while seen < n && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            seen += 1;
            copy(&p, &m);
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(120)).expect("copies flushed");
    assert_eq!(seen, n, "bare loop read every record");
    started.elapsed().as_secs_f64()
}

fn bench_config(brokers: &str, group: &str) -> Config {
    let mut cfg = Config::embedded_default();
    cfg.kafka.brokers = brokers.to_owned();
    cfg.kafka.group_id = group.to_owned();
    cfg.http.listen = "127.0.0.1:0".into();
    // The event-time merge's hold bound; `0s` never holds an input back, the cost of the merge
    // in live use is the difference.
    if let Ok(hold) = std::env::var("PULSE_BENCH_MAX_HOLD") {
        cfg.worker.max_hold = humantime::parse_duration(&hold).expect("PULSE_BENCH_MAX_HOLD");
    }
    // librdkafka settings to compare in one build, as `key=value,key=value`: they reach every
    // client, as `[kafka.librdkafka]` does.
    if let Ok(settings) = std::env::var("PULSE_BENCH_LIBRDKAFKA") {
        for kv in settings.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .expect("PULSE_BENCH_LIBRDKAFKA: key=value");
            cfg.kafka.librdkafka.insert(k.to_owned(), v.to_owned());
        }
    }
    cfg
}

/// Starts a worker and waits until it owns its partitions and has restored them: from then on
/// it fetches.
async fn ready_worker(brokers: &str, group: &str) -> pulse::Running {
    let running = pulse::Running::start(bench_config(brokers, group))
        .await
        .expect("pulse starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(running.health.is_ready() && running.metrics.assigned_partitions.get() > 0) {
        assert!(Instant::now() < deadline, "pulse did not become ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    running
}

/// Pulse over the same input: seconds from ready to the last record counted, where a record
/// counts once everything it caused is acknowledged; and the outputs produced.
async fn pulse_run(brokers: &str, n: usize) -> (f64, u64, u64) {
    let running = ready_worker(brokers, "bench-pulse").await;
    let started = Instant::now();
    let m = running.metrics.clone();
    let deadline = started + Duration::from_secs(600);
    while (counter_total(&m.input_records) as usize) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(
        counter_total(&m.input_records) as usize,
        n,
        "pulse read every record"
    );
    let outputs = counter_total(&m.output_events) + counter_total(&m.dead_letters);
    let changelog = m.changelog_records.get();
    running.stop().await.expect("pulse stops");
    (secs, outputs, changelog)
}

/// What a latency run measures: the bare copy loop, or Pulse.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Under {
    Bare,
    Pulse,
}

/// Signups of new customers at `rate` per second for `seconds` (after a warm-up), each
/// carrying its send time in its event id; returns the input-to-output latency histogram (µs)
/// and how many outputs came back.
async fn latency(
    brokers: &str,
    cfg: &Config,
    under: Under,
    rate: u64,
    seconds: u64,
) -> (Histogram<u64>, u64) {
    let clickstream = cfg.kafka.topics.clickstream.clone();
    let running = match under {
        Under::Pulse => Some(ready_worker(brokers, "bench-latency").await),
        Under::Bare => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let copier = (under == Under::Bare).then(|| {
        let (brokers, from, stop) = (brokers.to_owned(), clickstream.clone(), stop.clone());
        std::thread::spawn(move || copy_until(&brokers, &from, &stop))
    });
    let expected = rate * seconds;
    let reader = {
        let brokers = brokers.to_owned();
        let topic = match under {
            Under::Pulse => cfg.kafka.topics.milestones.clone(),
            Under::Bare => BARE_OUT.to_owned(),
        };
        std::thread::spawn(move || read_latencies(&brokers, &topic, under, expected))
    };
    let writer = {
        let brokers = brokers.to_owned();
        std::thread::spawn(move || write_signups(&brokers, &clickstream, rate, seconds))
    };
    writer.join().expect("writer");
    let result = reader.join().expect("reader");
    stop.store(true, Ordering::Relaxed);
    if let Some(c) = copier {
        c.join().expect("copier");
    }
    if let Some(r) = running {
        r.stop().await.expect("pulse stops");
    }
    result
}

fn write_signups(brokers: &str, topic: &str, rate: u64, seconds: u64) {
    let p = producer(brokers, "0");
    let started = Instant::now();
    // The first WARMUP_SECONDS are not measured: clients connect, and fetch positions settle.
    let warmup = rate * WARMUP_SECONDS;
    for i in 0..warmup + rate * seconds {
        // Sleep, not spin: the machine's cores belong to the broker and the worker.
        let due = started + Duration::from_micros(i * 1_000_000 / rate);
        let now = Instant::now();
        if now < due {
            p.poll(Duration::ZERO);
            std::thread::sleep(due - now);
        }
        let customer = format!("lat-{i}");
        let tag = if i < warmup { "warm" } else { "lat" };
        let value = format!(
            r#"{{"event_id":"{tag}-{i}-{}","customer_id":"{customer}","type":"signup","timestamp":{}}}"#,
            unix_micros(),
            pulse_kafka::wall_clock_ms()
        );
        send(
            &p,
            topic,
            partition_of(&customer),
            customer.as_bytes(),
            value.as_bytes(),
        );
    }
    p.flush(Duration::from_secs(60)).expect("signups flushed");
}

/// The bare loop for latency: copies `from` to [`BARE_OUT`] record by record until `stop`.
fn copy_until(brokers: &str, from: &str, stop: &AtomicBool) {
    let c = reader(brokers, "bench-bare-latency", &[from]);
    let p = copier(brokers);
    while !stop.load(Ordering::Relaxed) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
            copy(&p, &m);
        }
        p.poll(Duration::ZERO);
    }
    let _ = p.flush(Duration::from_secs(10));
}

/// The input event id an output carries: a Pulse output names its cause, a bare copy is the
/// input itself.
fn input_event_id(under: Under, payload: &[u8]) -> Option<String> {
    match under {
        Under::Pulse => match OutputEvent::decode(payload, Encoding::Json).ok()?.cause {
            Cause::Event { event_id, .. } => Some(event_id.to_string()),
            Cause::Timer { .. } => None,
        },
        Under::Bare => {
            let text = std::str::from_utf8(payload).ok()?;
            let start = text.find(r#""event_id":""#)? + r#""event_id":""#.len();
            let len = text[start..].find('"')?;
            Some(text[start..start + len].to_owned())
        }
    }
}

fn read_latencies(
    brokers: &str,
    topic: &str,
    under: Under,
    expected: u64,
) -> (Histogram<u64>, u64) {
    let c = reader(brokers, "bench-latency-reader", &[topic]);
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut got = 0u64;
    let mut quiet = Instant::now();
    while got < expected && quiet.elapsed() < Duration::from_secs(10 + WARMUP_SECONDS) {
        let Some(Ok(m)) = c.poll(Duration::from_millis(50)) else {
            continue;
        };
        quiet = Instant::now();
        let now = unix_micros();
        let Some(id) = input_event_id(under, m.payload().unwrap_or_default()) else {
            continue;
        };
        if !id.starts_with("lat-") {
            continue;
        }
        let Some(sent) = id.rsplit('-').next().and_then(|t| t.parse::<u64>().ok()) else {
            continue;
        };
        got += 1;
        let _ = h.record(now.saturating_sub(sent).max(1));
    }
    (h, got)
}

/// How long a new broker is kept busy before anything is measured: the JVM compiles Kafka's
/// produce and fetch paths in its first tens of seconds, and on two cores its compiler threads
/// would take a third of the machine from whatever runs first.
const BROKER_WARMUP: Duration = Duration::from_secs(25);

/// Produces to and fetches from a scratch topic for [`BROKER_WARMUP`].
fn warm_up(brokers: &str) {
    const TOPIC: &str = "bench.warmup";
    pulse_testkit::create_topics(brokers, 1, &[(TOPIC, PARTITIONS, &[])]);
    let p = copier(brokers);
    let c = reader(brokers, "bench-warmup", &[TOPIC]);
    let value = [b'x'; 200];
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < BROKER_WARMUP {
        for _ in 0..1000 {
            i += 1;
            let key = i.to_string();
            send(
                &p,
                TOPIC,
                (i % PARTITIONS as u64) as i32,
                key.as_bytes(),
                &value,
            );
        }
        p.poll(Duration::ZERO);
        while let Some(Ok(_)) = c.poll(Duration::ZERO) {}
    }
    p.flush(Duration::from_secs(30)).expect("warm-up flushed");
}

/// A warmed-up Kafka node with Pulse's topics (the changelog compacted, as in production) and
/// the bare loop's output topic.
fn broker(cfg: &Config) -> Kafka {
    let kafka = Kafka::builder().label("pipeline-bench").start();
    let compacted: &[(&str, &str)] = &[("cleanup.policy", "compact")];
    let mut topics: Vec<TopicSpec<'_>> = cfg
        .kafka
        .topics
        .all()
        .into_iter()
        .map(|t| {
            let config: &[(&str, &str)] = if t == cfg.kafka.topics.profiles {
                compacted
            } else {
                &[]
            };
            (t, PARTITIONS, config)
        })
        .collect();
    topics.push((BARE_OUT, PARTITIONS, &[]));
    kafka.create_topics_with(&topics);
    if std::env::args().any(|a| a == "--bench") {
        warm_up(&kafka.bootstrap);
    }
    kafka
}

fn main() {
    // `cargo test --benches` runs bench targets without `--bench`: keep that run tiny.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = env_or(
        "PULSE_PIPELINE_EVENTS",
        if benching { 200_000 } else { 2_000 },
    );
    let rates: Vec<u64> = std::env::var("PULSE_LATENCY_RATES")
        .unwrap_or_else(|_| if benching { "1000,10000,50000" } else { "500" }.into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let seconds: u64 = env_or("PULSE_LATENCY_SECONDS", if benching { 20 } else { 2 });
    let cfg = Config::embedded_default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    let kafka = broker(&cfg);
    let n = fill_inputs(&kafka.bootstrap, &cfg, n);
    // The bare loop before and after Pulse, so the ratio is not the host's drift.
    let bare = bare_copy(&kafka.bootstrap, &cfg, n, "bench-bare");
    println!(
        "pipeline/bare: {n} records consumed and produced in {bare:.2} s = {:.0} records/s",
        n as f64 / bare
    );
    let (secs, outputs, changelog) = rt.block_on(pulse_run(&kafka.bootstrap, n));
    let again = bare_copy(&kafka.bootstrap, &cfg, n, "bench-bare-again");
    println!(
        "pipeline/bare-again: {n} records consumed and produced in {again:.2} s = {:.0} records/s",
        n as f64 / again
    );
    println!(
        "pipeline/pulse: {n} events in {secs:.2} s = {:.0} events/s in; {outputs} outputs and dead letters ({:.0}/s), {changelog} changelog records ({:.0}/s); {:.2}x the bare loop's throughput (mean of the two bare runs)",
        n as f64 / secs,
        outputs as f64 / secs,
        changelog as f64 / secs,
        (bare + again) / 2.0 / secs
    );
    drop(kafka);

    for rate in rates {
        for under in [Under::Bare, Under::Pulse] {
            let kafka = broker(&cfg);
            let (h, got) = rt.block_on(latency(&kafka.bootstrap, &cfg, under, rate, seconds));
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            let name = match under {
                Under::Bare => "latency-bare",
                Under::Pulse => "latency",
            };
            println!(
                "pipeline/{name}: {rate} events/s for {seconds} s, {got} of {} outputs; input to output p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                rate * seconds,
                ms(0.5),
                ms(0.99),
                ms(0.999),
                h.max() as f64 / 1000.0
            );
        }
    }
}
