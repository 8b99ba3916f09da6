//! Which partition a producer's partitioner puts a key in, so the query API can tell where a
//! customer it does not hold lives. The same hashes as librdkafka's (and, for murmur2, the
//! Java client's) partitioners.

/// Kafka's murmur2 (the Java client's `Utils.murmur2`, seed 0x9747b28c).
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// 32-bit FNV-1a made non-negative as a signed number, as librdkafka's `fnv1a` partitioner
/// (matching Sarama's hash partitioner).
fn fnv1a(data: &[u8]) -> u32 {
    let h = data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    }) as i32;
    (if h < 0 { h.wrapping_neg() } else { h }) as u32
}

/// The partition `partitioner` (a librdkafka partitioner name) gives `key` among
/// `partitions`; `None` for partitioners this does not reproduce or no partitions.
pub fn partition_for(key: &[u8], partitions: i32, partitioner: &str) -> Option<i32> {
    if partitions <= 0 {
        return None;
    }
    let n = partitions as u32;
    match partitioner {
        "murmur2" | "murmur2_random" => Some(((murmur2(key) & 0x7fff_ffff) % n) as i32),
        "fnv1a" | "fnv1a_random" => Some((fnv1a(key) % n) as i32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_clients_test_vectors() {
        // From Apache Kafka's UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()) as i32, expected, "{input}");
        }
    }

    #[test]
    fn partitions_stay_in_range() {
        for k in 0..1000 {
            let key = format!("customer-{k}");
            let p = partition_for(key.as_bytes(), 7, "murmur2_random").unwrap();
            assert!((0..7).contains(&p));
        }
        assert_eq!(partition_for(b"x", 4, "consistent_random"), None);
        assert_eq!(partition_for(b"x", 0, "murmur2"), None);
    }
}
