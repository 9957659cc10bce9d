//! A scanned directory as a dataset format: what the workload needs to check and
//! decode each of the user's messages, and what the output records about them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Catalog, Grid, MessageKeys, ScanSpec, VariableKey};

/// The keys of a `from = "keys"` scan, per coordinate: what every message read
/// must say it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DirKeys {
    /// Per group, its reference time.
    pub groups: Vec<(u16, u8, u8, u8, u8, u8)>,
    /// Per variable, its key.
    pub variables: Vec<VariableKey>,
    /// Per step, its length in seconds.
    pub steps: Vec<i64>,
}

/// What the output's `grib2_dir` attributes record: the source, how it was read,
/// the grid and the names of every coordinate. Never the files' contents.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DirAttributes {
    /// Version of these attributes: 1.
    pub version: u32,
    /// The directory read (absolute).
    pub source: PathBuf,
    /// How files were told apart (keys or pattern) and what was done with
    /// unusable ones.
    pub scan: ScanSpec,
    /// The grid (section 3 of the first message).
    pub grid: Grid,
    /// Names of the groups (init times), in output order.
    pub groups: Vec<String>,
    /// Names of the variables, in output order.
    pub variables: Vec<String>,
    /// Names of the steps, in output order.
    pub steps: Vec<String>,
    /// For a keys scan, the keys behind the names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<DirKeys>,
}

/// A directory of the user's GRIB2 files as the dataset's format (in
/// `DatasetParams::format`): filled in from a [`Catalog`] when the scan is done;
/// until then (a scenario just parsed) it has no coordinates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DirFormat {
    /// What the output records (also the scan's request: source and scan).
    pub attributes: DirAttributes,
    /// The catalog file (the scan cache) holding every input's path.
    #[serde(default)]
    pub catalog_file: PathBuf,
    /// The listing's fingerprint the catalog was made from.
    #[serde(default)]
    pub fingerprint: String,
    /// The largest input in bytes (a file or a message in one).
    #[serde(default)]
    pub max_input_len: u64,
    /// The largest message unwrapped, where the scan saw every message.
    #[serde(default)]
    pub max_message_len: Option<u64>,
    /// Files under the root, inputs or not.
    #[serde(default)]
    pub files: u64,
    /// Bytes of the input files.
    #[serde(default)]
    pub bytes: u64,
    /// Files skipped (`on_mismatch = "skip"`).
    #[serde(default)]
    pub skipped: u64,
}

impl DirFormat {
    /// A directory not scanned yet: `root` read as `scan` says.
    pub fn unscanned(root: PathBuf, scan: ScanSpec) -> Self {
        DirFormat {
            attributes: DirAttributes {
                version: 1,
                source: root,
                scan,
                grid: Grid {
                    template: 0,
                    ny: 1,
                    nx: 1,
                    section3: String::new(),
                },
                groups: Vec::new(),
                variables: Vec::new(),
                steps: Vec::new(),
                keys: None,
            },
            catalog_file: PathBuf::new(),
            fingerprint: String::new(),
            max_input_len: 0,
            max_message_len: None,
            files: 0,
            bytes: 0,
            skipped: 0,
        }
    }

    /// The format of the directory `catalog` describes, read from `catalog_file`
    /// (made from the listing with `fingerprint`).
    pub fn from_catalog(catalog: &Catalog, catalog_file: PathBuf, fingerprint: String) -> Self {
        let names = |c: &[super::Coord]| c.iter().map(|c| c.name.clone()).collect();
        let keys = match (
            &catalog.group_keys,
            &catalog.variable_keys,
            &catalog.step_seconds,
        ) {
            (Some(g), Some(v), Some(s)) => Some(DirKeys {
                groups: g.clone(),
                variables: v.clone(),
                steps: s.clone(),
            }),
            _ => None,
        };
        DirFormat {
            attributes: DirAttributes {
                version: 1,
                source: catalog.root.clone(),
                scan: catalog.spec.clone(),
                grid: catalog.grid.clone(),
                groups: names(&catalog.groups),
                variables: names(&catalog.variables),
                steps: names(&catalog.steps),
                keys,
            },
            catalog_file,
            fingerprint,
            max_input_len: catalog.max_input_len,
            max_message_len: catalog.max_message_len,
            files: catalog.files,
            bytes: catalog.bytes,
            skipped: catalog.skipped.len() as u64,
        }
    }

    /// Whether the directory has been scanned (the coordinates are known).
    pub fn scanned(&self) -> bool {
        !self.attributes.groups.is_empty()
    }

    /// What message (g, v, s) must say it is, for a keys scan.
    pub fn expected_keys(&self, g: u32, v: u32, s: u32) -> Option<MessageKeys> {
        let k = self.attributes.keys.as_ref()?;
        Some(MessageKeys {
            reference_time: *k.groups.get(g as usize)?,
            variable: *k.variables.get(v as usize)?,
            step_seconds: *k.steps.get(s as usize)?,
        })
    }

    /// The most bytes one message can have once unwrapped: what the scan saw, or
    /// where it did not look inside every file (a pattern scan), a bound for the
    /// grid: 32 bits per point, a bitmap and 64 KiB of sections. Larger messages
    /// are refused as damaged.
    pub fn message_bound(&self) -> u64 {
        let points = self.attributes.grid.ny as u64 * self.attributes.grid.nx as u64;
        self.max_message_len
            .unwrap_or(points * 4 + points.div_ceil(8) + (64 << 10))
    }

    /// `group 2026-11-26T00:00:00Z, variable T_2M, step 003`: message (g, v, s) by
    /// its coordinates' names.
    pub fn message_name(&self, g: u32, v: u32, s: u32) -> String {
        let a = &self.attributes;
        let name = |names: &[String], i: u32| {
            names
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{i}"))
        };
        format!(
            "group {}, variable {}, step {}",
            name(&a.groups, g),
            name(&a.variables, v),
            name(&a.steps, s)
        )
    }
}

/// The scan cache file: a [`Catalog`] with the fingerprint of the listing it was
/// made from. Written by the harness into its data directory, never into the
/// scanned directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanFile {
    /// Version of this file: 1.
    pub version: u32,
    /// The listing's fingerprint (paths, sizes, modification times).
    pub fingerprint: String,
    /// Wall time the scan took, in seconds.
    pub scan_seconds: f64,
    /// The scan's result.
    pub catalog: Catalog,
}

impl ScanFile {
    /// Reads a scan file; the error names it.
    pub fn read(path: &std::path::Path) -> Result<ScanFile, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("scan cache {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("scan cache {}: not a scan file: {e}", path.display()))
    }
}

impl DirFormat {
    /// The groups of inputs, from the catalog file, checked against this format
    /// (same listing, same number of inputs).
    pub fn groups(&self) -> Result<Vec<crate::job::Group>, String> {
        let file = ScanFile::read(&self.catalog_file)?;
        if file.fingerprint != self.fingerprint {
            return Err(format!(
                "scan cache {} is of another listing of {} than this run's (it changed \
                 since the run started?)",
                self.catalog_file.display(),
                self.attributes.source.display()
            ));
        }
        let a = &self.attributes;
        let per_group = a.variables.len() * a.steps.len();
        let inputs = &file.catalog.inputs;
        if per_group == 0 || inputs.len() != a.groups.len() * per_group {
            return Err(format!(
                "scan cache {}: {} inputs, the dataset has {} × {} × {}",
                self.catalog_file.display(),
                inputs.len(),
                a.groups.len(),
                a.variables.len(),
                a.steps.len()
            ));
        }
        Ok(inputs
            .chunks(per_group)
            .enumerate()
            .map(|(g, entries)| crate::job::Group {
                index: g as u32,
                first_item: 0,
                inputs: entries
                    .iter()
                    .map(|e| crate::job::InputRef {
                        path: e.path.as_str().into(),
                        range: e
                            .range
                            .map(|(offset, len)| crate::job::ByteRange { offset, len }),
                    })
                    .collect(),
            })
            .collect())
    }
}
