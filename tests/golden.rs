//! One fixed generated input replayed through the engine as a partition task applies it, with
//! the shipped configuration: every output event's bytes, every dead letter's reason and every
//! customer's analytics as the query API shows them, compared with what this code produced when
//! the digests in `tests/golden/replay.txt` were written. A change of the engine's layout or of
//! its data structures (a packed profile, a timer wheel) must leave all of it byte for byte the
//! same; a change of behaviour shows here and rewrites the file on purpose
//! (`PULSE_GOLDEN_UPDATE=1 cargo test -p pulse-tests --test golden`).
//!
//! Every run also writes the whole replay, one line per output, dead letter and customer, to
//! `target/tmp/golden-replay.ndjson`, so two commits' replays can be compared line by line.

use pulse_engine::{report, Partition, Source};
use pulse_events::{decode, Encoding, Limits, OutputEvent};
use pulse_loadgen::{Generator, GeneratorConfig};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

const DAY: i64 = 86_400_000;
const START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const BATCH: usize = 512;

/// FNV-1a, 64 bits: a digest to notice change, not to resist anyone.
#[derive(Clone, Copy)]
struct Digest(u64);

impl Digest {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// What the replay produced: the summary that is checked in, and every line of it.
struct Replay {
    summary: String,
    lines: Vec<String>,
}

fn replay() -> Replay {
    let mut generated = GeneratorConfig::new(1_500, 11, START, 30 * DAY);
    generated.bad_ratio = 0.01;
    let records: Vec<_> = Generator::new(generated).collect();
    let config = pulse::Config::embedded_default();
    let engine = Arc::new(
        config
            .compile_engine()
            .expect("the shipped configuration is valid"),
    );
    let limits = Limits {
        earliest_event_time: engine.spec.earliest_event_time,
        max_payload_bytes: config.worker.max_payload.0 as usize,
        ..Limits::default()
    };
    let mut p = Partition::new(engine);
    // The wall clock a worker replaying this history would read: the day after it ends.
    let now = START + 31 * DAY;
    let (mut letters, mut lines) = (Digest::new(), Vec::new());
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    // Each customer's outputs in the order they came. Pulse orders one customer's outputs (they
    // share a key, so a partition); between customers the order of outputs due at one instant
    // (a midnight recheck, an RFM refresh) follows the profile table's hash order, which is
    // seeded per process against hash flooding, and is not compared.
    let mut emitted: Vec<(String, String)> = Vec::new();
    let mut out: Vec<OutputEvent> = Vec::new();
    let mut emit = |out: &mut Vec<OutputEvent>| {
        for o in out.drain(..) {
            let bytes = o.encode(Encoding::Json);
            *kinds.entry(o.kind.as_str().to_owned()).or_default() += 1;
            let json = String::from_utf8(bytes).expect("JSON is UTF-8");
            emitted.push((o.customer_id, json));
        }
    };
    let mut rejected = 0;
    for (i, r) in records.iter().enumerate() {
        let src = Source {
            role: r.topic,
            forwarded: false,
            topic: r.topic.as_str(),
            partition: 0,
            offset: i as i64,
        };
        let applied = decode(&r.value, r.encoding, r.topic, &limits)
            .and_then(|ev| p.apply(&ev, &src, now, &mut out));
        if let Err(e) = applied {
            rejected += 1;
            let line = format!("dead letter {i}: {} {e}", e.kind().as_str());
            letters.add(line.as_bytes());
            lines.push(line);
        }
        if i % BATCH == BATCH - 1 {
            emit(&mut out);
            p.drain_changes(|_, _| {});
        }
    }
    emit(&mut out);
    emitted.sort_by(|a, b| a.0.cmp(&b.0)); // stable: each customer's order stays
    let mut outputs = Digest::new();
    for (_, json) in &emitted {
        outputs.add(json.as_bytes());
    }
    lines.extend(emitted.into_iter().map(|(_, json)| json));
    let mut customers = Digest::new();
    let mut ids: Vec<(String, String)> = Vec::new();
    for (id, profile) in p.profiles() {
        let as_of = p
            .watermark()
            .unwrap_or(i64::MIN)
            .max(profile.last_seen)
            .max(profile.derived.evaluated_at);
        let shown = report(p.spec(), p.population(), id, profile, as_of);
        ids.push((
            id.to_owned(),
            serde_json::to_string(&shown).expect("serialises"),
        ));
    }
    ids.sort();
    for (_, json) in ids.iter() {
        customers.add(json.as_bytes());
    }
    lines.extend(ids.into_iter().map(|(_, json)| json));
    let mut summary = String::new();
    let _ = writeln!(summary, "records {}", records.len());
    let _ = writeln!(summary, "dead letters {rejected} {:016x}", letters.0);
    for (kind, n) in &kinds {
        let _ = writeln!(summary, "output {kind} {n}");
    }
    let total: usize = kinds.values().sum();
    let _ = writeln!(summary, "outputs {total} {:016x}", outputs.0);
    let _ = writeln!(summary, "customers {} {:016x}", p.customers(), customers.0);
    Replay { summary, lines }
}

#[test]
fn a_fixed_replay_gives_the_outputs_and_analytics_it_gave_when_checked_in() {
    let Replay { summary, lines } = replay();
    let dump = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("golden-replay.ndjson");
    std::fs::write(&dump, lines.join("\n")).expect("dump written");
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/replay.txt");
    if std::env::var_os("PULSE_GOLDEN_UPDATE").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).expect("golden directory");
        std::fs::write(&golden, &summary).expect("golden written");
        return;
    }
    let want = std::fs::read_to_string(&golden).expect("tests/golden/replay.txt is checked in");
    assert_eq!(
        summary,
        want,
        "the replay differs from the checked-in one; compare {} with the same file written by \
         the commit that wrote tests/golden/replay.txt",
        dump.display()
    );
}
