//! The `pulse` binary as a user runs it: the embedded demo shows events and outputs, serves its
//! probes, `tail` reads its outputs, Ctrl-C exits 0; bad configuration exits 2 naming the key.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn demo_runs_serves_probes_tails_and_exits_cleanly_on_ctrl_c() {
    let mut demo = start(&[("PULSE__DEMO__RATE", "3000")]);
    let (addr, brokers) = (demo.addr.clone(), demo.brokers.clone());

    // Events flow and every funnel output type shows up in the summary line.
    let line = wait_for(&demo.out, Duration::from_secs(60), |l| {
        l.contains("milestone.reached")
            && l.contains("funnel.converted")
            && l.contains("funnel.abandoned")
    });
    assert!(line.is_some(), "no outputs within 60 s");
    assert!(line.unwrap().contains("ev/s"));

    let (s, _) = http_get(&addr, "/healthz");
    assert_eq!(s, 200);
    let (s, _) = http_get(&addr, "/readyz");
    assert_eq!(s, 200);
    let (s, body) = http_get(&addr, "/metrics");
    assert_eq!(s, 200);
    assert!(body.contains("pulse_input_records_total{topic=\"clickstream\"}"));
    assert!(body.contains("pulse_output_events_total{type=\"milestone.reached\"}"));

    // `pulse tail` reads the outputs readably from the embedded cluster.
    let tail = pulse()
        .args([
            "tail",
            "milestones",
            "--brokers",
            &brokers,
            "--from-beginning",
            "--count",
            "5",
        ])
        .output()
        .expect("tail runs");
    assert!(
        tail.status.success(),
        "{}",
        String::from_utf8_lossy(&tail.stderr)
    );
    let printed = String::from_utf8_lossy(&tail.stdout);
    assert_eq!(printed.lines().count(), 5, "{printed}");
    assert!(
        printed
            .lines()
            .all(|l| l.contains("milestone.reached") || l.contains("funnel.")),
        "{printed}"
    );

    stop_cleanly(&mut demo);
    let rest: Vec<String> = demo.err.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("Final offsets committed")),
        "{rest:?}"
    );
    // A partition task's lines carry its span; a healthy run logs no ERROR (an ERROR means
    // data loss or that an operator must act).
    assert!(
        rest.iter().any(|l| l.contains("Partition restored.")
            && l.contains("\"span\":{")
            && l.contains("\"name\":\"partition\"")),
        "{rest:?}"
    );
    assert!(
        !rest.iter().any(|l| l.contains("\"level\":\"ERROR\"")),
        "{rest:?}"
    );
}

#[test]
fn bad_configuration_names_the_key_and_exits_2() {
    let dir = std::env::temp_dir().join(format!("pulse-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[worker]\nmax_batch = \"many\"\n[kafka]\nbokers = \"x\"\n",
    )
    .unwrap();
    let out = pulse().arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `kafka.bokers`"), "{err}");

    std::fs::write(&file, "[worker]\nmax_batch = 100\n").unwrap();
    let out = pulse()
        .arg("check-config")
        .arg(&file)
        .env("PULSE__ENGINE__SESSION_GAP", "0s")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("engine.session_gap"));

    let out = pulse().arg("check-config").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("max_batch = 100"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generate_writes_valid_ndjson() {
    let out = pulse()
        .args([
            "generate",
            "--customers",
            "20",
            "--duration",
            "3d",
            "--seed",
            "5",
            "--output",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut n = 0;
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let topic = v["topic"].as_str().unwrap();
        assert!(["clickstream", "purchases", "surveys"].contains(&topic));
        assert_eq!(v["key"], v["event"]["customer_id"]);
        n += 1;
    }
    assert!(n > 50, "{n} records");
}
