//! The dataset kinds and output layouts a scenario can name: registries like the
//! backends' ([`crate::backends::REGISTRY`]), each entry declared by the crate that
//! implements it. A new kind (GRIB2 messages, a user's own files) or layout
//! (sharded Zarr) is one entry here and its implementation there; the scenario
//! parser, `harness list` and the results take their names from these lists.

use rechunk_contract::{grib2, gribdir, nwp};

/// One entry of a registry: what scenarios call it and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// The name in scenarios and results.
    pub name: &'static str,
    /// One line for `harness list`.
    pub summary: &'static str,
}

/// The dataset kinds (`[dataset] kind`); the first is the default.
pub const DATASET_KINDS: &[Kind] = &[
    Kind {
        name: nwp::KIND,
        summary: nwp::KIND_SUMMARY,
    },
    Kind {
        name: grib2::KIND,
        summary: grib2::KIND_SUMMARY,
    },
    Kind {
        name: gribdir::KIND,
        summary: gribdir::KIND_SUMMARY,
    },
];

/// The output layouts (`[output] layout`); the first is the default.
pub const OUTPUT_LAYOUTS: &[Kind] = &[
    Kind {
        name: nwp::zarr::LAYOUT,
        summary: nwp::zarr::LAYOUT_SUMMARY,
    },
    Kind {
        name: nwp::zarr::SHARDED_LAYOUT,
        summary: nwp::zarr::SHARDED_LAYOUT_SUMMARY,
    },
];

/// The entry of `registry` named `name`; the error lists the valid names.
pub fn find(registry: &'static [Kind], name: &str) -> Result<&'static Kind, String> {
    registry.iter().find(|k| k.name == name).ok_or_else(|| {
        let names: Vec<String> = registry.iter().map(|k| format!("\"{}\"", k.name)).collect();
        format!("`{name}` is not one of {}", names.join(", "))
    })
}

/// The default dataset kind's name (for results written before the key existed).
pub fn default_dataset_kind() -> String {
    DATASET_KINDS[0].name.to_string()
}

/// The default output layout's name (for results written before the key existed).
pub fn default_output_layout() -> String {
    OUTPUT_LAYOUTS[0].name.to_string()
}
