//! Just enough of the Kafka wire protocol to refuse produce requests for chosen topics: parse a
//! Produce request's topics, drop the refused ones, and answer for them as an unauthorised
//! broker would (error 29, TOPIC_AUTHORIZATION_FAILED).
//!
//! Versions 3 to 12 are understood (9 and later are "flexible": compact lengths and tagged
//! fields). Anything else is passed through untouched.

/// Kafka's API key for Produce.
const PRODUCE: i16 = 0;
/// TOPIC_AUTHORIZATION_FAILED: the broker refuses the topic; clients do not retry it.
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// A reader over one frame (without its length prefix). Every read is bounds-checked; `None`
/// means the frame is not what this module understands, and the caller passes it through.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.take(1)?.first()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A length: `i16`/`i32` (-1 is null) or, when flexible, an unsigned varint of length + 1.
    fn len(&mut self, flexible: bool, wide: bool) -> Option<Option<usize>> {
        let n: i64 = if flexible {
            self.uvarint()? as i64 - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        Some(usize::try_from(n).ok())
    }

    fn string(&mut self, flexible: bool) -> Option<Option<&'a [u8]>> {
        match self.len(flexible, false)? {
            Some(n) => Some(Some(self.take(n)?)),
            None => Some(None),
        }
    }

    fn skip_bytes(&mut self, flexible: bool) -> Option<()> {
        if let Some(n) = self.len(flexible, true)? {
            self.take(n)?;
        }
        Some(())
    }

    fn array_len(&mut self, flexible: bool) -> Option<usize> {
        Some(self.len(flexible, true)?.unwrap_or(0))
    }

    fn skip_tags(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()?;
            self.take(usize::try_from(size).ok()?)?;
        }
        Some(())
    }

    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

fn flexible(version: i16) -> bool {
    version >= 9
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_array_len(out: &mut Vec<u8>, n: usize, flexible: bool) {
    if flexible {
        put_uvarint(out, n as u64 + 1);
    } else {
        out.extend_from_slice(&(n as i32).to_be_bytes());
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8], flexible: bool) {
    if flexible {
        put_uvarint(out, s.len() as u64 + 1);
    } else {
        out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// One topic of a Produce request: its name, the partitions it writes and its raw bytes.
struct Topic<'a> {
    name: &'a [u8],
    partitions: Vec<i32>,
    raw: &'a [u8],
}

/// A Produce request taken apart: raw pieces before and after the topic array, and the topics.
pub struct Produce<'a> {
    pub correlation_id: i32,
    version: i16,
    acks: i16,
    head: &'a [u8],
    topics: Vec<Topic<'a>>,
    tail: &'a [u8],
}

impl<'a> Produce<'a> {
    /// Parses `frame` if it is a Produce request of a version this module understands.
    pub fn parse(frame: &'a [u8]) -> Option<Self> {
        let mut r = Reader::new(frame);
        if r.i16()? != PRODUCE {
            return None;
        }
        let version = r.i16()?;
        if !(3..=12).contains(&version) {
            return None;
        }
        let flex = flexible(version);
        let correlation_id = r.i32()?;
        r.string(false)?; // client id: a plain nullable string in every header version
        if flex {
            r.skip_tags()?;
        }
        r.string(flex)?; // transactional id
        let acks = r.i16()?;
        r.i32()?; // timeout
        let head = &frame[..r.pos];
        let mut topics = Vec::new();
        for _ in 0..r.array_len(flex)? {
            let start = r.pos;
            let name = r.string(flex)??;
            let mut partitions = Vec::new();
            for _ in 0..r.array_len(flex)? {
                partitions.push(r.i32()?);
                r.skip_bytes(flex)?;
                if flex {
                    r.skip_tags()?;
                }
            }
            if flex {
                r.skip_tags()?;
            }
            topics.push(Topic {
                name,
                partitions,
                raw: &frame[start..r.pos],
            });
        }
        Some(Self {
            correlation_id,
            version,
            acks,
            head,
            topics,
            tail: r.rest(),
        })
    }

    /// Splits the request by `refused`: the request to forward with the other topics (`None`
    /// when nothing is left to forward) and the refused topics' part of the answer (`None` when
    /// no topic is refused).
    pub fn split(&self, refused: impl Fn(&[u8]) -> bool) -> (Option<Vec<u8>>, Option<Refusal>) {
        let (no, yes): (Vec<&Topic<'_>>, Vec<&Topic<'_>>) =
            self.topics.iter().partition(|t| !refused(t.name));
        if yes.is_empty() {
            return (Some(self.frame_of(&no)), None);
        }
        let refusal = Refusal::new(self.version, &yes);
        let forward = (!no.is_empty()).then(|| self.frame_of(&no));
        (forward, (self.acks != 0).then_some(refusal))
    }

    fn frame_of(&self, topics: &[&Topic<'_>]) -> Vec<u8> {
        let mut out = self.head.to_vec();
        put_array_len(&mut out, topics.len(), flexible(self.version));
        for t in topics {
            out.extend_from_slice(t.raw);
        }
        out.extend_from_slice(self.tail);
        out
    }
}

/// The refused topics' entries of a Produce response, ready to stand alone or to be merged
/// into the broker's answer for the rest of the request.
pub struct Refusal {
    version: i16,
    topics: usize,
    entries: Vec<u8>,
}

impl Refusal {
    fn new(version: i16, topics: &[&Topic<'_>]) -> Self {
        let flex = flexible(version);
        let mut e = Vec::new();
        for t in topics {
            put_string(&mut e, t.name, flex);
            put_array_len(&mut e, t.partitions.len(), flex);
            for p in &t.partitions {
                e.extend_from_slice(&p.to_be_bytes());
                e.extend_from_slice(&TOPIC_AUTHORIZATION_FAILED.to_be_bytes());
                e.extend_from_slice(&(-1i64).to_be_bytes()); // base offset
                e.extend_from_slice(&(-1i64).to_be_bytes()); // log append time
                if version >= 5 {
                    e.extend_from_slice(&(-1i64).to_be_bytes()); // log start offset
                }
                if version >= 8 {
                    put_array_len(&mut e, 0, flex); // record errors
                    if flex {
                        put_uvarint(&mut e, 0); // null error message
                        put_uvarint(&mut e, 0); // tagged fields
                    } else {
                        e.extend_from_slice(&(-1i16).to_be_bytes());
                    }
                }
            }
            if flex {
                put_uvarint(&mut e, 0);
            }
        }
        Self {
            version,
            topics: topics.len(),
            entries: e,
        }
    }

    /// The whole response, when every topic of the request was refused.
    pub fn response(&self, correlation_id: i32) -> Vec<u8> {
        let flex = flexible(self.version);
        let mut out = correlation_id.to_be_bytes().to_vec();
        if flex {
            put_uvarint(&mut out, 0);
        }
        put_array_len(&mut out, self.topics, flex);
        out.extend_from_slice(&self.entries);
        out.extend_from_slice(&0i32.to_be_bytes()); // throttle time
        if flex {
            put_uvarint(&mut out, 0);
        }
        out
    }

    /// The broker's `response` to the forwarded part with the refused topics put in front of
    /// its own; `None` if the response cannot be read.
    pub fn merge(&self, response: &[u8]) -> Option<Vec<u8>> {
        let flex = flexible(self.version);
        let mut r = Reader::new(response);
        r.i32()?;
        if flex {
            r.skip_tags()?;
        }
        let head = r.pos;
        let n = r.array_len(flex)?;
        let mut out = response[..head].to_vec();
        put_array_len(&mut out, n + self.topics, flex);
        out.extend_from_slice(&self.entries);
        out.extend_from_slice(r.rest());
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Produce request of `version` writing partitions 0 and 1 of each topic.
    fn request(version: i16, topics: &[&str]) -> Vec<u8> {
        let flex = flexible(version);
        let mut f = Vec::new();
        f.extend_from_slice(&PRODUCE.to_be_bytes());
        f.extend_from_slice(&version.to_be_bytes());
        f.extend_from_slice(&7i32.to_be_bytes());
        put_string(&mut f, b"client", false);
        if flex {
            put_uvarint(&mut f, 0);
        }
        if flex {
            put_uvarint(&mut f, 0); // null transactional id
        } else {
            f.extend_from_slice(&(-1i16).to_be_bytes());
        }
        f.extend_from_slice(&(-1i16).to_be_bytes()); // acks = all
        f.extend_from_slice(&30_000i32.to_be_bytes());
        put_array_len(&mut f, topics.len(), flex);
        for t in topics {
            put_string(&mut f, t.as_bytes(), flex);
            put_array_len(&mut f, 2, flex);
            for p in 0..2i32 {
                f.extend_from_slice(&p.to_be_bytes());
                let records = [1u8, 2, 3];
                if flex {
                    put_uvarint(&mut f, records.len() as u64 + 1);
                } else {
                    f.extend_from_slice(&(records.len() as i32).to_be_bytes());
                }
                f.extend_from_slice(&records);
                if flex {
                    put_uvarint(&mut f, 0);
                }
            }
            if flex {
                put_uvarint(&mut f, 0);
            }
        }
        if flex {
            put_uvarint(&mut f, 0);
        }
        f
    }

    fn topic_names(frame: &[u8]) -> Vec<String> {
        Produce::parse(frame)
            .expect("a produce request")
            .topics
            .iter()
            .map(|t| String::from_utf8_lossy(t.name).into_owned())
            .collect()
    }

    #[test]
    fn splits_refused_topics_off_in_every_version() {
        for version in [3, 7, 8, 9, 10] {
            let frame = request(version, &["a", "out", "b"]);
            let p = Produce::parse(&frame).expect("parsed");
            assert_eq!(p.correlation_id, 7);
            let (forward, refusal) = p.split(|t| t == b"out");
            let forward = forward.expect("a and b are forwarded");
            assert_eq!(topic_names(&forward), ["a", "b"], "v{version}");
            let refusal = refusal.expect("out is refused");
            // The broker's answer for the forwarded part, with the refusal merged in front.
            let broker = refusal.response(7);
            let merged = refusal.merge(&broker).expect("merged");
            let mut r = Reader::new(&merged);
            assert_eq!(r.i32(), Some(7));
            if flexible(version) {
                r.skip_tags().unwrap();
            }
            assert_eq!(r.array_len(flexible(version)), Some(2), "v{version}");
            assert_eq!(r.string(flexible(version)), Some(Some(&b"out"[..])));
            assert_eq!(r.array_len(flexible(version)), Some(2));
            assert_eq!(r.i32(), Some(0));
            assert_eq!(r.i16(), Some(TOPIC_AUTHORIZATION_FAILED));
        }
    }

    #[test]
    fn a_request_without_refused_topics_is_forwarded_as_it_was() {
        let frame = request(9, &["a", "b"]);
        let (forward, refusal) = Produce::parse(&frame).unwrap().split(|t| t == b"out");
        assert_eq!(forward.as_deref(), Some(&frame[..]));
        assert!(refusal.is_none());
    }

    #[test]
    fn other_requests_and_garbage_are_not_parsed() {
        let mut fetch = request(9, &["a"]);
        fetch[1] = 1;
        assert!(Produce::parse(&fetch).is_none());
        let frame = request(9, &["a"]);
        for cut in 0..frame.len() - 1 {
            let _ = Produce::parse(&frame[..cut]);
        }
    }
}
