//! Funnel semantics, table-driven: each case feeds one customer's events and lists the
//! outputs expected, in order.

use crate::config::engine::StepConfig;
use crate::test_support::*;
use std::time::Duration;

fn onboarding() -> crate::FunnelConfig {
    let mut f = funnel(
        "onb",
        Duration::from_secs(3600),
        vec![step("signup"), step("feature_used"), step("purchase")],
    );
    f.exclude = vec!["account_deleted".into()];
    f
}

fn with_optional() -> crate::FunnelConfig {
    funnel(
        "chk",
        Duration::from_secs(3600),
        vec![
            step("view_cart"),
            StepConfig {
                optional: true,
                ..step("apply_coupon")
            },
            step("begin_checkout"),
            step("purchase"),
        ],
    )
}

fn with_deadline() -> crate::FunnelConfig {
    funnel(
        "dl",
        Duration::from_secs(24 * 3600),
        vec![
            step("signup"),
            StepConfig {
                within: Some(Duration::from_secs(600)),
                ..step("feature_used")
            },
        ],
    )
}

struct Case {
    name: &'static str,
    funnel: fn() -> crate::FunnelConfig,
    events: &'static [(&'static str, i64)],
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "sequential order with other events in between",
        funnel: onboarding,
        events: &[
            ("signup", 0),
            ("page_view", 1),
            ("feature_used", 2),
            ("search", 3),
            ("purchase", 4),
        ],
        expect: &[
            "c milestone.reached onb#1 step 1",
            "c milestone.reached onb#1 step 2",
            "c milestone.reached onb#1 step 3",
            "c funnel.converted onb#1",
        ],
    },
    Case {
        name: "steps out of order do not count",
        funnel: onboarding,
        events: &[("signup", 0), ("purchase", 1), ("feature_used", 2)],
        expect: &[
            "c milestone.reached onb#1 step 1",
            "c milestone.reached onb#1 step 2",
        ],
    },
    Case {
        name: "repeated step 1 does not reset the window",
        funnel: onboarding,
        // Opened at 0, window 60 min; a second signup at 50 must not extend it to 110.
        events: &[
            ("signup", 0),
            ("signup", 50),
            ("feature_used", 55),
            ("purchase", 61),
        ],
        expect: &[
            "c milestone.reached onb#1 step 1",
            "c milestone.reached onb#1 step 2",
            "c funnel.abandoned onb#1 Expired after 2",
        ],
    },
    Case {
        name: "optional step may be taken",
        funnel: with_optional,
        events: &[
            ("view_cart", 0),
            ("apply_coupon", 1),
            ("begin_checkout", 2),
            ("purchase", 3),
        ],
        expect: &[
            "c milestone.reached chk#1 step 1",
            "c milestone.reached chk#1 step 2",
            "c milestone.reached chk#1 step 3",
            "c milestone.reached chk#1 step 4",
            "c funnel.converted chk#1",
        ],
    },
    Case {
        name: "optional step may be skipped",
        funnel: with_optional,
        events: &[
            ("view_cart", 0),
            ("begin_checkout", 2),
            ("apply_coupon", 3),
            ("purchase", 4),
        ],
        expect: &[
            "c milestone.reached chk#1 step 1",
            "c milestone.reached chk#1 step 3",
            "c milestone.reached chk#1 step 4",
            "c funnel.converted chk#1",
        ],
    },
    Case {
        name: "per-step deadline",
        funnel: with_deadline,
        events: &[("signup", 0), ("feature_used", 11)],
        expect: &[
            "c milestone.reached dl#1 step 1",
            "c funnel.abandoned dl#1 Expired after 1",
        ],
    },
    Case {
        name: "per-step deadline met",
        funnel: with_deadline,
        events: &[("signup", 0), ("feature_used", 10)],
        expect: &[
            "c milestone.reached dl#1 step 1",
            "c milestone.reached dl#1 step 2",
            "c funnel.converted dl#1",
        ],
    },
    Case {
        name: "exclusion ends the attempt",
        funnel: onboarding,
        events: &[
            ("signup", 0),
            ("feature_used", 1),
            ("account_deleted", 2),
            ("purchase", 3),
        ],
        expect: &[
            "c milestone.reached onb#1 step 1",
            "c milestone.reached onb#1 step 2",
            "c funnel.abandoned onb#1 Excluded after 2",
        ],
    },
    Case {
        name: "re-entry after conversion",
        funnel: with_deadline,
        events: &[("signup", 0), ("feature_used", 1), ("signup", 2)],
        expect: &[
            "c milestone.reached dl#1 step 1",
            "c milestone.reached dl#1 step 2",
            "c funnel.converted dl#1",
            "c milestone.reached dl#2 step 1",
        ],
    },
    Case {
        name: "re-entry after abandonment; the expiring event itself opens the next attempt",
        funnel: onboarding,
        events: &[
            ("signup", 0),
            ("account_deleted", 1),
            ("signup", 2),
            ("signup", 70),
        ],
        expect: &[
            "c milestone.reached onb#1 step 1",
            "c funnel.abandoned onb#1 Excluded after 1",
            "c milestone.reached onb#2 step 1",
            "c funnel.abandoned onb#2 Expired after 1",
            "c milestone.reached onb#3 step 1",
        ],
    },
];

#[test]
fn funnel_semantics_table() {
    for case in CASES {
        let mut p = partition(vec![(case.funnel)()]);
        let events: Vec<(&str, &str, i64)> = case
            .events
            .iter()
            .map(|(k, m)| ("c", *k, T0 + m * MIN))
            .collect();
        assert_eq!(run(&mut p, &events), case.expect, "case: {}", case.name);
    }
}

#[test]
fn expiry_fires_from_the_timer_with_no_further_event_from_the_customer() {
    let mut p = partition(vec![onboarding()]);
    let out = run(
        &mut p,
        &[("c", "signup", T0), ("c", "feature_used", T0 + MIN)],
    );
    assert_eq!(out.len(), 2);
    // Another customer's traffic moves the watermark: 60 min window + 10 min lateness.
    let quiet = run(&mut p, &[("other", "page_view", T0 + 70 * MIN)]);
    assert!(quiet.is_empty(), "{quiet:?}");
    let fired = run(&mut p, &[("other", "page_view", T0 + 70 * MIN + 1)]);
    assert_eq!(fired, vec!["c funnel.abandoned onb#1 Expired after 2"]);
    // And only once.
    assert!(run(&mut p, &[("other", "page_view", T0 + 200 * MIN)]).is_empty());
}

#[test]
fn expiry_fires_on_idle_advance() {
    let mut p = partition(vec![onboarding()]);
    run(&mut p, &[("c", "signup", T0)]);
    let mut out = Vec::new();
    p.advance_to(T0 + 2 * HOUR, &mut out);
    assert_eq!(
        render(&out),
        vec!["c funnel.abandoned onb#1 Expired after 1"]
    );
    // The expiry's id is the same whether a timer or a later event revealed it.
    let mut q = partition(vec![onboarding()]);
    let mut out2 = Vec::new();
    for (i, (k, t)) in [("signup", T0), ("signup", T0 + 2 * HOUR)]
        .iter()
        .enumerate()
    {
        let src = crate::Source {
            role: pulse_events::TopicRole::Clickstream,
            forwarded: false,
            topic: "clickstream",
            partition: 0,
            offset: i as i64,
        };
        q.apply(&event("c", k, *t), &src, *t, &mut out2).unwrap();
    }
    assert_eq!(out2[1].event_id, out[0].event_id);
}

#[test]
fn converted_attempts_leave_stale_timers_harmless() {
    let mut p = partition(vec![onboarding()]);
    run(
        &mut p,
        &[
            ("c", "signup", T0),
            ("c", "feature_used", T0 + 1),
            ("c", "purchase", T0 + 2),
        ],
    );
    assert!(p.pending_timers() > 0);
    let mut out = Vec::new();
    p.advance_to(T0 + 10 * HOUR, &mut out);
    assert!(out.is_empty(), "{:?}", render(&out));
    // Only the customer's daily recheck is left.
    assert_eq!(p.pending_timers(), 1);
}
