//! A MessagePack record cannot make the decoder allocate what its headers merely claim: the
//! bytes allocated while decoding a record whose `items` array declares four billion entries
//! stay few. Its own test binary, for the counting allocator.

use pulse_events::{decode, Encoding, Limits, TopicRole};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn an_array_header_claiming_four_billion_items_allocates_little() {
    // {"type": "order_completed", "items": [<array32 of 0xFFFFFFFF entries, none present>]}
    let mut record = vec![0x82];
    record.push(0xa4);
    record.extend_from_slice(b"type");
    record.push(0xaf);
    record.extend_from_slice(b"order_completed");
    record.push(0xa5);
    record.extend_from_slice(b"items");
    record.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
    let limits = Limits::default();
    let region = Region::new(GLOBAL);
    let decoded = decode(&record, Encoding::Msgpack, TopicRole::Purchases, &limits);
    let allocated = region.change().bytes_allocated;
    assert!(decoded.is_err(), "a truncated record is refused");
    assert!(
        allocated < 16 * 1024,
        "decoding allocated {allocated} bytes"
    );
}
