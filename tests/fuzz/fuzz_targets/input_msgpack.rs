//! MessagePack input records, decoded, validated and applied to a partition.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pulse_fuzz::apply_input(data, pulse_events::Encoding::Msgpack);
});
