//! The wire shape of an input record: one flat object whose fields depend on `type`. Decoding
//! goes through this permissive shape first (every field optional, strings borrowed from the
//! record where the codec allows) so that validation can name exactly what is missing or wrong.

use crate::time::{format_rfc3339, parse_rfc3339, Millis};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// An input record as it appears on the wire. Unknown fields are ignored so producers can add
/// properties without breaking Pulse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawEvent<'a> {
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub event_id: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub customer_id: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        default,
        rename = "type",
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<RawTimestamp<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u64>,

    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub referrer: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub channel: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub device: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub feature: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub query: Option<Cow<'a, str>>,

    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub order_id: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub currency: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_items",
        skip_serializing_if = "Option::is_none"
    )]
    pub items: Option<Vec<RawItem<'a>>>,

    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub survey: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub comment: Option<Cow<'a, str>>,
}

/// One line item of a purchase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawItem<'a> {
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub sku: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        default,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub category: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
}

/// A timestamp as sent: RFC 3339 text or integer epoch milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub enum RawTimestamp<'a> {
    Text(Cow<'a, str>),
    Millis(i64),
}

impl RawTimestamp<'_> {
    pub fn to_millis(&self) -> Option<Millis> {
        match self {
            Self::Text(s) => parse_rfc3339(s),
            Self::Millis(ms) => Some(*ms),
        }
    }

    /// A readable rendering for error messages.
    pub fn display(&self) -> String {
        match self {
            Self::Text(s) => s.to_string(),
            Self::Millis(ms) => ms.to_string(),
        }
    }

    /// RFC 3339 text for the given time, the form the generator writes.
    pub fn rfc3339(t: Millis) -> RawTimestamp<'static> {
        RawTimestamp::Text(Cow::Owned(format_rfc3339(t)))
    }
}

impl Serialize for RawTimestamp<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(t) => s.serialize_str(t),
            Self::Millis(ms) => s.serialize_i64(*ms),
        }
    }
}

// Hand-written rather than `#[serde(untagged)]`: untagged buffers the value and would cost an
// allocation per record on the hot path.
impl<'de: 'a, 'a> Deserialize<'de> for RawTimestamp<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTimestamp<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string or integer epoch milliseconds")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawTimestamp::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawTimestamp::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawTimestamp::Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(RawTimestamp::Millis)
                    .map_err(|_| E::custom("epoch milliseconds out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // Integral floats are accepted because some JSON encoders write 1.7e12 forms.
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(RawTimestamp::Millis(v as i64))
                } else {
                    Err(E::invalid_type(de::Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads an optional string borrowing from the input where the codec allows. serde's
/// Items read without trusting the length a MessagePack array header declares: serde would
/// reserve up to 1 MiB for it, so a five-byte record could make the decoder allocate a
/// megabyte (found by fuzzing). The list grows as items actually arrive.
fn opt_items<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<RawItem<'a>>>, D::Error> {
    /// Reserved before the first item: more than an order usually has.
    const RESERVE: usize = 8;
    struct Items;
    impl<'de> Visitor<'de> for Items {
        type Value = Option<Vec<RawItem<'de>>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of items")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(RESERVE));
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(Some(items))
        }
    }
    d.deserialize_option(Items)
}

/// `#[serde(borrow)]` does not reach through `Option<Cow<str>>`, which would otherwise copy
/// every string of every record.
fn opt_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
    }
    d.deserialize_option(V)
}
