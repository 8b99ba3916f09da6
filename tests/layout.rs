//! The code's layout, checked: no module of any crate imports one that imports it back
//! (`tests/layout/module_cycles.py`, which reads `use crate::`, `super::` and paths in the
//! sources), and the engine depends on no crate that does I/O.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds tests/")
        .to_path_buf()
}

/// Runs the cycle check on a workspace: its exit status and its report.
fn module_cycles(workspace: &Path) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("layout/module_cycles.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("--workspace")
        .arg(workspace)
        .output()
        .expect("python3 runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let (status, report) = module_cycles(&workspace());
    assert_eq!(status, 0, "{report}");
    for krate in [
        "pulse-engine",
        "pulse-kafka",
        "pulse-events",
        "pulse-telemetry",
    ] {
        assert!(
            report.contains(&format!("== {krate} [")),
            "{krate} not read:\n{report}"
        );
    }
}

#[test]
fn the_check_finds_a_circle() {
    let dir = std::env::temp_dir().join(format!("pulse-layout-{}", std::process::id()));
    let src = dir.join("crates/circle/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        dir.join("crates/circle/Cargo.toml"),
        "[package]\nname = \"circle\"\n",
    )
    .unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\n").unwrap();
    // a -> b -> c -> a, the last through a grouped import over two lines.
    std::fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A(B);\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct B(pub crate::c::C);\n").unwrap();
    std::fs::write(
        src.join("c.rs"),
        "use crate::{\n    a::A,\n};\npub struct C(Box<A>);\n",
    )
    .unwrap();
    let (status, report) = module_cycles(&dir);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(status, 1, "{report}");
    assert!(report.contains("cycle 1 (3 modules): a, b, c"), "{report}");
}

#[test]
fn the_engine_depends_on_no_io_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "tree",
            "--offline",
            "-p",
            "pulse-engine",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tree.contains("pulse-events"), "{tree}");
    for io in [
        "rdkafka",
        "tokio",
        "axum",
        "hyper",
        "mio",
        "socket2",
        "prometheus",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(&format!("{io} "))),
            "pulse-engine depends on {io}:\n{tree}"
        );
    }
}
