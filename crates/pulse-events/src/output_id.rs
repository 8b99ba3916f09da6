//! [`OutputId`]: an output event's id, 32 lower-case hex digits held inline, so an output
//! costs no heap allocation for its id. It reads as a `&str` and is written as a string, as
//! the `String` it replaces was.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;

const DIGITS: usize = 32;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutputId([u8; DIGITS]);

impl OutputId {
    /// The id of a 128-bit hash: its hex digits, most significant first.
    pub fn from_u128(v: u128) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; DIGITS];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = HEX[((v >> ((DIGITS - 1 - i) * 4)) & 0xf) as usize];
        }
        Self(digits)
    }

    /// An id as text: 32 hex digits, lower case.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; DIGITS] = s.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .then_some(Self(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored (`from_u128`, `parse`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl Deref for OutputId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for OutputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for OutputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for OutputId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for OutputId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for OutputId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OutputId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Id;
        impl Visitor<'_> for Id {
            type Value = OutputId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an output event id: 32 lower-case hex digits")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<OutputId, E> {
                OutputId::parse(s).ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
            }

            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<OutputId, E> {
                let s = std::str::from_utf8(b)
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(b), &self))?;
                self.visit_str(s)
            }
        }
        d.deserialize_str(Id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_as_its_hex_digits() {
        let id = OutputId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(id, "0123456789abcdef0011223344556677");
        assert_eq!(OutputId::parse(&id), Some(id.clone()));
        assert_eq!(OutputId::parse("0123"), None);
        assert_eq!(OutputId::parse("0123456789ABCDEF0011223344556677"), None);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0123456789abcdef0011223344556677\"");
        assert_eq!(serde_json::from_str::<OutputId>(&json).unwrap(), id);
        let packed = rmp_serde::to_vec(&id).unwrap();
        assert_eq!(rmp_serde::from_slice::<OutputId>(&packed).unwrap(), id);
    }
}
