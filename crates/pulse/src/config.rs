//! Loading the configuration: the embedded documented default < a file < `PULSE__SECTION__KEY`
//! environment variables. Unknown keys and bad values are errors that name the key.

pub use crate::http::HttpConfig;
use pulse_engine::{Engine, EngineConfig};
use pulse_kafka::{KafkaConfig, WorkerConfig};
use pulse_telemetry::LogFormat;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::time::Duration;
use toml::{Table, Value};

/// The embedded default, documented key by key.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Sections whose keys are free-form (passed through rather than known in advance).
const FREE_FORM: &[&str] = &["kafka.librdkafka"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub worker: WorkerConfig,
    pub engine: EngineConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub demo: DemoConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// `[demo]`: traffic for the embedded cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    pub customers: u32,
    pub rate: u32,
    pub seed: u64,
    #[serde(with = "humantime_serde")]
    pub history: Duration,
    pub bad_ratio: f64,
}

/// Every problem found in a configuration, each naming its key (or file position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The embedded default alone.
    pub fn embedded_default() -> Self {
        Self::load(None, std::iter::empty()).expect("the embedded default configuration is valid")
    }

    /// Loads the layers: default < `file` < `env` (pairs like the process environment; only
    /// `PULSE__…` names are read).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut merged: Table = DEFAULT_TOML
            .parse()
            .expect("the embedded default is valid TOML");
        if let Some(path) = file {
            match std::fs::read_to_string(path) {
                Err(e) => problems.push(format!("{}: cannot read: {e}", path.display())),
                Ok(text) => match text.parse::<Table>() {
                    Err(e) => {
                        problems.push(format!("{}: {}", path.display(), e.to_string().trim_end()))
                    }
                    Ok(t) => merge(
                        &mut merged,
                        t,
                        "",
                        &path.display().to_string(),
                        &mut problems,
                    ),
                },
            }
        }
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("PULSE__"))
            .collect();
        env.sort();
        for (name, raw) in env {
            let path: Vec<String> = name["PULSE__".len()..]
                .split("__")
                .map(str::to_ascii_lowercase)
                .collect();
            if path.iter().any(String::is_empty) {
                problems.push(format!("{name}: malformed name (use PULSE__SECTION__KEY)"));
                continue;
            }
            let value = env_value(&merged, &path, &raw);
            let mut overlay = Table::new();
            insert_path(&mut overlay, &path, value);
            merge(&mut merged, overlay, "", &name, &mut problems);
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let cfg: Config = serde_path_to_error::deserialize(Value::Table(merged)).map_err(|e| {
            let path = e.path().to_string();
            ConfigError {
                problems: vec![format!("{path}: {}", e.into_inner().to_string().trim_end())],
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks beyond types: every semantic problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems: Vec<String> = match Engine::compile(&self.engine) {
            Ok(_) => Vec::new(),
            Err(errs) => errs.iter().map(ToString::to_string).collect(),
        };
        let mut check = |ok: bool, key: &str, msg: &str| {
            if !ok {
                problems.push(format!("{key}: {msg}"));
            }
        };
        check(
            !self.kafka.group_id.is_empty(),
            "kafka.group_id",
            "must not be empty",
        );
        check(
            self.kafka.embedded_partitions >= 1,
            "kafka.embedded_partitions",
            "must be at least 1",
        );
        check(
            !self.kafka.session_timeout.is_zero(),
            "kafka.session_timeout",
            "must be greater than zero",
        );
        check(
            !self.kafka.commit_interval.is_zero(),
            "kafka.commit_interval",
            "must be greater than zero",
        );
        check(
            self.worker.max_batch >= 1,
            "worker.max_batch",
            "must be at least 1",
        );
        check(
            self.worker.queue_capacity >= 1,
            "worker.queue_capacity",
            "must be at least 1",
        );
        check(
            self.worker.max_payload.0 >= 1024,
            "worker.max_payload",
            "must be at least 1KiB",
        );
        // Below that, a few large records held back in the event-time merge would be let
        // through for their size alone.
        check(
            self.worker.queue_bytes.0 >= self.worker.max_payload.0.saturating_mul(4),
            "worker.queue_bytes",
            "must be at least four times worker.max_payload",
        );
        check(
            (0.0..=1.0).contains(&self.demo.bad_ratio),
            "demo.bad_ratio",
            "must be between 0 and 1",
        );
        check(
            self.demo.customers >= 1,
            "demo.customers",
            "must be at least 1",
        );
        let topics = self.kafka.topics.all();
        for (i, t) in topics.iter().enumerate() {
            check(
                !t.is_empty(),
                "kafka.topics",
                "topic names must not be empty",
            );
            check(
                !topics[..i].contains(t),
                "kafka.topics",
                &format!("`{t}` is used for two purposes"),
            );
        }
        if let Err(http) = crate::http::Access::from_config(&self.http) {
            problems.extend(http);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// The compiled engine configuration and segment rules (valid after `load`).
    pub fn compile_engine(&self) -> Result<Engine, ConfigError> {
        Engine::compile(&self.engine).map_err(|errs| ConfigError {
            problems: errs.iter().map(ToString::to_string).collect(),
        })
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Overlays `over` onto `base`. Keys absent from the default are unknown, except inside
/// free-form sections; arrays (such as the funnel list) are replaced whole.
fn merge(base: &mut Table, over: Table, prefix: &str, origin: &str, problems: &mut Vec<String>) {
    for (k, v) in over {
        let key = join(prefix, &k);
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) if !FREE_FORM.contains(&key.as_str()) => {
                merge(b, o, &key, origin, problems);
            }
            (Some(Value::Table(b)), Value::Table(o)) => b.extend(o),
            (Some(slot), v) => *slot = v,
            (None, v) if FREE_FORM.contains(&prefix) || is_optional(&key) => {
                base.insert(k, v);
            }
            (None, _) => problems.push(format!("{origin}: unknown key `{key}`")),
        }
    }
}

/// Keys that are valid but absent from the embedded default.
fn is_optional(key: &str) -> bool {
    matches!(key, "engine.funnels" | "engine.windows.renamed_from")
}

fn lookup<'a>(t: &'a Table, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = t.get(first)?;
    if rest.is_empty() {
        Some(v)
    } else {
        lookup(v.as_table()?, rest)
    }
}

/// An environment value: kept as text where the key holds text, otherwise read as a TOML value
/// (numbers, booleans, arrays), falling back to text.
/// Tables whose values are all strings, whatever they look like: librdkafka takes `"false"` and
/// `"5000"` as text, so `PULSE__KAFKA__LIBRDKAFKA__ENABLE.IDEMPOTENCE=false` must stay one.
const STRING_TABLES: [[&str; 2]; 1] = [["kafka", "librdkafka"]];

fn env_value(current: &Table, path: &[String], raw: &str) -> Value {
    let in_string_table = STRING_TABLES
        .iter()
        .any(|t| path.len() > t.len() && t.iter().zip(path).all(|(a, b)| a == b));
    if in_string_table || matches!(lookup(current, path), Some(Value::String(_))) {
        return Value::String(raw.to_owned());
    }
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

fn insert_path(t: &mut Table, path: &[String], v: Value) {
    match path {
        [] => {}
        [last] => {
            t.insert(last.clone(), v);
        }
        [first, rest @ ..] => {
            let child = t
                .entry(first.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(c) = child {
                insert_path(c, rest, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn file(text: &str) -> tempfile_lite::TempFile {
        let f = tempfile_lite::TempFile::new();
        std::fs::File::create(&f.path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        f
    }

    mod tempfile_lite {
        pub struct TempFile {
            pub path: std::path::PathBuf,
        }
        impl TempFile {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let n = N.fetch_add(1, Ordering::Relaxed);
                let path = std::env::temp_dir()
                    .join(format!("pulse-config-test-{}-{n}.toml", std::process::id()));
                Self { path }
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    #[test]
    fn embedded_default_is_valid_and_documented() {
        let c = Config::embedded_default();
        assert_eq!(c.kafka.brokers, "");
        assert_eq!(c.engine.funnels.len(), 2);
        assert_eq!(c.worker.max_payload.0, 64 * 1024);
        assert_eq!(c.engine.allowed_lateness, Duration::from_secs(600));
    }

    #[test]
    fn layers_override_in_order() {
        let f = file("[kafka]\nbrokers = \"file:9092\"\ngroup_id = \"from-file\"\n[worker]\nmax_batch = 64\n");
        let c = Config::load(
            Some(&f.path),
            env(&[
                ("PULSE__KAFKA__BROKERS", "env:9092"),
                ("PULSE__WORKER__IDLE_TIMEOUT", "5s"),
                ("PULSE__KAFKA__CLIENT_ID", "123"),
                ("PULSE__KAFKA__LIBRDKAFKA__ENABLE.IDEMPOTENCE", "false"),
                ("PULSE__ENGINE__WINDOWS__DURATIONS", "[\"1h\", \"2d\"]"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.kafka.brokers, "env:9092");
        assert_eq!(c.kafka.group_id, "from-file");
        assert_eq!(c.kafka.client_id, "123");
        assert_eq!(c.kafka.librdkafka["enable.idempotence"], "false");
        assert_eq!(c.worker.max_batch, 64);
        assert_eq!(c.worker.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.engine.windows.durations.len(), 2);
    }

    #[test]
    fn unknown_keys_are_named() {
        let f = file("[kafka]\nbokers = \"x\"\n[wrker]\nmax_batch = 1\n");
        let e = Config::load(Some(&f.path), env(&[("PULSE__HTTP__LISTN", "x")])).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("unknown key `kafka.bokers`"), "{text}");
        assert!(text.contains("unknown key `wrker`"), "{text}");
        assert!(
            text.contains("PULSE__HTTP__LISTN: unknown key `http.listn`"),
            "{text}"
        );
    }

    #[test]
    fn bad_values_name_their_path() {
        let f = file("[worker]\nidle_timeout = \"soon\"\n");
        let e = Config::load(Some(&f.path), env(&[])).unwrap_err();
        assert!(e.problems[0].starts_with("worker.idle_timeout:"), "{e}");
        let e = Config::load(None, env(&[("PULSE__WORKER__MAX_BATCH", "lots")])).unwrap_err();
        assert!(e.problems[0].starts_with("worker.max_batch:"), "{e}");
        let e =
            Config::load(None, env(&[("PULSE__WORKER__MAX_PAYLOAD", "64 parsecs")])).unwrap_err();
        assert!(
            e.problems[0].starts_with("worker.max_payload:") && e.problems[0].contains("unit"),
            "{e}"
        );
        let f = file("[engine]\nearliest_event_time = \"the nineties\"\n");
        let e = Config::load(Some(&f.path), env(&[])).unwrap_err();
        assert!(
            e.problems
                .iter()
                .any(|p| p.starts_with("engine.earliest_event_time:") && p.contains("the nineties")),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_name_the_file_and_position() {
        let f = file("[kafka\nbrokers = 1\n");
        let e = Config::load(Some(&f.path), env(&[])).unwrap_err();
        assert!(e.problems[0].contains(&f.path.display().to_string()), "{e}");
        assert!(e.problems[0].contains("line 1"), "{e}");
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let f = file(
            "[worker]\nmax_batch = 0\nqueue_bytes = \"200KiB\"\n[demo]\nbad_ratio = 2.0\n[[engine.funnels]]\nname = \"x\"\nwindow = \"0s\"\nsteps = []\n",
        );
        let e = Config::load(Some(&f.path), env(&[])).unwrap_err();
        let text = e.to_string();
        for key in [
            "worker.max_batch",
            "worker.queue_bytes: must be at least four times worker.max_payload",
            "demo.bad_ratio",
            "engine.funnels[0] (x).window",
            "engine.funnels[0] (x).steps",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
    }

    #[test]
    fn librdkafka_section_is_free_form() {
        let f = file("[kafka.librdkafka]\n\"socket.keepalive.enable\" = \"true\"\n");
        let c = Config::load(Some(&f.path), env(&[])).unwrap();
        assert_eq!(
            c.kafka
                .librdkafka
                .get("socket.keepalive.enable")
                .map(String::as_str),
            Some("true")
        );
    }
}
