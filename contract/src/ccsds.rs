//! A CCSDS 121.0-B (Adaptive Entropy Coding, "szip"-style) encoder for GRIB2 data
//! representation template 5.42, in Rust with no C library.
//!
//! The harness writes ICON-like GRIB2 messages whose section 7 is an AEC bit stream;
//! real decoders (grib's pure-Rust path through `rust-aec`, gribberish, libaec) read
//! them back, so the stream follows the standard and the conventions libaec's decoder
//! checks:
//!
//! - Samples are split into reference sample intervals (RSIs) of `rsi` blocks of
//!   `block_size` samples. With [`DATA_PREPROCESS`] each RSI starts with a reference
//!   sample (sent raw, `bits_per_sample` bits, after the first block's option ID) and
//!   every other sample becomes the unit-delay prediction residual mapped to a
//!   non-negative integer (CCSDS 121.0-B §4).
//! - Each block is coded with the shortest option: a run of zero blocks, the second
//!   extension, split-sample with k = 0 (the fundamental sequence) up to the largest k
//!   the option ID can name, or uncompressed. Ties are broken as libaec breaks them.
//! - A run of zero blocks ends at the first non-zero block, at the end of a 64-block
//!   segment, or at the end of the RSI; a run of 5 or more blocks that ends at a
//!   segment or RSI end is sent as "remainder of segment" (ROS), as libaec's encoder
//!   does.
//! - The last RSI may be short: it holds only the blocks the samples need, and the last
//!   block is padded with copies of the last sample (residual 0 with preprocessing),
//!   which decoders drop because they know the sample count. A run of zero blocks
//!   reaching the end of the data is an ROS when it is 5 or more blocks long.
//! - The stream ends with zero bits up to the next byte. Empty input gives an empty
//!   stream (as ecCodes writes for no values).
//!
//! [`DATA_3BYTE`] and [`DATA_MSB`] only say how decoders lay out the samples they
//! output; the bit stream does not depend on them, so both are accepted for any
//! sample width. [`DATA_SIGNED`] samples are two's complement in `bits_per_sample` bits.
//! [`RESTRICTED`] selects the short option IDs for 1–4 bits and is refused for 5–8
//! bits (libaec refuses it too). [`PAD_RSI`], [`NOT_ENFORCE`] and flag bit 7 are
//! refused: ecCodes never sets them and libaec only honours `PAD_RSI` when built with
//! `ENABLE_RSI_PADDING`.

use thiserror::Error;

/// `ccsdsFlags` bit 0 (libaec `AEC_DATA_SIGNED`): samples are two's complement.
pub const DATA_SIGNED: u8 = 1;
/// `ccsdsFlags` bit 1 (libaec `AEC_DATA_3BYTE`): decoders store 17–24-bit samples in
/// 3 bytes instead of 4.
pub const DATA_3BYTE: u8 = 2;
/// `ccsdsFlags` bit 2 (libaec `AEC_DATA_MSB`): decoders store samples big-endian.
pub const DATA_MSB: u8 = 4;
/// `ccsdsFlags` bit 3 (libaec `AEC_DATA_PREPROCESS`): unit-delay prediction and
/// mapping, with a reference sample per RSI.
pub const DATA_PREPROCESS: u8 = 8;
/// `ccsdsFlags` bit 4 (libaec `AEC_RESTRICTED`): the restricted option-ID set for
/// 1–4 bits per sample.
pub const RESTRICTED: u8 = 16;
/// `ccsdsFlags` bit 5 (libaec `AEC_PAD_RSI`): byte-align every RSI. Not supported.
pub const PAD_RSI: u8 = 32;
/// libaec `AEC_NOT_ENFORCE`: non-standard block sizes. Not supported.
pub const NOT_ENFORCE: u8 = 64;

/// The flag bits this encoder accepts.
const SUPPORTED_FLAGS: u8 = DATA_SIGNED | DATA_3BYTE | DATA_MSB | DATA_PREPROCESS | RESTRICTED;

/// A second-extension symbol larger than this is refused by libaec's decoder (its
/// `SE_TABLE_SIZE`) and by rust-aec, so the encoder never sends one.
const SE_SYMBOL_MAX: u64 = 90;

/// Blocks per segment: a run of zero blocks never crosses a segment end.
const SEGMENT_BLOCKS: usize = 64;

/// CCSDS parameters as GRIB2 template 5.42 stores them (octets 12–15 of section 5:
/// `ccsdsFlags`, `ccsdsBlockSize`, `ccsdsRsi`), plus the sample width (`bitsPerValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AecParams {
    /// Bits per sample, 1..=32.
    pub bits_per_sample: u8,
    /// Samples per block: 8, 16, 32 or 64.
    pub block_size: u32,
    /// Blocks per reference sample interval, 1..=4096 (libaec's limit).
    pub rsi: u32,
    /// `ccsdsFlags`: the libaec flag bits [`DATA_SIGNED`] … [`PAD_RSI`].
    pub flags: u8,
}

impl AecParams {
    /// Bytes per sample in libaec's decoded (and to-be-encoded) byte layout: 1, 2,
    /// 3 (17–24 bits with `DATA_3BYTE`) or 4.
    pub fn sample_bytes(&self) -> usize {
        match self.bits_per_sample {
            1..=8 => 1,
            9..=16 => 2,
            17..=24 if self.flags & DATA_3BYTE != 0 => 3,
            _ => 4,
        }
    }

    /// The `ccsdsFlags` ecCodes writes by default: 3BYTE | MSB | PREPROCESS = 14.
    ///
    /// Source: ecCodes `definitions/grib2/template.5.42.def`, whose flag bits default
    /// to SIGNED = 0, 3BYTE = 1, MSB = 1, PREPROCESS = 1, RESTRICTED = 0, PAD_RSI = 0,
    /// with `ccsdsBlockSize = 32` and `ccsdsRsi = 128`. (ecCodes' packer,
    /// `grib_accessor_class_data_ccsds_packing`, passes libaec these flags with 3BYTE
    /// cleared and MSB set to the host's byte order, because it hands libaec native
    /// integers; neither changes the bit stream, and the file keeps 14.) DWD's ICON
    /// open data carries the same 14/32/128.
    pub const ECCODES_FLAGS: u8 = DATA_3BYTE | DATA_MSB | DATA_PREPROCESS;
    /// ecCodes' default `ccsdsBlockSize`.
    pub const ECCODES_BLOCK_SIZE: u32 = 32;
    /// ecCodes' default `ccsdsRsi`.
    pub const ECCODES_RSI: u32 = 128;

    /// ecCodes' defaults for `bits_per_sample` bits: flags 14, block size 32, RSI 128
    /// (see [`AecParams::ECCODES_FLAGS`] for the source).
    pub fn eccodes_default(bits_per_sample: u8) -> Self {
        Self {
            bits_per_sample,
            block_size: Self::ECCODES_BLOCK_SIZE,
            rsi: Self::ECCODES_RSI,
            flags: Self::ECCODES_FLAGS,
        }
    }
}

/// Why [`encode`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AecError {
    /// The parameters are invalid or name a feature this encoder does not implement.
    #[error("CCSDS parameters {params:?}: {reason}")]
    Params {
        /// The parameters refused.
        params: AecParams,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// A sample does not fit in `bits_per_sample` bits.
    #[error("CCSDS sample {index} is {value}, which does not fit in {bits} bits")]
    SampleOutOfRange {
        /// Index of the first such sample.
        index: usize,
        /// Its value.
        value: u32,
        /// The sample width.
        bits: u8,
    },
}

/// Validated parameters and the quantities derived from them.
struct Coder {
    bits: u32,
    block_size: usize,
    rsi_blocks: usize,
    id_len: u32,
    kmax: u32,
    preprocess: bool,
    signed: bool,
    xmin: i64,
    xmax: i64,
}

impl Coder {
    fn new(params: &AecParams) -> Result<Self, AecError> {
        let refuse = |reason| {
            Err(AecError::Params {
                params: *params,
                reason,
            })
        };
        let bits = u32::from(params.bits_per_sample);
        if !(1..=32).contains(&bits) {
            return refuse("bits per sample must be 1..=32");
        }
        if ![8, 16, 32, 64].contains(&params.block_size) {
            return refuse("block size must be 8, 16, 32 or 64");
        }
        if !(1..=4096).contains(&params.rsi) {
            return refuse("reference sample interval must be 1..=4096 blocks");
        }
        if params.flags & !SUPPORTED_FLAGS != 0 {
            return refuse(
                "only the flags SIGNED, 3BYTE, MSB, PREPROCESS and RESTRICTED are supported",
            );
        }
        // Option-ID length (CCSDS 121.0-B table 5-1; libaec's choice per width).
        let id_len = match bits {
            17.. => 5,
            9..=16 => 4,
            _ if params.flags & RESTRICTED == 0 => 3,
            1..=2 => 1,
            3..=4 => 2,
            _ => return refuse("RESTRICTED needs 1..=4 bits per sample (or more than 8)"),
        };
        // Split-sample IDs are 1..=2^id_len - 2 for k = 0..; no k of `bits` or more
        // is ever shorter than sending the block uncompressed.
        let kmax = if id_len == 1 {
            0
        } else {
            ((1 << id_len) - 3).min(bits - 1)
        };
        let signed = params.flags & DATA_SIGNED != 0;
        let (xmin, xmax) = if signed {
            (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
        } else {
            (0, (1i64 << bits) - 1)
        };
        Ok(Self {
            bits,
            block_size: params.block_size as usize,
            rsi_blocks: params.rsi as usize,
            id_len,
            kmax,
            preprocess: params.flags & DATA_PREPROCESS != 0,
            signed,
            xmin,
            xmax,
        })
    }

    /// The value of a `bits`-wide sample pattern (sign-extended if signed).
    #[inline(always)]
    fn value(&self, raw: u32) -> i64 {
        if self.signed {
            let shift = 32 - self.bits;
            i64::from(((raw << shift) as i32) >> shift)
        } else {
            i64::from(raw)
        }
    }

    /// Fills `d` (whole blocks) with the coded values of one RSI's samples `x`
    /// (1 ≤ `x.len()` ≤ `d.len()`), padding with the last sample; returns the reference
    /// sample when preprocessing.
    fn prepare<T: Copy + Into<u32>>(&self, x: &[T], d: &mut [u32]) -> Option<u32> {
        let (body, pad) = d.split_at_mut(x.len());
        if !self.preprocess {
            for (o, &s) in body.iter_mut().zip(x) {
                *o = s.into();
            }
            pad.fill(body[body.len() - 1]);
            return None;
        }
        let (xmin, xmax) = (self.xmin, self.xmax);
        let first: u32 = x[0].into();
        let mut prev = self.value(first);
        body[0] = 0;
        for (o, &s) in body[1..].iter_mut().zip(&x[1..]) {
            let cur = self.value(s.into());
            // CCSDS 121.0-B §4.3: θ = min(x̂ − xmin, xmax − x̂), Δ = x − x̂;
            // 2Δ for 0 ≤ Δ ≤ θ, 2|Δ| − 1 for −θ ≤ Δ < 0, θ + |Δ| otherwise.
            let theta = (prev - xmin).min(xmax - prev);
            let delta = cur - prev;
            let folded = (delta << 1) ^ (delta >> 63);
            let magnitude = delta.abs();
            *o = if magnitude <= theta {
                folded
            } else {
                theta + magnitude
            } as u32;
            prev = cur;
        }
        // Repeating the last sample predicts exactly.
        pad.fill(0);
        Some(first)
    }
}

/// Bits written most significant first into bytes.
struct BitWriter {
    out: Vec<u8>,
    /// Pending bits: the low `n` bits (n < 64; higher bits are stale).
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// Appends the low `len` (≤ 32) bits of `value`, whose other bits are zero.
    #[inline(always)]
    fn put(&mut self, value: u32, len: u32) {
        debug_assert!(len <= 32 && (len == 32 || value >> len == 0));
        let total = self.n + len;
        if total < 64 {
            self.acc = (self.acc << len) | u64::from(value);
            self.n = total;
        } else {
            // Fill the accumulator to 64 bits, write it, keep the rest of `value`
            // (n ≥ 32 here, so the shift is 1..=32).
            let rest = total - 64;
            let word = (self.acc << (len - rest)) | (u64::from(value) >> rest);
            self.out.extend_from_slice(&word.to_be_bytes());
            self.acc = u64::from(value);
            self.n = rest;
        }
    }

    /// Appends a fundamental-sequence codeword: `zeros` zero bits, then a one.
    #[inline(always)]
    fn put_fs(&mut self, mut zeros: u64) {
        while zeros >= 32 {
            self.put(0, 32);
            zeros -= 32;
        }
        self.put(1, zeros as u32 + 1);
    }

    /// The bytes written, the last one padded with zero bits.
    fn finish(mut self) -> Vec<u8> {
        while self.n >= 8 {
            self.n -= 8;
            self.out.push((self.acc >> self.n) as u8);
        }
        if self.n > 0 {
            self.out.push((self.acc << (8 - self.n)) as u8);
        }
        self.out
    }
}

/// Encodes `samples` (each below 2^`bits_per_sample`; for signed data the two's
/// complement pattern in that many bits) into a CCSDS 121.0-B bit stream as GRIB2
/// template 5.42 stores it in section 7.
///
/// Takes `u8`, `u16` or `u32` samples. Errors on parameters outside the supported
/// subset and on the first sample that does not fit; never panics.
pub fn encode<T: Copy + Into<u32>>(samples: &[T], params: &AecParams) -> Result<Vec<u8>, AecError> {
    let coder = Coder::new(params)?;
    if coder.bits < 32 {
        let limit = 1u32 << coder.bits;
        let any_high = samples.iter().fold(0u32, |acc, &s| acc | s.into()) >= limit;
        if any_high {
            let index = samples.iter().position(|&s| s.into() >= limit).unwrap_or(0);
            return Err(AecError::SampleOutOfRange {
                index,
                value: samples.get(index).map_or(0, |&s| s.into()),
                bits: params.bits_per_sample,
            });
        }
    }
    let bs = coder.block_size;
    let blocks = samples.len().div_ceil(bs);
    // Worst case: every block uncompressed behind its option ID.
    let bits_bound =
        blocks as u64 * (u64::from(coder.id_len) + 1 + bs as u64 * u64::from(coder.bits));
    let mut w = BitWriter {
        out: Vec::with_capacity(usize::try_from(bits_bound / 8 + 8).unwrap_or(0)),
        acc: 0,
        n: 0,
    };
    let rsi_samples = coder.rsi_blocks * bs;
    let mut d = vec![0u32; rsi_samples.min(blocks * bs)];
    for x in samples.chunks(rsi_samples) {
        let d = &mut d[..x.len().div_ceil(bs) * bs];
        let reference = coder.prepare(x, d);
        encode_rsi(&coder, &mut w, d, reference);
    }
    Ok(w.finish())
}

/// Codes one RSI's blocks `d` (the first carrying `reference`, if any).
fn encode_rsi(c: &Coder, w: &mut BitWriter, d: &[u32], reference: Option<u32>) {
    let blocks = d.len() / c.block_size;
    let mut zero_run = 0u64;
    let mut zero_run_reference = None;
    for (b, block) in d.chunks_exact(c.block_size).enumerate() {
        let reference = if b == 0 { reference } else { None };
        let sum: u64 = block.iter().map(|&v| u64::from(v)).sum();
        if sum == 0 {
            if zero_run == 0 {
                zero_run_reference = reference;
            }
            zero_run += 1;
            if b + 1 == blocks || (b + 1) % SEGMENT_BLOCKS == 0 {
                put_zero_run(c, w, zero_run, zero_run_reference, zero_run > 4);
                zero_run = 0;
            }
            continue;
        }
        if zero_run > 0 {
            put_zero_run(c, w, zero_run, zero_run_reference, false);
            zero_run = 0;
        }
        encode_block(c, w, block, sum, reference);
    }
}

/// A run of `count` zero blocks; `ros` sends it as "remainder of segment".
fn put_zero_run(c: &Coder, w: &mut BitWriter, count: u64, reference: Option<u32>, ros: bool) {
    // ID 0, then the low-entropy selector 0.
    w.put(0, c.id_len + 1);
    if let Some(r) = reference {
        w.put(r, c.bits);
    }
    // FS value m means m + 1 blocks for m < 4, ROS for m = 4, m blocks for m > 4.
    w.put_fs(if ros {
        4
    } else if count >= 5 {
        count
    } else {
        count - 1
    });
}

/// Codes one non-zero block with its shortest option.
fn encode_block(c: &Coder, w: &mut BitWriter, block: &[u32], sum: u64, reference: Option<u32>) {
    let skip = usize::from(reference.is_some());
    let n = (block.len() - skip) as u64;
    // Lengths below exclude the option ID and the reference sample, which every
    // option but "uncompressed" sends on top (that one sends the reference in the block).
    let uncompressed = n * u64::from(c.bits);
    let (split, k) = if c.id_len > 1 {
        best_split(block, sum, n, c.kmax)
    } else {
        (u64::MAX, 0)
    };
    // Every pair costs at least its sum, so a block summing to `uncompressed` or more
    // cannot be shorter in the second extension.
    let se = if sum < uncompressed {
        second_extension_len(block, uncompressed)
    } else {
        u64::MAX
    };
    // libaec's order of preference on ties.
    if split < uncompressed {
        if split < se {
            put_split(c, w, block, skip, reference, k);
        } else {
            put_second_extension(c, w, block, reference);
        }
    } else if uncompressed <= se {
        w.put((1 << c.id_len) - 1, c.id_len);
        if let Some(r) = reference {
            w.put(r, c.bits);
        }
        for &v in &block[skip..] {
            w.put(v, c.bits);
        }
    } else {
        put_second_extension(c, w, block, reference);
    }
}

/// The shortest split-sample length over k = 0..=`kmax` and its k. The length is
/// convex in k (each step up saves no more than the step before), so a descent from
/// an estimate finds the minimum.
#[inline]
fn best_split(block: &[u32], sum: u64, n: u64, kmax: u32) -> (u64, u32) {
    let len = |k: u32| -> u64 {
        block.iter().map(|&v| u64::from(v >> k)).sum::<u64>() + n * u64::from(k + 1)
    };
    let mean = sum / n;
    let mut k = if mean == 0 {
        0
    } else {
        (63 - mean.leading_zeros()).min(kmax)
    };
    let mut best = len(k);
    let mut moved = false;
    while k > 0 {
        let l = len(k - 1);
        if l >= best {
            break;
        }
        best = l;
        k -= 1;
        moved = true;
    }
    if !moved {
        while k < kmax {
            let l = len(k + 1);
            if l >= best {
                break;
            }
            best = l;
            k += 1;
        }
    }
    (best, k)
}

/// The second-extension length (with its extra ID bit), or `u64::MAX` if it exceeds
/// `limit` or needs a symbol decoders refuse.
#[inline]
fn second_extension_len(block: &[u32], limit: u64) -> u64 {
    let mut len = 1u64;
    for pair in block.chunks_exact(2) {
        let s = u64::from(pair[0]) + u64::from(pair[1]);
        if s > 12 {
            return u64::MAX;
        }
        let symbol = s * (s + 1) / 2 + u64::from(pair[1]);
        if symbol > SE_SYMBOL_MAX {
            return u64::MAX;
        }
        len += symbol + 1;
        if len > limit {
            return u64::MAX;
        }
    }
    len
}

fn put_split(
    c: &Coder,
    w: &mut BitWriter,
    block: &[u32],
    skip: usize,
    reference: Option<u32>,
    k: u32,
) {
    w.put(k + 1, c.id_len);
    if let Some(r) = reference {
        w.put(r, c.bits);
    }
    for &v in &block[skip..] {
        w.put_fs(u64::from(v >> k));
    }
    if k > 0 {
        let mask = (1u32 << k) - 1;
        for &v in &block[skip..] {
            w.put(v & mask, k);
        }
    }
}

fn put_second_extension(c: &Coder, w: &mut BitWriter, block: &[u32], reference: Option<u32>) {
    // ID 0, then the low-entropy selector 1.
    w.put(1, c.id_len + 1);
    if let Some(r) = reference {
        w.put(r, c.bits);
    }
    // With a reference sample the first pair's first value is the residual slot of
    // the reference (0); decoders drop it.
    for pair in block.chunks_exact(2) {
        let s = u64::from(pair[0]) + u64::from(pair[1]);
        w.put_fs(s * (s + 1) / 2 + u64::from(pair[1]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, bits: u8) -> u32 {
            (self.next() >> (64 - u32::from(bits))) as u32
        }
    }

    fn mask(bits: u8) -> u32 {
        if bits == 32 {
            u32::MAX
        } else {
            (1 << bits) - 1
        }
    }

    /// Decoded sample bytes back to `bits`-wide patterns, laid out as the flags say.
    fn unpack(bytes: &[u8], p: &AecParams, n: usize) -> Vec<u32> {
        let width = p.sample_bytes();
        assert_eq!(bytes.len(), n * width, "decoded length for {p:?}");
        bytes
            .chunks_exact(width)
            .map(|c| {
                let v = if p.flags & DATA_MSB != 0 {
                    c.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b))
                } else {
                    c.iter().rev().fold(0u32, |a, &b| (a << 8) | u32::from(b))
                };
                v & mask(p.bits_per_sample)
            })
            .collect()
    }

    fn rust_aec_decode(
        data: &[u8],
        p: &AecParams,
        n: usize,
    ) -> Result<Vec<u32>, rust_aec::AecError> {
        let params = rust_aec::AecParams::new(
            p.bits_per_sample,
            p.block_size,
            p.rsi,
            rust_aec::flags_from_grib2_ccsds_flags(p.flags),
        );
        rust_aec::decode(data, params, n).map(|bytes| unpack(&bytes, p, n))
    }

    #[cfg(feature = "libaec")]
    mod libaec {
        use super::super::*;
        use libaec_sys::{aec_buffer_decode, aec_buffer_encode, aec_stream, AEC_OK};

        fn stream(p: &AecParams) -> aec_stream {
            // SAFETY: aec_stream is a plain C struct; all-zero is its documented start.
            let mut s: aec_stream = unsafe { std::mem::zeroed() };
            s.bits_per_sample = u32::from(p.bits_per_sample);
            s.block_size = p.block_size;
            s.rsi = p.rsi;
            s.flags = u32::from(p.flags);
            s
        }

        /// libaec's decoder: the sample bytes, as the flags lay them out.
        pub fn decode(data: &[u8], p: &AecParams, n: usize) -> Vec<u32> {
            let width = p.sample_bytes();
            let mut out = vec![0u8; n * width];
            let mut s = stream(p);
            s.next_in = data.as_ptr();
            s.avail_in = data.len();
            s.next_out = out.as_mut_ptr();
            s.avail_out = out.len();
            // SAFETY: the pointers and lengths describe live buffers for the call.
            let rc = unsafe { aec_buffer_decode(&mut s) };
            assert_eq!(rc, AEC_OK as i32, "libaec decode of {p:?}, {n} samples");
            assert_eq!(s.total_out, out.len(), "libaec decoded size for {p:?}");
            super::unpack(&out, p, n)
        }

        /// libaec's own encoding of the same samples (for the size comparison).
        pub fn encode(samples: &[u32], p: &AecParams) -> Vec<u8> {
            let width = p.sample_bytes();
            let mut input = Vec::with_capacity(samples.len() * width);
            for &v in samples {
                let be = v.to_be_bytes();
                if p.flags & DATA_MSB != 0 {
                    input.extend_from_slice(&be[4 - width..]);
                } else {
                    input.extend(be[4 - width..].iter().rev());
                }
            }
            // ecCodes' bound for the output buffer.
            let mut out = vec![0u8; input.len() * 67 / 64 + 256];
            let mut s = stream(p);
            s.next_in = input.as_ptr();
            s.avail_in = input.len();
            s.next_out = out.as_mut_ptr();
            s.avail_out = out.len();
            // SAFETY: the pointers and lengths describe live buffers for the call.
            let rc = unsafe { aec_buffer_encode(&mut s) };
            assert_eq!(rc, AEC_OK as i32, "libaec encode of {p:?}");
            out.truncate(s.total_out);
            out
        }
    }

    /// Encodes, decodes with every decoder available, checks the samples come back;
    /// returns the encoded size.
    fn round_trip(samples: &[u32], p: &AecParams, what: &str) -> usize {
        let data = encode(samples, p).unwrap_or_else(|e| panic!("{what}: {e}"));
        let n = samples.len();
        if n == 0 {
            assert!(
                data.is_empty(),
                "{what}: empty input gives {} bytes",
                data.len()
            );
            return 0;
        }
        match rust_aec_decode(&data, p, n) {
            Ok(back) => {
                if let Some(i) = (0..n).find(|&i| back[i] != samples[i]) {
                    panic!(
                        "{what} ({p:?}, {n} samples): rust-aec sample {i} is {} not {}",
                        back[i], samples[i]
                    );
                }
            }
            // rust-aec 0.1.1 stops early on some zero-block runs without preprocessing
            // (libaec's encoder writes the same bytes there, and libaec decodes them:
            // `ccsds_size_matches_libaec`, and the libaec check below). GRIB2 from
            // ecCodes and from this harness always preprocesses.
            Err(e) if p.flags & DATA_PREPROCESS == 0 => {
                eprintln!("{what} ({p:?}, {n} samples): rust-aec: {e}")
            }
            Err(e) => panic!("{what} ({p:?}, {n} samples): rust-aec: {e}"),
        }
        #[cfg(feature = "libaec")]
        {
            let back = libaec::decode(&data, p, n);
            if let Some(i) = (0..n).find(|&i| back[i] != samples[i]) {
                panic!(
                    "{what} ({p:?}, {n} samples): libaec sample {i} is {} not {}",
                    back[i], samples[i]
                );
            }
        }
        data.len()
    }

    /// Data shapes that reach every coding option and boundary rule.
    fn cases(bits: u8, rng: &mut Rng) -> Vec<(String, Vec<u32>)> {
        let max = mask(bits);
        let mut out = Vec::new();
        out.push((
            "random".into(),
            (0..5000).map(|_| rng.below(bits)).collect(),
        ));
        // Small steps: residuals 0..3, so small k, FS and the second extension.
        let mut x = max / 2;
        let ramp: Vec<u32> = (0..9000)
            .map(|i| {
                x = match i % 3 {
                    0 => x.saturating_add(rng.below(1)).min(max),
                    1 => x.saturating_sub(rng.below(1)),
                    _ => x,
                };
                x
            })
            .collect();
        out.push(("smooth".into(), ramp));
        out.push(("ramp".into(), (0..7000u32).map(|i| (i / 3) & max).collect()));
        // Mid-size residuals: each k in turn.
        for k in [2u8, 5, 9, 13, 19, 27] {
            if k < bits {
                let mut v = 0u32;
                let s: Vec<u32> = (0..3000)
                    .map(|_| {
                        v = (v ^ rng.below(k)) & max;
                        v
                    })
                    .collect();
                out.push((format!("noise{k}"), s));
            }
        }
        // Constant runs: zero blocks ending mid-segment, at segment (64 blocks) and
        // RSI ends, across RSIs, reaching the end, with ROS and short runs.
        let rsi = 128 * 32;
        let mut runs = Vec::new();
        for len in [
            1usize,
            31,
            32,
            33,
            4 * 32,
            5 * 32,
            6 * 32 + 7,
            64 * 32,
            64 * 32 + 1,
            200 * 32,
            rsi + 100,
        ] {
            let c = rng.below(bits);
            runs.extend(std::iter::repeat_n(c, len));
            runs.push(rng.below(bits));
        }
        out.push(("runs".into(), runs.clone()));
        // Zeros and constants from the start (reference block in a run), 3 RSIs and
        // a bit, ending in a run.
        out.push(("constant".into(), vec![max; 3 * rsi + 77]));
        out.push(("zeros".into(), vec![0; 2 * rsi]));
        let mut tail = runs;
        tail.extend(std::iter::repeat_n(7 & max, 70 * 32 + 3));
        out.push(("run to end".into(), tail));
        // Extremes: 0 ↔ max jumps (the mapping's θ + |Δ| branch).
        out.push((
            "extremes".into(),
            (0..4000)
                .map(|i| {
                    if (i / 7) % 2 == 0 {
                        max
                    } else {
                        rng.below(2) & max
                    }
                })
                .collect(),
        ));
        out
    }

    #[test]
    fn ccsds_round_trips_every_width_and_shape() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for bits in [1u8, 2, 3, 8, 12, 15, 16, 17, 20, 24, 32] {
            for flags in [AecParams::ECCODES_FLAGS, DATA_PREPROCESS, DATA_MSB, 0] {
                let p = AecParams {
                    flags,
                    ..AecParams::eccodes_default(bits)
                };
                for (what, samples) in cases(bits, &mut rng) {
                    // Whole and partial blocks and RSIs.
                    for n in [samples.len(), samples.len() - 1, 1, 2, 33, 4096, 4097] {
                        let n = n.min(samples.len());
                        round_trip(&samples[..n], &p, &format!("{what}[..{n}], {bits} bits"));
                    }
                }
            }
        }
    }

    #[test]
    fn ccsds_round_trips_other_block_sizes_rsis_and_flags() {
        let mut rng = Rng(42);
        for (block_size, rsi) in [(8, 1), (8, 64), (16, 3), (64, 2), (64, 4096), (32, 65)] {
            for bits in [1u8, 4, 13, 16, 21] {
                let p = AecParams {
                    block_size,
                    rsi,
                    ..AecParams::eccodes_default(bits)
                };
                for (what, samples) in cases(bits, &mut rng) {
                    round_trip(
                        &samples,
                        &p,
                        &format!("{what}, {bits} bits, block {block_size}, rsi {rsi}"),
                    );
                }
            }
        }
        // The restricted option set (1–4 bits) and signed data.
        for bits in [1u8, 2, 3, 4] {
            let p = AecParams {
                flags: AecParams::ECCODES_FLAGS | RESTRICTED,
                ..AecParams::eccodes_default(bits)
            };
            for (what, samples) in cases(bits, &mut rng) {
                round_trip(&samples, &p, &format!("{what}, {bits} bits, restricted"));
            }
        }
        for bits in [8u8, 12, 16, 20] {
            let p = AecParams {
                flags: AecParams::ECCODES_FLAGS | DATA_SIGNED,
                ..AecParams::eccodes_default(bits)
            };
            for (what, samples) in cases(bits, &mut rng) {
                round_trip(&samples, &p, &format!("{what}, {bits} bits, signed"));
            }
        }
    }

    #[test]
    fn ccsds_empty_and_single_sample() {
        for bits in [1u8, 16, 24, 32] {
            let p = AecParams::eccodes_default(bits);
            assert_eq!(encode::<u32>(&[], &p), Ok(Vec::new()));
            for v in [0, 1, mask(bits)] {
                round_trip(&[v], &p, "single sample");
            }
        }
        // u16 input gives the same stream as u32.
        let p = AecParams::eccodes_default(16);
        let s: Vec<u16> = (0..1000u16).map(|i| i.wrapping_mul(7919)).collect();
        let wide: Vec<u32> = s.iter().map(|&v| u32::from(v)).collect();
        assert_eq!(encode(&s, &p), encode(&wide, &p));
    }

    #[test]
    fn ccsds_chooses_the_short_options() {
        let p = AecParams::eccodes_default(16);
        // A constant field: one reference sample and zero-block runs only.
        let n = 657 * 1377;
        let size = round_trip(&vec![1234; n], &p, "constant field");
        assert!(size < n / 500, "constant field took {size} bytes");
        // Random 16-bit data can't shrink: uncompressed blocks, within an ID per block.
        let mut rng = Rng(7);
        let random: Vec<u32> = (0..n).map(|_| rng.below(16)).collect();
        let size = round_trip(&random, &p, "random field");
        let raw = n * 2;
        assert!(
            size >= raw && size <= raw + raw / 100,
            "random field took {size} bytes for {raw} raw"
        );
    }

    #[test]
    fn ccsds_refuses_what_it_does_not_support() {
        let ok = AecParams::eccodes_default(16);
        for bad in [
            AecParams {
                bits_per_sample: 0,
                ..ok
            },
            AecParams {
                bits_per_sample: 33,
                ..ok
            },
            AecParams {
                block_size: 12,
                ..ok
            },
            AecParams {
                block_size: 0,
                ..ok
            },
            AecParams { rsi: 0, ..ok },
            AecParams { rsi: 4097, ..ok },
            AecParams {
                flags: ok.flags | PAD_RSI,
                ..ok
            },
            AecParams {
                flags: ok.flags | NOT_ENFORCE,
                ..ok
            },
            AecParams { flags: 128, ..ok },
            AecParams {
                bits_per_sample: 6,
                flags: RESTRICTED,
                ..ok
            },
        ] {
            assert!(
                matches!(encode(&[1u32, 2, 3], &bad), Err(AecError::Params { .. })),
                "{bad:?} accepted"
            );
        }
        assert_eq!(
            encode(&[1u32, 2, 70000, 3, 80000], &ok),
            Err(AecError::SampleOutOfRange {
                index: 2,
                value: 70000,
                bits: 16
            })
        );
        let p12 = AecParams::eccodes_default(12);
        assert!(encode(&[4096u16], &p12).is_err());
        assert!(encode(&[4095u16], &p12).is_ok());
    }

    /// An ICON-like field: 657 × 1377, 16 bits, a smooth field × 16 plus 4 bits of noise.
    fn icon_like_field() -> Vec<u32> {
        let (ny, nx) = (657usize, 1377usize);
        let mut rng = Rng(2024);
        let mut q = Vec::with_capacity(ny * nx);
        for y in 0..ny {
            for x in 0..nx {
                let (fy, fx) = (y as f64 / ny as f64, x as f64 / nx as f64);
                let smooth = 0.5
                    + 0.3
                        * (std::f64::consts::TAU * (fx * 2.0 + fy)).sin()
                        * (std::f64::consts::PI * fy).cos()
                    + 0.15
                        * (std::f64::consts::TAU * 5.0 * fx).cos()
                        * (std::f64::consts::TAU * 3.0 * fy).sin();
                let s = (smooth.clamp(0.0, 1.0) * 4095.0) as u32;
                q.push(s * 16 + rng.below(4));
            }
        }
        q
    }

    #[test]
    fn ccsds_icon_like_field() {
        let q = icon_like_field();
        let p = AecParams::eccodes_default(16);
        // The best of three runs (the machine is shared).
        let mut secs = f64::MAX;
        let mut data = Vec::new();
        for _ in 0..3 {
            let start = std::time::Instant::now();
            data = encode(&q, &p).expect("encodes");
            secs = secs.min(start.elapsed().as_secs_f64());
        }
        round_trip(&q, &p, "ICON-like field");
        let raw = q.len() * 2;
        let ratio = raw as f64 / data.len() as f64;
        println!(
            "ICON-like 657x1377 16-bit field: {} bytes of {raw} raw, ratio {ratio:.3}; encoded in {:.1} ms ({:.0} M samples/s, unoptimised unless --release)",
            data.len(),
            secs * 1e3,
            q.len() as f64 / secs / 1e6
        );
        // 4 bits of noise, plus a few for the residual's sign and the smooth part.
        // The smooth part steps ~50 units of 2^16 per point and the noise adds 4 bits.
        assert!((1.5..4.0).contains(&ratio), "ratio {ratio}");
    }

    /// Our sizes against libaec's encoder on the same samples.
    #[cfg(feature = "libaec")]
    #[test]
    fn ccsds_size_matches_libaec() {
        let mut rng = Rng(99);
        let mut fields = vec![("ICON-like".to_string(), 16u8, icon_like_field())];
        for bits in [1u8, 8, 12, 16, 20, 24] {
            for (what, s) in cases(bits, &mut rng) {
                fields.push((what, bits, s));
            }
        }
        let (mut ours_total, mut theirs_total, mut cases, mut identical) =
            (0usize, 0usize, 0usize, 0usize);
        for (what, bits, s) in fields {
            for flags in [AecParams::ECCODES_FLAGS, 0] {
                let p = AecParams {
                    flags,
                    ..AecParams::eccodes_default(bits)
                };
                let ours = encode(&s, &p).expect("encodes");
                let theirs = libaec::encode(&s, &p);
                assert_eq!(
                    libaec::decode(&theirs, &p, s.len()),
                    s,
                    "libaec's own round trip"
                );
                if what == "ICON-like" {
                    println!(
                        "ICON-like field, flags {flags}: ours {} bytes, libaec {} bytes",
                        ours.len(),
                        theirs.len()
                    );
                }
                // The same choices give the same length; libaec may end with one
                // extra zero byte.
                assert!(
                    ours.len() <= theirs.len() && theirs.len() - ours.len() <= 1,
                    "{what}, {bits} bits, flags {flags}: ours {} bytes, libaec {}",
                    ours.len(),
                    theirs.len()
                );
                ours_total += ours.len();
                theirs_total += theirs.len();
                cases += 1;
                identical += usize::from(ours == theirs);
            }
        }
        println!("all {cases} cases: ours {ours_total} bytes, libaec {theirs_total} bytes; {identical} streams byte-identical");
    }
}
