//! Changelog records, decoded and restored into a partition whose timers then fire.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pulse_fuzz::restore(data);
});
