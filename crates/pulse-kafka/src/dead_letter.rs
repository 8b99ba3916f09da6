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
