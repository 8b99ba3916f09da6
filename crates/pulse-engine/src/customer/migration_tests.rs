//! Profiles carried across configuration changes: by name, whatever moved.

use super::*;
use crate::config::analytics::SegmentConfig;
use crate::config::engine::EngineConfig;
use crate::engine::Engine;
use crate::partition::Partition;
use crate::population::Population;
use crate::test_support::*;
use pulse_events::time::Millis;
use std::sync::Arc;
use std::time::Duration;

fn segment(name: &str, rule: &str) -> SegmentConfig {
    SegmentConfig {
        name: name.into(),
        version: 1,
        rule: rule.into(),
        min_dwell: None,
        cooldown: None,
        renamed_from: None,
    }
}

fn onboarding() -> crate::FunnelConfig {
    funnel(
        "onboarding",
        Duration::from_secs(7 * 86_400),
        vec![step("signup"), step("feature_used"), step("purchase")],
    )
}

fn checkout() -> crate::FunnelConfig {
    funnel(
        "checkout",
        Duration::from_secs(7 * 86_400),
        vec![step("view_cart"), step("begin_checkout"), step("purchase")],
    )
}

/// Before: two event types, two funnels, three segments.
fn before() -> EngineConfig {
    let mut cfg = config(vec![onboarding(), checkout()]);
    cfg.segments = vec![
        segment("buyers", "orders_total >= 1"),
        segment("browsers", "counts.page_view_24h >= 3"),
        segment("users", "counts.feature_used_24h >= 1"),
    ];
    cfg
}

/// After: an event type added, one renamed and the order changed; the onboarding funnel
/// removed and the checkout funnel renamed; the segments reversed, one renamed, one added.
fn after() -> EngineConfig {
    let mut cfg = before();
    cfg.windows.event_types = vec![
        "view_cart".into(),
        "page_view".into(),
        "used_feature".into(),
    ];
    cfg.windows
        .renamed_from
        .insert("used_feature".into(), "feature_used".into());
    let mut purchase_funnel = checkout();
    purchase_funnel.name = "purchase_path".into();
    purchase_funnel.renamed_from = Some("checkout".into());
    cfg.funnels = vec![purchase_funnel];
    let mut engaged = segment("engaged", "counts.used_feature_24h >= 1");
    engaged.renamed_from = Some("users".into());
    cfg.segments = vec![
        segment("signed_up", "events_total >= 1"),
        engaged,
        segment("browsers", "counts.page_view_24h >= 3"),
        segment("buyers", "orders_total >= 1"),
    ];
    cfg
}

fn spec(cfg: &EngineConfig) -> Arc<EngineSpec> {
    Arc::new(EngineSpec::compile(cfg).expect("valid"))
}

fn engine(cfg: &EngineConfig) -> Arc<Engine> {
    Arc::new(Engine::compile(cfg).expect("valid"))
}

const EVENTS: [(&str, &str, Millis); 6] = [
    ("a", "signup", T0),
    ("a", "page_view", T0 + MIN),
    ("a", "page_view", T0 + 2 * MIN),
    ("a", "page_view", T0 + 3 * MIN),
    ("a", "feature_used", T0 + 4 * MIN),
    ("a", "view_cart", T0 + 5 * MIN),
];

fn members(spec: &EngineSpec, p: &Profile) -> Vec<String> {
    let mut names: Vec<String> = spec
        .segment_names()
        .enumerate()
        .filter(|(i, _)| p.derived.segments & (1 << i) != 0)
        .map(|(_, n)| n.to_owned())
        .collect();
    names.sort();
    names
}

/// A customer's profile under the first configuration, and the partition that made it.
fn stored() -> (Arc<EngineSpec>, Profile) {
    let mut p = Partition::new(engine(&before()));
    feed(&mut p, &EVENTS);
    let profile = p.profile("a").expect("a").clone();
    (spec(&before()), profile)
}

#[test]
fn counts_attempts_and_memberships_follow_their_names() {
    let (old, mut profile) = stored();
    let t = T0 + 5 * MIN;
    let count = |s: &EngineSpec, p: &Profile, m: &str| {
        p.windows.sum(s, s.metric_index(m).expect(m), DAY, t)
    };
    assert_eq!(count(&old, &profile, "page_view"), 3);
    assert_eq!(count(&old, &profile, "feature_used"), 1);
    assert_eq!(members(&old, &profile), ["browsers", "users"]);
    assert_eq!(profile.funnels.len(), 2);

    let new = spec(&after());
    let migration = Migration::between(&old.layout, &new);
    assert!(!migration.is_identity());
    migration.apply(&mut profile);

    assert_eq!(count(&new, &profile, "page_view"), 3);
    assert_eq!(count(&new, &profile, "used_feature"), 1, "renamed");
    assert_eq!(
        count(&new, &profile, "view_cart"),
        0,
        "added: counted from now on"
    );
    assert_eq!(count(&new, &profile, "events"), 6);
    assert_eq!(members(&new, &profile), ["browsers", "engaged"]);
    // The onboarding attempt is gone; the checkout attempt is the renamed funnel's, index 0.
    assert_eq!(profile.funnels.len(), 1);
    assert_eq!(profile.funnels[0].funnel, 0);
    assert!(profile.funnels[0].active);
    assert_eq!(profile.funnels[0].step, 0);
}

#[test]
fn a_restored_partition_goes_on_without_a_panic_or_an_unexplained_output() {
    let (old, mut profile) = stored();
    let new = spec(&after());
    Migration::between(&old.layout, &new).apply(&mut profile);
    let frontiers = [Some(T0 + 5 * MIN); crate::INPUTS];
    let mut p = Partition::restore(
        engine(&after()),
        [("a".to_owned(), profile)],
        frontiers,
        Population::default(),
    );
    // A new event: the new segment is entered at this evaluation, the others stay as they
    // were (no exit or entry for a segment that only moved or was renamed).
    let out = render(&feed(&mut p, &[("a", "view_cart", T0 + 6 * MIN)]));
    assert_eq!(out, ["a segment.entered signed_up"], "{out:?}");
    // Past the removed funnel's deadline nothing fires for it; the kept funnel's attempt
    // expires as it would have.
    let mut late = Vec::new();
    p.advance_to(T0 + 30 * DAY, &mut late);
    let expired = render(&late);
    assert!(
        expired.iter().all(|o| !o.contains("onboarding")),
        "{expired:?}"
    );
    assert!(
        expired.iter().any(|o| o.contains("purchase_path")),
        "{expired:?}"
    );
}

#[test]
fn the_same_configuration_keeps_profiles_as_stored() {
    let (old, profile) = stored();
    let again = spec(&before());
    assert_eq!(old.layout, again.layout);
    assert_eq!(old.layout.id(), again.layout.id());
    let migration = Migration::between(&old.layout, &again);
    assert!(migration.is_identity());
    let mut carried = profile.clone();
    migration.apply(&mut carried);
    assert_eq!(carried, profile);
    assert_ne!(old.layout.id(), spec(&after()).layout.id());
}

#[test]
fn a_funnel_whose_steps_changed_in_number_starts_over() {
    let (old, mut profile) = stored();
    let mut cfg = before();
    cfg.funnels[1].steps.insert(1, step("apply_coupon"));
    let new = spec(&cfg);
    Migration::between(&old.layout, &new).apply(&mut profile);
    let names: Vec<u16> = profile.funnels.iter().map(|a| a.funnel).collect();
    assert_eq!(names, [0], "only the onboarding attempt is kept");
}

#[test]
fn a_rename_that_names_an_entry_still_configured_is_refused() {
    let mut cfg = before();
    cfg.windows
        .renamed_from
        .insert("page_view".into(), "feature_used".into());
    cfg.funnels[1].renamed_from = Some("onboarding".into());
    cfg.segments[0].renamed_from = Some("browsers".into());
    let errors: Vec<String> = EngineSpec::compile(&cfg)
        .expect_err("refused")
        .iter()
        .map(|e| e.to_string())
        .collect();
    for key in [
        "engine.windows.renamed_from.page_view",
        "engine.funnels[1] (checkout).renamed_from",
        "engine.segments[0] (buyers).renamed_from",
    ] {
        assert!(errors.iter().any(|e| e.contains(key)), "{key}: {errors:?}");
    }
}

#[test]
fn two_entries_renamed_from_one_are_refused() {
    let mut cfg = before();
    let mut a = segment("a", "events_total >= 1");
    a.renamed_from = Some("gone".into());
    let mut b = segment("b", "events_total >= 2");
    b.renamed_from = Some("gone".into());
    cfg.segments.extend([a, b]);
    let errors: Vec<String> = EngineSpec::compile(&cfg)
        .expect_err("refused")
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("engine.segments[3] (a).renamed_from")),
        "{errors:?}"
    );
}
