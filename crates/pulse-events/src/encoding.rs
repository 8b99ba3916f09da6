//! The two wire encodings and how a record's `content-type` header selects one.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Wire encoding of a record's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Json,
    Msgpack,
}

impl Encoding {
    /// The encoding named by a `content-type` header value, if it names one Pulse reads.
    /// Parameters such as `; charset=utf-8` are ignored, as HTTP does.
    pub fn from_content_type(value: &[u8]) -> Option<Self> {
        let value = std::str::from_utf8(value).ok()?;
        let essence = value.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else if essence.eq_ignore_ascii_case("application/msgpack")
            || essence.eq_ignore_ascii_case("application/x-msgpack")
            || essence.eq_ignore_ascii_case("application/vnd.msgpack")
        {
            Some(Self::Msgpack)
        } else {
            None
        }
    }

    /// The `content-type` header value Pulse writes for this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Msgpack => "application/msgpack",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "JSON",
            Self::Msgpack => "MessagePack",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_selects_encoding() {
        assert_eq!(
            Encoding::from_content_type(b"application/json"),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type(b"Application/JSON; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type(b"application/msgpack"),
            Some(Encoding::Msgpack)
        );
        assert_eq!(Encoding::from_content_type(b"text/plain"), None);
        assert_eq!(Encoding::from_content_type(&[0xff, 0xfe]), None);
    }
}
