//! The HTTP server as a user secures it: HTTPS with a certificate made for the test, bearer
//! tokens from files, probes left open; every refusal is JSON with the right status, and no
//! token reaches the log. Talks to the real binary with curl, as an operator would.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const FULL: &str = "3f9c2e7d41b84a6f9e0d5c1b2a3f4e5d";
const AGGREGATE: &str = "dashboards-7a1c4e9b2d6f8a0c";

/// A self-signed certificate for localhost and 127.0.0.1, and its key.
fn certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

/// `curl` to the worker: the status code and the body.
fn curl(cert: &str, url: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "--cacert",
            cert,
            "-w",
            "\n%{http_code}",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

#[test]
fn https_with_tokens_refuses_clearly_and_keeps_the_probes_open() {
    let dir = std::env::temp_dir().join(format!("pulse-http-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = certificate(&dir);
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("# the operators' token\n{FULL}\n")).unwrap();
    let aggregate = dir.join("aggregate-tokens");
    std::fs::write(&aggregate, format!("{AGGREGATE}\n")).unwrap();

    let mut p = start(&[
        ("PULSE__HTTP__TOKEN_FILE", tokens.to_str().unwrap()),
        (
            "PULSE__HTTP__AGGREGATE_TOKEN_FILE",
            aggregate.to_str().unwrap(),
        ),
        ("PULSE__HTTP__TLS_CERT", &cert),
        ("PULSE__HTTP__TLS_KEY", &key),
        ("PULSE__LOG__LEVEL", "debug"),
        ("PULSE__DEMO__RATE", "200"),
    ]);
    let port = p.addr.rsplit(':').next().unwrap().to_owned();
    let url = |path: &str| format!("https://localhost:{port}{path}");

    // Probes and metrics stay open; the worker becomes ready.
    let mut ready = false;
    for _ in 0..120 {
        if curl(&cert, &url("/readyz"), &[]).0 == 200 {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(ready, "the worker did not become ready over HTTPS");
    assert_eq!(curl(&cert, &url("/healthz"), &[]).0, 200);
    let (status, scrape) = curl(&cert, &url("/metrics"), &[]);
    assert_eq!(status, 200);
    assert!(scrape.contains("pulse_input_records_total"));

    // Without a token, or with a wrong one: 401, as JSON, saying what to send.
    for (extra, path) in [
        (vec![], "/v1/segments"),
        (vec![], "/"),
        (
            vec!["-H".to_owned(), bearer("not-the-token-0123456789")],
            "/v1/funnels",
        ),
    ] {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (status, body) = curl(&cert, &url(path), &extra);
        assert_eq!(status, 401, "{path}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON refusal");
        assert!(json["error"].is_string(), "{body}");
    }

    // The full token reads a profile; a browser's Basic prompt carries it for the page.
    let full = bearer(FULL);
    let (status, body) = curl(&cert, &url("/v1/segments"), &["-H", &full]);
    assert_eq!(status, 200, "{body}");
    let (status, page) = curl(&cert, &url("/"), &["-u", &format!("operator:{FULL}")]);
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "{page}");
    let mut customer = None;
    for _ in 0..60 {
        let (_, body) = curl(
            &cert,
            &url("/v1/segments/new_customers/members?limit=1"),
            &["-H", &full],
        );
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if let Some(c) = json["members"][0].as_str() {
            customer = Some(c.to_owned());
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let customer = customer.expect("a customer processed");
    let (status, body) = curl(
        &cert,
        &url(&format!("/v1/customers/{customer}")),
        &["-H", &full],
    );
    assert_eq!(status, 200, "{body}");

    // The aggregate token reads the population views, never one customer.
    let dashboards = bearer(AGGREGATE);
    assert_eq!(
        curl(&cert, &url("/v1/segments"), &["-H", &dashboards]).0,
        200
    );
    for path in [
        format!("/v1/customers/{customer}"),
        "/v1/segments/new_customers/members".into(),
        "/".into(),
    ] {
        let (status, body) = curl(&cert, &url(&path), &["-H", &dashboards]);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("aggregate token"), "{body}");
    }

    // Plain HTTP to the HTTPS port gets no answer.
    let (status, _) = curl(&cert, &format!("http://127.0.0.1:{port}/healthz"), &[]);
    assert_ne!(status, 200);

    stop_cleanly(&mut p);
    let log: Vec<String> = (p.early.iter().cloned())
        .chain(p.err.try_iter())
        .chain(p.out.try_iter())
        .collect();
    let log = log.join("\n");
    assert!(
        log.contains("\"https\":true"),
        "the start-up line says HTTPS"
    );
    assert!(
        !log.contains(FULL) && !log.contains(AGGREGATE),
        "a token reached the log"
    );
}

#[test]
fn a_bad_token_file_or_certificate_is_a_configuration_error_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("pulse-http-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tokens"), "short\n").unwrap();
    std::fs::write(dir.join("cert.pem"), "not a certificate\n").unwrap();
    std::fs::write(dir.join("pulse.toml"), "").unwrap();
    let out = pulse()
        .arg("check-config")
        .arg(dir.join("pulse.toml"))
        .env("PULSE__HTTP__TOKEN_FILE", dir.join("tokens"))
        .env("PULSE__HTTP__TLS_CERT", dir.join("cert.pem"))
        .env("PULSE__HTTP__TLS_KEY", dir.join("missing.pem"))
        .output()
        .expect("pulse runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.token_file: ") && err.contains("line 1"),
        "{err}"
    );
    assert!(err.contains("http.tls_cert, http.tls_key: "), "{err}");
    assert!(
        !err.contains("short"),
        "the rejected line is not echoed: {err}"
    );
}
