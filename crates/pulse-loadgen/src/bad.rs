//! Malformed records of every dead-letter kind, so demos and tests exercise the dead-letter
//! path with realistic mistakes.

use crate::Record;
use pulse_events::time::HOUR;
use pulse_events::{Encoding, ErrorKind, RawEvent, RawTimestamp, TopicRole};
use rand::rngs::StdRng;
use rand::Rng;
use std::borrow::Cow;

/// Replaces a good record with a bad one; which kind rotates with `n`.
pub(crate) fn corrupt(mut rec: Record, mut raw: RawEvent<'_>, n: u64, rng: &mut StdRng) -> Record {
    let kind = match n % 6 {
        0 => ErrorKind::Decode,
        1 => ErrorKind::Schema,
        2 => ErrorKind::Validation,
        3 => ErrorKind::UnsupportedVersion,
        4 => ErrorKind::Oversized,
        _ => ErrorKind::Late,
    };
    match kind {
        ErrorKind::Decode => {
            let cut = rec.value.len() / 2;
            rec.value.truncate(cut.max(1));
            if rec.encoding == Encoding::Msgpack {
                rec.value = b"not msgpack".to_vec();
            }
        }
        ErrorKind::Schema => raw.customer_id = None,
        ErrorKind::Validation => match rec.topic {
            TopicRole::Purchases => raw.amount = Some(-rng.random_range(1.0..100.0)),
            TopicRole::Surveys => raw.score = Some(11.0 + f64::from(rng.random_range(0..5u8))),
            TopicRole::Clickstream => raw.event_id = Some(Cow::Borrowed("")),
        },
        ErrorKind::UnsupportedVersion => raw.schema_version = Some(2),
        ErrorKind::Oversized => raw.comment = Some(Cow::Owned("x".repeat(70 * 1024))),
        ErrorKind::Late => {
            raw.timestamp = Some(RawTimestamp::rfc3339(rec.timestamp - 6 * HOUR));
        }
    }
    if kind != ErrorKind::Decode {
        rec.value = crate::encode_raw(&raw, rec.encoding);
    }
    rec.expect = Some(kind);
    rec
}
