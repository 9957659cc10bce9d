//! The nwp-grib2 message format (docs/FORMATS.md, "nwp-grib2"): the nwp-fields
//! dataset's values written as real GRIB2 edition-2 messages, one field per
//! message, the way DWD's ICON open data is written (CCSDS or simple packing,
//! optionally bzip2-wrapped), and decoded by real GRIB2 decoders.
//!
//! [`message`] writes a message and parses its sections back (to name what is
//! wrong with a damaged or foreign input before a decoder sees it); [`decode`]
//! runs the decoder a scenario chose.

pub mod decode;
pub mod message;

use serde::{Deserialize, Serialize};

pub use decode::Decoder;

/// The name of this dataset kind in scenarios (`[dataset] kind`) and results.
pub const KIND: &str = "grib2";
/// One line on this dataset kind, for `harness list`.
pub const KIND_SUMMARY: &str = "the nwp-fields values as real GRIB2 messages (DWD centre, \
    regular lat/lon grid, CCSDS or simple packing, optionally bzip2-wrapped), decoded by \
    grib-rs, gribberish or libaec";

/// How the data section packs the values (GRIB2 code table 5.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Packing {
    /// Template 5.42: CCSDS 121.0-B adaptive entropy coding of the packed integers,
    /// as DWD's ICON open data since 2026.
    #[default]
    Ccsds,
    /// Template 5.0: the packed integers back to back, `12 + noise_bits` bits each.
    Simple,
}

impl Packing {
    /// The data representation template number (code table 5.0).
    pub fn template(self) -> u16 {
        match self {
            Packing::Ccsds => 42,
            Packing::Simple => 0,
        }
    }

    /// The name scenarios, results and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Packing::Ccsds => "ccsds",
            Packing::Simple => "simple",
        }
    }
}

/// How each file (or each message of a container) is wrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Wrap {
    /// The GRIB2 message as it is.
    #[default]
    None,
    /// The whole message compressed with bzip2 (one stream), as DWD's download
    /// server serves `.grib2.bz2` files.
    Bz2,
}

impl Wrap {
    /// The name scenarios, results and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Wrap::None => "none",
            Wrap::Bz2 => "bz2",
        }
    }
}

/// What determines a GRIB2 dataset's bytes beyond the nwp-fields parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Grib2Params {
    /// The data section's packing.
    #[serde(default)]
    pub packing: Packing,
    /// The file wrapping.
    #[serde(default)]
    pub wrap: Wrap,
}

impl Grib2Params {
    /// The file name extension of one message: `grib2` or `grib2.bz2`.
    pub fn extension(&self) -> &'static str {
        match self.wrap {
            Wrap::None => "grib2",
            Wrap::Bz2 => "grib2.bz2",
        }
    }

    /// An upper bound of one message's length before wrapping, for an ny × nx field
    /// with `bits` bits per value: every decoder's read buffer and unwrap limit.
    pub fn max_message_len(&self, ny: u32, nx: u32, bits: u32) -> u64 {
        let n = ny as u64 * nx as u64;
        let packed = match self.packing {
            Packing::Simple => (n * bits as u64).div_ceil(8),
            // CCSDS at its worst sends every block uncompressed: an option id of at
            // most 5 bits and 32 samples (the reference sample among them), the last
            // block padded to 32 samples. ecCodes' block size is 32.
            Packing::Ccsds => (n.div_ceil(32) * (5 + 32 * bits as u64)).div_ceil(8),
        };
        message::HEADERS_LEN as u64 + packed
    }

    /// An upper bound of one file's (or container entry's) length on disk.
    pub fn max_file_len(&self, ny: u32, nx: u32, bits: u32) -> u64 {
        let m = self.max_message_len(ny, nx, bits);
        match self.wrap {
            Wrap::None => m,
            // bzip2 expands incompressible data by at most about 1 % plus a header.
            Wrap::Bz2 => m + m / 100 + 1024,
        }
    }
}
