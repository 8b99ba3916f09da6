//! Building dead-letter records: the original key, value and headers, plus the reason headers
//! of the contract in `pulse_events::dead_letter`.

use pulse_events::{dead_letter, EventError};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::Message;

pub(crate) fn headers(msg: &OwnedMessage, err: &EventError) -> OwnedHeaders {
    let mut h = OwnedHeaders::new();
    if let Some(orig) = msg.headers() {
        for i in 0..orig.count() {
            let x = orig.get(i);
            h = h.insert(Header {
                key: x.key,
                value: x.value,
            });
        }
    }
    let partition = msg.partition().to_string();
    let offset = msg.offset().to_string();
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
        value: Some(msg.topic()),
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
