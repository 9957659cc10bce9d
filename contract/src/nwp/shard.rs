//! The shard object of the sharded output layout: Zarr v3's `sharding_indexed`
//! codec with the index at the end (docs/FORMATS.md, "The sharded layout").
//!
//! A shard is its inner chunks' encoded bytes back to back, in C order of their
//! positions in the shard, followed by the index: for every position, in the same
//! order, `offset` and `nbytes` as u64 little-endian (both 2^64 − 1 when the inner
//! chunk is absent), then the CRC-32C of those index bytes as u32 little-endian
//! (the index codecs `bytes` + `crc32c`).

/// What an absent inner chunk's `offset` and `nbytes` both hold.
pub const ABSENT: u64 = u64::MAX;

/// Bytes of the index of a shard of `positions` inner chunks: 16 per position,
/// plus the 4-byte checksum.
pub fn index_len(positions: usize) -> usize {
    positions * 16 + 4
}

/// One shard from its inner chunks, already encoded, in C order of their positions
/// (`None`: absent).
pub fn encode(inner: &[Option<Vec<u8>>]) -> Vec<u8> {
    let data: usize = inner.iter().flatten().map(Vec::len).sum();
    let mut w = ShardWriter::new(inner.len(), data);
    for chunk in inner {
        w.push(chunk.as_deref());
    }
    w.finish()
}

/// Builds a shard one inner chunk at a time, so that a caller can encode each
/// inner chunk straight after the previous one and hold only the shard so far.
pub struct ShardWriter {
    out: Vec<u8>,
    index: Vec<u8>,
}

impl ShardWriter {
    /// A shard of `positions` inner chunks, with room for `data` bytes of them.
    pub fn new(positions: usize, data: usize) -> Self {
        ShardWriter {
            out: Vec::with_capacity(data + index_len(positions)),
            index: Vec::with_capacity(index_len(positions)),
        }
    }

    /// Appends the next position's encoded inner chunk (`None`: absent).
    pub fn push(&mut self, chunk: Option<&[u8]>) {
        let (offset, nbytes) = match chunk {
            Some(bytes) => {
                let at = self.out.len() as u64;
                self.out.extend_from_slice(bytes);
                (at, bytes.len() as u64)
            }
            None => (ABSENT, ABSENT),
        };
        self.index.extend_from_slice(&offset.to_le_bytes());
        self.index.extend_from_slice(&nbytes.to_le_bytes());
    }

    /// The shard: the data, then the index and its CRC-32C.
    pub fn finish(mut self) -> Vec<u8> {
        let crc = crc32c::crc32c(&self.index);
        self.out.extend_from_slice(&self.index);
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out
    }
}

/// The index of a shard of `positions` inner chunks: per position, its byte range
/// within the shard or `None` when absent. Refused, with the reason: a shard
/// shorter than its index, a checksum that does not match, a range that ends past
/// the data (the bytes before the index) or overlaps another, one of `offset` and
/// `nbytes` absent without the other.
pub fn decode_index(
    shard: &[u8],
    positions: usize,
) -> Result<Vec<Option<std::ops::Range<usize>>>, String> {
    let len = index_len(positions);
    if shard.len() < len {
        return Err(format!(
            "truncated shard: {} bytes, shorter than its index of {len} bytes \
             ({positions} inner chunks)",
            shard.len()
        ));
    }
    let data_len = shard.len() - len;
    let (index, crc) = shard[data_len..].split_at(len - 4);
    let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    let actual = crc32c::crc32c(index);
    if stored != actual {
        return Err(format!(
            "shard index checksum mismatch: stored CRC-32C {stored:#010x}, computed \
             {actual:#010x} (a damaged or truncated shard, or an index of another length)"
        ));
    }
    let u64_at = |i: usize| u64::from_le_bytes(index[i..i + 8].try_into().expect("8 bytes"));
    let mut ranges = Vec::with_capacity(positions);
    for p in 0..positions {
        let (offset, nbytes) = (u64_at(p * 16), u64_at(p * 16 + 8));
        ranges.push(match (offset, nbytes) {
            (ABSENT, ABSENT) => None,
            (ABSENT, _) | (_, ABSENT) => {
                return Err(format!(
                    "shard index entry {p}: offset {offset} and nbytes {nbytes}: only one \
                     of them says absent"
                ))
            }
            _ => {
                let end = offset.checked_add(nbytes).filter(|&e| e <= data_len as u64);
                let Some(end) = end else {
                    return Err(format!(
                        "shard index entry {p}: bytes {offset} + {nbytes} end past the data \
                         ({data_len} bytes before the index)"
                    ));
                };
                Some(offset as usize..end as usize)
            }
        });
    }
    let mut sorted: Vec<(usize, &std::ops::Range<usize>)> = ranges
        .iter()
        .enumerate()
        .filter_map(|(p, r)| r.as_ref().map(|r| (p, r)))
        .collect();
    sorted.sort_by_key(|(_, r)| (r.start, r.end));
    for w in sorted.windows(2) {
        let ((pa, a), (pb, b)) = (w[0], w[1]);
        if a.end > b.start {
            return Err(format!(
                "shard index entries {pa} (bytes {}..{}) and {pb} (bytes {}..{}) overlap",
                a.start, a.end, b.start, b.end
            ));
        }
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_round_trips_with_absent_inner_chunks() {
        let inner = vec![
            Some(b"abc".to_vec()),
            None,
            Some(Vec::new()),
            Some(b"defgh".to_vec()),
            None,
        ];
        let shard = encode(&inner);
        assert_eq!(shard.len(), 8 + index_len(5));
        let index = decode_index(&shard, 5).unwrap();
        assert_eq!(index, vec![Some(0..3), None, Some(3..3), Some(3..8), None]);
        for (r, want) in index.iter().zip(&inner) {
            assert_eq!(r.clone().map(|r| shard[r].to_vec()), *want);
        }
        // The absent entries are 2^64 - 1 twice, and the checksum covers the entries.
        let at = 8 + 16;
        assert_eq!(&shard[at..at + 16], &[0xFF; 16]);
        let crc = crc32c::crc32c(&shard[8..shard.len() - 4]);
        assert_eq!(shard[shard.len() - 4..], crc.to_le_bytes());
    }

    #[test]
    fn an_empty_shard_is_its_index() {
        let shard = encode(&[None, None]);
        assert_eq!(shard.len(), index_len(2));
        assert_eq!(decode_index(&shard, 2).unwrap(), vec![None, None]);
    }

    /// Rewrites entry `p` of a shard's index and recomputes the checksum.
    fn set_entry(shard: &mut [u8], positions: usize, p: usize, offset: u64, nbytes: u64) {
        let start = shard.len() - index_len(positions);
        let e = start + p * 16;
        shard[e..e + 8].copy_from_slice(&offset.to_le_bytes());
        shard[e + 8..e + 16].copy_from_slice(&nbytes.to_le_bytes());
        let end = shard.len() - 4;
        let crc = crc32c::crc32c(&shard[start..end]);
        shard[end..].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn damaged_indexes_are_refused_with_the_reason() {
        let shard = encode(&[Some(b"abcd".to_vec()), Some(b"efgh".to_vec())]);
        let err = |s: &[u8], n: usize| decode_index(s, n).unwrap_err();

        let mut bad = shard.clone();
        bad[shard.len() - 10] ^= 1;
        assert!(err(&bad, 2).contains("checksum mismatch"));
        assert!(err(&shard[..shard.len() - 1], 2).contains("checksum mismatch"));
        assert!(err(&shard[..20], 2).contains("truncated shard: 20 bytes"));
        // An index of another length: the checksum is not where it is looked for.
        assert!(err(&shard, 1).contains("checksum mismatch"));

        let mut past = shard.clone();
        set_entry(&mut past, 2, 1, 6, 4);
        assert!(err(&past, 2).contains("entry 1: bytes 6 + 4 end past the data (8 bytes"));
        let mut wraps = shard.clone();
        set_entry(&mut wraps, 2, 0, 1, u64::MAX - 1);
        assert!(err(&wraps, 2).contains("end past the data"));
        let mut overlap = shard.clone();
        set_entry(&mut overlap, 2, 1, 2, 4);
        assert!(err(&overlap, 2).contains("entries 0 (bytes 0..4) and 1 (bytes 2..6) overlap"));
        let mut half = shard.clone();
        set_entry(&mut half, 2, 0, ABSENT, 4);
        assert!(err(&half, 2).contains("only one of them says absent"));
    }
}
