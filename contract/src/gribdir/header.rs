//! The keys of one GRIB2 message read from its first sections (0 to 5) only, so
//! that a scan needs a prefix of each message, not its data section; the same keys
//! and grid checked on a whole message before it is decoded ([`check_message`]);
//! and the names of groups, variables and steps in the output.
//!
//! Octet numbers in the docs are WMO's (FM 92 GRIB edition 2), 1-based within
//! their section; integers are big-endian, signed ones sign-and-magnitude (top bit
//! = sign), as in [`crate::grib2::message`].

use std::ops::Range;

use super::{Grid, MessageKeys, VariableKey};
use crate::grib2::message::{parse, Parsed};

/// What [`read_header`] reads from a message's first sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Section 0's total length of the message, in bytes.
    pub total_len: u64,
    /// Reference time, variable and step.
    pub keys: MessageKeys,
    /// Section 3 (grid definition) as it is, octet for octet.
    pub section3: Vec<u8>,
    /// Section 3's number of data points.
    pub points: u32,
    /// Bytes from the message's start to the end of section 5 (where section 6
    /// starts): a scan that can read more checks sections 6, 7 and `7777` from here.
    pub sections_end: usize,
}

/// Why [`read_header`] could not read a message's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The prefix is too short: it must be at least this many bytes (from the
    /// message's start) for the next step.
    NeedMore(usize),
    /// Not a message whose keys this module reads, in words.
    Bad(String),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::NeedMore(n) => write!(f, "the message's sections need {n} bytes"),
            HeaderError::Bad(m) => f.write_str(m),
        }
    }
}

/// Where a message's sections 1 to 5 are, as [`read_layout`] finds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Section 0's total length.
    pub total_len: u64,
    /// Section 0's discipline (code table 0.0).
    pub discipline: u8,
    /// Byte ranges of sections 1, 3, 4 and 5 in the message (section 2, local
    /// use, is skipped without being read).
    pub section1: Range<usize>,
    /// Section 3 (grid definition).
    pub section3: Range<usize>,
    /// Section 4 (product definition).
    pub section4: Range<usize>,
    /// Section 5 (data representation); its end is where section 6 starts.
    pub section5: Range<usize>,
}

/// Big-endian unsigned integer.
fn be(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, &x| (a << 8) | x as u64)
}

/// A sign-and-magnitude integer of `bytes` octets.
fn signed(b: &[u8]) -> i64 {
    let raw = be(b);
    let sign = 1u64 << (b.len() * 8 - 1);
    if raw & sign != 0 {
        -((raw & !sign) as i64)
    } else {
        raw as i64
    }
}

fn bad<T>(m: impl Into<String>) -> Result<T, HeaderError> {
    Err(HeaderError::Bad(m.into()))
}

/// Walks section 0 and sections 1 to 5 of the message `prefix` starts with:
/// `GRIB`, edition 2, the total length; then sections 1, optionally 2, 3, 4 and 5
/// in this order, each length checked against the total length. Reads nothing of
/// sections 4 and 5 but their lengths, so it also serves messages whose product
/// template [`read_header`] does not read (a pattern scan only needs the grid).
pub fn read_layout(prefix: &[u8]) -> Result<Layout, HeaderError> {
    let head = &prefix[..prefix.len().min(4)];
    if !b"GRIB".starts_with(head) {
        let hint = if prefix.starts_with(b"BZh") {
            " (it is bzip2 data: a `.bz2` name would have it unwrapped)"
        } else {
            ""
        };
        return bad(format!("not GRIB2: does not start with `GRIB`{hint}"));
    }
    if prefix.len() < 16 {
        return Err(HeaderError::NeedMore(16));
    }
    if prefix[7] != 2 {
        return bad(format!(
            "GRIB edition {}: not supported, only edition 2 is read",
            prefix[7]
        ));
    }
    let total = be(&prefix[8..16]);
    // Section 0, sections 1, 3, 4 and 5 of at least 5 bytes, `7777`.
    if total < 16 + 4 * 5 + 4 {
        return bad(format!(
            "section 0 gives a total length of {total} bytes, too short for a message"
        ));
    }
    let end = total - 4; // where `7777` starts
    let mut ranges: [Option<Range<usize>>; 6] = Default::default();
    let mut last = 0u8;
    let mut at = 16usize;
    loop {
        let expected = match last {
            0 => "1",
            1 => "2 or 3",
            2 => "3",
            3 => "4",
            _ => "5",
        };
        if at as u64 == end {
            return bad(format!(
                "the message ends (`7777` at octet {}) before section {expected}",
                at + 1
            ));
        }
        if at as u64 + 5 > end {
            return bad(format!(
                "a section at octet {} runs past the message's end (total length {total})",
                at + 1
            ));
        }
        if prefix.len() < at + 5 {
            return Err(HeaderError::NeedMore(at + 5));
        }
        let len = be(&prefix[at..at + 4]);
        let num = prefix[at + 4];
        if len < 5 || at as u64 + len > end {
            return bad(format!(
                "section {num} at octet {} has a bad length {len} (the message's total \
                 length is {total})",
                at + 1
            ));
        }
        let len = len as usize;
        let in_order = match last {
            0 => num == 1,
            1 => num == 2 || num == 3,
            2 => num == 3,
            _ => num == last + 1,
        };
        if !in_order {
            if (num == 3 || num == 4) && ranges[num as usize].is_some() {
                return bad(format!(
                    "more than one field per message: not supported (section {num} repeats \
                     before section 7)"
                ));
            }
            return bad(format!(
                "section {num} at octet {} where section {expected} was expected (sections \
                 1, 2 (optional), 3, 4 and 5 come in this order)",
                at + 1
            ));
        }
        let min = match num {
            1 => 21,
            3 => 14,
            4 => 9,
            5 => 11,
            _ => 5,
        };
        if len < min {
            return bad(format!(
                "section {num} is {len} bytes, shorter than its {min} fixed octets"
            ));
        }
        // Section 2 (local use) is skipped, not read: its bytes need not be there.
        if num != 2 && prefix.len() < at + len {
            return Err(HeaderError::NeedMore(at + len));
        }
        ranges[num as usize] = Some(at..at + len);
        last = num;
        at += len;
        if num == 5 {
            break;
        }
    }
    let take = |i: usize| ranges[i].clone().unwrap_or(0..0);
    Ok(Layout {
        total_len: total,
        discipline: prefix[6],
        section1: take(1),
        section3: take(3),
        section4: take(4),
        section5: take(5),
    })
}

/// Seconds of one unit of time of code table 4.4, or why it is not read.
fn unit_seconds(unit: u8) -> Result<i64, String> {
    Ok(match unit {
        0 => 60,
        1 => 3600,
        2 => 86_400,
        10 => 3 * 3600,
        11 => 6 * 3600,
        12 => 12 * 3600,
        13 => 1,
        _ => {
            let name = match unit {
                3 => "month",
                4 => "year",
                5 => "decade",
                6 => "normal (30 years)",
                7 => "century",
                255 => "missing",
                _ => "reserved",
            };
            return Err(format!(
                "unit of time {unit} ({name}, code table 4.4) is not read: steps are read \
                 in seconds, minutes, hours (1, 3, 6, 12) and days"
            ));
        }
    })
}

/// `value` units of `unit` in seconds.
fn to_seconds(value: i64, unit: u8, what: &str) -> Result<i64, String> {
    value
        .checked_mul(unit_seconds(unit).map_err(|e| format!("{what}: {e}"))?)
        .ok_or_else(|| format!("{what} {value} (unit {unit}) overflows"))
}

/// Product definition templates whose keys [`read_header`] reads: those laid out as
/// template 4.0 in octets 10 to 34, with the octet of the statistical processing
/// type for the ones over a time interval.
const PRODUCT_TEMPLATES: &str = "4.0, 4.1, 4.2, 4.8 and 4.11";

/// The keys of a message from its sections as [`read_layout`] found them.
fn keys_of(prefix: &[u8], layout: &Layout) -> Result<MessageKeys, String> {
    let s1 = &prefix[layout.section1.clone()];
    let reference_time = (
        be(&s1[12..14]) as u16,
        s1[14],
        s1[15],
        s1[16],
        s1[17],
        s1[18],
    );
    let s4 = &prefix[layout.section4.clone()];
    let template = be(&s4[7..9]) as u16;
    // Octet of the type of statistical processing, for templates over a time
    // interval: 4.8 (octet 47), 4.11 (4.8 after 3 octets of ensemble: 50).
    let stat_at = match template {
        0..=2 => None,
        8 => Some(47),
        11 => Some(50),
        t => {
            return Err(format!(
                "product definition template 4.{t} is not read (keys are read from \
                 templates {PRODUCT_TEMPLATES})"
            ))
        }
    };
    // 4.0's 34 octets (4.1: and the member, octet 36; 4.2: the derived forecast,
    // octet 35); over a time interval, up to the first time range's length.
    let need = match template {
        1 => 37,
        2 => 35,
        _ => stat_at.map_or(34, |o| o + 6),
    };
    if s4.len() < need {
        return Err(format!(
            "section 4 (template 4.{template}) is {} bytes, the template needs {need}",
            s4.len()
        ));
    }
    let unit = s4[17];
    let forecast = signed(&s4[18..22]);
    let mut step = to_seconds(forecast, unit, "the forecast time")?;
    let level_type = s4[22];
    let (scale, value) = (s4[23], &s4[24..28]);
    let level = if level_type == 255 || scale == 0xFF || be(value) == 0xFFFF_FFFF {
        None
    } else {
        Some(normalised_level(signed(&[scale]) as i8, signed(value)))
    };
    let statistic = match stat_at {
        None => None,
        Some(o) => {
            // Octet o - 5: number of time ranges; o + 2: unit; o + 3 to o + 6: length.
            let ranges = s4[o - 6];
            if ranges == 0 {
                return Err(format!(
                    "template 4.{template} gives no time range (octet {})",
                    o - 5
                ));
            }
            let length = be(&s4[o + 2..o + 6]) as i64;
            let length = to_seconds(length, s4[o + 1], "the length of the time range")?;
            step = step
                .checked_add(length)
                .ok_or_else(|| "the end of the time range overflows".to_string())?;
            Some(s4[o - 1])
        }
    };
    Ok(MessageKeys {
        reference_time,
        variable: VariableKey {
            discipline: layout.discipline,
            category: s4[9],
            number: s4[10],
            product_template: template,
            level_type,
            level,
            statistic,
            member: matches!(template, 1 | 11).then(|| s4[35]),
            derived: (template == 2).then(|| s4[34]),
        },
        step_seconds: step,
    })
}

/// A level's (scale factor, scaled value) with the value's trailing decimal zeros
/// moved into the scale factor, so that one level has one key however it is
/// written: 2 m as (0, 2) or (1, 20) is (0, 2); 0 is (0, 0).
fn normalised_level(mut scale: i8, mut value: i64) -> (i8, i64) {
    if value == 0 {
        return (0, 0);
    }
    while value % 10 == 0 && scale > i8::MIN {
        value /= 10;
        scale -= 1;
    }
    (scale, value)
}

/// Reads a GRIB2 edition-2 message's keys and grid from a prefix of it (the data
/// section need not be there): section 0, then sections 1, 2 (skipped), 3, 4 and 5
/// in this order. One field per message: a repeated section 3 or 4 is refused.
///
/// - Reference time: section 1, octets 13 to 19.
/// - Variable: discipline (section 0); section 4's template (octets 8-9),
///   parameter category and number (10, 11), first fixed surface type, scale
///   factor and scaled value (23, 24, 25-28; `level: None` when missing), and for
///   templates 4.8 and 4.11 the type of statistical processing (octet 47 of 4.8).
///   The level is normalised (see `VariableKey::level`: trailing zeros of the
///   value go into the scale factor).
/// - Step: the forecast time (octet 18's unit, octets 19-22) in seconds; for
///   templates 4.8 and 4.11 the end of the time range: plus the first time range's
///   length (4.8: unit at octet 49, length at 50-53).
///
/// Templates read: 4.0, 4.1, 4.2, 4.8, 4.11; others are refused (`Bad`).
/// `NeedMore(n)`: call again with a prefix of at least `n` bytes.
pub fn read_header(prefix: &[u8]) -> Result<Header, HeaderError> {
    let layout = read_layout(prefix)?;
    let keys = keys_of(prefix, &layout).map_err(HeaderError::Bad)?;
    let section3 = prefix[layout.section3.clone()].to_vec();
    Ok(Header {
        total_len: layout.total_len,
        keys,
        points: be(&section3[6..10]) as u32,
        section3,
        sections_end: layout.section5.end,
    })
}

/// Grid definition templates whose Ni and Nj are octets 31-34 and 35-38: latitude/
/// longitude (3.0 to 3.3), Mercator (3.10), polar stereographic (3.20), Lambert
/// conformal (3.30), Albers (3.31), Gaussian (3.40 to 3.43).
const NI_NJ_TEMPLATES: [u16; 12] = [0, 1, 2, 3, 10, 20, 30, 31, 40, 41, 42, 43];

/// The grid of a section 3: its template (octets 13-14) and points (octets 7-10);
/// `ny` = Nj and `nx` = Ni for the templates with Ni and Nj at octets 31-38 when
/// Ni · Nj is the point count (neither missing); otherwise (3.101 unstructured, a
/// quasi-regular grid, any other template) one row of every point.
pub fn grid_of(section3: &[u8]) -> Result<Grid, String> {
    if section3.len() < 14 || section3[4] != 3 {
        return Err(format!(
            "not a section 3 (grid definition): {} bytes{}",
            section3.len(),
            match section3.get(4) {
                Some(n) => format!(", section number {n}"),
                None => String::new(),
            }
        ));
    }
    let points = be(&section3[6..10]) as u32;
    let template = be(&section3[12..14]) as u16;
    let mut ny_nx = (1, points);
    if NI_NJ_TEMPLATES.contains(&template) && section3.len() >= 38 {
        let ni = be(&section3[30..34]);
        let nj = be(&section3[34..38]);
        // Rows of Ni points one after the other only when the scanning mode says
        // so: adjacent points along j (flag 0x20) or rows in alternate directions
        // (0x10) would scramble a Nj × Ni array, so those stay one dimension.
        let row_major = scanning_mode_octet(template)
            .and_then(|at| section3.get(at - 1))
            .is_some_and(|mode| mode & 0x30 == 0);
        if row_major && ni != 0xFFFF_FFFF && nj != 0xFFFF_FFFF && ni * nj == points as u64 {
            ny_nx = (nj as u32, ni as u32);
        }
    }
    if points == 0 {
        return Err(format!("grid template 3.{template} with 0 points"));
    }
    Ok(Grid {
        template,
        ny: ny_nx.0,
        nx: ny_nx.1,
        section3: hex(section3),
    })
}

/// The octet (1-based, in section 3) of the scanning mode of the templates whose
/// Ni and Nj [`grid_of`] reads.
fn scanning_mode_octet(template: u16) -> Option<usize> {
    match template {
        0..=3 | 40..=43 => Some(72),
        10 => Some(60),
        20 | 30 | 31 => Some(65),
        _ => None,
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A grid in words: `template 3.0, 35 points (5 × 7)`.
pub fn describe_grid(grid: &Grid) -> String {
    let shape = if grid.ny > 1 {
        format!(" ({} × {})", grid.ny, grid.nx)
    } else {
        String::new()
    };
    format!(
        "template 3.{}, {} points{shape}",
        grid.template,
        grid.ny as u64 * grid.nx as u64
    )
}

/// Checks a whole message before it is decoded: strictly well-formed
/// ([`crate::grib2::message::parse`]: every length, `7777` at the end, one field),
/// its section 3 equal to `grid.section3` octet for octet, and, if `keys` is given,
/// its keys ([`read_header`]) equal to them. The error says what differs.
pub fn check_message(
    message: &[u8],
    grid: &Grid,
    keys: Option<&MessageKeys>,
) -> Result<Parsed, String> {
    let parsed = parse(message).map_err(|e| e.0)?;
    let layout = read_layout(message).map_err(|e| e.to_string())?;
    let s3 = &message[layout.section3.clone()];
    if hex(s3) != grid.section3 {
        let found = grid_of(s3)?;
        let mut what = format!(
            "grid differs from the dataset's: {} vs {}",
            describe_grid(&found),
            describe_grid(grid)
        );
        if (found.template, found.ny, found.nx) == (grid.template, grid.ny, grid.nx) {
            let at = first_difference(&found.section3, &grid.section3);
            what.push_str(&format!(" (section 3 differs from octet {})", at / 2 + 1));
        }
        return Err(what);
    }
    if let Some(want) = keys {
        let got = keys_of(message, &layout)?;
        if got.reference_time != want.reference_time {
            return Err(format!(
                "reference time is {}, the dataset's is {}",
                time_name(got.reference_time),
                time_name(want.reference_time)
            ));
        }
        if got.variable != want.variable {
            return Err(format!(
                "variable is {} ({:?}), the dataset's is {} ({:?})",
                variable_name(&got.variable),
                got.variable,
                variable_name(&want.variable),
                want.variable
            ));
        }
        if got.step_seconds != want.step_seconds {
            return Err(format!(
                "step is {}, the dataset's is {}",
                step_name(got.step_seconds),
                step_name(want.step_seconds)
            ));
        }
    }
    Ok(parsed)
}

/// Index of the first character where `a` and `b` differ.
fn first_difference(a: &str, b: &str) -> usize {
    a.bytes()
        .zip(b.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// A reference time as ISO 8601 in UTC: `2026-11-26T00:00:00Z`.
pub fn time_name((y, mo, d, h, mi, s): (u16, u8, u8, u8, u8, u8)) -> String {
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A variable's name: `discipline.category.number@surface`, where surface is the
/// first fixed surface's type and value, `103=2` (2 m above ground), `100=50000`,
/// `106=0.1`, or the type alone when its value is missing (`@1`: the ground);
/// the value is scaled value · 10^-scale factor written in full, without
/// exponent or trailing zeros. Then `/t{N}` when the product template is neither
/// 4.0 nor 4.8, and `/stat{N}` for the statistical processing of 4.8 and 4.11
/// (code table 4.10: `/stat1` accumulation, `/stat2` maximum, …), `/m{N}` for the
/// ensemble member (perturbation number) of 4.1 and 4.11, `/d{N}` for the derived
/// forecast of 4.2 (code table 4.7). Examples: `0.0.0@103=2` (T_2M),
/// `0.1.52@1/stat1` (TOT_PREC), `0.0.0@103=2/t1/m3` (member 3 of an ensemble).
/// Two keys have the same name only if they are equal.
pub fn variable_name(v: &VariableKey) -> String {
    let mut s = format!(
        "{}.{}.{}@{}",
        v.discipline, v.category, v.number, v.level_type
    );
    if let Some((scale, value)) = v.level {
        s.push('=');
        s.push_str(&decimal(value, scale));
    }
    if v.product_template != 0 && v.product_template != 8 {
        s.push_str(&format!("/t{}", v.product_template));
    }
    if let Some(stat) = v.statistic {
        s.push_str(&format!("/stat{stat}"));
    }
    if let Some(m) = v.member {
        s.push_str(&format!("/m{m}"));
    }
    if let Some(d) = v.derived {
        s.push_str(&format!("/d{d}"));
    }
    s
}

/// `value · 10^-scale` in decimal, exactly: no exponent, no trailing zeros.
fn decimal(value: i64, scale: i8) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let digits = value.unsigned_abs().to_string();
    if value == 0 {
        return "0".into();
    }
    if scale <= 0 {
        return format!(
            "{sign}{digits}{}",
            "0".repeat(scale.unsigned_abs() as usize)
        );
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// A step as an ISO 8601 duration in one unit: whole hours `PT3H` (`PT48H`, not
/// days), else whole minutes `PT90M`, else seconds `PT45S`; `PT0S` for 0, and a
/// leading `-` for a negative step.
pub fn step_name(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    if s == 0 {
        "PT0S".into()
    } else if s % 3600 == 0 {
        format!("{sign}PT{}H", s / 3600)
    } else if s % 60 == 0 {
        format!("{sign}PT{}M", s / 60)
    } else {
        format!("{sign}PT{s}S")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::grib2::message::{encode_message, FieldId};
    use crate::grib2::{Grib2Params, Packing, Wrap};

    /// A message of field `id` as the nwp-grib2 generator writes it.
    pub(crate) fn message(id: FieldId, packing: Packing) -> Vec<u8> {
        let q: Vec<u32> = (0..id.ny * id.nx).map(|i| (i * 37) % 4096).collect();
        let mut out = Vec::new();
        let p = Grib2Params {
            packing,
            wrap: Wrap::None,
        };
        encode_message(&mut out, &p, id, 0, &q).unwrap();
        out
    }

    const ID: FieldId = FieldId {
        g: 5,
        v: 300,
        s: 7,
        ny: 5,
        nx: 7,
    };

    /// Offsets of sections 3 and 4 in a message `encode_message` wrote.
    const S3: usize = 16 + 21;
    const S4: usize = S3 + 72;

    #[test]
    fn keys_of_a_written_message() {
        let m = message(ID, Packing::Ccsds);
        let h = read_header(&m).unwrap();
        assert_eq!(h.total_len, m.len() as u64);
        assert_eq!(h.points, 35);
        assert_eq!(h.section3, &m[S3..S3 + 72]);
        assert_eq!(h.sections_end, S4 + 34 + 25);
        assert_eq!(h.keys.reference_time, (2026, 1, 2, 6, 0, 0));
        assert_eq!(h.keys.step_seconds, 7 * 3600);
        let v = h.keys.variable;
        assert_eq!(
            (v.discipline, v.category, v.number, v.product_template),
            (0, 1, 44, 0)
        );
        assert_eq!(
            (v.level_type, v.level, v.statistic),
            (103, Some((0, 2)), None)
        );
        assert_eq!(variable_name(&v), "0.1.44@103=2");
        assert_eq!(time_name(h.keys.reference_time), "2026-01-02T06:00:00Z");
        assert_eq!(step_name(h.keys.step_seconds), "PT7H");
        // The prefix up to section 5 is enough; the data section is not read.
        assert_eq!(read_header(&m[..h.sections_end]).unwrap(), h);
    }

    #[test]
    fn short_prefixes_ask_for_more_and_never_panic() {
        let m = message(ID, Packing::Simple);
        let end = read_header(&m).unwrap().sections_end;
        assert_eq!(read_header(&m[..3]), Err(HeaderError::NeedMore(16)));
        assert_eq!(read_header(&m[..16]), Err(HeaderError::NeedMore(21)));
        assert_eq!(read_header(&m[..21]), Err(HeaderError::NeedMore(16 + 21)));
        // Every prefix shorter than section 5's end asks for more, and the next
        // call with what it asked for gets further.
        for cut in 0..end {
            match read_header(&m[..cut]) {
                Err(HeaderError::NeedMore(n)) => assert!(n > cut && n <= end, "{cut}: {n}"),
                other => panic!("{cut}: {other:?}"),
            }
        }
        for i in 0..end {
            for bit in [0x01, 0x80] {
                let mut b = m.clone();
                b[i] ^= bit;
                let _ = read_header(&b);
            }
        }
        assert!(
            matches!(read_header(b"BZh91AY&SY"), Err(HeaderError::Bad(m)) if m.contains("bzip2"))
        );
        assert!(
            matches!(read_header(b"GRIx"), Err(HeaderError::Bad(m)) if m.starts_with("not GRIB2"))
        );
        let mut ed1 = m.clone();
        ed1[7] = 1;
        assert!(matches!(read_header(&ed1), Err(HeaderError::Bad(m)) if m.contains("edition 1")));
    }

    /// Turns the template 4.0 section of `m` into template 4.8 (58 octets) with
    /// forecast time `ft` hours, statistical process `stat` and a time range of
    /// `len` in `unit`.
    fn as_template_4_8(m: &[u8], ft: u32, stat: u8, unit: u8, len: u32) -> Vec<u8> {
        let mut s4 = m[S4..S4 + 34].to_vec();
        s4[0..4].copy_from_slice(&58u32.to_be_bytes());
        s4[7..9].copy_from_slice(&8u16.to_be_bytes());
        s4[18..22].copy_from_slice(&ft.to_be_bytes());
        s4.extend_from_slice(&[0x07, 0xEA, 1, 2, 9, 0, 0]); // end of the interval
        s4.push(1); // one time range
        s4.extend_from_slice(&0u32.to_be_bytes()); // no missing values
        s4.push(stat); // octet 47
        s4.push(2); // octet 48: successive times, same start
        s4.push(unit); // octet 49
        s4.extend_from_slice(&len.to_be_bytes()); // octets 50-53
        s4.push(255);
        s4.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(s4.len(), 58);
        let mut out = m[..S4].to_vec();
        out.extend_from_slice(&s4);
        out.extend_from_slice(&m[S4 + 34..]);
        let total = out.len() as u64;
        out[8..16].copy_from_slice(&total.to_be_bytes());
        out
    }

    #[test]
    fn template_4_8_steps_at_the_end_of_its_time_range() {
        let m = message(ID, Packing::Simple);
        // Accumulation (1) from hour 3 over 90 minutes: step 4.5 h.
        let m8 = as_template_4_8(&m, 3, 1, 0, 90);
        let h = read_header(&m8).unwrap();
        assert_eq!(h.keys.step_seconds, 3 * 3600 + 90 * 60);
        assert_eq!(step_name(h.keys.step_seconds), "PT270M");
        assert_eq!(h.keys.variable.statistic, Some(1));
        assert_eq!(h.keys.variable.product_template, 8);
        assert_eq!(variable_name(&h.keys.variable), "0.1.44@103=2/stat1");
        // Maximum (2) over 6 hours in unit 11 (6 hours): 3 h + 36 h.
        let h = read_header(&as_template_4_8(&m, 3, 2, 11, 6)).unwrap();
        assert_eq!(h.keys.step_seconds, 39 * 3600);
        assert_eq!(h.keys.variable.statistic, Some(2));
        // A month is not a fixed number of seconds.
        let e = read_header(&as_template_4_8(&m, 3, 1, 3, 1)).unwrap_err();
        assert!(e.to_string().contains("unit of time 3 (month"), "{e}");
        // The whole message still parses strictly.
        parse(&m8).unwrap();
    }

    /// Turns the template 4.0 section of `m` into template 4.1 (37 octets), member
    /// `member` of a 20-member ensemble.
    fn as_template_4_1(m: &[u8], member: u8) -> Vec<u8> {
        let mut s4 = m[S4..S4 + 34].to_vec();
        s4[0..4].copy_from_slice(&37u32.to_be_bytes());
        s4[7..9].copy_from_slice(&1u16.to_be_bytes());
        s4.extend_from_slice(&[3, member, 20]); // octets 35-37
        let mut out = m[..S4].to_vec();
        out.extend_from_slice(&s4);
        out.extend_from_slice(&m[S4 + 34..]);
        let total = out.len() as u64;
        out[8..16].copy_from_slice(&total.to_be_bytes());
        out
    }

    #[test]
    fn ensemble_members_are_variables_of_their_own() {
        let m = message(ID, Packing::Simple);
        let (a, b) = (as_template_4_1(&m, 1), as_template_4_1(&m, 2));
        let (ka, kb) = (read_header(&a).unwrap().keys, read_header(&b).unwrap().keys);
        assert_ne!(ka.variable, kb.variable);
        assert_eq!(ka.variable.member, Some(1));
        assert_eq!(variable_name(&kb.variable), "0.1.44@103=2/t1/m2");
        // A derived forecast (4.2, octet 35: 0 = unweighted mean).
        let mut d = as_template_4_1(&m, 0);
        d[S4 + 8] = 2;
        let k = read_header(&d).unwrap().keys;
        assert_eq!((k.variable.member, k.variable.derived), (None, Some(3)));
        parse(&a).unwrap();
    }

    #[test]
    fn unread_templates_and_units_are_named() {
        let m = message(ID, Packing::Simple);
        let mut b = m.clone();
        b[S4 + 8] = 40; // template 4.40: another layout
        let e = read_header(&b).unwrap_err().to_string();
        assert!(e.contains("template 4.40 is not read"), "{e}");
        let mut b = m.clone();
        b[S4 + 17] = 4; // forecast time in years
        let e = read_header(&b).unwrap_err().to_string();
        assert!(e.contains("unit of time 4 (year"), "{e}");
        let mut b = m.clone();
        b[S4 + 17] = 13; // seconds
        assert_eq!(read_header(&b).unwrap().keys.step_seconds, 7);
        // Template 4.1 too short for its member (octet 36) is refused, saying so.
        let mut b = m.clone();
        b[S4 + 8] = 1;
        let e = read_header(&b).unwrap_err().to_string();
        assert!(
            e.contains("template 4.1) is 34 bytes, the template needs 37"),
            "{e}"
        );
    }

    #[test]
    fn levels_are_signed_normalised_and_missing_is_none() {
        let m = message(ID, Packing::Simple);
        let level = |scale: u8, value: u32, ty: u8| {
            let mut b = m.clone();
            b[S4 + 22] = ty;
            b[S4 + 23] = scale;
            b[S4 + 24..S4 + 28].copy_from_slice(&value.to_be_bytes());
            read_header(&b).unwrap().keys.variable
        };
        assert_eq!(level(1, 20, 103).level, Some((0, 2)), "2.0 m is 2 m");
        assert_eq!(variable_name(&level(1, 20, 103)), "0.1.44@103=2");
        assert_eq!(level(1, 25, 103).level, Some((1, 25)));
        assert_eq!(variable_name(&level(1, 25, 103)), "0.1.44@103=2.5");
        assert_eq!(variable_name(&level(3, 5, 106)), "0.1.44@106=0.005");
        // A negative scale factor (sign-and-magnitude): 5 · 10^2.
        assert_eq!(level(0x82, 5, 100).level, Some((-2, 5)));
        assert_eq!(variable_name(&level(0x82, 5, 100)), "0.1.44@100=500");
        // A negative value: -3.
        assert_eq!(level(0, 0x8000_0003, 103).level, Some((0, -3)));
        assert_eq!(variable_name(&level(0, 0x8000_0003, 103)), "0.1.44@103=-3");
        // Missing scale and value: the ground.
        let v = level(0xFF, u32::MAX, 1);
        assert_eq!(v.level, None);
        assert_eq!(variable_name(&v), "0.1.44@1");
        assert_eq!(level(0, 7, 255).level, None);
        assert_eq!(decimal(0, 5), "0");
        assert_eq!(decimal(1200, 2), "12");
        assert_eq!(decimal(-1205, 2), "-12.05");
    }

    #[test]
    fn names() {
        assert_eq!(time_name((2026, 11, 26, 0, 0, 0)), "2026-11-26T00:00:00Z");
        assert_eq!(step_name(0), "PT0S");
        assert_eq!(step_name(3 * 3600), "PT3H");
        assert_eq!(step_name(48 * 3600), "PT48H");
        assert_eq!(step_name(90 * 60), "PT90M");
        assert_eq!(step_name(61), "PT61S");
        assert_eq!(step_name(-3600), "-PT1H");
    }

    /// A section 3 of template 3.101 (unstructured grid): 35 octets.
    fn section3_101(points: u32) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&35u32.to_be_bytes());
        s.push(3);
        s.push(0);
        s.extend_from_slice(&points.to_be_bytes());
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(&101u16.to_be_bytes());
        s.push(6); // shape of the earth
        s.extend_from_slice(&[0, 0, 26]); // number of the grid (ICON's R3B07 …)
        s.push(1); // number of the grid in the reference
        s.extend_from_slice(&[0xAB; 16]); // UUID of the horizontal grid
        assert_eq!(s.len(), 35);
        s
    }

    #[test]
    fn grids_of_templates_3_0_and_3_101() {
        let m = message(ID, Packing::Simple);
        let g = grid_of(&m[S3..S3 + 72]).unwrap();
        assert_eq!((g.template, g.ny, g.nx), (0, 5, 7));
        assert_eq!(g.section3, hex(&m[S3..S3 + 72]));
        assert_eq!(&g.section3[..10], "0000004803");
        assert_eq!(describe_grid(&g), "template 3.0, 35 points (5 × 7)");
        let u = grid_of(&section3_101(2_949_120)).unwrap();
        assert_eq!((u.template, u.ny, u.nx), (101, 1, 2_949_120));
        // Ni · Nj that is not the point count (a quasi-regular grid): one row.
        let mut q = m[S3..S3 + 72].to_vec();
        q[6..10].copy_from_slice(&36u32.to_be_bytes());
        let g = grid_of(&q).unwrap();
        assert_eq!((g.ny, g.nx), (1, 36));
        // Columns consecutive (0x20) or rows alternating (0x10): not a Nj × Ni
        // array in row order, so one dimension; +j alone (0x40) is.
        for (mode, shape) in [(0x40, (5, 7)), (0x60, (1, 35)), (0x50, (1, 35))] {
            let mut s = m[S3..S3 + 72].to_vec();
            s[71] = mode;
            let g = grid_of(&s).unwrap();
            assert_eq!((g.ny, g.nx), shape, "scanning mode {mode:#x}");
        }
        assert!(grid_of(&m[S4..S4 + 34]).is_err(), "section 4 is no grid");
    }

    #[test]
    fn check_message_refuses_another_grid_or_other_keys() {
        let m = message(ID, Packing::Ccsds);
        let h = read_header(&m).unwrap();
        let grid = grid_of(&h.section3).unwrap();
        check_message(&m, &grid, Some(&h.keys)).unwrap();
        check_message(&m, &grid, None).unwrap();

        let other = message(FieldId { ny: 6, nx: 8, ..ID }, Packing::Ccsds);
        let e = check_message(&other, &grid, None).unwrap_err();
        assert_eq!(
            e,
            "grid differs from the dataset's: template 3.0, 48 points (6 × 8) vs \
             template 3.0, 35 points (5 × 7)"
        );
        // The same size, another scanning mode: the octet is named.
        let mut flipped = m.clone();
        flipped[S3 + 71] = 0x00;
        let e = check_message(&flipped, &grid, None).unwrap_err();
        assert!(e.ends_with("(section 3 differs from octet 72)"), "{e}");

        let keys = |id: FieldId| read_header(&message(id, Packing::Ccsds)).unwrap().keys;
        let e = check_message(&m, &grid, Some(&keys(FieldId { s: 8, ..ID }))).unwrap_err();
        assert_eq!(e, "step is PT7H, the dataset's is PT8H");
        let e = check_message(&m, &grid, Some(&keys(FieldId { g: 6, ..ID }))).unwrap_err();
        assert_eq!(
            e,
            "reference time is 2026-01-02T06:00:00Z, the dataset's is 2026-01-02T12:00:00Z"
        );
        let e = check_message(&m, &grid, Some(&keys(FieldId { v: 301, ..ID }))).unwrap_err();
        assert!(
            e.starts_with("variable is 0.1.44@103=2 (")
                && e.contains("the dataset's is 0.1.45@103=2"),
            "{e}"
        );
        // Truncated: the strict parse refuses it.
        let e = check_message(&m[..m.len() - 1], &grid, None).unwrap_err();
        assert!(e.contains("total length"), "{e}");
    }
}
