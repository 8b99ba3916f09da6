//! Helpers for tests that run the real `pulse` binary: spawning it, reading its output with
//! timeouts, talking HTTP to it, and the embedded cluster it connects to.
#![allow(dead_code)]

pub mod cluster;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn pulse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pulse"))
}

/// A running `pulse run` with its output lines and HTTP address.
pub struct Proc {
    pub child: Child,
    pub out: mpsc::Receiver<String>,
    pub err: mpsc::Receiver<String>,
    pub addr: String,
    pub brokers: String,
    /// The log lines read while waiting for the addresses.
    pub early: Vec<String>,
}

/// A test that fails part-way must not leave its workers running.
/// A failing test also shows the end of the worker's log.
impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let log: Vec<String> = self.err.try_iter().collect();
            // The whole log stays on disk for a failure reproduced on this machine.
            let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("pulse-{}.log", self.addr.replace(':', "-")));
            let _ = std::fs::write(&file, log.join("\n"));
            let from = log.len().saturating_sub(200);
            eprintln!(
                "--- last lines of pulse at {} (all in {}) ---",
                self.addr,
                file.display()
            );
            for l in &log[from..] {
                eprintln!("{l}");
            }
        }
    }
}

/// Starts `pulse run` with JSON logs and an ephemeral HTTP port, waiting for its address.
pub fn start(env: &[(&str, &str)]) -> Proc {
    start_with(&[], env)
}

/// [`start`] with more arguments to `pulse run` (`--config FILE`).
pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = pulse();
    cmd.arg("run")
        .args(args)
        .env("PULSE__HTTP__LISTEN", "127.0.0.1:0")
        .env("PULSE__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("pulse starts");
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    let (mut addr, mut brokers) = (None, None);
    let mut early = Vec::new();
    let found = wait_for(&err, Duration::from_secs(30), |l| {
        early.push(l.to_owned());
        if let Some(b) = json_field(l, "brokers") {
            brokers.get_or_insert(b);
        }
        if let Some(a) = json_field(l, "addr") {
            addr = Some(a);
        }
        addr.is_some() && brokers.is_some()
    });
    assert!(found.is_some(), "pulse did not log its addresses");
    Proc {
        child,
        out,
        err,
        addr: addr.unwrap(),
        brokers: brokers.unwrap(),
        early,
    }
}

pub fn http_get(addr: &str, path: &str) -> (u16, String) {
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

/// Sum of a metric's samples in a Prometheus text scrape.
pub fn metric_sum(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| {
            l.starts_with(name)
                && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Lines from a child's pipe, delivered over a channel so reads can time out.
pub fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
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

pub fn wait_for(
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

pub fn json_field(line: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub fn signal(child: &Child, sig: &str) {
    pulse_testkit::signal(child.id(), sig);
}

/// SIGINT; the worker must then exit with status 0 within its shutdown deadline.
pub fn stop_cleanly(p: &mut Proc) {
    signal(&p.child, "-INT");
    assert_eq!(
        wait_exit(&mut p.child, Duration::from_secs(35)).code(),
        Some(0)
    );
}

/// Waits for the child to exit, failing the test after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "pulse did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
