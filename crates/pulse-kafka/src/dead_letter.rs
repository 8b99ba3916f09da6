//! Building dead-letter records: the original key, value and headers, plus the reason headers
//! of the contract in `pulse_events::dead_letter`.

use pulse_events::{dead_letter, EventError};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::Message;

/// Where a record came from: its own coordinates, or for a forwarded record, the original
/// input's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Coordinates<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// The dead letter's headers: the record's own (but for Pulse's reason and source headers a
/// forwarded record already carries), then the reason and where the record came from.
pub(crate) fn headers(msg: &OwnedMessage, err: &EventError, from: Coordinates<'_>) -> OwnedHeaders {
    let mut h = OwnedHeaders::new();
    if let Some(orig) = msg.headers() {
        for i in 0..orig.count() {
            let x = orig.get(i);
            if x.key.starts_with("pulse.source.") || x.key.starts_with("pulse.error.") {
                continue;
            }
            h = h.insert(Header {
                key: x.key,
                value: x.value,
            });
        }
    }
    let partition = from.partition.to_string();
    let offset = from.offset.to_string();
    let message = err.to_string();
    h.insert(Header {
        key: dead_letter::ERROR_KIND,
        value: Some(err.kind().as_str()),
    })
    .insert(Header {
        key: dead_letter::ERROR_MESSAGE,
        value: Some(&message),
    })
    .insert(Header {
        key: dead_letter::SOURCE_TOPIC,
        value: Some(from.topic),
    })
    .insert(Header {
        key: dead_letter::SOURCE_PARTITION,
        value: Some(&partition),
    })
    .insert(Header {
        key: dead_letter::SOURCE_OFFSET,
        value: Some(&offset),
    })
}

/// A dead letter cut down to fit: the first [`dead_letter::TRUNCATED_KEEP`] bytes of `value`,
/// and headers saying why, the original size and its hash, so the record can still be found
/// in the input by its coordinates and recognised.
pub(crate) fn truncated(headers: OwnedHeaders, value: &[u8], why: &str) -> (OwnedHeaders, Vec<u8>) {
    let hash = value.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let (size, hash) = (value.len().to_string(), format!("{hash:016x}"));
    let headers = headers
        .insert(Header {
            key: dead_letter::TRUNCATED,
            value: Some(why),
        })
        .insert(Header {
            key: dead_letter::ORIGINAL_SIZE,
            value: Some(&size),
        })
        .insert(Header {
            key: dead_letter::ORIGINAL_FNV1A,
            value: Some(&hash),
        });
    let keep = value.len().min(dead_letter::TRUNCATED_KEEP);
    (headers, value[..keep].to_vec())
}

/// The bytes a record takes against `message.max.bytes`, near enough: key, value, headers
/// and the record's framing.
pub(crate) fn size_of(key: Option<&[u8]>, value: Option<&[u8]>, headers: &OwnedHeaders) -> usize {
    let framing = 64;
    let h: usize = (0..headers.count())
        .map(|i| {
            let x = headers.get(i);
            x.key.len() + x.value.map_or(0, <[u8]>::len) + 8
        })
        .sum();
    key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len) + h + framing
}

/// Where `m` came from. A record forwarded through the repartition topic (`repartition`)
/// carries its original input's coordinates in `pulse.source.*` headers; `None` for one
/// without them (forwarded by a Pulse that did not write them).
pub(crate) fn forwarded_from<'a>(
    repartition: &str,
    m: &'a OwnedMessage,
) -> Option<Coordinates<'a>> {
    if m.topic() != repartition {
        return None;
    }
    Some(Coordinates {
        topic: header(m, dead_letter::SOURCE_TOPIC)?,
        partition: header(m, dead_letter::SOURCE_PARTITION)?.parse().ok()?,
        offset: header(m, dead_letter::SOURCE_OFFSET)?.parse().ok()?,
    })
}

/// A record's own coordinates.
pub(crate) fn own(m: &OwnedMessage) -> Coordinates<'_> {
    Coordinates {
        topic: m.topic(),
        partition: m.partition(),
        offset: m.offset(),
    }
}

/// The value of a record's header, if present and UTF-8 (header names compare exactly, except
/// `content-type`, which HTTP habit writes in any case).
pub fn header<'a, M: Message>(msg: &'a M, key: &str) -> Option<&'a str> {
    let h = msg.headers()?;
    (0..h.count())
        .map(|i| h.get(i))
        .find(|x| x.key == key || (key == "content-type" && x.key.eq_ignore_ascii_case(key)))
        .and_then(|x| x.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// The encoding named by a record's `content-type` header, if any.
pub(crate) fn content_type(msg: &OwnedMessage) -> Option<pulse_events::Encoding> {
    header(msg, "content-type")
        .and_then(|v| pulse_events::Encoding::from_content_type(v.as_bytes()))
}
