//! Pulse's event contracts: the input envelope and types, the output events, the dead-letter
//! headers, and the JSON / MessagePack codecs with a typed error for every way a record can be
//! wrong. Pure data: no I/O, no async runtime, no Kafka client.

pub mod dead_letter;
mod decode;
mod encoding;
mod error;
mod hash;
mod input;
mod output;
mod output_id;
pub mod time;
mod wire;

pub use decode::{decode, peek, Limits, Peeked};
pub use encoding::Encoding;
pub use error::{ErrorKind, EventError};
pub use hash::{output_event_id, IdHasher};
pub use input::{EventBody, InputEvent, Item, SurveyKind, TopicRole};
pub use output::{
    AbandonReason, Cause, Driver, OutputData, OutputEvent, OutputKind, OutputTopic, ProfileExcerpt,
};
pub use output_id::OutputId;
pub use time::RawTimestamp;
pub use wire::{RawEvent, RawItem};

/// The only `schema_version` this build reads; later versions are dead-lettered, not guessed.
pub const SCHEMA_VERSION: u64 = 1;
