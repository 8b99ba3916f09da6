//! The dead-letter contract: header names added to the original record's headers.

/// The reason kind, one of [`crate::ErrorKind`]'s strings.
pub const ERROR_KIND: &str = "pulse.error.kind";
/// A human-readable reason naming the field and the rule it broke.
pub const ERROR_MESSAGE: &str = "pulse.error.message";
pub const SOURCE_TOPIC: &str = "pulse.source.topic";
pub const SOURCE_PARTITION: &str = "pulse.source.partition";
pub const SOURCE_OFFSET: &str = "pulse.source.offset";
/// Set on a dead letter whose record could not be produced whole (over the producer's or the
/// topic's size limit): why. Its value is then only the first
/// [`TRUNCATED_KEEP`] bytes of the original.
pub const TRUNCATED: &str = "pulse.error.truncated";
/// The original value's size in bytes, on a truncated dead letter.
pub const ORIGINAL_SIZE: &str = "pulse.error.original_size";
/// The original value's 64-bit FNV-1a hash, 16 hex digits, on a truncated dead letter.
pub const ORIGINAL_FNV1A: &str = "pulse.error.original_fnv1a";
/// How many bytes of the original value a truncated dead letter keeps.
pub const TRUNCATED_KEEP: usize = 1024;
