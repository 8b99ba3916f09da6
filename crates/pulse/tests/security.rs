//! Pulse on a secured Kafka: a `SASL_SSL` listener with SCRAM-SHA-512 users and a certificate
//! authority made for the test. The worker, `pulse generate`, `pulse tail` and
//! `pulse fit --brokers` all work through it from one configuration file; a wrong password is
//! a clear error naming the broker and the mechanism, not a retry loop; no secret is printed.

mod common;

use common::cluster::{PARTITIONS, TOPICS};
use common::*;
use pulse_testkit::Kafka;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A configuration file reaching `kafka` over SASL_SSL as the test user with `password`.
fn config_file(kafka: &Kafka, password: &str, dir: &Path) -> PathBuf {
    let s = kafka.secured.as_ref().expect("a secured cluster");
    let path = dir.join(format!("pulse-{}.toml", password.len()));
    std::fs::write(
        &path,
        format!(
            "[kafka]\nbrokers = \"{}\"\ngroup_id = \"secured\"\n\n\
             [kafka.librdkafka]\n\"security.protocol\" = \"sasl_ssl\"\n\
             \"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"{}\"\n\
             \"sasl.password\" = \"{password}\"\n\"ssl.ca.location\" = \"{}\"\n\n\
             [worker]\nidle_timeout = \"1h\"\n",
            s.bootstrap,
            s.user,
            s.ca.display()
        ),
    )
    .expect("config written");
    path
}

/// Runs `pulse args...` to its end: success, stdout, stderr.
fn run_to_end(args: &[&str]) -> (bool, String, String) {
    let out = pulse()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("pulse runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn worker_and_tools_work_over_sasl_ssl_and_a_wrong_password_is_a_clear_error() {
    let kafka = Kafka::builder().label("secured").secured().start();
    let names: Vec<&str> = TOPICS.iter().map(|(_, t)| *t).collect();
    kafka.create_topics(&names, PARTITIONS);
    let dir = kafka.dir().to_owned();
    let password = kafka.secured.as_ref().unwrap().password.clone();
    let good = config_file(&kafka, &password, &dir);
    let good = good.to_str().unwrap();

    // The configuration check prints the resolved configuration without the secret.
    let (ok, out, err) = run_to_end(&["check-config", good]);
    assert!(ok, "{err}");
    assert!(out.contains("sasl_ssl"), "{out}");
    assert!(!out.contains(&password), "the password was printed:\n{out}");
    assert!(out.contains("<redacted>"), "{out}");

    // Traffic in through the secured listener.
    let (ok, _, err) = run_to_end(&[
        "generate",
        "--config",
        good,
        "--customers",
        "150",
        "--duration",
        "30d",
        "--seed",
        "4",
    ]);
    assert!(ok, "generate failed: {err}");
    let produced: f64 = err
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    assert!(produced > 200.0, "{err}");

    // The worker reads it and writes outputs and changelog through the same listener.
    let mut worker = start_with(&["--config", good], &[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while metric_sum(
        &http_get(&worker.addr, "/metrics").1,
        "pulse_input_records_total",
    ) < produced
    {
        assert!(
            Instant::now() < deadline,
            "the worker did not consume the traffic"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop_cleanly(&mut worker);
    let log: Vec<String> = worker.err.try_iter().collect();
    assert!(
        !log.iter().any(|l| l.contains(&password)),
        "the password was logged"
    );

    // `pulse tail` reads the outputs, `pulse fit` the changelog, both through TLS and SASL.
    let (ok, out, err) = run_to_end(&[
        "tail",
        "milestones",
        "--config",
        good,
        "--from-beginning",
        "--count",
        "3",
    ]);
    assert!(ok, "tail failed: {err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    let (ok, out, err) = run_to_end(&["fit", "--config", good]);
    assert!(ok, "fit failed: {err}");
    assert!(out.contains("[engine.clv]"), "{out}");

    // A wrong password: each command stops, saying which broker refused which mechanism.
    let bad = config_file(&kafka, "not-the-password", &dir);
    let bad = bad.to_str().unwrap();
    let broker = &kafka.secured.as_ref().unwrap().bootstrap;
    for args in [
        vec!["run", "--config", bad],
        vec!["tail", "milestones", "--config", bad, "--count", "1"],
        vec![
            "generate",
            "--config",
            bad,
            "--customers",
            "5",
            "--duration",
            "1d",
        ],
        vec!["fit", "--config", bad],
    ] {
        let started = Instant::now();
        let (ok, _, err) = run_to_end(&args);
        assert!(!ok, "{args:?} succeeded with a wrong password");
        assert!(
            err.contains("SCRAM-SHA-512") && err.contains("authentication"),
            "{args:?}: {err}"
        );
        assert!(
            broker.split(',').any(|b| err.contains(b)),
            "{args:?} did not name the broker: {err}"
        );
        assert!(!err.contains("not-the-password"), "{args:?} printed it");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{args:?} took {:?} to give up",
            started.elapsed()
        );
    }
}
