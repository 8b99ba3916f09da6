//! `pulse fit` on `pulse generate` output recovers the generator's true parameters: the real
//! binary both times, the generator drawing from known BG/NBD and Gamma-Gamma parameters.

mod common;

use common::*;
use pulse_loadgen::TrueParams;
use std::collections::HashMap;

/// `key = value  # standard error se` lines of the fragment.
fn estimates(fragment: &str) -> HashMap<String, (f64, f64)> {
    fragment
        .lines()
        .filter_map(|l| {
            let (kv, se) = l.split_once("# standard error ")?;
            let (k, v) = kv.split_once('=')?;
            Some((
                k.trim().to_owned(),
                (v.trim().parse().ok()?, se.trim().parse().ok()?),
            ))
        })
        .collect()
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pulse-fit-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn fit_on_generated_traffic_recovers_the_true_parameters() {
    let dir = tempdir();
    let log = dir.join("traffic.ndjson");
    let ok = pulse()
        .args([
            "generate",
            "--customers",
            "20000",
            "--duration",
            "365d",
            "--start",
            "2025-01-01T00:00:00Z",
            "--seed",
            "7",
            "--sessions-per-day",
            "0",
            "--output",
        ])
        .arg(&log)
        .status()
        .expect("pulse generate runs");
    assert!(ok.success());
    let out = pulse()
        .args(["fit", "--exact-time", "--until", "2026-01-01T00:00:00Z"])
        .arg(&log)
        .output()
        .expect("pulse fit runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fragment = String::from_utf8(out.stdout).unwrap();
    assert!(fragment.contains("[engine.clv]"), "{fragment}");
    assert!(fragment.contains("log-likelihood"), "{fragment}");
    let est = estimates(&fragment);
    let t = TrueParams::default();
    for (k, truth) in [
        ("r", t.r),
        ("alpha", t.alpha),
        ("a", t.a),
        ("b", t.b),
        ("p", t.p),
        ("q", t.q),
        ("v", t.gamma),
    ] {
        let (v, se) = est[k];
        let z = (v - truth) / se;
        eprintln!("{k}: estimate {v:.4}, true {truth:.4}, standard error {se:.4}, z {z:+.2}");
        assert!(se > 0.0 && se < truth, "{k}: standard error {se}");
        // Two standard errors: the 95% band of a maximum-likelihood estimate.
        assert!(
            z.abs() <= 2.0,
            "{k}: {v} is {z:.2} standard errors from {truth}"
        );
    }

    // The fragment is a valid configuration as written.
    let cfg = dir.join("fitted.toml");
    std::fs::write(&cfg, &fragment).unwrap();
    let check = pulse().arg("check-config").arg(&cfg).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
