//! Writing one GRIB2 message of the nwp-grib2 format, and parsing a message's
//! sections back into the keys the format fixes (docs/FORMATS.md, "nwp-grib2").
//!
//! Octet layouts follow WMO's GRIB2 manual (FM 92 GRIB edition 2): every integer is
//! big-endian; signed integers are sign-and-magnitude (top bit = sign), not two's
//! complement; the reference value R is an IEEE float32.

use super::{Grib2Params, Packing};

/// Bytes of every section but the data section's payload: 0 (16), 1 (21), 3 (72),
/// 4 (34), 5 (at most 25), 6 (6), 7's header (5) and 8 (4).
pub const HEADERS_LEN: usize = 16 + 21 + 72 + 34 + 25 + 6 + 5 + 4;

/// DWD's originating centre (common code table C-11).
pub const CENTRE_DWD: u16 = 78;
/// The reference value R of every message: value = R + X · 2^E.
pub const REFERENCE_VALUE: f32 = 200.0;
/// Group g's reference time is this many hours after 2026-01-01T00:00Z plus 6 h · g.
pub const HOURS_PER_GROUP: u64 = 6;
/// The epoch of the reference times, as (year, month, day).
pub const EPOCH: (i64, u32, u32) = (2026, 1, 1);
/// The master tables version written in section 1 (one every GRIB2 reader knows).
pub const TABLES_VERSION: u8 = 19;
/// Grid spacing in micro-degrees when the field fits the globe at it: ICON-EU's
/// 0.0625°, so that a 657 × 1377 field has ICON-EU's extent.
pub const ICON_EU_STEP: u32 = 62_500;
/// ICON-EU's south-west corner (latitude, longitude) in micro-degrees.
pub const ICON_EU_ORIGIN: (i32, i32) = (29_500_000, -23_500_000);

/// Which field a message holds, and its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldId {
    /// The group (init time).
    pub g: u32,
    /// The variable.
    pub v: u32,
    /// The step (forecast hour).
    pub s: u32,
    /// Rows (Nj).
    pub ny: u32,
    /// Columns (Ni).
    pub nx: u32,
}

/// The reference time of group `g`: (year, month, day, hour), or `None` past the
/// year 9999.
pub fn reference_time(g: u32) -> Option<(u16, u8, u8, u8)> {
    let hours = g as u64 * HOURS_PER_GROUP;
    let days = days_from_civil(EPOCH.0, EPOCH.1, EPOCH.2) + (hours / 24) as i64;
    let (y, m, d) = civil_from_days(days);
    (y <= 9999).then_some((y as u16, m as u8, d as u8, (hours % 24) as u8))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            era * 400 + yoe + 1
        } else {
            era * 400 + yoe
        },
        m,
        d,
    )
}

/// The grid's corners and increments in micro-degrees: ICON-EU's where the field
/// fits the globe at 0.0625°, a finer spacing otherwise.
/// Returns (la1, lo1, la2, lo2, di, dj).
pub fn grid_corners(ny: u32, nx: u32) -> (i32, i32, i32, i32, u32, u32) {
    let (mut la1, mut lo1) = ICON_EU_ORIGIN;
    let fits = |n: u32, span: u64| (n.max(1) as u64 - 1) * ICON_EU_STEP as u64 <= span;
    let dj = if fits(ny, 60_000_000) {
        ICON_EU_STEP
    } else {
        la1 = -90_000_000;
        (180_000_000 / ny.max(2) as u64) as u32
    };
    let di = if fits(nx, 270_000_000) {
        ICON_EU_STEP
    } else {
        lo1 = 0;
        (359_000_000 / nx.max(2) as u64) as u32
    };
    let la2 = la1 + ((ny.max(1) - 1) as u64 * dj as u64) as i32;
    let lo2 = lo1 + ((nx.max(1) - 1) as u64 * di as u64) as i32;
    (la1, lo1, la2, lo2, di, dj)
}

/// A signed integer in GRIB2's sign-and-magnitude form, `bytes` octets wide.
fn sign_magnitude(v: i64, bytes: u32) -> u64 {
    let sign = 1u64 << (bytes * 8 - 1);
    if v < 0 {
        sign | v.unsigned_abs()
    } else {
        v as u64
    }
}

/// Reads a sign-and-magnitude integer.
fn from_sign_magnitude(raw: u64, bytes: u32) -> i64 {
    let sign = 1u64 << (bytes * 8 - 1);
    if raw & sign != 0 {
        -((raw & !sign) as i64)
    } else {
        raw as i64
    }
}

fn put(out: &mut Vec<u8>, v: u64, bytes: u32) {
    for i in (0..bytes).rev() {
        out.push((v >> (8 * i)) as u8);
    }
}

/// Appends message `id` holding the packed integers `q` (row-major ny·nx, each
/// `< 2^bits`, value = 200 + q / 2^noise_bits) to `out`, unwrapped (the caller
/// wraps). `bits` = 12 + noise_bits.
pub fn encode_message(
    out: &mut Vec<u8>,
    params: &Grib2Params,
    id: FieldId,
    noise_bits: u32,
    q: &[u32],
) -> Result<(), String> {
    let n = id.ny as u64 * id.nx as u64;
    if q.len() as u64 != n {
        return Err(format!(
            "{} values for a {}×{} field",
            q.len(),
            id.ny,
            id.nx
        ));
    }
    if n > u32::MAX as u64 {
        return Err(format!("{n} points do not fit GRIB2's 32-bit point count"));
    }
    let (year, month, day, hour) = reference_time(id.g)
        .ok_or_else(|| format!("group {}'s reference time is past the year 9999", id.g))?;
    let (category, number) = (id.v / 256, id.v % 256);
    if category >= 255 {
        return Err(format!(
            "variable {} needs parameter category {category}; GRIB2 has 0 to 254",
            id.v
        ));
    }
    let bits = 12 + noise_bits;
    let start = out.len();

    // Section 0: indicator. The total length is filled in at the end.
    out.extend_from_slice(b"GRIB");
    out.extend_from_slice(&[0, 0, 0, 2]); // reserved, reserved, discipline 0, edition 2
    let total_at = out.len();
    put(out, 0, 8);

    // Section 1: identification.
    put(out, 21, 4);
    out.push(1);
    put(out, CENTRE_DWD as u64, 2);
    put(out, 255, 2); // sub-centre 255, as DWD writes
    out.push(TABLES_VERSION);
    out.push(0); // local tables: not used
    out.push(1); // significance of the reference time: start of forecast
    put(out, year as u64, 2);
    out.extend_from_slice(&[month, day, hour, 0, 0]);
    out.push(0); // production status: operational
    out.push(1); // type of data: forecast

    // Section 3: grid definition, template 3.0 (regular latitude/longitude).
    let (la1, lo1, la2, lo2, di, dj) = grid_corners(id.ny, id.nx);
    put(out, 72, 4);
    out.push(3);
    out.push(0); // source: code table 3.1
    put(out, n, 4);
    out.extend_from_slice(&[0, 0]); // no optional list of points
    put(out, 0, 2); // template 3.0
    out.push(6); // shape of the earth: sphere of radius 6,371,229 m (as ICON)
    out.push(0);
    put(out, 0, 4);
    out.push(0);
    put(out, 0, 4);
    out.push(0);
    put(out, 0, 4);
    put(out, id.nx as u64, 4); // Ni
    put(out, id.ny as u64, 4); // Nj
    put(out, 0, 4); // basic angle 0: increments in micro-degrees
    put(out, u32::MAX as u64, 4); // subdivisions: missing
    put(out, sign_magnitude(la1 as i64, 4), 4);
    put(out, sign_magnitude(lo1 as i64, 4), 4);
    out.push(0x30); // i and j increments given
    put(out, sign_magnitude(la2 as i64, 4), 4);
    put(out, sign_magnitude(lo2 as i64, 4), 4);
    put(out, di as u64, 4);
    put(out, dj as u64, 4);
    out.push(0x40); // scanning: +i, +j (south to north), rows consecutive

    // Section 4: product definition, template 4.0 (analysis or forecast at a
    // point in time), at 2 m above ground like DWD's T_2M.
    put(out, 34, 4);
    out.push(4);
    put(out, 0, 2); // no coordinate values
    put(out, 0, 2); // template 4.0
    out.push(category as u8);
    out.push(number as u8);
    out.push(2); // generating process: forecast
    out.push(255); // background process: missing
    out.push(255); // forecast process: missing
    put(out, 0, 2); // hours after cut-off
    out.push(0); // minutes after cut-off
    out.push(1); // unit of the forecast time: hour
    put(out, id.s as u64, 4);
    out.push(103); // first surface: specified height above ground
    out.push(0);
    put(out, 2, 4);
    out.push(255); // second surface: missing
    out.push(255);
    put(out, u32::MAX as u64, 4);

    // Section 5: data representation.
    let template = params.packing.template();
    put(out, if template == 42 { 25 } else { 21 }, 4);
    out.push(5);
    put(out, n, 4);
    put(out, template as u64, 2);
    out.extend_from_slice(&REFERENCE_VALUE.to_bits().to_be_bytes());
    put(out, sign_magnitude(-(noise_bits as i64), 2), 2); // E
    put(out, 0, 2); // D
    out.push(bits as u8);
    out.push(0); // original values: floating point
    let aec = crate::ccsds::AecParams::eccodes_default(bits as u8);
    if params.packing == Packing::Ccsds {
        out.push(aec.flags);
        out.push(aec.block_size as u8);
        put(out, aec.rsi as u64, 2);
    }

    // Section 6: no bitmap.
    put(out, 6, 4);
    out.extend_from_slice(&[6, 255]);

    // Section 7: data.
    let sect7_at = out.len();
    put(out, 0, 4);
    out.push(7);
    match params.packing {
        Packing::Simple => pack_simple(out, q, bits),
        Packing::Ccsds => {
            let stream = crate::ccsds::encode(q, &aec).map_err(|e| format!("CCSDS: {e}"))?;
            out.extend_from_slice(&stream);
        }
    }
    let sect7_len = u32::try_from(out.len() - sect7_at)
        .map_err(|_| "the data section exceeds GRIB2's 32-bit section length".to_string())?;
    out[sect7_at..sect7_at + 4].copy_from_slice(&sect7_len.to_be_bytes());

    // Section 8: end.
    out.extend_from_slice(b"7777");
    let total = (out.len() - start) as u64;
    out[total_at..total_at + 8].copy_from_slice(&total.to_be_bytes());
    Ok(())
}

/// Packs `q` MSB first at `bits` bits each, the last octet padded with zeros.
fn pack_simple(out: &mut Vec<u8>, q: &[u32], bits: u32) {
    out.reserve((q.len() * bits as usize).div_ceil(8));
    let (mut acc, mut have) = (0u64, 0u32);
    for &x in q {
        acc = (acc << bits) | x as u64;
        have += bits;
        while have >= 8 {
            have -= 8;
            out.push((acc >> have) as u8);
        }
        acc &= (1u64 << have) - 1;
    }
    if have > 0 {
        out.push((acc << (8 - have)) as u8);
    }
}

/// The keys of one message that the format fixes, as parsed from its sections.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    /// Section 0's discipline.
    pub discipline: u8,
    /// Section 1's originating centre.
    pub centre: u16,
    /// Section 1's reference time (year, month, day, hour, minute, second).
    pub reference_time: (u16, u8, u8, u8, u8, u8),
    /// Section 3's grid definition template.
    pub grid_template: u16,
    /// Points in section 3.
    pub points: u32,
    /// Ni (columns) and Nj (rows) of a template 3.0 grid.
    pub ni_nj: Option<(u32, u32)>,
    /// Scanning mode of a template 3.0 grid.
    pub scanning: Option<u8>,
    /// Section 4's product definition template.
    pub product_template: u16,
    /// Parameter category and number (template 4.0).
    pub parameter: Option<(u8, u8)>,
    /// Unit of the forecast time and the forecast time (template 4.0).
    pub forecast: Option<(u8, u32)>,
    /// Section 5's data representation template.
    pub data_template: u16,
    /// Points section 5 says are encoded.
    pub encoded_points: u32,
    /// R, E, D and bits per value (templates 5.0 and 5.42).
    pub scaling: Option<(f32, i16, i16, u8)>,
    /// CCSDS flags, block size and reference sample interval (template 5.42).
    pub ccsds: Option<(u8, u8, u16)>,
    /// Section 6's bitmap indicator.
    pub bitmap: u8,
    /// The data section's payload: byte range in the message.
    pub data: std::ops::Range<usize>,
}

/// Why a message is not a well-formed GRIB2 edition-2 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, &x| (a << 8) | x as u64)
}

/// Walks the sections of one message that must fill `bytes` exactly, checking every
/// length, and reads the keys of [`Parsed`].
pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let bad = |m: String| Err(ParseError(m));
    if bytes.len() < 16 {
        return bad(format!(
            "truncated: {} bytes, shorter than section 0",
            bytes.len()
        ));
    }
    if &bytes[..4] != b"GRIB" {
        return bad("does not start with `GRIB`: not a GRIB message".into());
    }
    if bytes[7] != 2 {
        return bad(format!("GRIB edition {}, only edition 2 is read", bytes[7]));
    }
    let total = be(&bytes[8..16]);
    if total != bytes.len() as u64 {
        return bad(format!(
            "section 0 gives a total length of {total} bytes, the input has {}{}",
            bytes.len(),
            if total > bytes.len() as u64 {
                " (truncated?)"
            } else {
                ""
            }
        ));
    }
    let mut p = Parsed {
        discipline: bytes[6],
        centre: 0,
        reference_time: (0, 0, 0, 0, 0, 0),
        grid_template: u16::MAX,
        points: 0,
        ni_nj: None,
        scanning: None,
        product_template: u16::MAX,
        parameter: None,
        forecast: None,
        data_template: u16::MAX,
        encoded_points: 0,
        scaling: None,
        ccsds: None,
        bitmap: 255,
        data: 0..0,
    };
    let mut seen = [false; 9];
    let mut at = 16usize;
    loop {
        if bytes.len() - at == 4 && &bytes[at..] == b"7777" {
            break;
        }
        if bytes.len() - at < 5 {
            return bad(format!(
                "no section 8 (`7777`) at the end (octet {})",
                at + 1
            ));
        }
        let len = be(&bytes[at..at + 4]) as usize;
        let num = bytes[at + 4];
        if len < 5 || len > bytes.len() - at - 4 {
            return bad(format!(
                "section {num} at octet {} has a bad length {len} ({} bytes remain before `7777`)",
                at + 1,
                (bytes.len() - at).saturating_sub(4)
            ));
        }
        let s = &bytes[at..at + len];
        let need = |min: usize| -> Result<(), ParseError> {
            if len < min {
                Err(ParseError(format!(
                    "section {num} is {len} bytes, its template needs {min}"
                )))
            } else {
                Ok(())
            }
        };
        match num {
            1 => {
                need(21)?;
                p.centre = be(&s[5..7]) as u16;
                p.reference_time = (be(&s[12..14]) as u16, s[14], s[15], s[16], s[17], s[18]);
            }
            2 => {}
            3 => {
                need(14)?;
                p.points = be(&s[6..10]) as u32;
                p.grid_template = be(&s[12..14]) as u16;
                if p.grid_template == 0 {
                    need(72)?;
                    p.ni_nj = Some((be(&s[30..34]) as u32, be(&s[34..38]) as u32));
                    p.scanning = Some(s[71]);
                }
            }
            4 => {
                need(9)?;
                p.product_template = be(&s[7..9]) as u16;
                if p.product_template == 0 {
                    need(34)?;
                    p.parameter = Some((s[9], s[10]));
                    p.forecast = Some((s[17], be(&s[18..22]) as u32));
                }
            }
            5 => {
                need(11)?;
                p.encoded_points = be(&s[5..9]) as u32;
                p.data_template = be(&s[9..11]) as u16;
                if matches!(p.data_template, 0 | 42) {
                    need(if p.data_template == 42 { 25 } else { 21 })?;
                    let r = f32::from_bits(be(&s[11..15]) as u32);
                    let e = from_sign_magnitude(be(&s[15..17]), 2) as i16;
                    let d = from_sign_magnitude(be(&s[17..19]), 2) as i16;
                    p.scaling = Some((r, e, d, s[19]));
                    if p.data_template == 42 {
                        p.ccsds = Some((s[21], s[22], be(&s[23..25]) as u16));
                    }
                }
            }
            6 => {
                need(6)?;
                p.bitmap = s[5];
            }
            7 => p.data = at + 5..at + len,
            _ => {
                return bad(format!(
                    "unexpected section number {num} at octet {} (sections 1 to 7 may \
                     follow section 0; `7777` ends the message)",
                    at + 1
                ))
            }
        }
        if num <= 8 && seen[num as usize] && num != 2 {
            return bad(format!(
                "section {num} appears twice: one field per message is read"
            ));
        }
        seen[num as usize] = true;
        at += len;
    }
    for (num, what) in [
        (1, "identification"),
        (3, "grid definition"),
        (4, "product definition"),
        (5, "data representation"),
        (6, "bitmap"),
        (7, "data"),
    ] {
        if !seen[num] {
            return bad(format!("no section {num} ({what})"));
        }
    }
    Ok(p)
}

/// Checks that `bytes` is the message of field `id` with `packing` and
/// `noise_bits`, as the format writes it; the error says what differs. Returns the
/// parse, whose `data` range the decoders read.
pub fn check(
    bytes: &[u8],
    id: FieldId,
    packing: Packing,
    noise_bits: u32,
) -> Result<Parsed, ParseError> {
    let p = parse(bytes)?;
    let differs = |what: &str, found: String, expected: String| {
        Err(ParseError(format!(
            "{what} is {found}, expected {expected}"
        )))
    };
    if p.discipline != 0 {
        return differs(
            "section 0's discipline",
            p.discipline.to_string(),
            "0".into(),
        );
    }
    if p.centre != CENTRE_DWD {
        return differs(
            "section 1's centre",
            p.centre.to_string(),
            "78 (DWD)".into(),
        );
    }
    let (y, mo, d, h) = reference_time(id.g).unwrap_or_default();
    let t = p.reference_time;
    if (t.0, t.1, t.2, t.3, t.4, t.5) != (y, mo, d, h, 0, 0) {
        return differs(
            "section 1's reference time",
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.0, t.1, t.2, t.3, t.4, t.5
            ),
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:00:00 (group {})", id.g),
        );
    }
    if p.grid_template != 0 {
        return differs(
            "the grid definition template",
            format!("3.{}", p.grid_template),
            "3.0 (regular latitude/longitude)".into(),
        );
    }
    if p.ni_nj != Some((id.nx, id.ny)) || p.points as u64 != id.nx as u64 * id.ny as u64 {
        let (ni, nj) = p.ni_nj.unwrap_or_default();
        return differs(
            "the grid (Nj × Ni, points)",
            format!("{nj} × {ni}, {} points", p.points),
            format!("{} × {}", id.ny, id.nx),
        );
    }
    if p.scanning != Some(0x40) {
        return differs(
            "the scanning mode",
            format!("{:#04x}", p.scanning.unwrap_or(0)),
            "0x40 (+i, +j, rows consecutive)".into(),
        );
    }
    if p.product_template != 0 {
        return differs(
            "the product definition template",
            format!("4.{}", p.product_template),
            "4.0".into(),
        );
    }
    let param = ((id.v / 256) as u8, (id.v % 256) as u8);
    if p.parameter != Some(param) {
        let (c, n) = p.parameter.unwrap_or_default();
        return differs(
            "the parameter (category, number)",
            format!("({c}, {n})"),
            format!("({}, {}) for variable {}", param.0, param.1, id.v),
        );
    }
    if p.forecast != Some((1, id.s)) {
        let (u, f) = p.forecast.unwrap_or_default();
        return differs(
            "the forecast time (unit, value)",
            format!("(unit {u}, {f})"),
            format!("(unit 1 = hour, {}) for step {}", id.s, id.s),
        );
    }
    if p.data_template != packing.template() {
        return differs(
            "the data representation template",
            format!("5.{}", p.data_template),
            format!("5.{} ({} packing)", packing.template(), packing.name()),
        );
    }
    if p.encoded_points != p.points {
        return differs(
            "section 5's number of encoded values",
            p.encoded_points.to_string(),
            format!("{} (no bitmap)", p.points),
        );
    }
    let expected = (
        REFERENCE_VALUE,
        -(noise_bits as i16),
        0,
        12 + noise_bits as u8,
    );
    if p.scaling != Some(expected) {
        let (r, e, dd, b) = p.scaling.unwrap_or((f32::NAN, 0, 0, 0));
        return differs(
            "the packing (R, E, D, bits)",
            format!("({r}, {e}, {dd}, {b})"),
            format!(
                "({}, {}, {}, {})",
                expected.0, expected.1, expected.2, expected.3
            ),
        );
    }
    if packing == Packing::Ccsds {
        let d = crate::ccsds::AecParams::eccodes_default(expected.3);
        let want = (d.flags, d.block_size as u8, d.rsi as u16);
        if p.ccsds != Some(want) {
            let (f, b, r) = p.ccsds.unwrap_or_default();
            return differs(
                "template 5.42's CCSDS flags, block size and reference sample interval",
                format!("({f}, {b}, {r})"),
                format!("({}, {}, {}) as ecCodes writes", want.0, want.1, want.2),
            );
        }
    }
    if p.bitmap != 255 {
        return differs(
            "the bitmap indicator",
            p.bitmap.to_string(),
            "255 (none)".into(),
        );
    }
    if packing == Packing::Simple {
        let need = (p.points as u64 * expected.3 as u64).div_ceil(8);
        if p.data.len() as u64 != need {
            return differs(
                "the data section's payload",
                format!("{} bytes", p.data.len()),
                format!("{need} bytes ({} values of {} bits)", p.points, expected.3),
            );
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grib2::Grib2Params;

    #[test]
    fn reference_times_step_six_hours_from_the_epoch() {
        assert_eq!(reference_time(0), Some((2026, 1, 1, 0)));
        assert_eq!(reference_time(3), Some((2026, 1, 1, 18)));
        assert_eq!(reference_time(4), Some((2026, 1, 2, 0)));
        // 2026 is not a leap year, 2028 is: day 59 of 2028 is February 29.
        assert_eq!(reference_time(4 * (365 + 365 + 59)), Some((2028, 2, 29, 0)));
        assert_eq!(reference_time(4 * (365 + 365 + 366)), Some((2029, 1, 1, 0)));
        assert_eq!(reference_time(u32::MAX), None);
        for z in [-800_000i64, -1, 0, 1, 20_000, 3_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn sign_magnitude_is_not_twos_complement() {
        assert_eq!(sign_magnitude(-4, 2), 0x8004);
        assert_eq!(from_sign_magnitude(0x8004, 2), -4);
        assert_eq!(sign_magnitude(29_500_000, 4), 29_500_000);
        assert_eq!(
            from_sign_magnitude(sign_magnitude(-23_500_000, 4), 4),
            -23_500_000
        );
    }

    #[test]
    fn icon_eu_grid_has_its_extent() {
        let (la1, lo1, la2, lo2, di, dj) = grid_corners(657, 1377);
        assert_eq!(
            (la1, lo1, la2, lo2),
            (29_500_000, -23_500_000, 70_500_000, 62_500_000)
        );
        assert_eq!((di, dj), (62_500, 62_500));
        // A field too large for 0.0625° still fits the globe.
        let (la1, _, la2, lo2, _, _) = grid_corners(10_000, 20_000);
        assert!(la1 >= -90_000_000 && la2 <= 90_000_000 && lo2 < 360_000_000);
    }

    #[test]
    fn simple_packing_is_msb_first() {
        let mut out = Vec::new();
        pack_simple(&mut out, &[0xABC, 0x123, 0xFFF], 12);
        assert_eq!(out, [0xAB, 0xC1, 0x23, 0xFF, 0xF0]);
    }

    fn message(packing: Packing, id: FieldId, b: u32) -> Vec<u8> {
        let q: Vec<u32> = (0..id.ny * id.nx)
            .map(|i| (i * 37) % (1 << (12 + b)))
            .collect();
        let mut out = Vec::new();
        let p = Grib2Params {
            packing,
            wrap: super::super::Wrap::None,
        };
        encode_message(&mut out, &p, id, b, &q).unwrap();
        out
    }

    const ID: FieldId = FieldId {
        g: 5,
        v: 300,
        s: 7,
        ny: 3,
        nx: 4,
    };

    #[test]
    fn written_messages_parse_back_to_their_keys() {
        for packing in [Packing::Simple, Packing::Ccsds] {
            let m = message(packing, ID, 4);
            let p = check(&m, ID, packing, 4).unwrap();
            assert_eq!(p.centre, 78);
            assert_eq!(p.reference_time, (2026, 1, 2, 6, 0, 0));
            assert_eq!(p.parameter, Some((1, 44)));
            assert_eq!(p.forecast, Some((1, 7)));
            assert_eq!(p.scaling, Some((200.0, -4, 0, 16)));
            let ccsds = (packing == Packing::Ccsds).then_some((14, 32, 128));
            assert_eq!(p.ccsds, ccsds, "ecCodes' defaults");
            assert!(m.len() <= HEADERS_LEN + 24 + 64);
        }
    }

    #[test]
    fn a_different_field_or_a_damaged_message_is_named() {
        let m = message(Packing::Simple, ID, 4);
        let err = |bytes: &[u8], id: FieldId| check(bytes, id, Packing::Simple, 4).unwrap_err().0;
        assert!(err(&m, FieldId { s: 8, ..ID }).contains("forecast time"));
        assert!(err(&m, FieldId { v: 301, ..ID }).contains("parameter"));
        assert!(err(&m, FieldId { g: 6, ..ID }).contains("reference time"));
        assert!(err(&m, FieldId { nx: 5, ..ID }).contains("grid"));
        assert!(check(&m, ID, Packing::Ccsds, 4)
            .unwrap_err()
            .0
            .contains("5.0"));
        assert!(check(&m, ID, Packing::Simple, 3)
            .unwrap_err()
            .0
            .contains("packing"));
        // Truncated anywhere: the total length disagrees.
        for cut in [0, 3, 15, 16, 40, m.len() - 5, m.len() - 1] {
            let e = err(&m[..cut], ID);
            assert!(
                e.contains("truncated") || e.contains("total length"),
                "{cut}: {e}"
            );
        }
        // Not GRIB at all.
        assert!(err(b"NWPF0000000000000000", ID).contains("not a GRIB"));
        // A section length pointing past the end.
        let mut bad = m.clone();
        bad[16 + 3] = 200;
        assert!(err(&bad, ID).contains("bad length"), "{}", err(&bad, ID));
        // Never a panic, whatever byte changes.
        for i in 0..m.len() {
            let mut b = m.clone();
            b[i] ^= 0x10;
            let _ = check(&b, ID, Packing::Simple, 4);
        }
    }

    #[test]
    fn every_key_the_format_fixes_is_checked_octet_by_octet() {
        let m = message(Packing::Ccsds, ID, 4);
        // Offsets (from the message's start) of octets check() must refuse when
        // changed: section 0, 1, 3, 4, 5 and 6 keys, and section lengths.
        let (s1, s3) = (16, 16 + 21);
        let (s4, s5) = (s3 + 72, s3 + 72 + 34);
        let s6 = s5 + 25;
        let octet = |section: usize, n: usize| section + n - 1;
        let must_refuse = [
            ("discipline", 6),
            ("edition", 7),
            ("total length", 15),
            ("section 1 length", octet(s1, 4)),
            ("centre", octet(s1, 7)),
            ("year", octet(s1, 14)),
            ("hour", octet(s1, 18)),
            ("points", octet(s3, 10)),
            ("grid template", octet(s3, 14)),
            ("Ni", octet(s3, 34)),
            ("Nj", octet(s3, 38)),
            ("scanning mode", octet(s3, 72)),
            ("product template", octet(s4, 9)),
            ("category", octet(s4, 10)),
            ("number", octet(s4, 11)),
            ("time unit", octet(s4, 18)),
            ("forecast time", octet(s4, 22)),
            ("encoded points", octet(s5, 9)),
            ("data template", octet(s5, 11)),
            ("R", octet(s5, 12)),
            ("E", octet(s5, 17)),
            ("D", octet(s5, 19)),
            ("bits", octet(s5, 20)),
            ("ccsds flags", octet(s5, 22)),
            ("block size", octet(s5, 23)),
            ("rsi", octet(s5, 25)),
            ("bitmap", octet(s6, 6)),
            ("section 7 length", octet(s6 + 6, 4)),
            ("7777", m.len() - 1),
        ];
        for (what, at) in must_refuse {
            for bit in [0x01, 0x80] {
                let mut b = m.clone();
                b[at] ^= bit;
                assert!(
                    check(&b, ID, Packing::Ccsds, 4).is_err(),
                    "{what} (offset {at}) changed by {bit:#x} was accepted"
                );
            }
        }
    }

    #[test]
    fn the_length_bound_holds_for_the_worst_data() {
        // Alternating extremes defeat every CCSDS option; small fields end in a
        // partial block, which the encoder pads to a whole one.
        for b in [0u32, 4, 8] {
            let bits = 12 + b;
            for (ny, nx) in [(1, 1), (1, 3), (3, 11), (7, 33), (40, 50)] {
                let n = (ny * nx) as usize;
                for pattern in 0..3u32 {
                    let q: Vec<u32> = (0..n as u32)
                        .map(|i| match pattern {
                            0 => {
                                if i % 2 == 0 {
                                    0
                                } else {
                                    (1 << bits) - 1
                                }
                            }
                            1 => {
                                if i % 3 == 1 {
                                    (1 << bits) - 1
                                } else {
                                    0
                                }
                            }
                            _ => (i.wrapping_mul(2_654_435_761) >> 7) & ((1 << bits) - 1),
                        })
                        .collect();
                    let id = FieldId {
                        g: 0,
                        v: 0,
                        s: 0,
                        ny,
                        nx,
                    };
                    for packing in [Packing::Ccsds, Packing::Simple] {
                        let p = Grib2Params {
                            packing,
                            wrap: super::super::Wrap::None,
                        };
                        let mut out = Vec::new();
                        encode_message(&mut out, &p, id, b, &q).unwrap();
                        let bound = p.max_message_len(ny, nx, bits);
                        assert!(
                            out.len() as u64 <= bound,
                            "{packing:?} b={b} {ny}x{nx} pattern {pattern}: {} > {bound}",
                            out.len()
                        );
                    }
                }
            }
        }
    }
}
