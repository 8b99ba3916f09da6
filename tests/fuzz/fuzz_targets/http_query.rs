//! Request targets (path and query) sent to the query API and the status page.
#![no_main]
use std::sync::LazyLock;

static API: LazyLock<pulse_fuzz::Api> = LazyLock::new(pulse_fuzz::Api::new);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    API.get(data);
});
