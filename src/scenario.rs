//! Scenario files: TOML parsed into a raw form, then validated into a checked
//! [`Scenario`]. Every error names the file, line, column and key, and the valid
//! choices where there is a fixed set.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use rechunk_contract::grib2::{self, Decoder, Grib2Params, Packing, Wrap};
use rechunk_contract::gribdir::format::DirFormat;
use rechunk_contract::gribdir::{self, OnMismatch};
use rechunk_contract::nwp::workload::NwpWorkload;
use rechunk_contract::nwp::zarr::{ArrayLayout, OutputParams};
use rechunk_contract::nwp::{self, Codec, DatasetParams, Format, Layout};
use rechunk_contract::Limits;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use stores::S3Config;

use crate::backends;
use crate::{kinds, sizes};

/// A scenario error, pointing into the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The scenario file, as given (or the name it is known by).
    pub file: String,
    /// 1-based line of the fault.
    pub line: usize,
    /// 1-based column of the fault, in characters.
    pub column: usize,
    /// What is wrong, naming the key and the valid choices.
    pub message: String,
}

/// Whether the page cache is kept or emptied before each repetition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// The dataset is read once before the first repetition and left in the cache.
    Warm,
    /// The dataset's pages are evicted before every repetition.
    Cold,
}

impl CacheMode {
    /// The name used in scenario files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Warm => "warm",
            CacheMode::Cold => "cold",
        }
    }
}

/// What every input goes through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// The whole job: read, decode, reduce, encode, write Zarr.
    #[default]
    Rechunk,
    /// Only read every input and count its bytes: the IO ceiling of each backend.
    ReadOnly,
}

/// A validated scenario. Serialized as-is into `scenario.json` and `results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// `name`, or the scenario file's name without its extension; names the run's
    /// results folder and the default dataset and output roots.
    pub name: String,
    /// Free text (`description`; empty when absent).
    pub description: String,
    /// The file it was read from.
    pub source: PathBuf,
    /// `[dataset]`: what to generate and where.
    pub dataset: DatasetSpec,
    /// `[output]`: the Zarr array's chunking and compression, and where it goes.
    pub output: OutputSpec,
    /// `[run]`: repetitions, cache state, verification.
    pub run: RunSpec,
    /// Absent in results written before the key existed: the rechunk.
    #[serde(default)]
    pub workload: WorkloadKind,
    /// One per `[[backend]]` table, a `[sweep]` expanded, in the file's order.
    pub backends: Vec<BackendSpec>,
    /// How to reach S3 for `s3://` stores: the `[s3]` table; the credentials in it
    /// are never serialized (the runner hands them to its child processes in the
    /// environment).
    #[serde(default)]
    pub s3: S3Config,
}

impl Scenario {
    /// For a grib2-dir dataset, this scenario once the directory has been scanned
    /// into `format`: the coordinates and grid filled in, chunk and shard extents
    /// larger than the grid clamped to it (the notes say which), and every
    /// backend's `bytes_in_flight` checked against the files' sizes, as a
    /// scenario's are when it is parsed.
    pub fn with_scan(&self, format: DirFormat) -> anyhow::Result<(Scenario, Vec<String>)> {
        let mut s = self.clone();
        let mut notes = Vec::new();
        let a = &format.attributes;
        let (groups, variables, steps) = (
            a.groups.len() as u32,
            a.variables.len() as u32,
            a.steps.len() as u32,
        );
        let (ny, nx) = (a.grid.ny, a.grid.nx);
        let root = a.source.display().to_string();
        if let Some(why) = sizes::field_problem(ny, nx) {
            anyhow::bail!("{root}: the files' grid is too large for this harness: {why}");
        }
        if let Some(why) = sizes::inputs_problem(groups, variables, steps) {
            anyhow::bail!("{root}: too many messages for this harness: {why}");
        }
        // The directory as scanned (resolved, no symbolic link): what every
        // repetition reads, whatever a link on the scenario's path points to later.
        s.dataset.root = a.source.clone();
        let p = &mut s.dataset.params;
        (p.groups, p.variables, p.steps, p.ny, p.nx) = (groups, variables, steps, ny, nx);
        p.format = Format::Grib2Dir(Box::new(format));
        let o = &mut s.output.params;
        for (key, c, full) in [("cy", &mut o.cy, ny), ("cx", &mut o.cx, nx)] {
            if *c > full {
                if *c != u32::MAX {
                    notes.push(format!(
                        "[output] {key} = {c} is larger than the grid ({full}): {full} is used"
                    ));
                }
                *c = full;
            }
        }
        if let Some(shard) = &mut o.shard {
            let limits = [1, variables, 1, ny.div_ceil(o.cy), nx.div_ceil(o.cx)];
            let names = ["init_time", "variable", "step", "y", "x"];
            for ((k, max), name) in shard.iter_mut().zip(limits).zip(names) {
                if *k > max {
                    notes.push(format!(
                        "[output] shard: the {name} entry {k} is more than the {max} the \
                         files have: {max} is used"
                    ));
                    *k = max;
                }
            }
        }
        let layout = ArrayLayout::new(s.dataset.params.clone(), s.output.params);
        if let Some(why) = sizes::shard_problem(&layout) {
            anyhow::bail!("[output] shard, with {root}'s grid: {why}");
        }
        for b in &s.backends {
            if let Some(why) = sizes::budget_problem(
                &s.dataset.params,
                s.output.params,
                s.workload,
                b.limits.bytes_in_flight,
            ) {
                anyhow::bail!("[[backend]] {}, with the files of {root}: {why}", b.label);
            }
        }
        Ok((s, notes))
    }
}

/// The backend whose output is the reference for datasets without a closed form
/// (grib2-dir): the simplest schedule, one input after another.
pub const ORACLE: &str = "sequential";

/// The `[dataset]` table, validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetSpec {
    /// The dataset kind ([`crate::kinds::DATASET_KINDS`]).
    #[serde(default = "crate::kinds::default_dataset_kind")]
    pub kind: String,
    /// Everything that determines the dataset's bytes (defaults filled in).
    pub params: DatasetParams,
    /// Relative to the data directory, inside `datasets/` (default
    /// `datasets/<name>`).
    pub root: PathBuf,
    /// The GRIB2 decoder (`[dataset] decoder`; grib2 datasets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<Decoder>,
}

impl DatasetSpec {
    /// The rechunk of this dataset into `output`, decoding with the chosen decoder.
    pub fn workload(&self, output: OutputParams) -> NwpWorkload {
        NwpWorkload::new(self.params.clone(), output).with_decoder(self.decoder.unwrap_or_default())
    }
}

/// The `[output]` table, validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// The output layout ([`crate::kinds::OUTPUT_LAYOUTS`]).
    #[serde(default = "crate::kinds::default_output_layout")]
    pub layout: String,
    /// Chunk extents (default: the whole field) and the chunks' zstd level.
    pub params: OutputParams,
    /// Relative to the data directory, inside `outputs/` (default
    /// `outputs/<name>`); emptied before every repetition.
    pub root: PathBuf,
}

/// The `[run]` table, validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Measured repetitions per backend table (default 3).
    pub repetitions: u32,
    /// Repetitions per backend run before the measured ones and not counted.
    pub warmup: u32,
    /// The page cache's state before each repetition (default warm).
    pub cache: CacheMode,
    /// Cold runs as root: also drop the whole page cache (not only the dataset's pages).
    pub drop_caches: bool,
    /// Whether reads of group n+1 may start before group n's last output is
    /// written (default false).
    pub overlap_groups: bool,
    /// Chunks whose values are checked per repetition; all of them when there are at
    /// most this many, a seeded random sample of this many otherwise. 0: all.
    pub verify_max_chunks: u64,
    /// Also measure the IO and CPU ceilings and each backend's efficiency (called
    /// `limits` in results written before schema 3).
    #[serde(default, alias = "limits")]
    pub ceilings: bool,
}

/// One `[[backend]]` table (or one point of a `[sweep]`), validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendSpec {
    /// Unique within the scenario; defaults to the name.
    pub label: String,
    /// Which backend.
    pub name: String,
    /// The shared keys: `cpu_threads` (default: the cores), `io_in_flight`
    /// (default 64) and `bytes_in_flight` (default 256 MiB, in bytes).
    pub limits: Limits,
    /// Backend-specific options, validated against the backend's own table.
    pub options: BTreeMap<String, serde_json::Value>,
    /// What the recorder keeps (absent in results older than the key: counters).
    #[serde(default = "Recording::counters")]
    pub recording: Recording,
    /// Set when this table is one point of a `[sweep]`.
    #[serde(default)]
    pub sweep: Option<SweepPoint>,
}

/// What a repetition records: everything (latency histograms per stage, timeline),
/// or only the atomic counters — the baseline the recording overhead is measured
/// against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recording {
    /// Latency histograms per stage and the timeline, on top of the counters.
    #[default]
    Full,
    /// Only the atomic counters.
    Counters,
}

impl Recording {
    fn counters() -> Recording {
        Recording::Counters
    }

    /// The name used in scenario files and results (`full`, `counters`).
    pub fn name(self) -> &'static str {
        match self {
            Recording::Full => "full",
            Recording::Counters => "counters",
        }
    }
}

/// One point of a parameter sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The swept key: a shared key (`io_in_flight`, `cpu_threads`,
    /// `bytes_in_flight`) or a backend option (`queue_depth`, …).
    pub parameter: String,
    /// Its value here, as a number (bytes for `bytes_in_flight`).
    pub value: f64,
    /// The label of the `[[backend]]` table the point was made from.
    pub base_label: String,
}

// ---------------------------------------------------------------- raw form

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<Spanned<String>>,
    description: Option<String>,
    dataset: RawDataset,
    #[serde(default)]
    output: RawOutput,
    #[serde(default)]
    run: RawRun,
    #[serde(default)]
    workload: RawWorkload,
    #[serde(default)]
    backend: Vec<Spanned<RawTable>>,
    sweep: Option<Spanned<RawSweep>>,
    s3: Option<Spanned<RawS3>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    endpoint: Option<Spanned<String>>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    allow_http: Option<bool>,
}

type RawTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    parameter: Spanned<String>,
    values: Spanned<Vec<Spanned<toml::Value>>>,
    /// Labels of the `[[backend]]` tables to sweep; default: all of them.
    backends: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    kind: Option<Spanned<String>>,
    layout: Option<Spanned<Layout>>,
    groups: Option<Spanned<u32>>,
    variables: Option<Spanned<u32>>,
    steps: Option<Spanned<u32>>,
    ny: Option<Spanned<u32>>,
    nx: Option<Spanned<u32>>,
    codec: Option<Spanned<Codec>>,
    zstd_level: Option<Spanned<i32>>,
    noise_bits: Option<Spanned<u32>>,
    seed: Option<Spanned<u64>>,
    root: Option<Spanned<String>>,
    packing: Option<Spanned<Packing>>,
    wrap: Option<Spanned<Wrap>>,
    decoder: Option<Spanned<Decoder>>,
    from: Option<Spanned<String>>,
    pattern: Option<Spanned<String>>,
    on_mismatch: Option<Spanned<OnMismatch>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    layout: Option<Spanned<String>>,
    root: Option<Spanned<String>>,
    cy: Option<Spanned<u32>>,
    cx: Option<Spanned<u32>>,
    zstd_level: Option<Spanned<i32>>,
    shard: Option<Spanned<Vec<Spanned<u32>>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    kind: Option<WorkloadKind>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRun {
    repetitions: Option<Spanned<u32>>,
    warmup: Option<Spanned<u32>>,
    cache: Option<CacheMode>,
    drop_caches: Option<bool>,
    overlap_groups: Option<bool>,
    verify_max_chunks: Option<u64>,
    #[serde(alias = "limits")]
    ceilings: Option<bool>,
}

// ---------------------------------------------------------------- validation

struct Ctx<'a> {
    file: String,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        let (line, column) = line_col(self.text, span.start);
        ScenarioError {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The key whose value is at byte `at`, with its table: `[dataset] packing`, for
/// an error about a value (serde names the variant, not the key).
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text[line_start..at].split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        // The header as written: `[dataset]`, `[[backend]]`.
        .map(|l| l.rsplit_once(']').map_or(l, |(h, _)| h).to_string() + "]");
    Some(match table {
        Some(t) => format!("{t} {key}"),
        None => key.to_string(),
    })
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, anyhow::Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("scenario {}: {e}", path.display()))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(parse(&text, &path.display().to_string(), &stem, path)?)
}

/// Parses scenario text; `file` names it in errors and `default_name` names the
/// scenario when it has no `name` key.
pub fn parse(
    text: &str,
    file: &str,
    default_name: &str,
    source: &Path,
) -> Result<Scenario, ScenarioError> {
    let ctx = Ctx {
        file: file.to_string(),
        text,
    };
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim();
        match key_at(text, span.start) {
            Some(key) if !message.contains(&key) => ctx.err(span, format!("{key}: {message}")),
            _ => ctx.err(span, message.to_string()),
        }
    })?;
    let name = scenario_name(&ctx, &raw, default_name)?;
    let dataset = dataset_spec(&ctx, &raw.dataset, &name, source)?;
    let output = output_spec(&ctx, &raw.output, &name, &dataset)?;
    let workload = raw.workload.kind.unwrap_or_default();
    let backends = backend_specs(&ctx, &raw, &dataset.params, output.params, workload)?;
    let own = matches!(dataset.params.format, Format::Grib2Dir(_));
    if own && workload == WorkloadKind::Rechunk && !backends.iter().any(|b| b.name == ORACLE) {
        return Err(ctx.err(
            ctx.text.len()..ctx.text.len(),
            format!(
                "kind = \"{}\" has no closed form to verify outputs against: the \
                 `{ORACLE}` backend's output is the reference, so add a [[backend]] table \
                 with name = \"{ORACLE}\"",
                gribdir::KIND
            ),
        ));
    }
    Ok(Scenario {
        description: raw.description.clone().unwrap_or_default(),
        source: source.to_path_buf(),
        run: run_spec(&ctx, &raw.run)?,
        backends,
        s3: s3_config(&ctx, raw.s3.as_ref())?,
        name,
        dataset,
        output,
        workload,
    })
}

/// `name`, or the file's name.
fn scenario_name(
    ctx: &Ctx,
    raw: &RawScenario,
    default_name: &str,
) -> Result<String, ScenarioError> {
    match &raw.name {
        Some(n) => {
            check_name(n.get_ref()).map_err(|m| ctx.err(n.span(), format!("name: {m}")))?;
            Ok(n.get_ref().clone())
        }
        None => {
            check_name(default_name).map_err(|m| {
                ctx.err(
                    0..0,
                    format!("the file name makes the scenario name, and {m}; set `name`"),
                )
            })?;
            Ok(default_name.to_string())
        }
    }
}

/// A zstd level, 1 to 22 (default 1).
fn zstd_level(ctx: &Ctx, v: &Option<Spanned<i32>>, key: &str) -> Result<i32, ScenarioError> {
    match v {
        Some(l) if !(1..=22).contains(l.get_ref()) => {
            Err(ctx.err(l.span(), format!("{key} must be 1 to 22")))
        }
        Some(l) => Ok(*l.get_ref()),
        None => Ok(1),
    }
}

/// `[dataset]`: sizes (each at least 1, their products within [`sizes`]), codec,
/// noise, seed and root.
fn dataset_spec(
    ctx: &Ctx,
    d: &RawDataset,
    name: &str,
    source: &Path,
) -> Result<DatasetSpec, ScenarioError> {
    let kind = registered(ctx, &d.kind, kinds::DATASET_KINDS, "[dataset] kind")?;
    if kind == gribdir::KIND {
        return own_files_spec(ctx, d, source);
    }
    let end = ctx.text.len()..ctx.text.len();
    let positive = |v: &Option<Spanned<u32>>, key: &str| -> Result<u32, ScenarioError> {
        match v {
            None => Err(ctx.err(
                end.clone(),
                format!("{key} is missing: kind = \"{kind}\" generates its dataset and needs it"),
            )),
            Some(v) if *v.get_ref() == 0 => {
                Err(ctx.err(v.span(), format!("{key} must be at least 1")))
            }
            Some(v) => Ok(*v.get_ref()),
        }
    };
    let span = |v: &Option<Spanned<u32>>| v.as_ref().map_or(0..0, |v| v.span());
    let groups = positive(&d.groups, "[dataset] groups")?;
    let variables = positive(&d.variables, "[dataset] variables")?;
    let steps = positive(&d.steps, "[dataset] steps")?;
    let ny = positive(&d.ny, "[dataset] ny")?;
    let nx = positive(&d.nx, "[dataset] nx")?;
    if let Some(why) = sizes::field_problem(ny, nx) {
        return Err(ctx.err(span(&d.ny), format!("[dataset] ny, nx: {why}")));
    }
    if let Some(why) = sizes::inputs_problem(groups, variables, steps) {
        return Err(ctx.err(
            span(&d.groups),
            format!("[dataset] groups, variables, steps: {why}"),
        ));
    }
    for (key, at) in [
        ("from", d.from.as_ref().map(|v| v.span())),
        ("pattern", d.pattern.as_ref().map(|v| v.span())),
        ("on_mismatch", d.on_mismatch.as_ref().map(|v| v.span())),
    ] {
        if let Some(at) = at {
            return Err(ctx.err(
                at,
                format!(
                    "[dataset] {key} applies to kind = \"{}\" only (this is \"{kind}\")",
                    gribdir::KIND
                ),
            ));
        }
    }
    let noise_bits = match &d.noise_bits {
        Some(b) if *b.get_ref() > 8 => {
            return Err(ctx.err(b.span(), "[dataset] noise_bits must be 0 to 8"))
        }
        Some(b) => *b.get_ref(),
        None => 4,
    };
    let (format, decoder) = message_format(ctx, d, &kind)?;
    let params = DatasetParams {
        layout: d.layout.as_ref().map_or(Layout::Files, |l| *l.get_ref()),
        groups,
        variables,
        steps,
        ny,
        nx,
        codec: d.codec.as_ref().map_or(Codec::Zstd, |c| *c.get_ref()),
        zstd_level: zstd_level(ctx, &d.zstd_level, "[dataset] zstd_level")?,
        noise_bits,
        seed: d.seed.as_ref().map_or(1, |s| *s.get_ref()),
        format,
    };
    if let Some((key, why)) = params.format_problem() {
        let span = match key {
            "groups" => span(&d.groups),
            "ny" => span(&d.ny),
            _ => span(&d.variables),
        };
        return Err(ctx.err(span, format!("[dataset] {key}: {why}")));
    }
    let root = relative_root(ctx, &d.root, "[dataset] root", "datasets", name)?;
    Ok(DatasetSpec {
        kind,
        params,
        root,
        decoder,
    })
}

/// The message format `[dataset] kind` names, with its own keys: `codec` and
/// `zstd_level` for nwp-fields; `packing`, `wrap` and `decoder` for grib2. A key of
/// the other kind is refused, naming the kind it belongs to.
fn message_format(
    ctx: &Ctx,
    d: &RawDataset,
    kind: &str,
) -> Result<(Format, Option<Decoder>), ScenarioError> {
    let grib2 = kind == grib2::KIND;
    let misplaced = |span: Option<Range<usize>>, key: &str, belongs: &str| match span {
        Some(span) => Err(ctx.err(
            span,
            format!("[dataset] {key} applies to kind = \"{belongs}\" only (this is \"{kind}\")"),
        )),
        None => Ok(()),
    };
    if grib2 {
        misplaced(d.codec.as_ref().map(|c| c.span()), "codec", nwp::KIND)?;
        misplaced(
            d.zstd_level.as_ref().map(|c| c.span()),
            "zstd_level",
            nwp::KIND,
        )?;
        let decoder = decoder_choice(ctx, d)?;
        let params = Grib2Params {
            packing: d
                .packing
                .as_ref()
                .map_or(Packing::default(), |c| *c.get_ref()),
            wrap: d.wrap.as_ref().map_or(Wrap::default(), |c| *c.get_ref()),
        };
        Ok((Format::Grib2(params), Some(decoder)))
    } else {
        misplaced(d.packing.as_ref().map(|c| c.span()), "packing", grib2::KIND)?;
        misplaced(d.wrap.as_ref().map(|c| c.span()), "wrap", grib2::KIND)?;
        misplaced(d.decoder.as_ref().map(|c| c.span()), "decoder", grib2::KIND)?;
        Ok((Format::NwpFields, None))
    }
}

/// `[dataset] decoder` (default `grib`), refused when this build lacks it.
fn decoder_choice(ctx: &Ctx, d: &RawDataset) -> Result<Decoder, ScenarioError> {
    let decoder = d
        .decoder
        .as_ref()
        .map_or(Decoder::default(), |c| *c.get_ref());
    if let (Some(span), Err(why)) = (d.decoder.as_ref().map(|c| c.span()), decoder.available()) {
        return Err(ctx.err(span, format!("[dataset] {why}")));
    }
    Ok(decoder)
}

/// `[dataset]` of kind grib2-dir: `root` (required: absolute, or relative to the
/// scenario file's directory), `from = "keys"` (default) or `pattern`,
/// `on_mismatch` and `decoder`. Every key of the generated kinds is refused: the
/// files decide the sizes and the encoding. The coordinates stay empty until the
/// directory is scanned ([`Scenario::with_scan`]).
fn own_files_spec(ctx: &Ctx, d: &RawDataset, source: &Path) -> Result<DatasetSpec, ScenarioError> {
    let generated_only = [
        ("layout", d.layout.as_ref().map(|v| v.span())),
        ("groups", d.groups.as_ref().map(|v| v.span())),
        ("variables", d.variables.as_ref().map(|v| v.span())),
        ("steps", d.steps.as_ref().map(|v| v.span())),
        ("ny", d.ny.as_ref().map(|v| v.span())),
        ("nx", d.nx.as_ref().map(|v| v.span())),
        ("codec", d.codec.as_ref().map(|v| v.span())),
        ("zstd_level", d.zstd_level.as_ref().map(|v| v.span())),
        ("noise_bits", d.noise_bits.as_ref().map(|v| v.span())),
        ("seed", d.seed.as_ref().map(|v| v.span())),
        ("packing", d.packing.as_ref().map(|v| v.span())),
        ("wrap", d.wrap.as_ref().map(|v| v.span())),
    ];
    for (key, span) in generated_only {
        if let Some(span) = span {
            return Err(ctx.err(
                span,
                format!(
                    "[dataset] {key} describes a generated dataset; kind = \"{}\" takes \
                     the sizes, grid and encoding from your files",
                    gribdir::KIND
                ),
            ));
        }
    }
    let Some(root) = &d.root else {
        return Err(ctx.err(
            0..0,
            format!(
                "[dataset] root is missing: kind = \"{}\" reads the directory of GRIB2 \
                 files it names (absolute, or relative to this file's directory)",
                gribdir::KIND
            ),
        ));
    };
    if root.get_ref().is_empty() {
        return Err(ctx.err(root.span(), "[dataset] root is empty"));
    }
    let base = source.parent().unwrap_or(Path::new(""));
    let path = base.join(root.get_ref());
    let path = std::path::absolute(&path).map_err(|e| {
        ctx.err(
            root.span(),
            format!("[dataset] root {}: {e}", path.display()),
        )
    })?;
    let from = match &d.from {
        None => None,
        Some(f) if f.get_ref() == "keys" || f.get_ref() == "pattern" => {
            Some((f.get_ref().as_str(), f.span()))
        }
        Some(f) => {
            return Err(ctx.err(
                f.span(),
                format!(
                    "[dataset] from: `{}` is not one of \"keys\", \"pattern\"",
                    f.get_ref()
                ),
            ))
        }
    };
    let source_kind = match (from, &d.pattern) {
        (None | Some(("keys", _)), None) => gribdir::Source::Keys,
        (Some((_, span)), None) => {
            return Err(ctx.err(
                span,
                "[dataset] from = \"pattern\" needs pattern = \"…{init}_{step}_{var}…\"",
            ))
        }
        (Some(("keys", span)), Some(_)) => {
            return Err(ctx.err(
                span,
                "[dataset] from = \"keys\" reads the messages, so pattern does not apply: \
                 drop one of them",
            ))
        }
        (_, Some(p)) => {
            let pattern = p.get_ref().clone();
            for needed in ["{var}", "{step}"] {
                if !pattern.contains(needed) {
                    return Err(ctx.err(
                        p.span(),
                        format!(
                            "[dataset] pattern must contain {needed} (and may contain \
                             {{init}} and {{level}})"
                        ),
                    ));
                }
            }
            gribdir::Source::Pattern { pattern }
        }
    };
    let scan = gribdir::ScanSpec {
        source: source_kind,
        on_mismatch: d
            .on_mismatch
            .as_ref()
            .map_or(Default::default(), |m| *m.get_ref()),
    };
    let decoder = decoder_choice(ctx, d)?;
    let params = DatasetParams {
        layout: Layout::Files,
        groups: 1,
        variables: 1,
        steps: 1,
        ny: 1,
        nx: 1,
        codec: Codec::None,
        zstd_level: 1,
        noise_bits: 0,
        seed: 0,
        format: Format::Grib2Dir(Box::new(DirFormat::unscanned(path.clone(), scan))),
    };
    Ok(DatasetSpec {
        kind: gribdir::KIND.to_string(),
        params,
        root: path,
        decoder: Some(decoder),
    })
}

/// `[output]`: chunk sizes within the field, zstd level and root.
fn output_spec(
    ctx: &Ctx,
    o: &RawOutput,
    name: &str,
    dataset: &DatasetSpec,
) -> Result<OutputSpec, ScenarioError> {
    let chunk = |v: &Option<Spanned<u32>>, key: &str, full: u32| -> Result<u32, ScenarioError> {
        match v {
            Some(c) if *c.get_ref() == 0 || *c.get_ref() > full => Err(ctx.err(
                c.span(),
                format!("{key} must be 1 to {full} (the field's extent)"),
            )),
            Some(c) => Ok(*c.get_ref()),
            None => Ok(full),
        }
    };
    // A directory of the user's files has its grid only once scanned: until then
    // any extent is taken, and clamped to the grid then (`Scenario::with_scan`).
    let own = matches!(dataset.params.format, Format::Grib2Dir(_));
    let (full_y, full_x) = match own {
        true => (u32::MAX, u32::MAX),
        false => (dataset.params.ny, dataset.params.nx),
    };
    let mut params = OutputParams {
        cy: chunk(&o.cy, "[output] cy", full_y)?,
        cx: chunk(&o.cx, "[output] cx", full_x)?,
        zstd_level: zstd_level(ctx, &o.zstd_level, "[output] zstd_level")?,
        shard: None,
    };
    let root = relative_root(ctx, &o.root, "[output] root", "outputs", name)?;
    if root.starts_with(&dataset.root) || dataset.root.starts_with(&root) {
        let span = o.root.as_ref().map_or(0..0, |r| r.span());
        return Err(ctx.err(
            span,
            "[output] root must not contain or lie inside [dataset] root: it is emptied before every repetition",
        ));
    }
    let layout = registered(ctx, &o.layout, kinds::OUTPUT_LAYOUTS, "[output] layout")?;
    params.shard = shard_shape(ctx, o, &layout, &dataset.params, params)?;
    Ok(OutputSpec {
        layout,
        params,
        root,
    })
}

/// `[output] shard`: given exactly when the layout is sharded, 5 entries along
/// `[init_time, variable, step, y, x]` in chunks, `[1, kv, 1, ky, kx]` with `kv` at
/// most the variables and `ky`, `kx` at most the chunks along y and x; and a shard
/// no larger than [`sizes::MAX_SHARD_BYTES`] encoded.
fn shard_shape(
    ctx: &Ctx,
    o: &RawOutput,
    layout: &str,
    dataset: &DatasetParams,
    chunks: OutputParams,
) -> Result<Option<[u32; 5]>, ScenarioError> {
    let sharded = layout == rechunk_contract::nwp::zarr::SHARDED_LAYOUT;
    let raw = match (&o.shard, sharded) {
        (None, false) => return Ok(None),
        (Some(s), false) => {
            return Err(ctx.err(
                s.span(),
                format!(
                    "[output] shard is the sharded layout's: it needs layout = \"{}\"",
                    rechunk_contract::nwp::zarr::SHARDED_LAYOUT
                ),
            ))
        }
        (None, true) => {
            let span = o.layout.as_ref().map_or(0..0, |l| l.span());
            return Err(ctx.err(
                span,
                "[output] layout = \"sharded\" needs shard = [1, kv, 1, ky, kx]: the shard \
                 shape in chunks along [init_time, variable, step, y, x]",
            ));
        }
        (Some(s), true) => s,
    };
    let entries = raw.get_ref();
    let [g, v, s, y, x] = &entries[..] else {
        return Err(ctx.err(
            raw.span(),
            format!(
                "[output] shard must be 5 integers, the shard shape in chunks along \
                 [init_time, variable, step, y, x]; {} given",
                entries.len()
            ),
        ));
    };
    let own = matches!(dataset.format, Format::Grib2Dir(_));
    let (ncy, ncx, variables) = match own {
        // Checked against the grid and the variables once the directory is scanned.
        true => (u32::MAX, u32::MAX, u32::MAX),
        false => (
            dataset.ny.div_ceil(chunks.cy),
            dataset.nx.div_ceil(chunks.cx),
            dataset.variables,
        ),
    };
    let at_most = |e: &Spanned<u32>, name: &str, max: u32, what: &str| {
        let n = *e.get_ref();
        if n == 0 || n > max {
            Err(ctx.err(
                e.span(),
                format!("[output] shard: the {name} entry must be 1 to {max} ({what})"),
            ))
        } else {
            Ok(n)
        }
    };
    let only_one = |e: &Spanned<u32>, name: &str, why: &str| {
        if *e.get_ref() == 1 {
            Ok(1)
        } else {
            Err(ctx.err(
                e.span(),
                format!("[output] shard: the {name} entry must be 1: {why}"),
            ))
        }
    };
    let shape = [
        only_one(
            g,
            "init_time",
            "a shard spanning groups would need state shared between the groups' \
             reducers, which are independent",
        )?,
        at_most(v, "variable", variables, "the dataset's variables")?,
        only_one(s, "step", "one chunk already holds every step")?,
        at_most(y, "y", ncy, "the chunks along y, ny / cy rounded up")?,
        at_most(x, "x", ncx, "the chunks along x, nx / cx rounded up")?,
    ];
    if own {
        return Ok(Some(shape));
    }
    let mut output = chunks;
    output.shard = Some(shape);
    let layout = rechunk_contract::nwp::zarr::ArrayLayout::new(dataset.clone(), output);
    if let Some(why) = sizes::shard_problem(&layout) {
        return Err(ctx.err(raw.span(), format!("[output] shard: {why}")));
    }
    Ok(Some(shape))
}

/// A name from one of [`crate::kinds`]'s registries (the first when absent).
fn registered(
    ctx: &Ctx,
    value: &Option<Spanned<String>>,
    registry: &'static [kinds::Kind],
    key: &str,
) -> Result<String, ScenarioError> {
    match value {
        None => Ok(registry[0].name.to_string()),
        Some(v) => kinds::find(registry, v.get_ref())
            .map(|k| k.name.to_string())
            .map_err(|m| ctx.err(v.span(), format!("{key}: {m}"))),
    }
}

/// `[run]`: repetitions and warm-up rounds (within [`sizes::MAX_REPETITIONS`]),
/// cache, and the rest with their defaults.
fn run_spec(ctx: &Ctx, r: &RawRun) -> Result<RunSpec, ScenarioError> {
    let rounds = |v: &Option<Spanned<u32>>, key: &str, min: u32, default: u32| match v {
        Some(n) if *n.get_ref() < min => {
            Err(ctx.err(n.span(), format!("[run] {key} must be at least {min}")))
        }
        Some(n) if *n.get_ref() as u64 > sizes::MAX_REPETITIONS => Err(ctx.err(
            n.span(),
            format!("[run] {key} must be at most {}", sizes::MAX_REPETITIONS),
        )),
        Some(n) => Ok(*n.get_ref()),
        None => Ok(default),
    };
    Ok(RunSpec {
        repetitions: rounds(&r.repetitions, "repetitions", 1, 3)?,
        warmup: rounds(&r.warmup, "warmup", 0, 0)?,
        cache: r.cache.unwrap_or(CacheMode::Warm),
        drop_caches: r.drop_caches.unwrap_or(false),
        overlap_groups: r.overlap_groups.unwrap_or(false),
        verify_max_chunks: r.verify_max_chunks.unwrap_or(2048),
        ceilings: r.ceilings.unwrap_or(false),
    })
}

/// Every `[[backend]]` table (a `[sweep]` expanded), each with a budget that lets
/// the workload finish and a label of its own.
fn backend_specs(
    ctx: &Ctx,
    raw: &RawScenario,
    params: &DatasetParams,
    output: OutputParams,
    workload: WorkloadKind,
) -> Result<Vec<BackendSpec>, ScenarioError> {
    if raw.backend.is_empty() {
        return Err(ctx.err(
            ctx.text.len()..ctx.text.len(),
            format!(
                "no [[backend]] table: name at least one of {}",
                backends::names().join(", ")
            ),
        ));
    }
    let tables = match &raw.sweep {
        None => raw.backend.iter().map(|t| (t.clone(), None)).collect(),
        Some(sweep) => expand_sweep(ctx, &raw.backend, sweep)?,
    };
    let mut out: Vec<BackendSpec> = Vec::new();
    for (table, point) in &tables {
        let mut spec = backend_spec(ctx, table)?;
        spec.sweep = point.clone();
        // A directory of the user's files is checked once scanned (`with_scan`).
        let own = matches!(params.format, Format::Grib2Dir(_));
        let problem = match own {
            true => None,
            false => sizes::budget_problem(params, output, workload, spec.limits.bytes_in_flight),
        };
        if let Some(why) = problem {
            let span = table
                .get_ref()
                .iter()
                .find(|(k, _)| k.get_ref() == "bytes_in_flight")
                .map_or(table.span(), |(_, v)| v.span());
            return Err(ctx.err(span, format!("[[backend]] {}: {why}", spec.label)));
        }
        if out.iter().any(|b| b.label == spec.label) {
            return Err(ctx.err(
                table.span(),
                format!(
                    "[[backend]] label `{}` is used twice: give each table its own `label`",
                    spec.label
                ),
            ));
        }
        out.push(spec);
    }
    Ok(out)
}

/// The `[s3]` table; what it leaves out comes from the `AWS_*` environment.
fn s3_config(ctx: &Ctx<'_>, raw: Option<&Spanned<RawS3>>) -> Result<S3Config, ScenarioError> {
    let Some(raw) = raw else {
        return Ok(S3Config::default());
    };
    let r = raw.get_ref();
    if let Some(e) = &r.endpoint {
        let ok = e.get_ref().starts_with("http://") || e.get_ref().starts_with("https://");
        if !ok {
            return Err(ctx.err(e.span(), "[s3] endpoint must be an http:// or https:// URL"));
        }
    }
    if r.access_key_id.is_some() != r.secret_access_key.is_some() {
        return Err(ctx.err(
            raw.span(),
            "[s3] access_key_id and secret_access_key go together: give both or neither",
        ));
    }
    Ok(S3Config {
        endpoint: r.endpoint.as_ref().map(|e| e.get_ref().clone()),
        region: r.region.clone(),
        access_key_id: r.access_key_id.clone(),
        secret_access_key: r.secret_access_key.clone(),
        allow_http: r.allow_http,
    })
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name (1 to 64 of A-Z, a-z, 0-9, - and _)"
        ))
    }
}

/// A directory inside the data directory's `area` (`datasets` or `outputs`):
/// relative, below the area, no `.`, `..` or hidden names (the harness keeps its
/// trash and markers there). The default is `<area>/<name>`. What these paths
/// lead to on disk is checked again when they are used (`crate::safety`).
fn relative_root(
    ctx: &Ctx,
    value: &Option<Spanned<String>>,
    key: &str,
    area: &str,
    name: &str,
) -> Result<PathBuf, ScenarioError> {
    let Some(v) = value else {
        return Ok(Path::new(area).join(name));
    };
    let path = Path::new(v.get_ref());
    let parts: Vec<Component> = path.components().collect();
    let plain = !parts.is_empty()
        && parts.iter().all(|c| match c {
            Component::Normal(n) => !n.to_string_lossy().starts_with('.'),
            _ => false,
        });
    if !plain || parts.len() < 2 || parts[0].as_os_str() != area {
        return Err(ctx.err(
            v.span(),
            format!(
                "{key} `{}` must be a directory inside `{area}/` of the data directory, \
                 such as `{area}/{name}` (relative, without `.`, `..` or hidden names): the \
                 harness deletes and replaces only what it made there",
                v.get_ref()
            ),
        ));
    }
    Ok(path.to_path_buf())
}

/// The shared keys every `[[backend]]` table may have.
const SHARED_KEYS: [&str; 6] = [
    "name",
    "label",
    "cpu_threads",
    "io_in_flight",
    "bytes_in_flight",
    "recording",
];

fn table_label(table: &RawTable) -> Option<String> {
    let get = |key: &str| {
        table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .and_then(|(_, v)| v.get_ref().as_str().map(str::to_string))
    };
    get("label").or_else(|| get("name"))
}

/// One table per swept value for each selected `[[backend]]` table (in place of it),
/// labelled `label-parameter-value`.
#[allow(clippy::type_complexity)]
fn expand_sweep(
    ctx: &Ctx,
    tables: &[Spanned<RawTable>],
    sweep: &Spanned<RawSweep>,
) -> Result<Vec<(Spanned<RawTable>, Option<SweepPoint>)>, ScenarioError> {
    let sw = sweep.get_ref();
    let parameter = sw.parameter.get_ref().clone();
    if sw.values.get_ref().is_empty() {
        return Err(ctx.err(
            sw.values.span(),
            "[sweep] values must list at least one value",
        ));
    }
    if matches!(parameter.as_str(), "name" | "label" | "recording") {
        return Err(ctx.err(
            sw.parameter.span(),
            format!("[sweep] parameter: `{parameter}` cannot be swept; sweep a number such as io_in_flight"),
        ));
    }
    let labels: Vec<Option<String>> = tables.iter().map(|t| table_label(t.get_ref())).collect();
    if let Some(selected) = &sw.backends {
        for l in selected {
            if !labels
                .iter()
                .any(|x| x.as_deref() == Some(l.get_ref().as_str()))
            {
                return Err(ctx.err(
                    l.span(),
                    format!(
                        "[sweep] backends: no [[backend]] has the label `{}`",
                        l.get_ref()
                    ),
                ));
            }
        }
    }
    let mut out = Vec::new();
    for (table, label) in tables.iter().zip(labels) {
        let label = label.unwrap_or_default();
        let chosen = sw
            .backends
            .as_ref()
            .is_none_or(|b| b.iter().any(|l| l.get_ref() == &label));
        if !chosen {
            out.push((table.clone(), None));
            continue;
        }
        for v in sw.values.get_ref() {
            let value = match v.get_ref() {
                toml::Value::Integer(i) => *i as f64,
                toml::Value::Float(f) => *f,
                toml::Value::String(_) => parse_bytes(v.get_ref())
                    .map_err(|m| ctx.err(v.span(), format!("[sweep] values: {m}")))?
                    as f64,
                _ => {
                    return Err(ctx.err(
                        v.span(),
                        "[sweep] values must be numbers (or byte sizes such as \"64 MiB\")",
                    ))
                }
            };
            let shown = match v.get_ref() {
                toml::Value::String(s) => s.replace(' ', ""),
                other => other.to_string().replace('.', "p"),
            };
            let mut t = table.get_ref().clone();
            t.retain(|k, _| k.get_ref() != &parameter && k.get_ref() != "label");
            // Errors about the value point at the value in `values`.
            t.insert(
                Spanned::new(sw.parameter.span(), parameter.clone()),
                Spanned::new(v.span(), v.get_ref().clone()),
            );
            t.insert(
                Spanned::new(table.span(), "label".to_string()),
                Spanned::new(
                    table.span(),
                    toml::Value::String(format!("{label}-{parameter}-{shown}")),
                ),
            );
            out.push((
                Spanned::new(table.span(), t),
                Some(SweepPoint {
                    parameter: parameter.clone(),
                    value,
                    base_label: label.clone(),
                }),
            ));
        }
    }
    Ok(out)
}

fn backend_spec(ctx: &Ctx, table: &Spanned<RawTable>) -> Result<BackendSpec, ScenarioError> {
    let get = |key: &str| table.get_ref().iter().find(|(k, _)| k.get_ref() == key);
    let Some((_, name_value)) = get("name") else {
        return Err(ctx.err(
            table.span(),
            format!(
                "[[backend]] needs `name`, one of {}",
                backends::names().join(", ")
            ),
        ));
    };
    let name = match name_value.get_ref() {
        toml::Value::String(s) => s.clone(),
        _ => return Err(ctx.err(name_value.span(), "[[backend]] name must be a string")),
    };
    let Some(info) = backends::find(&name) else {
        return Err(ctx.err(
            name_value.span(),
            format!(
                "[[backend]] name: unknown backend `{name}`, expected one of {}",
                backends::names().join(", ")
            ),
        ));
    };
    let label = match get("label") {
        Some((_, v)) => match v.get_ref() {
            toml::Value::String(s) => {
                check_name(s).map_err(|m| ctx.err(v.span(), format!("[[backend]] label: {m}")))?;
                s.clone()
            }
            _ => return Err(ctx.err(v.span(), "[[backend]] label must be a string")),
        },
        None => name.clone(),
    };
    let int = |key: &str, default: u64, min: u64, max: u64| -> Result<u64, ScenarioError> {
        match get(key) {
            None => Ok(default),
            Some((_, v)) => match v.get_ref() {
                toml::Value::Integer(i) if *i >= min as i64 && *i as u64 <= max => Ok(*i as u64),
                _ => Err(ctx.err(
                    v.span(),
                    format!("[[backend]] {key} must be an integer from {min} to {max}"),
                )),
            },
        }
    };
    let cpu_threads = int(
        "cpu_threads",
        crate::machine::cores() as u64,
        1,
        sizes::MAX_CPU_THREADS,
    )? as usize;
    let io_in_flight = int("io_in_flight", 64, 1, sizes::MAX_IO_IN_FLIGHT)? as usize;
    let recording = match get("recording") {
        None => Recording::Full,
        Some((_, v)) => match v.get_ref().as_str() {
            Some("full") => Recording::Full,
            Some("counters") => Recording::Counters,
            _ => {
                return Err(ctx.err(
                    v.span(),
                    "[[backend]] recording must be \"full\" or \"counters\"",
                ))
            }
        },
    };
    let bytes_in_flight = match get("bytes_in_flight") {
        None => 256 << 20,
        Some((_, v)) => parse_bytes(v.get_ref())
            .map_err(|m| ctx.err(v.span(), format!("[[backend]] bytes_in_flight: {m}")))?,
    };

    // The backend's own keys, read by its crate's declaration of its options.
    let docs = (info.docs)();
    let mut own = toml::Table::new();
    for (key, value) in table.get_ref() {
        let k = key.get_ref().as_str();
        if SHARED_KEYS.contains(&k) {
            continue;
        }
        if !docs.iter().any(|d| d.key == k) {
            let mut valid: Vec<&str> = SHARED_KEYS.to_vec();
            valid.extend(docs.iter().map(|d| d.key));
            return Err(ctx.err(
                key.span(),
                format!(
                    "[[backend]] {name}: unknown key `{k}`, expected one of {}",
                    valid.join(", ")
                ),
            ));
        }
        own.insert(k.to_string(), value.get_ref().clone());
    }
    let options = (info.parse)(&own).map_err(|fault| {
        let span = table
            .get_ref()
            .iter()
            .find(|(k, _)| k.get_ref() == &fault.key)
            .map_or(table.span(), |(k, v)| {
                if fault.at_value {
                    v.span()
                } else {
                    k.span()
                }
            });
        ctx.err(span, format!("[[backend]] {name}: {}", fault.message))
    })?;
    Ok(BackendSpec {
        label,
        name,
        limits: Limits {
            cpu_threads,
            io_in_flight,
            bytes_in_flight,
        },
        options,
        recording,
        sweep: None,
    })
}

/// A byte count: an integer, or a string like "256 MiB" (B, KiB, MiB, GiB, KB, MB, GB).
fn parse_bytes(value: &toml::Value) -> Result<u64, String> {
    const HELP: &str =
        "expected an integer or a size like \"256 MiB\" (B, KiB, MiB, GiB, KB, MB, GB)";
    match value {
        toml::Value::Integer(i) if *i > 0 => Ok(*i as u64),
        toml::Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let n: u64 = num.parse().map_err(|_| HELP.to_string())?;
            let mult: u64 = match unit.trim() {
                "" | "B" => 1,
                "KiB" => 1 << 10,
                "MiB" => 1 << 20,
                "GiB" => 1 << 30,
                "KB" => 1_000,
                "MB" => 1_000_000,
                "GB" => 1_000_000_000,
                _ => return Err(HELP.to_string()),
            };
            n.checked_mul(mult)
                .filter(|&b| b > 0)
                .ok_or_else(|| HELP.to_string())
        }
        _ => Err(HELP.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stores::StoreUrl;

    const GOOD: &str = r#"
[dataset]
groups = 1
variables = 2
steps = 3
ny = 8
nx = 8

[[backend]]
name = "sequential"
"#;

    /// Every scenario shipped in `scenarios/` is valid; s3-cloud sweeps
    /// io_in_flight up to 1024 on S3 stores.
    #[test]
    fn every_shipped_scenario_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                n += 1;
                if s.name == "s3-cloud" {
                    let points: Vec<usize> = s
                        .backends
                        .iter()
                        .filter(|b| b.sweep.is_some())
                        .map(|b| b.limits.io_in_flight)
                        .collect();
                    assert_eq!(points, [16, 64, 256, 1024]);
                }
            }
        }
        assert!(n >= 10, "{n} scenarios");
    }

    fn parse_err(text: &str) -> String {
        parse(text, "s.toml", "s", Path::new("s.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn object_store_urls_and_the_s3_table_are_checked_and_secrets_never_serialized() {
        let os = GOOD.replace("\"sequential\"", "\"object-store\"");
        let e = parse_err(&format!("{os}input = \"gs://bucket/x\"\n"));
        assert!(e.starts_with("s.toml:11:9:"), "{e}");
        assert!(
            e.contains("object-store: input: `gs://bucket/x` is not a store URL"),
            "{e}"
        );
        let e = parse_err(&format!("{os}output = \"s3://\"\n"));
        assert!(e.contains("names no bucket"), "{e}");
        let e = parse_err(&format!("{os}input = 3\n"));
        assert!(e.contains("input must be a store URL"), "{e}");

        let e = parse_err(&format!("{GOOD}[s3]\nendpoint = \"127.0.0.1:3900\"\n"));
        assert!(
            e.starts_with("s.toml:12:12:") && e.contains("http://"),
            "{e}"
        );
        let e = parse_err(&format!("{GOOD}[s3]\naccess_key_id = \"GK1\"\n"));
        assert!(e.contains("go together"), "{e}");
        let e = parse_err(&format!("{GOOD}[s3]\npassword = \"x\"\n"));
        assert!(e.contains("unknown field `password`"), "{e}");

        let s = parse(
            &format!(
                "{os}input = \"s3://b/datasets/x\"\noutput = \"memory://\"\n\
                 [s3]\nendpoint = \"http://127.0.0.1:3900\"\nregion = \"garage\"\n\
                 access_key_id = \"GKkeyid\"\nsecret_access_key = \"topsecret\"\n"
            ),
            "s",
            "s",
            Path::new("s"),
        )
        .unwrap();
        assert_eq!(s.s3.secret_access_key.as_deref(), Some("topsecret"));
        let b = crate::backends::AnyBackend::build(&s.backends[0], &s.s3).unwrap();
        assert_eq!(
            b.s3_stores(),
            (Some(StoreUrl::parse("s3://b/datasets/x").unwrap()), None)
        );
        let written = serde_json::to_string(&s).unwrap();
        assert!(written.contains("http://127.0.0.1:3900"), "{written}");
        assert!(
            !written.contains("topsecret") && !written.contains("GKkeyid"),
            "{written}"
        );
        assert!(!format!("{s:?}").contains("topsecret"));
    }

    #[test]
    fn defaults_fill_in() {
        let s = parse(GOOD, "s.toml", "quick", Path::new("s.toml")).unwrap();
        assert_eq!(s.name, "quick");
        assert_eq!(s.dataset.root, PathBuf::from("datasets/quick"));
        assert_eq!(s.output.root, PathBuf::from("outputs/quick"));
        assert_eq!(s.output.params.cy, 8);
        assert_eq!(s.run.repetitions, 3);
        assert_eq!(s.backends[0].label, "sequential");
        assert_eq!(s.backends[0].limits.bytes_in_flight, 256 << 20);
    }

    #[test]
    fn unknown_key_names_line_column_and_choices() {
        let text = GOOD.replace("nx = 8\n", "nx = 8\ncolour = 3\n");
        let e = parse_err(&text);
        assert!(e.starts_with("s.toml:8:1:"), "{e}");
        assert!(e.contains("unknown field `colour`"), "{e}");
        assert!(e.contains("groups"), "{e}");
    }

    #[test]
    fn bad_choice_lists_the_valid_ones() {
        let e = parse_err(&format!("{GOOD}\n[run]\ncache = \"hot\"\n"));
        assert!(e.starts_with("s.toml:13:9:"), "{e}");
        assert!(e.contains("`warm`") && e.contains("`cold`"), "{e}");
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let e = parse_err(&GOOD.replace("steps = 3", "steps = 0"));
        assert!(
            e.starts_with("s.toml:5:9: [dataset] steps must be at least 1"),
            "{e}"
        );
        let e = parse_err(&format!("{GOOD}\n[output]\ncy = 9\n"));
        assert!(
            e.starts_with("s.toml:13:6: [output] cy must be 1 to 8"),
            "{e}"
        );
    }

    #[test]
    fn unknown_backend_and_backend_key() {
        let e = parse_err(&GOOD.replace("\"sequential\"", "\"warp-drive\""));
        assert!(e.starts_with("s.toml:10:8:"), "{e}");
        assert!(
            e.contains("unknown backend `warp-drive`, expected one of sequential"),
            "{e}"
        );
        let e = parse_err(&format!("{GOOD}queue_depth = 4\n"));
        assert!(e.starts_with("s.toml:11:1:"), "{e}");
        assert!(e.contains("unknown key `queue_depth`"), "{e}");
        let e = parse_err(&format!("{GOOD}bytes_in_flight = \"12 parsecs\"\n"));
        assert!(
            e.contains("bytes_in_flight: expected an integer or a size"),
            "{e}"
        );
        let s = parse(
            &format!("{GOOD}bytes_in_flight = \"3 MiB\"\n"),
            "s",
            "s",
            Path::new("s"),
        );
        assert_eq!(s.unwrap().backends[0].limits.bytes_in_flight, 3 << 20);
    }

    #[test]
    fn paths_outside_the_data_directory_are_refused() {
        for root in [
            "../../etc",
            "/etc",
            "a/../../b",
            "",
            "datasets",
            "./datasets/x",
            "datasets/../outputs/x",
            "outputs/x",
            "datasets/.trash",
            "x/y",
        ] {
            let text = GOOD.replace("nx = 8\n", &format!("nx = 8\nroot = \"{root}\"\n"));
            let e = parse_err(&text);
            assert!(e.starts_with("s.toml:8:8:"), "{root}: {e}");
            assert!(e.contains("must be a directory inside `datasets/`"), "{e}");
        }
        for root in [
            "datasets/s/out",
            "./datasets",
            "outputs",
            "outputs/.trash",
            "results",
        ] {
            let e = parse_err(&format!("{GOOD}\n[output]\nroot = \"{root}\"\n"));
            assert!(
                e.contains("must be a directory inside `outputs/`"),
                "{root}: {e}"
            );
        }
    }

    #[test]
    fn backend_options_are_checked_against_the_backends_own_table() {
        let tokio = GOOD.replace("\"sequential\"", "\"tokio-rayon\"");
        let e = parse_err(&format!("{tokio}bridge = \"telepathy\"\n"));
        assert!(e.starts_with("s.toml:11:10:"), "{e}");
        assert!(
            e.contains("tokio-rayon: bridge must be one of \"oneshot\", \"tokio-rayon\""),
            "{e}"
        );
        let e = parse_err(&format!("{tokio}tokio_workers = 0\n"));
        assert!(
            e.contains("tokio_workers must be an integer from 1 to 64"),
            "{e}"
        );
        let e = parse_err(&format!("{GOOD}bridge = \"oneshot\"\n"));
        assert!(e.contains("sequential: unknown key `bridge`"), "{e}");
        let s = parse(
            &format!("{tokio}bridge = \"tokio-rayon\"\nio = \"std-blocking\"\ncpu_in_flight = 7\n"),
            "s",
            "s",
            Path::new("s"),
        )
        .unwrap();
        let b = &s.backends[0];
        assert_eq!(b.options["bridge"], "tokio-rayon");
        assert_eq!(b.options["cpu_in_flight"], 7);
        assert!(crate::backends::AnyBackend::build(b, &s.s3).is_ok());
    }

    #[test]
    fn an_option_that_needs_another_names_both_and_its_line() {
        let uring = GOOD.replace("\"sequential\"", "\"uring-workers\"");
        let e = parse_err(&format!("{uring}direct = true\nlinked = true\n"));
        assert!(e.starts_with("s.toml:12:1:"), "{e}");
        assert!(
            e.contains("uring-workers: linked = true needs fixed_files = true"),
            "{e}"
        );
        let ok = format!("{uring}linked = true\nfixed_files = true\nworkers = 3\n");
        let s = parse(&ok, "s", "s", Path::new("s")).unwrap();
        assert!(crate::backends::AnyBackend::build(&s.backends[0], &s.s3).is_ok());
    }

    #[test]
    fn workload_kind_is_read_with_its_choices() {
        let s = parse(
            &format!("[workload]\nkind = \"read-only\"\n{GOOD}"),
            "s",
            "s",
            Path::new("s"),
        )
        .unwrap();
        assert_eq!(s.workload, WorkloadKind::ReadOnly);
        let e = parse_err(&format!("[workload]\nkind = \"write-only\"\n{GOOD}"));
        assert!(e.starts_with("s.toml:2:8:"), "{e}");
        assert!(e.contains("`rechunk`") && e.contains("`read-only`"), "{e}");
    }

    #[test]
    fn grib2_keys_belong_to_the_grib2_kind_and_are_checked() {
        let g = GOOD.replace("nx = 8\n", "nx = 8\nkind = \"grib2\"\n");
        let s = parse(&g, "s", "s", Path::new("s")).unwrap();
        assert_eq!(s.dataset.kind, "grib2");
        assert_eq!(
            s.dataset.params.format,
            Format::Grib2(Grib2Params {
                packing: Packing::Ccsds,
                wrap: Wrap::None
            })
        );
        assert_eq!(s.dataset.decoder, Some(Decoder::Grib));
        let s = parse(
            &g.replace(
                "nx = 8\n",
                "nx = 8\npacking = \"simple\"\nwrap = \"bz2\"\ndecoder = \"gribberish\"\n",
            ),
            "s",
            "s",
            Path::new("s"),
        )
        .unwrap();
        assert_eq!(s.dataset.decoder, Some(Decoder::Gribberish));
        assert_eq!(s.dataset.params.extension(), "grib2.bz2");
        // A key of the other kind names itself, its kind and its line.
        let e = parse_err(&g.replace("nx = 8\n", "nx = 8\ncodec = \"lz4\"\n"));
        assert!(e.starts_with("s.toml:8:9:"), "{e}");
        assert!(
            e.contains("[dataset] codec applies to kind = \"nwp-fields\" only"),
            "{e}"
        );
        let e = parse_err(&GOOD.replace("nx = 8\n", "nx = 8\nwrap = \"bz2\"\n"));
        assert!(
            e.contains("[dataset] wrap applies to kind = \"grib2\" only"),
            "{e}"
        );
        // Bad values list the choices.
        let e = parse_err(&g.replace("nx = 8\n", "nx = 8\npacking = \"jpeg\"\n"));
        assert!(e.contains("packing") && e.contains("ccsds"), "{e}");
        // What GRIB2 cannot encode is refused up front.
        let e = parse_err(&g.replace("variables = 2", "variables = 70000"));
        assert!(e.contains("at most 65280 variables"), "{e}");
        // The libaec decoder is a cargo feature.
        let libaec = parse(
            &g.replace("nx = 8\n", "nx = 8\ndecoder = \"libaec\"\n"),
            "s.toml",
            "s",
            Path::new("s.toml"),
        );
        match cfg!(feature = "libaec") {
            true => assert!(libaec.is_ok()),
            false => assert!(libaec
                .unwrap_err()
                .to_string()
                .contains("--features libaec")),
        }
    }

    #[test]
    fn dataset_kinds_and_output_layouts_come_from_their_registries() {
        let s = parse(GOOD, "s", "s", Path::new("s")).unwrap();
        assert_eq!(
            (s.dataset.kind.as_str(), s.output.layout.as_str()),
            ("nwp-fields", "chunked")
        );
        let e = parse_err(&GOOD.replace("nx = 8\n", "nx = 8\nkind = \"grib3\"\n"));
        assert!(e.starts_with("s.toml:8:8:"), "{e}");
        assert!(
            e.contains("[dataset] kind: `grib3` is not one of \"nwp-fields\""),
            "{e}"
        );
        let e = parse_err(&format!("{GOOD}\n[output]\nlayout = \"tiled\"\n"));
        assert!(
            e.contains("[output] layout: `tiled` is not one of \"chunked\", \"sharded\""),
            "{e}"
        );
    }

    #[test]
    fn the_shard_shape_is_checked_entry_by_entry() {
        // 8 × 8 fields in 3 × 4 chunks: 3 chunks along y, 2 along x; 2 variables.
        let sharded = |shard: &str| {
            format!("{GOOD}\n[output]\ncy = 3\ncx = 4\nlayout = \"sharded\"\nshard = {shard}\n")
        };
        let s = parse(&sharded("[1, 2, 1, 3, 1]"), "s", "s", Path::new("s")).unwrap();
        assert_eq!(s.output.layout, "sharded");
        assert_eq!(s.output.params.shard, Some([1, 2, 1, 3, 1]));
        // Recorded in the results, and absent from (and defaulted in) chunked ones.
        let json = serde_json::to_value(&s.output).unwrap();
        assert_eq!(json["params"]["shard"], serde_json::json!([1, 2, 1, 3, 1]));
        let chunked = parse(GOOD, "s", "s", Path::new("s")).unwrap();
        let mut json = serde_json::to_value(&chunked.output).unwrap();
        assert!(json["params"].get("shard").is_none());
        json["params"].as_object_mut().unwrap().remove("shard");
        let back: OutputSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back.params.shard, None);

        for (shard, at, says) in [
            ("[1, 2, 1, 3]", "16:9", "must be 5 integers"),
            (
                "[2, 1, 1, 1, 1]",
                "16:10",
                "the init_time entry must be 1: a shard spanning groups",
            ),
            (
                "[1, 3, 1, 1, 1]",
                "16:13",
                "the variable entry must be 1 to 2 (the dataset's variables)",
            ),
            (
                "[1, 0, 1, 1, 1]",
                "16:13",
                "the variable entry must be 1 to 2",
            ),
            (
                "[1, 1, 3, 1, 1]",
                "16:16",
                "the step entry must be 1: one chunk already holds every step",
            ),
            (
                "[1, 1, 1, 4, 1]",
                "16:19",
                "the y entry must be 1 to 3 (the chunks along y",
            ),
            (
                "[1, 1, 1, 1, 3]",
                "16:22",
                "the x entry must be 1 to 2 (the chunks along x",
            ),
        ] {
            let e = parse_err(&sharded(shard));
            assert!(
                e.starts_with(&format!("s.toml:{at}: [output] shard")),
                "{shard}: {e}"
            );
            assert!(e.contains(says), "{shard}: {e}");
        }
        let e = parse_err(&format!("{GOOD}\n[output]\nshard = [1, 1, 1, 1, 1]\n"));
        assert!(e.starts_with("s.toml:13:9:"), "{e}");
        assert!(e.contains("it needs layout = \"sharded\""), "{e}");
        let e = parse_err(&format!("{GOOD}\n[output]\nlayout = \"sharded\"\n"));
        assert!(e.starts_with("s.toml:13:10:"), "{e}");
        assert!(e.contains("needs shard = [1, kv, 1, ky, kx]"), "{e}");
    }

    #[test]
    fn duplicate_labels_are_refused() {
        let e = parse_err(&format!("{GOOD}\n[[backend]]\nname = \"sequential\"\n"));
        assert!(e.contains("label `sequential` is used twice"), "{e}");
    }
}
