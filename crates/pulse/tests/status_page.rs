//! The built-in status page in a real browser (headless Chromium through ChromeDriver): it
//! loads with the worker's state, partitions, throughput, segments and funnels, and the lookup
//! box finds a customer of the demo.

mod common;

use common::*;
use pulse_testkit::{http_get, Browser};
use std::time::{Duration, Instant};

/// A customer the demo worker holds, once traffic has arrived.
fn some_customer(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, body) = http_get(addr, "/v1/segments/new_customers/members?limit=1").unwrap();
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(id) = page["members"][0].as_str() {
            return id.to_owned();
        }
        assert!(Instant::now() < deadline, "no customer arrived: {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_status_page_loads_and_its_lookup_finds_a_demo_customer() {
    let mut demo = start(&[("PULSE__DEMO__RATE", "3000")]);
    let customer = some_customer(&demo.addr);
    let browser = Browser::start();
    let home = format!("http://{}/", demo.addr);
    browser.open(&home);
    assert_eq!(browser.title(), "Pulse");
    // The page reloads itself every few seconds: elements are read by selector, found again
    // if the page re-rendered meanwhile.
    let state = browser.text_of("#state");
    assert!(state.contains("ready"), "{state}");
    assert!(state.contains("customers"), "{state}");
    // One row per held partition, one per shipped segment, both funnels with their steps.
    assert!(browser.find_all("#partitions tr").len() > 1);
    assert_eq!(browser.find_all("#segments tr").len(), 1 + 6);
    let funnels = browser.text_of("#funnels");
    for expected in ["onboarding", "checkout", "signup", "converted"] {
        assert!(funnels.contains(expected), "{expected} missing: {funnels}");
    }
    let throughput = browser.text_of("#throughput");
    assert!(throughput.contains("records/s"), "{throughput}");

    // The lookup box, as a person uses it: type the id, press the button.
    let (input, button) = ("#lookup input[name=customer]", "#lookup button");
    assert!(browser.fill_and_click(input, &customer, button));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !browser.url().contains("customer=") {
        assert!(Instant::now() < deadline, "the form did not submit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let found = browser.text_of("#customer");
    assert!(found.contains("Segments:"), "{found}");
    assert!(
        found.contains(&format!("\"customer_id\": \"{customer}\"")),
        "{found}"
    );
    assert!(found.contains("\"p_alive\""), "{found}");

    // An unknown id says so.
    assert!(browser.fill_and_click(input, &format!("{customer}-nobody"), button));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = browser.text_of("#customer");
        if text.contains("No customer") {
            assert!(text.contains(&format!("{customer}-nobody")), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(browser);
    stop_cleanly(&mut demo);
}
