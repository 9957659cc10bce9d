//! The nwp-fields dataset and its Zarr v3 output (docs/FORMATS.md): the first
//! workload. Both are contracts with readers that are not ours; they change only with
//! a format version bump.

pub mod generate;
pub mod message;
pub mod shard;
pub mod values;
pub mod workload;
pub mod zarr;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::job::{ByteRange, Group, InputRef};
pub use message::Codec;

/// The name of this dataset kind in scenarios (`[dataset] kind`) and results.
pub const KIND: &str = "nwp-fields";
/// One line on this dataset kind, for `harness list`.
pub const KIND_SUMMARY: &str = "synthetic NWP fields: a 40-byte header and a float32 \
    field compressed with zstd, lz4 or nothing; every value has a closed form";
pub use values::ValueParams;

/// How messages are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One message per file: `g{g:05}/v{v:04}/s{s:05}.msg`.
    Files,
    /// One file per group, messages back to back in (v, s) order, `g{g:05}.msgs`,
    /// with a text index `g{g:05}.idx` of lines `v s offset length`.
    Container,
}

/// How each message is written: the dataset kind's message format.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Format {
    /// nwp-fields messages (`.msg`): a 40-byte header and the values compressed with
    /// [`DatasetParams::codec`].
    #[default]
    NwpFields,
    /// nwp-grib2 messages (`.grib2`, `.grib2.bz2`): real GRIB2 (crate::grib2).
    Grib2(crate::grib2::Grib2Params),
    /// A directory of the user's GRIB2 files (crate::gribdir): one message per
    /// input, in whatever packing the files use; nothing generated.
    Grib2Dir(Box<crate::gribdir::format::DirFormat>),
}

impl Format {
    /// The dataset kind's name in scenarios and results.
    pub fn kind(&self) -> &'static str {
        match self {
            Format::NwpFields => KIND,
            Format::Grib2(_) => crate::grib2::KIND,
            Format::Grib2Dir(_) => crate::gribdir::KIND,
        }
    }
}

/// Everything that determines a dataset's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetParams {
    /// How the messages are stored.
    pub layout: Layout,
    /// Groups (init times); each is one group of the job.
    pub groups: u32,
    /// Variables per group.
    pub variables: u32,
    /// Steps per variable.
    pub steps: u32,
    /// Rows of every field.
    pub ny: u32,
    /// Columns of every field.
    pub nx: u32,
    /// How the messages' payloads are encoded.
    pub codec: Codec,
    /// Level of the zstd codec of the messages (unused by other codecs).
    pub zstd_level: i32,
    /// 0..=8: how many low bits of noise each value carries (more compresses worse).
    pub noise_bits: u32,
    /// The seed of the noise.
    pub seed: u64,
    /// The message format (absent in results written before GRIB2: nwp-fields).
    #[serde(default)]
    pub format: Format,
}

impl DatasetParams {
    /// What the values depend on, for their closed form.
    pub fn values(&self) -> ValueParams {
        ValueParams {
            variables: self.variables,
            steps: self.steps,
            ny: self.ny,
            nx: self.nx,
            seed: self.seed,
            noise_bits: self.noise_bits,
        }
    }

    /// Messages in the dataset: groups × variables × steps.
    pub fn messages(&self) -> u64 {
        self.groups as u64 * self.variables as u64 * self.steps as u64
    }

    /// Bytes of one decoded field: ny · nx float32 values.
    pub fn field_bytes(&self) -> u64 {
        self.ny as u64 * self.nx as u64 * 4
    }

    /// The item index of (v, s) within its group: inputs are ordered by (v, s).
    pub fn item_index(&self, v: u32, s: u32) -> usize {
        v as usize * self.steps as usize + s as usize
    }

    /// (v, s) of item `index` within its group.
    pub fn item_vs(&self, index: usize) -> (u32, u32) {
        let s = self.steps as usize;
        ((index / s) as u32, (index % s) as u32)
    }

    /// The file name extension of one message: `msg`, `grib2` or `grib2.bz2`.
    pub fn extension(&self) -> &'static str {
        match &self.format {
            Format::NwpFields => "msg",
            Format::Grib2(p) => p.extension(),
            // Not generated: every input's path is the catalog's.
            Format::Grib2Dir(_) => "grib2",
        }
    }

    /// The path of message (g, v, s) in the files layout, relative to the root.
    pub fn message_path(&self, g: u32, v: u32, s: u32) -> String {
        format!("g{g:05}/v{v:04}/s{s:05}.{}", self.extension())
    }

    /// The path of group `g`'s container in the container layout: `g{g:05}.msgs`
    /// (nwp-fields) or `g{g:05}.grib2[.bz2]` (a multi-message GRIB2 file that any
    /// GRIB2 reader opens as it is).
    pub fn container_path(&self, g: u32) -> String {
        match &self.format {
            Format::NwpFields => format!("g{g:05}.msgs"),
            Format::Grib2(p) => format!("g{g:05}.{}", p.extension()),
            Format::Grib2Dir(_) => format!("g{g:05}.grib2"),
        }
    }

    /// The path of group `g`'s index (lines `v s offset length`) in the container
    /// layout.
    pub fn index_path(g: u32) -> String {
        format!("g{g:05}.idx")
    }

    /// The most bytes one stored message (one file, or one container entry) can
    /// have: every backend's read bound for an input of unknown length.
    pub fn max_input_len(&self) -> u64 {
        match &self.format {
            Format::NwpFields => message::max_message_len(self.ny, self.nx),
            Format::Grib2(p) => p.max_file_len(self.ny, self.nx, 12 + self.noise_bits),
            Format::Grib2Dir(d) => d.max_input_len,
        }
    }

    /// Memory a decode needs beyond the read buffer and the decoded field: the
    /// unwrapped message of a bzip2-wrapped GRIB2 input and the GRIB2 decoders'
    /// unpacked integers; nothing for nwp-fields.
    pub fn decode_scratch(&self) -> u64 {
        match &self.format {
            Format::NwpFields => 0,
            // The unwrapped message (of a .bz2 input; counted for every input, as
            // a directory may mix both), bzip2's state, the decoders' buffers.
            Format::Grib2Dir(d) => {
                d.message_bound() + (4 << 20) + self.ny as u64 * self.nx as u64 * 18
            }
            Format::Grib2(p) => {
                let unwrapped = match p.wrap {
                    crate::grib2::Wrap::None => 0,
                    crate::grib2::Wrap::Bz2 => {
                        p.max_message_len(self.ny, self.nx, 12 + self.noise_bits)
                    }
                };
                // bzip2's level-9 decoder state (100 kB + 4 × 900 kB), whatever the
                // field's size.
                let bz2_state = match p.wrap {
                    crate::grib2::Wrap::None => 0,
                    crate::grib2::Wrap::Bz2 => 4 << 20,
                };
                // The decoders' own buffers, the largest of them: gribberish copies
                // the payload twice (~2 bytes per value each), unpacks to bytes (2),
                // then f32 (4) and collects f64 (8) while the f32 buffer lives; grib-rs
                // and libaec need less.
                unwrapped + bz2_state + self.ny as u64 * self.nx as u64 * 18
            }
        }
    }

    /// Why the message format cannot hold this dataset, if it cannot: GRIB2 encodes
    /// the variable as parameter category (< 255) and number, a point count in 32
    /// bits and a reference time up to the year 9999.
    /// Returns the key at fault (`variables`, `ny`, `groups`) and why.
    pub fn format_problem(&self) -> Option<(&'static str, String)> {
        let Format::Grib2(_) = self.format else {
            return None;
        };
        if self.variables > 255 * 256 {
            return Some((
                "variables",
                format!(
                    "GRIB2 encodes a variable as parameter category and number: at most {} \
                 variables, not {}",
                    255 * 256,
                    self.variables
                ),
            ));
        }
        // Section 7's length is 32 bits: the packed values must fit in it.
        let points = self.ny as u64 * self.nx as u64;
        if points > u32::MAX as u64
            || points * (12 + self.noise_bits as u64) / 8 > u32::MAX as u64 - 1024
        {
            return Some((
                "ny",
                "GRIB2 counts a field's points and its data section's bytes in 32 bits: \
                 ny × nx is too large"
                    .into(),
            ));
        }
        if crate::grib2::message::reference_time(self.groups.saturating_sub(1)).is_none() {
            return Some((
                "groups",
                format!(
                    "{} groups 6 hours apart run past the year 9999, which GRIB2 cannot write",
                    self.groups
                ),
            ));
        }
        None
    }

    /// The output's `nwp_fields` attributes: what a reader needs to recompute every
    /// value (version, seed, noise_bits) and what the inputs were (codec: the
    /// nwp-fields codec or the GRIB2 packing; for GRIB2 also the input format and
    /// wrap).
    pub fn value_attributes(&self) -> serde_json::Value {
        match &self.format {
            Format::NwpFields => serde_json::json!({
                "version": 1,
                "seed": self.seed,
                "noise_bits": self.noise_bits,
                "codec": self.codec.name(),
                "input_layout": self.layout_name(),
            }),
            Format::Grib2(p) => serde_json::json!({
                "version": 1,
                "seed": self.seed,
                "noise_bits": self.noise_bits,
                "codec": p.packing.name(),
                "input_format": "nwp-grib2",
                "wrap": p.wrap.name(),
                "input_layout": self.layout_name(),
            }),
            Format::Grib2Dir(d) => serde_json::to_value(&d.attributes).expect("serialisable"),
        }
    }

    /// The key of the output's attributes that [`DatasetParams::value_attributes`]
    /// fill: `nwp_fields` (generated datasets) or `grib2_dir`.
    pub fn attributes_key(&self) -> &'static str {
        match &self.format {
            Format::Grib2Dir(_) => "grib2_dir",
            _ => "nwp_fields",
        }
    }

    /// The layout's name in scenarios and attributes: `files` or `container`.
    pub fn layout_name(&self) -> &'static str {
        match self.layout {
            Layout::Files => "files",
            Layout::Container => "container",
        }
    }

    /// Where field (g, v, s) is stored, relative to the dataset root: its file, or
    /// its container and index entry.
    pub fn input_name(&self, g: u32, v: u32, s: u32) -> String {
        if let Format::Grib2Dir(d) = &self.format {
            return d.message_name(g, v, s);
        }
        match self.layout {
            Layout::Files => self.message_path(g, v, s),
            Layout::Container => format!("{} (message v {v}, s {s})", self.container_path(g)),
        }
    }

    /// A name for the message encoding in reports: `zstd`, `grib2 ccsds`,
    /// `grib2 simple + bz2`.
    pub fn encoding_name(&self) -> String {
        match &self.format {
            Format::NwpFields => self.codec.name().to_string(),
            Format::Grib2(p) => match p.wrap {
                crate::grib2::Wrap::None => format!("grib2 {}", p.packing.name()),
                w => format!("grib2 {} + {}", p.packing.name(), w.name()),
            },
            Format::Grib2Dir(_) => "GRIB2 packed as found".to_string(),
        }
    }

    /// The groups of inputs of the dataset under `root`, in (g, v, s) order. For the
    /// container layout this reads and checks the `.idx` files.
    pub fn groups_at(&self, root: &Path) -> Result<Vec<Group>, String> {
        if let Format::Grib2Dir(d) = &self.format {
            return d.groups();
        }
        (0..self.groups).map(|g| self.group_at(root, g)).collect()
    }

    /// Group `g` of the dataset under `root` (see [`DatasetParams::groups_at`]).
    pub fn group_at(&self, root: &Path, g: u32) -> Result<Group, String> {
        if let Format::Grib2Dir(d) = &self.format {
            let mut groups = d.groups()?;
            return match groups.get_mut(g as usize) {
                Some(group) => Ok(std::mem::replace(
                    group,
                    Group {
                        index: g,
                        inputs: Vec::new(),
                        first_item: 0,
                    },
                )),
                None => Err(format!("no group {g} in the catalog of {}", root.display())),
            };
        }
        let inputs = match self.layout {
            Layout::Files => (0..self.variables)
                .flat_map(|v| (0..self.steps).map(move |s| (v, s)))
                .map(|(v, s)| InputRef {
                    path: self.message_path(g, v, s).into(),
                    range: None,
                })
                .collect(),
            Layout::Container => self.read_index(root, g)?,
        };
        Ok(Group {
            index: g,
            inputs,
            first_item: 0,
        })
    }

    fn read_index(&self, root: &Path, g: u32) -> Result<Vec<InputRef>, String> {
        let idx_path = root.join(Self::index_path(g));
        let expected = self.variables as usize * self.steps as usize;
        // A regular file of at most four 20-digit numbers per line, like every input.
        let bytes = crate::input::read_input(&idx_path, expected as u64 * 84)
            .map_err(|e| format!("index {}", e.to_string().trim_start_matches("input ")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("index {}: not UTF-8 text", idx_path.display()))?;
        let container: Box<str> = self.container_path(g).into();
        let mut inputs = Vec::with_capacity(expected);
        for (n, line) in text.lines().enumerate() {
            let bad = |what: &str| format!("index {} line {}: {what}", idx_path.display(), n + 1);
            let fields: Vec<u64> = line
                .split(' ')
                .map(|f| f.parse::<u64>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad("expected four decimal numbers `v s offset length`"))?;
            let [v, s, offset, len] = fields[..] else {
                return Err(bad("expected four decimal numbers `v s offset length`"));
            };
            let (ev, es) = self.item_vs(inputs.len());
            if (v, s) != (ev as u64, es as u64) {
                return Err(bad(&format!(
                    "message (v {v}, s {s}) where (v {ev}, s {es}) was expected"
                )));
            }
            inputs.push(InputRef {
                path: container.clone(),
                range: Some(ByteRange { offset, len }),
            });
        }
        if inputs.len() != expected {
            return Err(format!(
                "index {}: {} messages listed, the dataset has {expected} per group",
                idx_path.display(),
                inputs.len()
            ));
        }
        Ok(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    pub(crate) fn tiny(layout: Layout, codec: Codec) -> DatasetParams {
        DatasetParams {
            layout,
            groups: 2,
            variables: 3,
            steps: 4,
            ny: 5,
            nx: 7,
            codec,
            zstd_level: 1,
            noise_bits: 4,
            seed: 9,
            format: Format::NwpFields,
        }
    }

    #[test]
    fn container_index_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = tiny(Layout::Container, Codec::Lz4);
        generate::generate(&p, dir.path(), &|_, _| {}).unwrap();
        let groups = p.groups_at(dir.path()).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[1].inputs.len(), 12);
        let r = groups[1].inputs[5].range.unwrap();
        let bytes = fs::read(dir.path().join("g00001.msgs")).unwrap();
        let msg = &bytes[r.offset as usize..(r.offset + r.len) as usize];
        let h = message::parse_header(msg).unwrap();
        assert_eq!((h.group, h.variable, h.step), (1, 1, 1));

        // A line out of order names the file and line.
        let idx = dir.path().join("g00000.idx");
        let text = fs::read_to_string(&idx).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(1, 2);
        fs::write(&idx, lines.join("\n")).unwrap();
        let err = p.groups_at(dir.path()).unwrap_err();
        assert!(err.contains("g00000.idx line 2"), "{err}");
    }
}
