//! The dead-letter contract: header names added to the original record's headers.

/// The reason kind, one of [`crate::ErrorKind`]'s strings.
pub const ERROR_KIND: &str = "pulse.error.kind";
/// A human-readable reason naming the field and the rule it broke.
pub const ERROR_MESSAGE: &str = "pulse.error.message";
pub const SOURCE_TOPIC: &str = "pulse.source.topic";
pub const SOURCE_PARTITION: &str = "pulse.source.partition";
pub const SOURCE_OFFSET: &str = "pulse.source.offset";
