//! The grib2-dir dataset kind: a directory of GRIB2 files the user already has (a
//! downloaded ICON run, a GFS archive, their own model's output), read only.
//!
//! Nothing in it has a closed form: a scan ([`scan`]) turns the directory into a
//! [`Catalog`] (which file is which group, variable and step; the grid), the
//! workload decodes each message with a real GRIB2 decoder after checking it is
//! the message the catalog says it is, and outputs are verified against the
//! `sequential` backend's output (the oracle) instead of a formula.
//!
//! - [`header`]: the keys of one message read from its first sections only (what
//!   a scan needs, without the data section), and the same check on a whole
//!   message before it is decoded.
//! - [`scan`]: walking the directory, by keys or by a file name pattern, into a
//!   [`Catalog`]; every file that cannot be used is reported with its path.
//! - [`example`]: a test set that looks like DWD's open data (file names exactly
//!   as DWD names them, bzip2-wrapped), made by the nwp-grib2 generator.

pub mod example;
pub mod format;
pub mod header;
pub mod scan;

use serde::{Deserialize, Serialize};

/// The name of this dataset kind in scenarios (`[dataset] kind`) and results.
pub const KIND: &str = "grib2-dir";
/// One line on this dataset kind, for `harness list`.
pub const KIND_SUMMARY: &str = "a directory of your own GRIB2 files (e.g. a downloaded ICON \
    run), read only: groups, variables and steps from the messages' keys or the file \
    names; verified against the sequential backend's output";

/// How a scan tells a file's group, variable and step.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "from")]
pub enum Source {
    /// From the messages' sections 1 and 4 (reference time; parameter and level;
    /// forecast time), every file opened (`.bz2` unwrapped as far as the headers).
    Keys,
    /// From the file names (paths relative to the root, `/`-separated) matched
    /// against a pattern with the placeholders `{var}`, `{step}` and optionally
    /// `{init}` and `{level}`; only one file is opened, for the grid.
    Pattern {
        /// E.g. `icon-eu_europe_regular-lat-lon_single-level_{init}_{step}_{var}.grib2.bz2`.
        pattern: String,
    },
}

/// What a scan does with a file it cannot use (matches neither the pattern nor
/// GRIB2, another grid, a duplicate, not a regular file, unreadable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMismatch {
    /// The scan fails, listing the files (default).
    #[default]
    Refuse,
    /// The files are skipped, counted and listed in the catalog.
    Skip,
}

/// What a scan is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScanSpec {
    /// Keys or pattern.
    #[serde(flatten)]
    pub source: Source,
    /// Refuse or skip files that cannot be used.
    #[serde(default)]
    pub on_mismatch: OnMismatch,
}

/// A message's variable as its sections say: what a `from = "keys"` scan groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VariableKey {
    /// Section 0's discipline.
    pub discipline: u8,
    /// Section 4's parameter category.
    pub category: u8,
    /// Section 4's parameter number.
    pub number: u8,
    /// Section 4's product definition template (4.0, 4.8, …).
    pub product_template: u16,
    /// Type of the first fixed surface (code table 4.5), e.g. 103 = height above
    /// ground.
    pub level_type: u8,
    /// Its scale factor and scaled value, `None` when missing.
    pub level: Option<(i8, i64)>,
    /// Template 4.8's type of statistical processing (accumulation, maximum, …).
    pub statistic: Option<u8>,
    /// Templates 4.1 and 4.11: the ensemble member (perturbation number), so that
    /// the members of an ensemble are variables of their own, not duplicates.
    #[serde(default)]
    pub member: Option<u8>,
    /// Template 4.2: the derived forecast (code table 4.7: mean, spread, …).
    #[serde(default)]
    pub derived: Option<u8>,
}

/// A reference time: (year, month, day, hour, minute, second), UTC.
pub type ReferenceTime = (u16, u8, u8, u8, u8, u8);

/// A message's identity: reference time, variable and step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageKeys {
    /// Section 1's reference time (year, month, day, hour, minute, second).
    pub reference_time: ReferenceTime,
    /// The variable.
    pub variable: VariableKey,
    /// The step in seconds: the forecast time, or for a statistically processed
    /// product (template 4.8) the end of its time range.
    pub step_seconds: i64,
}

/// One coordinate value of the output: a group, variable or step, in output order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Coord {
    /// Its name in the output's attributes: `2026-11-26T00:00:00Z`, `0.0.0@103=2`,
    /// `PT3H` (keys), or the text a placeholder matched (pattern).
    pub name: String,
}

/// The grid every message shares: section 3 of the first message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grid {
    /// The grid definition template (3.0 regular lat/lon, 3.101 unstructured, …).
    pub template: u16,
    /// Rows of the output: Nj for templates that give Ni × Nj equal to the point
    /// count, 1 otherwise (an unstructured grid is one dimension of cells).
    pub ny: u32,
    /// Columns: Ni, or every point.
    pub nx: u32,
    /// Section 3 as it is in the first message, octet for octet, as lowercase hex:
    /// every other message's must be equal.
    pub section3: String,
}

/// One input of the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The file, relative to the root, `/`-separated.
    pub path: String,
    /// For a message inside an uncompressed multi-message file: its byte range
    /// `(offset, length)`; `None`: the whole file is the message.
    pub range: Option<(u64, u64)>,
}

/// A file a scan could not use, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Unusable {
    /// Relative to the root, `/`-separated.
    pub path: String,
    /// Why, in words: `does not match the pattern …`, `not GRIB2: …`, `truncated:
    /// …`, `grid differs from the dataset's: …` (the grid most messages share),
    /// `duplicate of …`, `not a regular file (a FIFO)`, `cannot read: …`.
    pub why: String,
}

/// The result of a scan: the dataset's coordinates, grid and inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// The directory scanned, absolute.
    pub root: std::path::PathBuf,
    /// What the scan was asked to do.
    pub spec: ScanSpec,
    /// Groups (init times), sorted: chronologically (keys) or as text (pattern).
    pub groups: Vec<Coord>,
    /// Variables, sorted by their keys (keys) or names (pattern).
    pub variables: Vec<Coord>,
    /// Steps, sorted by their length of time (keys; pattern when every step is a
    /// number) or as text.
    pub steps: Vec<Coord>,
    /// Per group (keys only), its reference time.
    pub group_keys: Option<Vec<ReferenceTime>>,
    /// Per variable (keys only), its key.
    pub variable_keys: Option<Vec<VariableKey>>,
    /// Per step (keys only), its length in seconds.
    pub step_seconds: Option<Vec<i64>>,
    /// The grid.
    pub grid: Grid,
    /// Every input, in (group, variable, step) order: entry `(g · V + v) · S + s`.
    pub inputs: Vec<Entry>,
    /// Regular files under the root (symbolic links to them included), usable or
    /// not.
    pub files: u64,
    /// Bytes of the inputs' files (whole files, each counted once).
    pub bytes: u64,
    /// The largest input (file or range), for read buffers.
    pub max_input_len: u64,
    /// The largest message after unwrapping, where the scan saw every message
    /// (keys); `None` otherwise.
    pub max_message_len: Option<u64>,
    /// Files skipped (`on_mismatch = "skip"`): all of them.
    pub skipped: Vec<Unusable>,
}
