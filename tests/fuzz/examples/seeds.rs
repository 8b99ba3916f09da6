//! Writes the fuzz targets' seed inputs from generated traffic: `cargo run --example seeds`
//! in `tests/fuzz`. The corpora grown from them by fuzzing are checked in beside them.

use pulse_events::Encoding;
use pulse_fuzz::{frame_changelog, generated_partition, ENGINE, TOKEN};
use pulse_kafka::{encode_checkpoint, encode_layout, encode_profile, BatchTag, Checkpoint};
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("the corpus directory");
    std::fs::write(dir.join(name), bytes).expect("a seed written");
}

fn main() {
    // Input: the generated stream cut into runs of 8 records.
    let (_, json) = generated_partition(Encoding::Json);
    for (i, run) in json.chunks(8).enumerate() {
        write("input_json", &format!("seed-{i:02}"), &run.concat());
    }
    let (mut partition, msgpack) = generated_partition(Encoding::Msgpack);
    for (i, run) in msgpack.chunks(8).enumerate() {
        write("input_msgpack", &format!("seed-{i:02}"), &run.concat());
    }

    // A changelog as a worker writes it: its layout, a batch of profiles, the checkpoint; then
    // a tombstone. The first byte is the restore's mode (0: stop on what cannot be read).
    let tag = BatchTag {
        generation: 1,
        batch: 1,
        offsets: [120, 60, 20, -1],
        layout: ENGINE.spec.layout.id(),
        ..BatchTag::default()
    };
    let mut log = vec![0u8];
    let (k, v) = encode_layout(&ENGINE.spec.layout);
    frame_changelog(&k, Some(&v), &mut log);
    let mut first = None;
    partition.drain_changes(|customer, profile| {
        first.get_or_insert_with(|| customer.to_owned());
        let (k, v) = encode_profile(&tag, customer, profile, &[]);
        frame_changelog(&k, Some(&v), &mut log);
    });
    let (k, v) = encode_checkpoint(&Checkpoint {
        tag,
        frontiers: partition.frontiers(),
        rfm: partition.population().rfm.clone(),
        next_refresh: partition.population().next_refresh,
        ..Checkpoint::default()
    });
    frame_changelog(&k, Some(&v), &mut log);
    if let Some(customer) = first {
        frame_changelog(customer.as_bytes(), None, &mut log);
    }
    write("changelog_restore", "seed-generated", &log);

    let queries = [
        "/",
        "/?customer=c-0000001",
        "/v1/customers/c-0000001",
        "/v1/customers/nobody",
        "/v1/segments",
        "/v1/segments/champions/members?limit=5&cursor=c-0000002",
        "/v1/segments/dormant/members",
        "/v1/funnels",
        "/v1/cohorts?period=month",
        "/v1/cohorts?period=week",
        "/v1/unknown/path",
    ];
    // Each with the token as Bearer, and as a browser's Basic credentials (`x:TOKEN`).
    let basic = "Basic eDpmdXp6LXRva2VuLTAxMjM0NTY3ODlhYmNkZWY=";
    for (i, q) in queries.iter().enumerate() {
        write(
            "http_query",
            &format!("seed-{i:02}"),
            format!("Bearer {TOKEN}\n{q}").as_bytes(),
        );
    }
    for (i, q) in ["/", "/healthz", "/metrics", "/v1/segments"]
        .iter()
        .enumerate()
    {
        write(
            "http_query",
            &format!("seed-basic-{i:02}"),
            format!("{basic}\n{q}").as_bytes(),
        );
        write(
            "http_query",
            &format!("seed-none-{i:02}"),
            format!("\n{q}").as_bytes(),
        );
    }
}
