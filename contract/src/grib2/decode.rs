//! Decoding one nwp-grib2 input with a real GRIB2 decoder: unwrap (bzip2), check
//! the sections against the field expected ([`super::message::check`]), then decode
//! the values with the decoder the scenario chose.
//!
//! The sections are checked first because GRIB2 has no checksum: a decoder handed
//! a damaged message may return plausible values. The check makes every truncated
//! or mislabelled input fail with what is wrong, and the decoders themselves run
//! inside `catch_unwind`, so a decoder's panic on a damaged payload is an error
//! of this input, not the end of the run.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::message::{check, FieldId};
use super::{Grib2Params, Packing, Wrap};

/// Which GRIB2 decoder turns a message into values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Decoder {
    /// The `grib` crate (grib-rs) with its pure-Rust CCSDS path (rust-aec).
    #[default]
    Grib,
    /// The `gribberish` crate with its pure-Rust CCSDS path.
    Gribberish,
    /// libaec (C, through libaec-sys) for the CCSDS stream, simple unpacking by
    /// the harness; only in a build with the `libaec` cargo feature.
    Libaec,
}

impl Decoder {
    /// Every decoder, available in this build or not.
    pub const ALL: [Decoder; 3] = [Decoder::Grib, Decoder::Gribberish, Decoder::Libaec];

    /// The name scenarios, results and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Decoder::Grib => "grib",
            Decoder::Gribberish => "gribberish",
            Decoder::Libaec => "libaec",
        }
    }

    /// The crates (with the versions this build resolved, from Cargo.lock) that do
    /// the decoding, for results.
    pub fn version(self) -> String {
        match self {
            Decoder::Grib => format!(
                "grib {} (CCSDS by rust-aec {})",
                env!("HARNESS_VERSION_GRIB"),
                env!("HARNESS_VERSION_RUST_AEC")
            ),
            Decoder::Gribberish => format!("gribberish {}", env!("HARNESS_VERSION_GRIBBERISH")),
            Decoder::Libaec => format!(
                "libaec-sys {} (the libaec it bundles)",
                env!("HARNESS_VERSION_LIBAEC_SYS")
            ),
        }
    }

    /// Whether this build can run it; otherwise why not.
    pub fn available(self) -> Result<(), String> {
        match self {
            Decoder::Libaec if !cfg!(feature = "libaec") => Err(
                "decoder \"libaec\" is not in this build: build with `--features libaec` \
                 (libaec-sys compiles libaec, which needs CMake and libclang)"
                    .into(),
            ),
            _ => Ok(()),
        }
    }
}

/// Decodes input `raw` (as stored: wrapped or not) into `out` (ny·nx values,
/// row-major, row 0 first). The error says what is wrong; the caller names the
/// input.
pub fn decode(
    raw: &[u8],
    params: &Grib2Params,
    decoder: Decoder,
    id: FieldId,
    noise_bits: u32,
    out: &mut [f32],
) -> Result<(), String> {
    let unwrapped;
    let message = match params.wrap {
        Wrap::None => raw,
        Wrap::Bz2 => {
            let limit = params.max_message_len(id.ny, id.nx, 12 + noise_bits);
            unwrapped = unwrap_bz2(raw, limit)?;
            &unwrapped[..]
        }
    };
    let parsed = check(message, id, params.packing, noise_bits).map_err(|e| e.0)?;
    decode_parsed(message, &parsed, decoder, out)
}

/// Decodes `message`, already parsed (and checked) as `parsed`, into `out` (every
/// point of the grid, in the message's scanning order; points a bitmap leaves out
/// are NaN) with `decoder`, which runs inside `catch_unwind`.
pub fn decode_parsed(
    message: &[u8],
    parsed: &super::message::Parsed,
    decoder: Decoder,
    out: &mut [f32],
) -> Result<(), String> {
    let n = out.len();
    let run = || -> Result<(), String> {
        match decoder {
            Decoder::Grib => with_grib(message, out),
            Decoder::Gribberish => with_gribberish(message, out),
            Decoder::Libaec => {
                let packing = match parsed.data_template {
                    0 => Packing::Simple,
                    42 => Packing::Ccsds,
                    t => {
                        return Err(format!(
                            "data representation template 5.{t}: this decoder reads 5.0 \
                             (simple) and 5.42 (CCSDS) only; decoder \"grib\" or \
                             \"gribberish\" read more"
                        ))
                    }
                };
                if parsed.bitmap != 255 {
                    return Err(format!(
                        "a bitmap (indicator {}): this decoder reads messages without one; \
                         decoder \"grib\" or \"gribberish\" apply bitmaps",
                        parsed.bitmap
                    ));
                }
                with_libaec(message, parsed, packing, out)
            }
        }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(r) => r.map_err(|e| format!("{} decoder: {e}", decoder.name())),
        Err(p) => Err(format!(
            "{} decoder panicked on this message ({} values expected): {}",
            decoder.name(),
            n,
            crate::backend::panic_text(p)
        )),
    }
}

/// bzip2-decompresses one whole stream, refusing more than `limit` bytes (a
/// damaged or hostile file must not grow without bound) and anything after the
/// stream's end.
pub fn unwrap_bz2(raw: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut d = bzip2::read::BzDecoder::new(raw);
    // Exactly the most that is read: the buffer never grows past it.
    let mut out = Vec::with_capacity(limit as usize + 1);
    (&mut d)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("bzip2: {e} (damaged or truncated .bz2)"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "bzip2: unwraps to more than {limit} bytes, the most one message of this \
             dataset can have"
        ));
    }
    if d.total_in() != raw.len() as u64 {
        return Err(format!(
            "bzip2: {} bytes after the end of the compressed stream",
            raw.len() as u64 - d.total_in()
        ));
    }
    Ok(out)
}

fn fill(out: &mut [f32], values: impl Iterator<Item = f32>) -> Result<(), String> {
    let mut count = 0usize;
    let mut values = values;
    for (slot, v) in out.iter_mut().zip(values.by_ref()) {
        *slot = v;
        count += 1;
    }
    let extra = values.count();
    if count != out.len() || extra != 0 {
        return Err(format!(
            "{} values decoded, the grid has {}",
            count + extra,
            out.len()
        ));
    }
    Ok(())
}

fn with_grib(message: &[u8], out: &mut [f32]) -> Result<(), String> {
    let grib2 = grib::from_bytes(message).map_err(|e| e.to_string())?;
    let (_, sub) = grib2
        .iter()
        .next()
        .ok_or_else(|| "no submessage".to_string())?;
    let decoder = grib::Grib2SubmessageDecoder::from(sub).map_err(|e| e.to_string())?;
    let values = decoder.dispatch().map_err(|e| e.to_string())?;
    fill(out, values)
}

fn with_gribberish(message: &[u8], out: &mut [f32]) -> Result<(), String> {
    let m = gribberish::message::Message::from_data(message, 0)
        .ok_or_else(|| "not a GRIB message".to_string())?;
    let values = m.data().map_err(|e| e.to_string())?;
    // f64 → f32 is exact for generated data (every value is a multiple of 2^-b below
    // 2^13); for other data it rounds, the same way in every backend.
    fill(out, values.into_iter().map(|v| v as f32))
}

#[cfg(feature = "libaec")]
fn with_libaec(
    message: &[u8],
    parsed: &super::message::Parsed,
    packing: Packing,
    out: &mut [f32],
) -> Result<(), String> {
    let (r, e, d, bits) = parsed.scaling.ok_or("no template 5.0/5.42 scaling")?;
    let payload = &message[parsed.data.clone()];
    let n = out.len();
    let q: Vec<u32> = match packing {
        Packing::Simple => unpack_simple(payload, bits as u32, n)?,
        Packing::Ccsds => {
            let (flags, block_size, rsi) = parsed.ccsds.ok_or("no template 5.42 parameters")?;
            let params = crate::ccsds::AecParams {
                bits_per_sample: bits,
                flags,
                block_size: block_size as u32,
                rsi: rsi as u32,
            };
            libaec_decode(payload, &params, n)?
        }
    };
    let scale = 2f32.powi(e as i32);
    let dec = 10f32.powi(-(d as i32));
    for (slot, x) in out.iter_mut().zip(q) {
        *slot = (r + x as f32 * scale) * dec;
    }
    Ok(())
}

/// libaec's `aec_buffer_decode` of `n` samples, as ecCodes calls it: the samples
/// come out big-endian (the MSB flag GRIB2 sets) in 1, 2, 3 or 4 bytes each.
#[cfg(feature = "libaec")]
fn libaec_decode(data: &[u8], p: &crate::ccsds::AecParams, n: usize) -> Result<Vec<u32>, String> {
    use crate::ccsds::DATA_MSB;
    let width = p.sample_bytes();
    let mut out = vec![0u8; n * width];
    // SAFETY: aec_stream is a plain C struct whose all-zero state is where libaec's
    // documentation starts; the pointers below describe live buffers for the call.
    let mut s: libaec_sys::aec_stream = unsafe { std::mem::zeroed() };
    s.bits_per_sample = u32::from(p.bits_per_sample);
    s.block_size = p.block_size;
    s.rsi = p.rsi;
    s.flags = u32::from(p.flags);
    s.next_in = data.as_ptr();
    s.avail_in = data.len();
    s.next_out = out.as_mut_ptr();
    s.avail_out = out.len();
    // SAFETY: as above.
    let rc = unsafe { libaec_sys::aec_buffer_decode(&mut s) };
    if rc != libaec_sys::AEC_OK as i32 {
        return Err(format!("aec_buffer_decode failed (libaec code {rc})"));
    }
    if s.total_out != out.len() {
        return Err(format!(
            "libaec decoded {} bytes, {} samples need {}",
            s.total_out,
            n,
            out.len()
        ));
    }
    let msb = p.flags & DATA_MSB != 0;
    Ok(out
        .chunks_exact(width)
        .map(|b| {
            if msb {
                b.iter().fold(0u32, |a, &x| (a << 8) | x as u32)
            } else {
                b.iter().rev().fold(0u32, |a, &x| (a << 8) | x as u32)
            }
        })
        .collect())
}

#[cfg(feature = "libaec")]
fn unpack_simple(payload: &[u8], bits: u32, n: usize) -> Result<Vec<u32>, String> {
    if (payload.len() as u64) * 8 < n as u64 * bits as u64 {
        return Err("simple packing: payload shorter than the values".into());
    }
    let mut q = Vec::with_capacity(n);
    let (mut acc, mut have, mut bytes) = (0u64, 0u32, payload.iter());
    for _ in 0..n {
        while have < bits {
            acc = (acc << 8) | *bytes.next().expect("length checked") as u64;
            have += 8;
        }
        have -= bits;
        q.push(((acc >> have) & ((1u64 << bits) - 1)) as u32);
    }
    Ok(q)
}

#[cfg(not(feature = "libaec"))]
fn with_libaec(
    _: &[u8],
    _: &super::message::Parsed,
    _: Packing,
    _: &mut [f32],
) -> Result<(), String> {
    Decoder::Libaec.available()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grib2::message::encode_message;
    use crate::nwp::ValueParams;

    fn field(id: FieldId, b: u32) -> (Vec<u32>, Vec<f32>) {
        let vp = ValueParams {
            variables: 400,
            steps: 10,
            ny: id.ny,
            nx: id.nx,
            seed: 3,
            noise_bits: b,
        };
        let mut q = vec![0; (id.ny * id.nx) as usize];
        vp.fill_field_q(id.g, id.v, id.s, &mut q);
        (q, vp.field(id.g, id.v, id.s))
    }

    fn wrapped(params: &Grib2Params, id: FieldId, b: u32) -> (Vec<u8>, Vec<f32>) {
        let (q, expected) = field(id, b);
        let mut m = Vec::new();
        encode_message(&mut m, params, id, b, &q).unwrap();
        if params.wrap == Wrap::Bz2 {
            let mut z = Vec::new();
            bzip2::read::BzEncoder::new(&m[..], bzip2::Compression::new(6))
                .read_to_end(&mut z)
                .unwrap();
            m = z;
        }
        (m, expected)
    }

    fn decoders() -> Vec<Decoder> {
        Decoder::ALL
            .into_iter()
            .filter(|d| d.available().is_ok())
            .collect()
    }

    const ID: FieldId = FieldId {
        g: 2,
        v: 257,
        s: 5,
        ny: 37,
        nx: 53,
    };

    #[test]
    fn every_decoder_returns_the_closed_form_exactly() {
        for packing in [Packing::Simple, Packing::Ccsds] {
            for wrap in [Wrap::None, Wrap::Bz2] {
                for b in [0, 4, 8] {
                    let params = Grib2Params { packing, wrap };
                    let (m, expected) = wrapped(&params, ID, b);
                    for d in decoders() {
                        let mut out = vec![f32::NAN; expected.len()];
                        decode(&m, &params, d, ID, b, &mut out)
                            .unwrap_or_else(|e| panic!("{packing:?} {wrap:?} b={b} {d:?}: {e}"));
                        let first = out
                            .iter()
                            .zip(&expected)
                            .position(|(a, b)| a.to_bits() != b.to_bits());
                        assert!(
                            first.is_none(),
                            "{packing:?} {wrap:?} b={b} {d:?}: values differ at {first:?}: {:?} vs {:?}",
                            &out[first.unwrap_or(0)..][..4.min(out.len() - first.unwrap_or(0))],
                            &expected[first.unwrap_or(0)..][..4.min(out.len() - first.unwrap_or(0))]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn damaged_inputs_fail_and_never_panic() {
        for packing in [Packing::Simple, Packing::Ccsds] {
            for wrap in [Wrap::None, Wrap::Bz2] {
                let params = Grib2Params { packing, wrap };
                let (m, expected) = wrapped(&params, ID, 4);
                for d in decoders() {
                    let mut out = vec![0.0; expected.len()];
                    // Truncated: always an error.
                    for cut in [0, 10, m.len() / 2, m.len() - 1] {
                        let e = decode(&m[..cut], &params, d, ID, 4, &mut out);
                        assert!(e.is_err(), "{packing:?} {wrap:?} {d:?} cut {cut}");
                    }
                    // A wrong template or field: an error that says so.
                    let other = FieldId { s: 6, ..ID };
                    let e = decode(&m, &params, d, other, 4, &mut out).unwrap_err();
                    assert!(e.contains("forecast time"), "{e}");
                    // Flipped bits anywhere: an error, or values the verification
                    // will reject — never a panic.
                    for i in (0..m.len()).step_by(7) {
                        let mut b = m.clone();
                        b[i] ^= 0x04;
                        let _ = decode(&b, &params, d, ID, 4, &mut out);
                    }
                }
            }
        }
    }

    #[test]
    fn decoder_versions_come_from_the_lock_file() {
        for d in Decoder::ALL {
            let v = d.version();
            assert!(
                !v.contains('?') && v.chars().any(|c| c.is_ascii_digit()),
                "{v}"
            );
        }
    }

    #[test]
    fn a_bzip2_bomb_is_refused() {
        let zeros = vec![0u8; 1 << 20];
        let mut z = Vec::new();
        bzip2::read::BzEncoder::new(&zeros[..], bzip2::Compression::new(9))
            .read_to_end(&mut z)
            .unwrap();
        let e = unwrap_bz2(&z, 1000).unwrap_err();
        assert!(e.contains("more than 1000 bytes"), "{e}");
        let mut trailing = z.clone();
        trailing.extend_from_slice(b"junk");
        let e = unwrap_bz2(&trailing, 2 << 20).unwrap_err();
        assert!(e.contains("after the end"), "{e}");
    }
}
