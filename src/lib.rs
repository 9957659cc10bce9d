//! The group-rechunk harness: scenario in, verified measurements out.
//!
//! # Layout
//!
//! - [`scenario`]: TOML into a raw form, validated into a checked [`scenario::Scenario`]
//!   whose errors name file, line, column and key.
//! - [`dataset`]: generation of the nwp-fields dataset, cached by a manifest.
//! - [`own_files`]: a grib2-dir dataset (the user's own GRIB2 files): the scan,
//!   cached in the data directory, never written to the files' directory.
//! - [`backends`]: the registry of backends and their options.
//! - [`runner`]: backend × repetition in fresh child processes, interleaved, with
//!   the page cache prepared as asked ([`cache`]) and every output verified ([`verify`]).
//! - [`record`]: the full recorder (per-thread HDR histograms per stage, timeline).
//! - [`results`]: `results.json`, the one source of every figure and table: its
//!   schema, loading (older schemas too) and saving.
//! - [`analysis`]: every per-backend figure of a run, computed once from a results
//!   file (with [`stats`]) and the run's baseline chosen; the [`summary`] table,
//!   the [`report`] (`report.md`, `report.html` and plots), the [`export`]s and the regression
//!   gate ([`compare`]) only format it.
//! - [`ceilings`]: the IO and CPU ceilings of a scenario, and efficiency against them.
//! - [`machine`]: what the run happened on.
//! - [`netem`]: the emulated network to an S3 server (`harness netem-proxy`), and
//!   the network profile a run records.
//!
//! The workload, the backend trait and the formats live in `rechunk-contract`;
//! the backends in `backends/`. This crate only drives them.

pub mod analysis;
pub mod backends;
pub mod barrier;
pub mod cache;
pub mod ceilings;
pub mod compare;
pub mod cost;
pub mod dataset;
pub mod export;
pub mod kinds;
pub mod machine;
pub mod merge;
pub mod mock;
pub mod netem;
pub mod own_files;
pub mod progress;
pub mod record;
pub mod report;
pub mod results;
pub mod runner;
pub mod safety;
pub mod scenario;
pub mod signals;
pub mod sizes;
pub mod split;
pub mod stats;
pub mod summary;
pub mod verify;

/// The scenario `harness run` uses when given none: small, under a minute.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/quick.toml");
