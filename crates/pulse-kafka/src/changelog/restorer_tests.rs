//! The restore rules on logs written by hand, compacted as Kafka's cleaner compacts (the newest
//! record per key, in offset order), and on format 1's fixture.

use super::*;
use crate::changelog::format::{
    checkpoint_key, encode_checkpoint, encode_layout, encode_profile, Checkpoint, ForwardedFrom,
};
use proptest::prelude::*;

type Log = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn profile(events: u64) -> Profile {
    Profile {
        first_seen: 1_767_225_600_000,
        last_seen: 1_767_225_600_000 + events as i64,
        events_total: events,
        ..Profile::default()
    }
}

fn tag(generation: u64, batch: u64, next: i64) -> BatchTag {
    BatchTag {
        partition: 0,
        generation,
        batch,
        offsets: [next, -1, -1, -1],
        layout: 0,
    }
}

fn put(log: &mut Log, (k, v): (Vec<u8>, Vec<u8>)) {
    log.push((k, Some(v)));
}

fn profile_at(log: &mut Log, t: BatchTag, customer: &str, events: u64) {
    put(log, encode_profile(&t, customer, &profile(events), &[]));
}

fn checkpoint_at(log: &mut Log, t: BatchTag) {
    put(
        log,
        encode_checkpoint(&Checkpoint {
            tag: t,
            frontiers: [Some(t.offsets[0] * 1000), None, None, None],
            ..Checkpoint::default()
        }),
    );
}

fn restore(log: &Log) -> Contents {
    let mut r = Restorer::new(0);
    for (offset, (k, v)) in log.iter().enumerate() {
        r.push(offset as i64, k, v.as_deref()).expect("readable");
    }
    r.finish(None).expect("decodable")
}

/// What Kafka's log cleaner leaves: the newest record of each key, in offset order.
fn compacted(log: &Log) -> Log {
    let newest: std::collections::HashMap<&[u8], usize> = log
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.as_slice(), i))
        .collect();
    log.iter()
        .enumerate()
        .filter(|(i, (k, _))| newest[k.as_slice()] == *i)
        .map(|(_, r)| r.clone())
        .collect()
}

#[test]
fn a_customer_whose_batch_lost_its_checkpoint_to_compaction_is_restored() {
    // Profile a in batch 1, profile b in batch 2, a checkpoint after each: once compacted only
    // batch 2's checkpoint is left, and a must still be restored.
    let mut log = Log::new();
    profile_at(&mut log, tag(1, 1, 10), "a", 1);
    checkpoint_at(&mut log, tag(1, 1, 10));
    profile_at(&mut log, tag(1, 2, 20), "b", 2);
    checkpoint_at(&mut log, tag(1, 2, 20));
    let log = compacted(&log);
    assert_eq!(log.len(), 3);
    let c = restore(&log);
    assert_eq!(c.profiles.len(), 2);
    assert_eq!(c.profiles["a"], profile(1));
    assert_eq!(c.profiles["b"], profile(2));
    assert_eq!(c.checkpoint.tag.offsets, [20, -1, -1, -1]);
    assert!(c.ahead.is_empty());
}

#[test]
fn forwarded_records_a_batch_without_its_checkpoint_applied_are_known_per_source() {
    let mut log = Log::new();
    let clicks_of_2 = (0u8, 2);
    let purchases_of_1 = (1u8, 1);
    put(
        &mut log,
        encode_checkpoint(&Checkpoint {
            tag: tag(1, 1, 10),
            forwarded: vec![ForwardedFrom {
                source: clicks_of_2,
                frontier: None,
                next: 40,
            }],
            ..Checkpoint::default()
        }),
    );
    // The batch applied forwarded records to "a" (from two sources) and to "b" (one already
    // covered by the checkpoint), then died before its checkpoint.
    let batch = tag(1, 2, 20);
    put(
        &mut log,
        encode_profile(
            &batch,
            "a",
            &profile(3),
            &[(clicks_of_2, 45), (purchases_of_1, 7)],
        ),
    );
    put(
        &mut log,
        encode_profile(&batch, "b", &profile(1), &[(clicks_of_2, 40)]),
    );
    for log in [log.clone(), compacted(&log)] {
        let c = restore(&log);
        assert_eq!(
            c.profiles["a"],
            profile(3),
            "a four-element record reads its profile"
        );
        assert_eq!(c.profiles["b"], profile(1));
        let mut a = c.ahead_forwarded["a"].clone();
        a.sort_unstable();
        assert_eq!(a, [(clicks_of_2, 45), (purchases_of_1, 7)]);
        assert!(
            !c.ahead_forwarded.contains_key("b"),
            "{:?}",
            c.ahead_forwarded
        );
    }
}

#[test]
fn a_batch_without_its_checkpoint_counts_and_its_customers_are_ahead() {
    let mut log = Log::new();
    profile_at(&mut log, tag(1, 1, 10), "a", 1);
    profile_at(&mut log, tag(1, 1, 10), "b", 2);
    checkpoint_at(&mut log, tag(1, 1, 10));
    // The writer died after this batch's profiles and before its checkpoint.
    profile_at(&mut log, tag(1, 2, 20), "a", 3);
    profile_at(&mut log, tag(1, 2, 20), "c", 4);
    for log in [log.clone(), compacted(&log)] {
        let c = restore(&log);
        assert_eq!(c.checkpoint.tag.offsets, [10, -1, -1, -1]);
        assert_eq!(c.checkpoint.frontiers, [Some(10_000), None, None, None]);
        assert_eq!(c.profiles["a"], profile(3));
        assert_eq!(c.profiles["b"], profile(2));
        assert_eq!(c.profiles["c"], profile(4));
        let mut ahead: Vec<_> = c.ahead.iter().map(|(k, o)| (k.as_str(), o[0])).collect();
        ahead.sort_unstable();
        assert_eq!(ahead, [("a", 20), ("c", 20)]);
        assert_eq!(c.next_generation, 2);
    }
}

#[test]
fn an_older_generations_late_checkpoint_never_moves_the_restore_back() {
    let mut log = Log::new();
    checkpoint_at(&mut log, tag(1, 5, 50));
    // Generation 2 took the partition over and went on; generation 1, a zombie, then wrote a
    // checkpoint of a batch it had in flight.
    checkpoint_at(&mut log, tag(2, 0, 50));
    checkpoint_at(&mut log, tag(2, 1, 80));
    checkpoint_at(&mut log, tag(1, 6, 60));
    for log in [log.clone(), compacted(&log)] {
        let c = restore(&log);
        assert_eq!(c.checkpoint.tag.generation, 2);
        assert_eq!(c.checkpoint.tag.offsets[0], 80);
        assert_eq!(c.next_generation, 3);
        assert_eq!(c.obsolete, vec![checkpoint_key(1)]);
    }
}

#[test]
fn a_zombies_profile_never_replaces_the_new_owners() {
    let mut log = Log::new();
    checkpoint_at(&mut log, tag(1, 1, 10));
    checkpoint_at(&mut log, tag(2, 0, 10));
    profile_at(&mut log, tag(2, 1, 30), "a", 7);
    checkpoint_at(&mut log, tag(2, 1, 30));
    // Generation 1 did not notice it lost the partition.
    profile_at(&mut log, tag(1, 2, 20), "a", 5);
    // Its record of a customer the new owner has not written is all there is of that one.
    profile_at(&mut log, tag(1, 2, 20), "z", 1);
    let c = restore(&log);
    assert_eq!(c.profiles["a"], profile(7));
    assert_eq!(c.profiles["z"], profile(1));
}

#[test]
fn a_writer_that_claimed_and_died_at_once_still_takes_a_generation() {
    let mut log = Log::new();
    checkpoint_at(&mut log, tag(1, 3, 30));
    // Generation 2 restored, claimed, and died before any batch.
    checkpoint_at(&mut log, tag(2, 0, 30));
    let c = restore(&compacted(&log));
    assert_eq!(c.next_generation, 3);
    assert_eq!(c.checkpoint.tag.offsets[0], 30);
}

#[test]
fn a_tombstone_removes_a_customer() {
    let mut log = Log::new();
    profile_at(&mut log, tag(1, 1, 10), "a", 1);
    profile_at(&mut log, tag(1, 1, 10), "b", 1);
    checkpoint_at(&mut log, tag(1, 1, 10));
    log.push((b"a".to_vec(), None));
    checkpoint_at(&mut log, tag(1, 2, 20));
    let c = restore(&log);
    assert_eq!(c.profiles.keys().collect::<Vec<_>>(), ["b"]);
}

#[test]
fn a_record_this_worker_cannot_read_is_an_error_naming_its_offset() {
    let mut r = Restorer::new(0);
    r.push(
        0,
        b"a",
        Some(&encode_profile(&tag(1, 1, 1), "a", &profile(1), &[]).1),
    )
    .unwrap();
    let e = r.push(1, b"b", Some(b"\x93\x09\x00\x00")).unwrap_err();
    assert!(e.to_string().contains("offset 1"), "{e}");
    assert!(e.to_string().contains("version 9"), "{e}");
    let e = r.push(2, b"c", Some(b"garbage")).unwrap_err();
    assert!(e.to_string().contains("offset 2"), "{e}");
}

/// A changelog of `batches` batches over a few customers in which the writer dies at chosen
/// batches (after some of its profile records, before the checkpoint) and the next generation
/// claims the partition where the last checkpoint left it.
fn history(batches: &[(Vec<u8>, bool)]) -> (Log, Vec<(String, u64)>) {
    let mut log = Log::new();
    let mut state: std::collections::BTreeMap<String, u64> = Default::default();
    let (mut generation, mut next, mut events) = (1u64, 0i64, 0u64);
    checkpoint_at(&mut log, tag(generation, 0, next));
    for (b, (customers, dies)) in batches.iter().enumerate() {
        next += 10;
        let t = tag(generation, b as u64 + 1, next);
        let written = if *dies {
            customers.len() / 2
        } else {
            customers.len()
        };
        for c in &customers[..written] {
            events += 1;
            let name = format!("c{c}");
            profile_at(&mut log, t, &name, events);
            state.insert(name, events);
        }
        if *dies {
            // The next owner restores (the half-written customers are ahead of the checkpoint,
            // passed by on replay) and claims. The batch is then replayed whole.
            next -= 10;
            generation += 1;
            checkpoint_at(&mut log, tag(generation, 0, next));
            next += 10;
            let t = tag(generation, b as u64 + 1, next);
            for c in &customers[written..] {
                events += 1;
                let name = format!("c{c}");
                profile_at(&mut log, t, &name, events);
                state.insert(name, events);
            }
            checkpoint_at(&mut log, t);
        } else {
            checkpoint_at(&mut log, t);
        }
    }
    (log, state.into_iter().collect())
}

proptest! {
    /// Compacting at any point gives the restore of the whole log: every customer's newest
    /// state and the newest checkpoint.
    #[test]
    fn compaction_at_any_point_restores_what_the_whole_log_restores(
        batches in prop::collection::vec(
            (prop::collection::vec(0u8..12, 1..6), prop::bool::weighted(0.2)),
            1..30,
        ),
        cut in 0usize..400,
    ) {
        let (log, want) = history(&batches);
        // The cleaner has compacted the log up to some point; the rest is the active segment.
        let cut = cut.min(log.len());
        let mut partly = compacted(&log[..cut].to_vec());
        partly.extend_from_slice(&log[cut..]);
        for log in [&log, &partly, &compacted(&log)] {
            let c = restore(log);
            let got: Vec<(String, u64)> = {
                let mut v: Vec<_> = c.profiles.iter().map(|(k, p)| (k.clone(), p.events_total)).collect();
                v.sort_unstable();
                v
            };
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(c.checkpoint.tag.offsets[0], 10 * batches.len() as i64);
            prop_assert!(c.ahead.is_empty());
        }
    }
}

/// A checked-in changelog (its records as MessagePack `(key, value)` pairs) and what it must
/// restore to.
fn fixture(records: &[u8], want: &str) -> (Log, serde_json::Value) {
    let records: Vec<(Vec<u8>, Vec<u8>)> = rmp_serde::from_slice(records).expect("fixture");
    let log = records.into_iter().map(|(k, v)| (k, Some(v))).collect();
    (log, serde_json::from_str(want).expect("expected state"))
}

/// A changelog written by Pulse's format 1 encoder (generated before format 2, from 25 days
/// of generated traffic for 30 customers over all three inputs, its last batch torn: profiles
/// without a checkpoint): it restores the state of its last complete batch.
#[test]
fn a_format_1_changelog_restores_its_last_complete_batch() {
    let (log, want) = fixture(
        include_bytes!("../../tests/fixtures/changelog-v1.msgpack"),
        include_str!("../../tests/fixtures/changelog-v1.json"),
    );
    let c = restore(&log);
    let ck = &want["checkpoint"];
    let offsets: Vec<i64> = c.checkpoint.tag.offsets.to_vec();
    assert_eq!(serde_json::json!(offsets), ck["offsets"]);
    assert_eq!(serde_json::json!(c.checkpoint.frontiers), ck["frontiers"]);
    assert_eq!(c.checkpoint.rfm.version, ck["rfm_version"]);
    assert_eq!(c.checkpoint.owner.as_deref(), Some("http://worker-0:9898"));
    assert!(c.migrate);
    assert_eq!(c.next_generation, 2);
    let customers = want["customers"].as_object().unwrap();
    assert_eq!(c.profiles.len(), customers.len());
    for (id, w) in customers {
        let p = &c.profiles[id];
        let got = serde_json::json!({
            "events_total": p.events_total,
            "sessions_total": p.sessions_total,
            "first_seen": p.first_seen,
            "last_seen": p.last_seen,
            "orders": p.purchases.orders,
            "revenue_cents": p.purchases.revenue_cents,
            "funnel_attempts": p.funnels.len(),
            "nps": p.surveys.nps.map(|a| a.score()),
            "rfm": p.derived.rfm,
            "segments": p.derived.segments,
        });
        assert_eq!(&got, w, "customer {id}");
    }
    assert!(c.ahead.is_empty());
}

/// A changelog written by Pulse's format 2 encoder (before layouts were named, from 25 days of
/// generated traffic for 30 customers under the shipped configuration, in batches of 64
/// records, its last batch torn): every profile restores field by field as it was written, and
/// the new writer is told to rewrite them in the current format, layout named.
#[test]
fn a_format_2_changelog_restores_every_profile_as_written() {
    let (log, want) = fixture(
        include_bytes!("../../tests/fixtures/changelog-v2.msgpack"),
        include_str!("../../tests/fixtures/changelog-v2.json"),
    );
    for log in [log.clone(), compacted(&log)] {
        let c = restore(&log);
        let ck = &want["checkpoint"];
        assert_eq!(serde_json::json!(c.checkpoint.tag.offsets), ck["offsets"]);
        assert_eq!(serde_json::json!(c.checkpoint.frontiers), ck["frontiers"]);
        assert_eq!(c.checkpoint.rfm.version, ck["rfm_version"]);
        assert!(
            c.migrate,
            "format 2 profiles are rewritten with their layout"
        );
        assert_eq!(c.migrated, 0);
        // The torn batch's customers are ahead of the checkpoint, not lost.
        assert!(!c.ahead.is_empty());
        let profiles = want["profiles"].as_object().unwrap();
        assert_eq!(c.profiles.len(), profiles.len());
        for (id, w) in profiles {
            let w: Profile = serde_json::from_value(w.clone()).expect("a profile");
            assert_eq!(c.profiles[id], w, "customer {id}");
        }
    }
}

fn spec_counting(event_types: &[&str]) -> EngineSpec {
    let cfg: pulse_engine::EngineConfig = serde_json::from_value(serde_json::json!({
        "allowed_lateness": "5m",
        "max_future_skew": "1h",
        "session_gap": "30m",
        "windows": { "durations": ["1h", "24h"], "event_types": event_types },
    }))
    .expect("an engine config");
    EngineSpec::compile(&cfg).expect("valid")
}

/// A profile counting one `page_view` and two `add_to_cart` at `at`, under `spec`.
fn counted(spec: &EngineSpec, at: Millis) -> Profile {
    let mut p = profile(3);
    let column = |name: &str| spec.metric_index(name).expect("a metric");
    let incs = [(column("page_view"), 1), (column("add_to_cart"), 2)];
    p.windows.add(spec, at, at, &incs);
    p
}

fn layout_tag(generation: u64, next: i64, spec: &EngineSpec) -> BatchTag {
    BatchTag {
        layout: spec.layout.id(),
        ..tag(generation, 1, next)
    }
}

/// Written under one configuration, restored under one with an event type added before the
/// others: every count is found under its name, and the writer is told to rewrite.
#[test]
fn profiles_written_under_another_layout_are_carried_over_by_name() {
    let old = spec_counting(&["page_view", "add_to_cart"]);
    let new = spec_counting(&["view_cart", "add_to_cart", "page_view"]);
    assert_ne!(old.layout.id(), new.layout.id());
    let at = 1_767_225_600_000;
    let mut log = Log::new();
    put(&mut log, encode_layout(&old.layout));
    let t = layout_tag(1, 10, &old);
    put(&mut log, encode_profile(&t, "a", &counted(&old, at), &[]));
    checkpoint_at(&mut log, t);
    let c = restore_under(&compacted(&log), &new);
    assert_eq!((c.migrated, c.migrate), (1, true));
    let a = &c.profiles["a"];
    let sum = |name: &str| {
        let m = new.metric_index(name).expect("a metric");
        a.windows.sum(&new, m, 3_600_000, at)
    };
    assert_eq!(
        (sum("page_view"), sum("add_to_cart"), sum("view_cart")),
        (1, 2, 0)
    );
    // The same log under the configuration that wrote it is read as stored.
    let c = restore_under(&compacted(&log), &old);
    assert_eq!((c.migrated, c.migrate), (0, false));
    assert_eq!(c.profiles["a"], counted(&old, at));
}

fn restore_under(log: &Log, spec: &EngineSpec) -> Contents {
    let mut r = Restorer::new(0);
    for (offset, (k, v)) in log.iter().enumerate() {
        r.push(offset as i64, k, v.as_deref()).expect("readable");
    }
    r.finish(Some(spec)).expect("restores")
}

/// A profile whose layout record is not in the log cannot be read by name: the restore stops
/// and names the record, rather than reading its counters under the wrong names.
#[test]
fn a_profile_of_an_unknown_layout_stops_the_restore_at_its_offset() {
    let old = spec_counting(&["page_view", "add_to_cart"]);
    let new = spec_counting(&["add_to_cart"]);
    let mut log = Log::new();
    checkpoint_at(&mut log, tag(1, 1, 5));
    let t = layout_tag(1, 10, &old);
    put(
        &mut log,
        encode_profile(&t, "a", &counted(&old, 1_767_225_600_000), &[]),
    );
    let mut r = Restorer::new(0);
    for (offset, (k, v)) in log.iter().enumerate() {
        r.push(offset as i64, k, v.as_deref()).expect("readable");
    }
    match r.finish(Some(&new)) {
        Err(KafkaError::Changelog { offset, reason }) => {
            assert_eq!(offset, 1);
            assert!(reason.contains("layout"), "{reason}");
        }
        other => panic!("restored: {other:?}"),
    }
}

/// A damaged record stops the restore at its offset; told to drop such records, the restore
/// passes it by and the customer it held starts over, while the others are kept.
#[test]
fn an_undecodable_record_stops_the_restore_unless_told_to_drop_it() {
    let mut log = Log::new();
    profile_at(&mut log, tag(1, 1, 10), "a", 1);
    profile_at(&mut log, tag(1, 1, 10), "b", 2);
    checkpoint_at(&mut log, tag(1, 1, 10));
    // Customer a's newer record is damaged: its older one must not come back in its place.
    log.push((b"a".to_vec(), Some(vec![0x93, 2, 0xc1])));
    // A profile whose tag reads but whose body does not: found only when decoded at the end.
    let (k, mut v) = encode_profile(&tag(1, 2, 20), "c", &profile(3), &[]);
    v.truncate(v.len() - 3);
    log.push((k, Some(v)));
    let feed = |r: &mut Restorer| -> Result<(), KafkaError> {
        for (offset, (k, v)) in log.iter().enumerate() {
            r.push(offset as i64, k, v.as_deref())?;
        }
        Ok(())
    };
    let mut r = Restorer::new(0);
    match feed(&mut r) {
        Err(KafkaError::Changelog { offset, .. }) => assert_eq!(offset, 3),
        other => panic!("read on: {other:?}"),
    }
    let mut r = Restorer::new(0).dropping_undecodable();
    feed(&mut r).expect("passed by");
    let c = r.finish(None).expect("restored");
    let offsets: Vec<i64> = c.dropped.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, [3, 4]);
    let mut kept: Vec<&str> = c.profiles.keys().map(String::as_str).collect();
    kept.sort_unstable();
    assert_eq!(kept, ["b"]);
}
