//! One nwp-fields message (docs/FORMATS.md, "The nwp-fields message"): a 40-byte little-endian header and a payload.

use serde::{Deserialize, Serialize};

/// The first four bytes of every message.
pub const MAGIC: &[u8; 4] = b"NWPF";
/// The format version this crate writes and reads (bytes 4..6).
pub const FORMAT_VERSION: u16 = 1;
/// The dtype byte (byte 6) for float32 little-endian values, the only dtype.
pub const DTYPE_F32LE: u8 = 1;
/// The header's length in bytes; the payload follows it.
pub const HEADER_LEN: usize = 40;

/// How a message's payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// The values' bytes as they are.
    None,
    /// Zstandard, one frame.
    Zstd,
    /// An LZ4 block (no frame).
    Lz4,
}

impl Codec {
    /// Every codec, in the order of their ids.
    pub const ALL: [Codec; 3] = [Codec::None, Codec::Zstd, Codec::Lz4];

    /// The id the header stores (byte 7).
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Zstd => 1,
            Codec::Lz4 => 2,
        }
    }

    /// The codec with header id `id`, if there is one.
    pub fn from_id(id: u8) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.id() == id)
    }

    /// The name scenarios and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
        }
    }
}

/// The header fields that identify a message's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// How the payload is encoded.
    pub codec: Codec,
    /// The group (init time) the field belongs to.
    pub group: u32,
    /// The field's variable.
    pub variable: u32,
    /// The field's step.
    pub step: u32,
    /// Rows of the field.
    pub ny: u32,
    /// Columns of the field.
    pub nx: u32,
    /// CRC-32C of the decoded values' bytes.
    pub crc32c: u32,
    /// Bytes of payload after the header.
    pub payload_len: u64,
}

/// Why a message could not be decoded. The caller adds which input it was.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    /// The message is shorter than a header.
    #[error("truncated: {len} bytes, shorter than the {HEADER_LEN}-byte header")]
    ShortHeader {
        /// The message's length.
        len: usize,
    },
    /// The first four bytes are not [`MAGIC`]; they are these.
    #[error("not an nwp-fields message (magic {0:02x?}, expected \"NWPF\")")]
    Magic([u8; 4]),
    /// A format version other than [`FORMAT_VERSION`].
    #[error("unsupported format version {0} (this reader knows version 1)")]
    Version(u16),
    /// A dtype other than [`DTYPE_F32LE`].
    #[error("unsupported dtype {0} (1 = float32 little-endian is the only one)")]
    Dtype(u8),
    /// A codec id no [`Codec`] has.
    #[error("unknown codec id {0} (0 = none, 1 = zstd, 2 = lz4)")]
    CodecId(u8),
    /// Fewer payload bytes than the header says.
    #[error("truncated: header says {expected} payload bytes, {actual} present")]
    Truncated {
        /// Payload bytes the header says.
        expected: u64,
        /// Payload bytes present.
        actual: u64,
    },
    /// Bytes after the payload the header announces.
    #[error("{actual} trailing bytes after a {expected}-byte payload")]
    Trailing {
        /// Payload bytes the header says.
        expected: u64,
        /// Bytes after them.
        actual: u64,
    },
    /// A header field differs from what the caller expects of this input.
    #[error("header says {what} = {found}, expected {expected}")]
    Mismatch {
        /// The field (`group`, `variable`, `step`, `ny`, `nx`).
        what: &'static str,
        /// Its value in the header.
        found: u64,
        /// The value expected.
        expected: u64,
    },
    /// The codec refused the payload.
    #[error("payload does not decode ({codec}): {detail}")]
    Payload {
        /// The codec's name.
        codec: &'static str,
        /// The codec's error.
        detail: String,
    },
    /// The payload decoded to the wrong number of bytes.
    #[error("payload decodes to {actual} bytes, expected {expected}")]
    DecodedLen {
        /// Bytes of ny·nx float32 values.
        expected: usize,
        /// Bytes decoded.
        actual: usize,
    },
    /// The decoded values do not have the header's CRC-32C.
    #[error("CRC-32C mismatch: header {expected:08x}, data {actual:08x} (corrupt payload)")]
    Crc {
        /// The CRC the header stores.
        expected: u32,
        /// The CRC of the decoded values.
        actual: u32,
    },
}

/// Appends a complete message for `values` (row-major ny·nx) to `out`.
#[allow(clippy::too_many_arguments)]
pub fn encode_message(
    out: &mut Vec<u8>,
    codec: Codec,
    zstd_level: i32,
    group: u32,
    variable: u32,
    step: u32,
    ny: u32,
    nx: u32,
    values: &[f32],
) {
    assert_eq!(values.len(), ny as usize * nx as usize);
    let raw = f32_bytes(values);
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(DTYPE_F32LE);
    out.push(codec.id());
    for word in [group, variable, step, ny, nx, crc32c::crc32c(raw)] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    let len_at = out.len();
    out.extend_from_slice(&0u64.to_le_bytes());
    match codec {
        Codec::None => out.extend_from_slice(raw),
        Codec::Zstd => {
            // Compress straight into the message buffer, after the header: no
            // intermediate allocation and no zero-filling. A `Cursor` over the Vec
            // is zstd-safe's own output buffer for that: zstd writes into the
            // capacity from the cursor on, and zstd-safe sets the length to what
            // it wrote, so no byte is exposed that zstd did not write.
            let payload_at = out.len() as u64;
            out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
            let mut payload = std::io::Cursor::new(&mut *out);
            payload.set_position(payload_at);
            zstd::zstd_safe::compress(&mut payload, raw, zstd_level)
                .expect("zstd compression into a compress_bound buffer cannot fail");
        }
        Codec::Lz4 => {
            let bound = lz4_flex::block::get_maximum_output_size(raw.len());
            let before = out.len();
            out.resize(before + bound, 0);
            let n = lz4_flex::block::compress_into(raw, &mut out[before..])
                .expect("lz4 compression into a maximum-size buffer cannot fail");
            out.truncate(before + n);
        }
    }
    let payload_len = (out.len() - len_at - 8) as u64;
    out[len_at..len_at + 8].copy_from_slice(&payload_len.to_le_bytes());
    debug_assert_eq!(out.len() - start, HEADER_LEN + payload_len as usize);
}

/// The largest message a field of `ny`×`nx` can produce with any codec.
pub fn max_message_len(ny: u32, nx: u32) -> u64 {
    let raw = ny as usize * nx as usize * 4;
    let bound = raw
        .max(zstd::zstd_safe::compress_bound(raw))
        .max(lz4_flex::block::get_maximum_output_size(raw));
    (HEADER_LEN + bound) as u64
}

/// Parses and checks the header; `bytes` is the whole message.
pub fn parse_header(bytes: &[u8]) -> Result<Header, MessageError> {
    if bytes.len() < HEADER_LEN {
        return Err(MessageError::ShortHeader { len: bytes.len() });
    }
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let magic: [u8; 4] = bytes[0..4].try_into().unwrap();
    if &magic != MAGIC {
        return Err(MessageError::Magic(magic));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(MessageError::Version(version));
    }
    if bytes[6] != DTYPE_F32LE {
        return Err(MessageError::Dtype(bytes[6]));
    }
    let codec = Codec::from_id(bytes[7]).ok_or(MessageError::CodecId(bytes[7]))?;
    let payload_len = u64::from_le_bytes(bytes[32..40].try_into().unwrap());
    let actual = (bytes.len() - HEADER_LEN) as u64;
    if actual < payload_len {
        return Err(MessageError::Truncated {
            expected: payload_len,
            actual,
        });
    }
    if actual > payload_len {
        return Err(MessageError::Trailing {
            expected: payload_len,
            actual: actual - payload_len,
        });
    }
    Ok(Header {
        codec,
        group: u32_at(8),
        variable: u32_at(12),
        step: u32_at(16),
        ny: u32_at(20),
        nx: u32_at(24),
        crc32c: u32_at(28),
        payload_len,
    })
}

/// Decodes a whole message into `out` (which must hold exactly ny·nx values),
/// checking the header against what the caller expects and the CRC.
pub fn decode_message(
    bytes: &[u8],
    expect: (u32, u32, u32, u32, u32),
    out: &mut [f32],
) -> Result<Header, MessageError> {
    let h = parse_header(bytes)?;
    let (g, v, s, ny, nx) = expect;
    for (what, found, expected) in [
        ("group", h.group, g),
        ("variable", h.variable, v),
        ("step", h.step, s),
        ("ny", h.ny, ny),
        ("nx", h.nx, nx),
    ] {
        if found != expected {
            return Err(MessageError::Mismatch {
                what,
                found: found as u64,
                expected: expected as u64,
            });
        }
    }
    let payload = &bytes[HEADER_LEN..];
    let expected_len = ny as usize * nx as usize * 4;
    if out.len() * 4 != expected_len {
        panic!("decode_message: output buffer has the wrong size");
    }
    let dst = f32_bytes_mut(out);
    let written = match h.codec {
        Codec::None => {
            if payload.len() != expected_len {
                return Err(MessageError::DecodedLen {
                    expected: expected_len,
                    actual: payload.len(),
                });
            }
            dst.copy_from_slice(payload);
            expected_len
        }
        Codec::Zstd => {
            zstd::zstd_safe::decompress(dst, payload).map_err(|code| MessageError::Payload {
                codec: "zstd",
                detail: zstd::zstd_safe::get_error_name(code).to_string(),
            })?
        }
        Codec::Lz4 => {
            lz4_flex::block::decompress_into(payload, dst).map_err(|e| MessageError::Payload {
                codec: "lz4",
                detail: e.to_string(),
            })?
        }
    };
    if written != expected_len {
        return Err(MessageError::DecodedLen {
            expected: expected_len,
            actual: written,
        });
    }
    let actual = crc32c::crc32c(f32_bytes(out));
    if actual != h.crc32c {
        return Err(MessageError::Crc {
            expected: h.crc32c,
            actual,
        });
    }
    Ok(h)
}

/// The little-endian bytes of `values` (this crate only builds for little-endian targets).
pub fn f32_bytes(values: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding; any f32 is 4 initialised bytes.
    unsafe { std::slice::from_raw_parts(values.as_ptr() as *const u8, values.len() * 4) }
}

fn f32_bytes_mut(values: &mut [f32]) -> &mut [u8] {
    // SAFETY: as above, and every bit pattern is a valid f32.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr() as *mut u8, values.len() * 4) }
}

#[cfg(target_endian = "big")]
compile_error!(
    "the nwp-fields format is little-endian; this crate reinterprets f32 slices as bytes"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nwp::values::ValueParams;

    fn field() -> Vec<f32> {
        ValueParams {
            variables: 2,
            steps: 3,
            ny: 5,
            nx: 6,
            seed: 1,
            noise_bits: 4,
        }
        .field(0, 1, 2)
    }

    #[test]
    fn round_trip_every_codec() {
        let values = field();
        for codec in Codec::ALL {
            let mut msg = Vec::new();
            encode_message(&mut msg, codec, 3, 0, 1, 2, 5, 6, &values);
            assert!(msg.len() as u64 <= max_message_len(5, 6));
            let mut out = vec![0.0; 30];
            let h = decode_message(&msg, (0, 1, 2, 5, 6), &mut out).unwrap();
            assert_eq!(h.codec, codec);
            assert_eq!(out, values, "{codec:?}");
        }
    }

    #[test]
    fn zstd_messages_are_the_bytes_they_always_were() {
        let values = ValueParams {
            variables: 2,
            steps: 3,
            ny: 64,
            nx: 64,
            seed: 1,
            noise_bits: 4,
        }
        .field(1, 1, 2);
        // Length and CRC-32C of "prefix" + the message, from the encoder before it
        // compressed through zstd-safe's Cursor output buffer.
        for (level, len, crc) in [
            (1, 7149, 0xc7485fc4),
            (3, 7426, 0x7ecd3901),
            (19, 3316, 0x969c0a62),
        ] {
            let mut msg = b"prefix".to_vec();
            encode_message(&mut msg, Codec::Zstd, level, 1, 1, 2, 64, 64, &values);
            assert_eq!(
                (msg.len(), crc32c::crc32c(&msg)),
                (len, crc),
                "level {level}"
            );
            // The payload is zstd's one-shot compression of the values, and what
            // came before the message is untouched.
            let expected = zstd::bulk::compress(f32_bytes(&values), level).unwrap();
            assert_eq!(&msg[6 + HEADER_LEN..], &expected[..], "level {level}");
            assert_eq!(&msg[..6], b"prefix");
        }
    }

    #[test]
    fn header_layout_is_the_documented_one() {
        let values = field();
        let mut msg = Vec::new();
        encode_message(&mut msg, Codec::None, 0, 7, 1, 2, 5, 6, &values);
        assert_eq!(&msg[0..4], b"NWPF");
        assert_eq!(&msg[4..6], &[1, 0]);
        assert_eq!(msg[6], 1);
        assert_eq!(msg[7], 0);
        assert_eq!(&msg[8..12], &7u32.to_le_bytes());
        assert_eq!(&msg[20..24], &5u32.to_le_bytes());
        assert_eq!(&msg[24..28], &6u32.to_le_bytes());
        assert_eq!(
            &msg[28..32],
            &crc32c::crc32c(f32_bytes(&values)).to_le_bytes()
        );
        assert_eq!(&msg[32..40], &120u64.to_le_bytes());
        assert_eq!(&msg[40..44], &values[0].to_le_bytes());
        assert_eq!(msg.len(), 160);
    }

    #[test]
    fn damage_is_detected() {
        let values = field();
        for codec in Codec::ALL {
            let mut msg = Vec::new();
            encode_message(&mut msg, codec, 1, 0, 1, 2, 5, 6, &values);
            let mut out = vec![0.0; 30];
            // A flipped payload byte: the codec or the CRC must notice.
            let mut bad = msg.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x40;
            assert!(
                decode_message(&bad, (0, 1, 2, 5, 6), &mut out).is_err(),
                "{codec:?}"
            );
            // A truncated message.
            let err = decode_message(&msg[..msg.len() - 3], (0, 1, 2, 5, 6), &mut out);
            assert!(
                matches!(err, Err(MessageError::Truncated { .. })),
                "{err:?}"
            );
            // A message where another was expected.
            let err = decode_message(&msg, (0, 1, 1, 5, 6), &mut out);
            assert!(matches!(
                err,
                Err(MessageError::Mismatch { what: "step", .. })
            ));
        }
        assert!(matches!(
            decode_message(&[0; 10], (0, 0, 0, 5, 6), &mut [0.0; 30]),
            Err(MessageError::ShortHeader { len: 10 })
        ));
    }
}
