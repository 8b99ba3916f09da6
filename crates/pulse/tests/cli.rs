//! The `pulse` binary as a user runs it: the embedded demo shows events and outputs, serves its
//! probes, `tail` reads its outputs, Ctrl-C exits 0; bad configuration exits 2 naming the key.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn pulse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pulse"))
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let status = body
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body)
}

/// Lines from a child's pipe, delivered over a channel so reads can time out.
fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for(
    rx: &mpsc::Receiver<String>,
    timeout: Duration,
    mut pred: impl FnMut(&str) -> bool,
) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            if pred(&l) {
                return Some(l);
            }
        }
    }
    None
}

fn json_field(line: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get(key)?.as_str().map(str::to_owned)
}

fn interrupt(child: &Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn demo_runs_serves_probes_tails_and_exits_cleanly_on_ctrl_c() {
    let mut child = pulse()
        .arg("run")
        .env("PULSE__HTTP__LISTEN", "127.0.0.1:0")
        .env("PULSE__LOG__FORMAT", "json")
        .env("PULSE__DEMO__RATE", "3000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pulse starts");
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());

    let mut brokers = None;
    let mut addr = None;
    let found = wait_for(&err, Duration::from_secs(30), |l| {
        if let Some(b) = json_field(l, "brokers") {
            brokers.get_or_insert(b);
        }
        if let Some(a) = json_field(l, "addr") {
            addr = Some(a);
        }
        addr.is_some() && brokers.is_some()
    });
    assert!(found.is_some(), "no startup logs");
    let (brokers, addr) = (brokers.unwrap(), addr.unwrap());

    // Events flow and every funnel output type shows up in the summary line.
    let line = wait_for(&out, Duration::from_secs(60), |l| {
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

    interrupt(&child);
    let deadline = Instant::now() + Duration::from_secs(35);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "did not stop within the shutdown deadline"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = err.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("Final offsets committed")),
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
