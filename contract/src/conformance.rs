//! The conformance suite: public checks that any backend's tests call.
//!
//! Each check builds a small real dataset in a temporary directory, runs the backend
//! on it with the NWP workload, and panics with a message saying what was wrong.
//! Checks that need a capability the backend lacks return [`Skip`] saying why.
//!
//! The reference output is computed from the closed form of the values and the
//! workload's own chunk encoding, not from another backend's run, so "identical to
//! `sequential`" holds for every backend that passes, `sequential` included.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Cancel, RunError, RunOutcome};
use crate::grib2::{Decoder, Grib2Params, Packing, Wrap};
use crate::job::{Job, Limits};
use crate::nwp::generate::generate;
use crate::nwp::workload::NwpWorkload;
use crate::nwp::zarr::{ArrayLayout, OutputParams};
use crate::nwp::{Codec, DatasetParams, Format, Layout};
use crate::output::is_temp_name;
use crate::recorder::{Counters, Forward, Recorder, Stage};
use crate::Workload as _;

/// The shard shape of [`Fixture::sharded`]: 2 variables × 2 × 2 chunks.
pub const SHARD: [u32; 5] = [1, 2, 1, 2, 2];

/// A check that did not apply to this backend, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

/// What a check returns: passed, or skipped and why (failures panic).
pub type CheckResult = Result<(), Skip>;

/// A small dataset on disk plus an empty output directory.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// The dataset generated.
    pub params: DatasetParams,
    /// The output's chunking and compression.
    pub output: OutputParams,
    /// Where the dataset is (inside the fixture's temporary directory).
    pub input_root: PathBuf,
    /// The output directory, empty until a backend writes into it.
    pub output_root: PathBuf,
}

impl Fixture {
    /// A tiny dataset whose chunks need padding in both y and x.
    pub fn tiny(layout: Layout, codec: Codec) -> Fixture {
        Self::with_shape(layout, codec, 2, 3, 4)
    }

    /// A dataset of `groups × variables × steps` fields of 10×9 values.
    pub fn with_shape(
        layout: Layout,
        codec: Codec,
        groups: u32,
        variables: u32,
        steps: u32,
    ) -> Fixture {
        Self::with_format(layout, codec, Format::NwpFields, (groups, variables, steps))
    }

    /// [`Fixture::tiny`]'s shape as nwp-grib2 messages packed and wrapped as `grib2`.
    pub fn grib2(layout: Layout, grib2: Grib2Params) -> Fixture {
        Self::with_format(layout, Codec::Zstd, Format::Grib2(grib2), (2, 3, 4))
    }

    /// A dataset of (groups, variables, steps) fields of 10×9 values in `format`
    /// (`codec` is the nwp-fields messages' codec).
    pub fn with_format(
        layout: Layout,
        codec: Codec,
        format: Format,
        (groups, variables, steps): (u32, u32, u32),
    ) -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let params = DatasetParams {
            layout,
            groups,
            variables,
            steps,
            ny: 10,
            nx: 9,
            codec,
            zstd_level: 3,
            noise_bits: 4,
            seed: 20261125,
            format,
        };
        let input_root = dir.path().join("in");
        let output_root = dir.path().join("out");
        fs::create_dir_all(&input_root).unwrap();
        fs::create_dir_all(&output_root).unwrap();
        generate(&params, &input_root, &|_, _| {}).expect("the fixture dataset is written");
        Fixture {
            _dir: dir,
            params,
            output: OutputParams {
                cy: 4,
                cx: 5,
                zstd_level: 1,
                shard: None,
            },
            input_root,
            output_root,
        }
    }

    /// The same fixture writing the sharded layout with [`SHARD`]: 10 × 9 fields in
    /// 4 × 5 chunks are a 3 × 2 chunk grid, so shards of 2 × 2 chunks reach past it
    /// along y, and shards of 2 variables past the last variable when there is an
    /// odd number of them.
    pub fn sharded(mut self) -> Fixture {
        self.output.shard = Some(SHARD);
        self
    }

    /// The NWP workload that turns this dataset into its output.
    pub fn workload(&self) -> NwpWorkload {
        NwpWorkload::new(self.params.clone(), self.output)
    }

    /// The job over the whole dataset, with `limits` and groups one after another.
    pub fn job(&self, limits: Limits) -> Job {
        Job {
            groups: self
                .params
                .groups_at(&self.input_root)
                .expect("fixture index"),
            input_root: self.input_root.clone(),
            output_root: self.output_root.clone(),
            limits,
            overlap_groups: false,
            own_outputs: None,
        }
    }

    /// Generous limits that never bind on a fixture.
    pub fn roomy_limits() -> Limits {
        Limits {
            cpu_threads: 2,
            io_in_flight: 16,
            bytes_in_flight: 64 << 20,
        }
    }

    /// Every file under the output root, by relative key.
    pub fn output_files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        walk(&self.output_root, &self.output_root, &mut out);
        out
    }

    /// Path of the input that holds (g, v, s).
    pub fn input_file(&self, g: u32, v: u32, s: u32) -> PathBuf {
        match self.params.layout {
            Layout::Files => self.input_root.join(self.params.message_path(g, v, s)),
            Layout::Container => self.input_root.join(self.params.container_path(g)),
        }
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            walk(root, &path, out);
        } else {
            let key = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(key, fs::read(&path).unwrap());
        }
    }
}

fn counters() -> Arc<dyn Recorder> {
    Arc::new(Counters::new())
}

fn supports(backend: &impl Backend, layout: Layout) -> CheckResult {
    if layout == Layout::Container && !backend.capabilities().byte_ranges {
        return Err(Skip(format!(
            "{} does not read byte ranges (capabilities.byte_ranges = false)",
            backend.name()
        )));
    }
    Ok(())
}

/// What the harness does around a repetition: the backend's untimed
/// [`Backend::prepare`], the run, and its untimed [`Backend::finish`] (called whether
/// the run succeeded or not, so that what a failed run left is where the checks look).
/// The run's error comes first.
pub fn run_staged<B: Backend, W: crate::Workload>(
    backend: &B,
    job: &Arc<Job>,
    workload: &Arc<W>,
    recorder: &Arc<dyn Recorder>,
    cancel: &Cancel,
) -> Result<RunOutcome, RunError> {
    backend.prepare(job)?;
    let r = backend.run(job, workload, recorder, cancel);
    let f = backend.finish(job);
    let outcome = r?;
    f?;
    Ok(outcome)
}

/// The exact bytes a correct run writes: zarr.json and every chunk (or shard).
pub fn reference_output(fx: &Fixture) -> BTreeMap<String, Vec<u8>> {
    let layout = ArrayLayout::new(fx.params.clone(), fx.output);
    let mut out = BTreeMap::new();
    out.insert("zarr.json".to_string(), layout.zarr_json().into_bytes());
    let (nv, ny, nx) = layout.object_grid();
    for g in 0..fx.params.groups {
        for v in 0..nv {
            for iy in 0..ny {
                for ix in 0..nx {
                    let bytes = match layout.shard() {
                        None => layout.encode_chunk(&layout.expected_chunk(g, v, iy, ix)),
                        Some(_) => layout.encode_shard(layout.expected_shard(g, v, iy, ix)),
                    };
                    out.insert(ArrayLayout::chunk_key(g, v, iy, ix), bytes.unwrap());
                }
            }
        }
    }
    out
}

/// Output is byte-identical to the reference for this layout and codec.
pub fn check_output_identical(backend: &impl Backend, layout: Layout, codec: Codec) -> CheckResult {
    supports(backend, layout)?;
    let fx = Fixture::tiny(layout, codec);
    output_identical(
        backend,
        &fx,
        fx.workload(),
        &format!("{layout:?}/{codec:?}"),
    );
    Ok(())
}

/// [`check_output_identical`] with the sharded output layout ([`Fixture::sharded`]).
pub fn check_sharded_output_identical(
    backend: &impl Backend,
    layout: Layout,
    codec: Codec,
) -> CheckResult {
    supports(backend, layout)?;
    let fx = Fixture::tiny(layout, codec).sharded();
    output_identical(
        backend,
        &fx,
        fx.workload(),
        &format!("{layout:?}/{codec:?}, sharded output"),
    );
    Ok(())
}
/// Output is byte-identical to the reference for nwp-grib2 inputs in this layout,
/// packing and wrap, decoded by `decoder` (skipped if this build lacks it).
pub fn check_grib2_output_identical(
    backend: &impl Backend,
    layout: Layout,
    grib2: Grib2Params,
    decoder: Decoder,
) -> CheckResult {
    supports(backend, layout)?;
    decoder.available().map_err(Skip)?;
    let fx = Fixture::grib2(layout, grib2);
    let what = format!(
        "{layout:?}/grib2 {} {} by {}",
        grib2.packing.name(),
        grib2.wrap.name(),
        decoder.name()
    );
    output_identical(backend, &fx, fx.workload().with_decoder(decoder), &what);
    Ok(())
}

fn output_identical(backend: &impl Backend, fx: &Fixture, workload: NwpWorkload, what: &str) {
    let outcome = run_staged(
        backend,
        &Arc::new(fx.job(Fixture::roomy_limits())),
        &Arc::new(workload),
        &counters(),
        &Cancel::new(),
    )
    .unwrap_or_else(|e| panic!("{} on {what} failed: {e}", backend.name()));
    let expected = reference_output(fx);
    let actual = fx.output_files();
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} on {what}: missing outputs {missing:?}",
        backend.name()
    );
    assert!(
        extra.is_empty(),
        "{} on {what}: unexpected outputs {extra:?}",
        backend.name()
    );
    for (key, bytes) in &expected {
        assert!(
            &actual[key] == bytes,
            "{} on {what}: {key} differs from the reference",
            backend.name()
        );
    }
    assert_eq!(outcome.inputs, fx.params.messages(), "RunOutcome.inputs");
    assert_eq!(outcome.outputs, expected.len() as u64, "RunOutcome.outputs");
}

/// The GRIB2 inputs every backend is checked on: each packing and wrap, across
/// the decoders.
pub const GRIB2_CASES: [(Packing, Wrap, Decoder); 4] = [
    (Packing::Ccsds, Wrap::None, Decoder::Grib),
    (Packing::Ccsds, Wrap::Bz2, Decoder::Gribberish),
    (Packing::Simple, Wrap::None, Decoder::Gribberish),
    (Packing::Ccsds, Wrap::None, Decoder::Libaec),
];

/// [`check_output_identical`] for every layout and codec the backend supports, and
/// [`check_grib2_output_identical`] for [`GRIB2_CASES`].
pub fn check_all_layouts_and_codecs(backend: &impl Backend) -> Vec<Skip> {
    let mut skipped = Vec::new();
    for layout in [Layout::Files, Layout::Container] {
        for codec in Codec::ALL {
            if let Err(skip) = check_output_identical(backend, layout, codec) {
                skipped.push(skip);
            }
        }
        for (packing, wrap, decoder) in GRIB2_CASES {
            let grib2 = Grib2Params { packing, wrap };
            if let Err(skip) = check_grib2_output_identical(backend, layout, grib2, decoder) {
                // A decoder missing from this build is not the backend's to skip.
                if decoder.available().is_ok() {
                    skipped.push(skip);
                }
            }
        }
    }
    skipped
}

/// Never more IO or bytes in flight than configured, every input read once, every
/// output written once, and everything reserved given back. Runs a few limit
/// settings, the tightest being the smallest budget with which the job can finish.
pub fn check_limits(backend: &impl Backend, layout: Layout) -> CheckResult {
    limits_hold(backend, Fixture::with_shape(layout, Codec::Zstd, 2, 5, 6))
}

/// [`check_limits`] for the fixture `fx` (chunked or sharded).
fn limits_hold(backend: &impl Backend, fx: Fixture) -> CheckResult {
    supports(backend, fx.params.layout)?;
    let workload = Arc::new(fx.workload());
    let tight = workload.min_bytes_in_flight();
    for limits in [
        Limits {
            cpu_threads: 1,
            io_in_flight: 1,
            bytes_in_flight: tight,
        },
        Limits {
            cpu_threads: 2,
            io_in_flight: 3,
            bytes_in_flight: tight * 2,
        },
        Fixture::roomy_limits(),
    ] {
        fs::remove_dir_all(&fx.output_root).unwrap();
        fs::create_dir_all(&fx.output_root).unwrap();
        let counters = Arc::new(Counters::new());
        let held = Arc::new(std::sync::Mutex::new(Vec::new()));
        let h = held.clone();
        let recorder = tap(&counters, move |stage, c: &Counters| {
            if stage == Stage::Group {
                h.lock().unwrap().push(c.snapshot().bytes_in_flight_now);
            }
        });
        let job = Arc::new(fx.job(limits));
        run_staged(backend, &job, &workload, &recorder, &Cancel::new())
            .unwrap_or_else(|e| panic!("{} with {limits:?} failed: {e}", backend.name()));
        let c = counters.snapshot();
        let name = backend.name();
        // Without overlapping groups, a finished group has given back every byte:
        // a reservation kept past its group is a leak that a longer run would stall on.
        let held = held.lock().unwrap().clone();
        assert!(
            held.iter().all(|&b| b == 0),
            "{name} with {limits:?}: bytes still reserved when each group ended: {held:?}"
        );
        assert!(
            c.max_io_in_flight <= limits.io_in_flight as u64,
            "{name}: {} IO operations in flight, limit {}",
            c.max_io_in_flight,
            limits.io_in_flight
        );
        assert!(
            c.max_bytes_in_flight <= limits.bytes_in_flight,
            "{name}: {} bytes in flight, limit {}",
            c.max_bytes_in_flight,
            limits.bytes_in_flight
        );
        assert!(
            c.max_bytes_in_flight > 0,
            "{name}: reported no byte reservations"
        );
        assert_eq!(c.reads, job.input_count() as u64, "{name}: reads != inputs");
        assert_eq!(
            c.writes,
            workload_outputs(&fx, &job),
            "{name}: writes != outputs"
        );
        assert_eq!(
            c.io_in_flight_now, 0,
            "{name}: IO still in flight after the run"
        );
        assert_eq!(
            c.bytes_in_flight_now, 0,
            "{name}: bytes still reserved after the run"
        );
        for stage in [Stage::Read, Stage::Decode, Stage::Reduce, Stage::Input] {
            assert_eq!(
                c.items[stage.name()],
                fx.params.messages(),
                "{name}: {stage:?} items"
            );
        }
        let chunks = workload_outputs(&fx, &job) - 1;
        assert_eq!(c.items["encode"], chunks, "{name}: encode items");
        assert_eq!(c.items["write"], chunks + 1, "{name}: write items");
        assert_eq!(
            c.items["group"], fx.params.groups as u64,
            "{name}: group items"
        );
    }
    Ok(())
}

fn workload_outputs(fx: &Fixture, job: &Job) -> u64 {
    use crate::workload::Workload;
    fx.workload().expected_outputs(job)
}

/// How an input is damaged by [`check_bad_input`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// One payload byte flipped.
    Corrupt,
    /// The file cut short (for a container, inside the damaged message).
    Truncated,
    /// The file removed.
    Missing,
    /// The file grown past the largest valid input (whole-file layouts only: a
    /// container's ranges do not change when it grows).
    Oversized,
    /// The file replaced by a FIFO that no writer ever opens: an `open(2)` for
    /// reading without `O_NONBLOCK` waits for ever (see [`crate::input`]).
    Fifo,
    /// The file replaced by a symlink to `/dev/zero`: a read without a bound never
    /// ends and takes all memory.
    DevZero,
}

/// How long a run on a damaged input may take before [`check_bad_input`] says it
/// hung (blocked opening a FIFO, say) instead of hanging the test.
pub const BAD_INPUT_TIMEOUT: Duration = Duration::from_secs(20);

/// How far the process's resident memory may grow while a run on a damaged input
/// goes on before [`check_bad_input`] aborts the process: a backend reading
/// `/dev/zero` without a bound would otherwise take all the machine's memory (and
/// whatever else runs there) before the timeout.
pub const BAD_INPUT_MEMORY: u64 = 1 << 30;

/// A damaged input (group 1, variable 1, step 2) fails the run with an error naming
/// that file, within [`BAD_INPUT_TIMEOUT`], and leaves no complete-looking chunk of
/// the damaged variable and no temporary file behind.
pub fn check_bad_input(backend: &impl Backend, layout: Layout, damage: Damage) -> CheckResult {
    bad_input(backend, Fixture::tiny(layout, Codec::Zstd), damage)
}

/// [`check_bad_input`] for the fixture `fx` (chunked or sharded).
fn bad_input(backend: &impl Backend, fx: Fixture, damage: Damage) -> CheckResult {
    supports(backend, fx.params.layout)?;
    let job = Arc::new(fx.job(Fixture::roomy_limits()));
    let (g, v, s) = (1, 1, 2);
    let file = fx.input_file(g, v, s);
    let input = &job.groups[g as usize].inputs[fx.params.item_index(v, s)];
    let (start, end) = match input.range {
        Some(r) => (r.offset as usize, (r.offset + r.len) as usize),
        None => (0, fs::metadata(&file).unwrap().len() as usize),
    };
    match damage {
        Damage::Corrupt => {
            let mut bytes = fs::read(&file).unwrap();
            // A byte in the middle of the payload.
            let at = start + crate::nwp::message::HEADER_LEN + (end - start - 40) / 2;
            bytes[at] ^= 0x5A;
            fs::write(&file, bytes).unwrap();
        }
        Damage::Truncated => {
            let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
            f.set_len((end - 3) as u64).unwrap();
        }
        Damage::Missing => fs::remove_file(&file).unwrap(),
        Damage::Oversized => {
            assert!(input.range.is_none(), "Oversized damages whole files only");
            let index = fx.params.item_index(v, s);
            let max = fx.workload().cost(&job.groups[g as usize], index).read;
            // Past the largest valid size by more than an O_DIRECT block, not aligned.
            let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
            f.set_len(max + 2 * 4096 + 123).unwrap();
        }
        Damage::Fifo => {
            fs::remove_file(&file).unwrap();
            mkfifo(&file);
        }
        Damage::DevZero => {
            fs::remove_file(&file).unwrap();
            std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
        }
    }
    let err = run_bounded(backend, &job, &Arc::new(fx.workload()), &file, damage)
        .err()
        .unwrap_or_else(|| panic!("{} succeeded on a {damage:?} input", backend.name()));
    assert_failed_cleanly(backend, &fx, &file, (g, v), &err, &format!("{damage:?}"));
    Ok(())
}

/// `err` is an input error naming `file`, and no chunk of variable (g, v) nor any
/// temporary file was left.
fn assert_failed_cleanly(
    backend: &impl Backend,
    fx: &Fixture,
    file: &Path,
    (g, v): (u32, u32),
    err: &RunError,
    damage: &str,
) {
    let shown = err.to_string();
    let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        matches!(err, RunError::Input { .. }) && shown.contains(&file_name),
        "{}: a {damage} input gave `{shown}`, which does not name {}",
        backend.name(),
        file.display()
    );
    let outputs = fx.output_files();
    // The objects holding the damaged variable: its chunks, or its block's shards.
    let kv = fx.output.shard.map_or(1, |s| s[1]);
    let prefix = format!("c/{g}/{}/", v / kv);
    let leaked: Vec<_> = outputs
        .keys()
        .filter(|k| k.starts_with(&prefix) || k.rsplit('/').next().is_some_and(is_temp_name))
        .collect();
    assert!(
        leaked.is_empty(),
        "{}: after a {damage} input these outputs remain: {leaked:?}",
        backend.name()
    );
}

/// How a GRIB2 input is damaged by [`check_bad_grib2_input`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grib2Damage {
    /// The message cut short inside its data section.
    Truncated,
    /// One bit flipped in section 4's forecast time: a well-formed message of
    /// another field, which only the section check can tell.
    HeaderBitFlip,
    /// One bit flipped in a section length: the sections no longer add up.
    LengthBitFlip,
    /// Section 5's template number changed (5.42 → 5.40, JPEG 2000).
    WrongTemplate,
    /// One bit flipped inside a bzip2-wrapped file (its block CRC catches it).
    Bz2BitFlip,
}

/// A damaged GRIB2 input (group 1, variable 1, step 2) fails the run with an input
/// error naming the file and leaves no chunk of its variable behind. The dataset is
/// CCSDS-packed, bzip2-wrapped for [`Grib2Damage::Bz2BitFlip`].
pub fn check_bad_grib2_input(
    backend: &impl Backend,
    layout: Layout,
    damage: Grib2Damage,
) -> CheckResult {
    supports(backend, layout)?;
    let wrap = match damage {
        Grib2Damage::Bz2BitFlip => Wrap::Bz2,
        _ => Wrap::None,
    };
    let fx = Fixture::grib2(
        layout,
        Grib2Params {
            packing: Packing::Ccsds,
            wrap,
        },
    );
    let job = Arc::new(fx.job(Fixture::roomy_limits()));
    let (g, v, s) = (1, 1, 2);
    let file = fx.input_file(g, v, s);
    let input = &job.groups[g as usize].inputs[fx.params.item_index(v, s)];
    let start = input.range.map_or(0, |r| r.offset as usize);
    let mut bytes = fs::read(&file).unwrap();
    let len = input.range.map_or(bytes.len(), |r| r.len as usize);
    // Octets of the unwrapped message: section 0 (16), 1 (21), 3 (72), then 4.
    let section4 = start + 16 + 21 + 72;
    match damage {
        // Cut inside the data section: a file is then shorter than section 0 says;
        // a container shorter than its index says.
        Grib2Damage::Truncated => bytes.truncate(start + len - 7),
        Grib2Damage::HeaderBitFlip => bytes[section4 + 21] ^= 0x01,
        Grib2Damage::LengthBitFlip => bytes[start + 16 + 21 + 2] ^= 0x40,
        Grib2Damage::WrongTemplate => {
            let section5 = section4 + 34;
            bytes[section5 + 10] = 40;
        }
        Grib2Damage::Bz2BitFlip => bytes[start + len / 2] ^= 0x08,
    }
    fs::write(&file, bytes).unwrap();
    let err = run_bounded(
        backend,
        &job,
        &Arc::new(fx.workload()),
        &file,
        Damage::Corrupt,
    )
    .err()
    .unwrap_or_else(|| panic!("{} succeeded on a {damage:?} GRIB2 input", backend.name()));
    assert_failed_cleanly(
        backend,
        &fx,
        &file,
        (g, v),
        &err,
        &format!("GRIB2 {damage:?}"),
    );
    Ok(())
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(
        r,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// [`run_staged`] on a thread, watched: a run that has not returned within
/// [`BAD_INPUT_TIMEOUT`] fails the check (after it is cancelled, and a FIFO at
/// `damaged` is given a writer that closes at once, so that a reader blocked in
/// `open(2)` sees its end and the run can end), and one whose memory grows past
/// [`BAD_INPUT_MEMORY`] aborts the process with a message.
fn run_bounded<B: Backend, W: crate::Workload>(
    backend: &B,
    job: &Arc<Job>,
    workload: &Arc<W>,
    damaged: &Path,
    damage: Damage,
) -> Result<RunOutcome, RunError> {
    let cancel = Cancel::new();
    let name = backend.name();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let c = cancel.clone();
        scope.spawn(move || {
            let _ = tx.send(run_staged(backend, job, workload, &counters(), &c));
        });
        let started = Instant::now();
        let base = resident_bytes();
        let watch = |rx: &std::sync::mpsc::Receiver<_>| {
            let r = rx.recv_timeout(Duration::from_millis(20));
            if let (Some(base), Some(now)) = (base, resident_bytes()) {
                if now > base + BAD_INPUT_MEMORY {
                    abort(format!(
                        "conformance: {name} on a {damage:?} input ({}) grew this process by \
                         {} MiB: reading without a bound; aborting before the machine runs \
                         out of memory",
                        damaged.display(),
                        (now - base) >> 20
                    ));
                }
            }
            r
        };
        use std::sync::mpsc::RecvTimeoutError::{Disconnected, Timeout};
        loop {
            match watch(&rx) {
                Ok(r) => return r,
                Err(Disconnected) => panic!("{name} panicked on a {damage:?} input"),
                Err(Timeout) if started.elapsed() < BAD_INPUT_TIMEOUT => {}
                Err(Timeout) => break,
            }
        }
        // Hung: cancel, and give a FIFO's blocked reader its end of file, until the
        // run returns; if even that does not end it, the test cannot go on.
        cancel.cancel();
        let gave_up = Instant::now();
        loop {
            if damage == Damage::Fifo {
                let _ = fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(damaged);
            }
            match watch(&rx) {
                Ok(_) | Err(Disconnected) => break,
                Err(Timeout) if gave_up.elapsed() < BAD_INPUT_TIMEOUT => {}
                Err(Timeout) => {
                    abort(format!(
                        "conformance: {name} on a {damage:?} input ({}) has not returned \
                         {:?} after it was cancelled; aborting",
                        damaged.display(),
                        BAD_INPUT_TIMEOUT
                    ));
                }
            }
        }
        panic!(
            "{name}: a run on a {damage:?} input ({}) had not returned after {:?} \
             (blocked opening or reading it?)",
            damaged.display(),
            BAD_INPUT_TIMEOUT
        )
    })
}

/// Says why on stderr itself (the test harness's capture of `eprintln!` would be
/// lost with the process) and aborts.
fn abort(why: String) -> ! {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{why}");
    std::process::abort()
}

/// This process's resident memory (Linux), if it can be read.
fn resident_bytes() -> Option<u64> {
    let statm = fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: a plain query.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Every kind of damage on every supported layout.
pub fn check_all_bad_inputs(backend: &impl Backend) -> Vec<Skip> {
    let mut skipped = Vec::new();
    for layout in [Layout::Files, Layout::Container] {
        for damage in [
            Damage::Corrupt,
            Damage::Truncated,
            Damage::Missing,
            Damage::Oversized,
            Damage::Fifo,
            Damage::DevZero,
        ] {
            if layout == Layout::Container && damage == Damage::Oversized {
                continue;
            }
            if let Err(skip) = check_bad_input(backend, layout, damage) {
                skipped.push(skip);
            }
        }
        for damage in [
            Grib2Damage::Truncated,
            Grib2Damage::HeaderBitFlip,
            Grib2Damage::LengthBitFlip,
            Grib2Damage::WrongTemplate,
            Grib2Damage::Bz2BitFlip,
        ] {
            if let Err(skip) = check_bad_grib2_input(backend, layout, damage) {
                skipped.push(skip);
            }
        }
    }
    skipped
}

/// Counts like [`Counters`] and calls `on_stage` after every finished stage, so a
/// check can watch the run as it happens.
fn tap(
    counters: &Arc<Counters>,
    on_stage: impl Fn(Stage, &Counters) + Send + Sync + 'static,
) -> Arc<dyn Recorder> {
    let c = counters.clone();
    Arc::new(Forward::with_stage(
        counters.clone(),
        move |inner, stage, started, bytes| {
            inner.stage_done(stage, started, bytes);
            on_stage(stage, &c);
        },
    ))
}

/// A cancel before the run returns `Cancelled` without writing a chunk; a cancel
/// during the run (after the 10th read) returns `Cancelled` having read only what
/// was in flight (at most `io_in_flight` more inputs, plus a small margin).
pub fn check_cancellation(backend: &impl Backend, layout: Layout) -> CheckResult {
    supports(backend, layout)?;
    let fx = Fixture::with_shape(layout, Codec::Lz4, 2, 20, 20);
    let workload = Arc::new(fx.workload());
    let limits = Limits {
        cpu_threads: 2,
        io_in_flight: 4,
        bytes_in_flight: 64 << 20,
    };
    let job = Arc::new(fx.job(limits));

    let cancel = Cancel::new();
    cancel.cancel();
    let r = run_staged(backend, &job, &workload, &counters(), &cancel);
    assert!(
        matches!(r, Err(RunError::Cancelled)),
        "{}: a pre-cancelled run returned {r:?}",
        backend.name()
    );
    let chunks = fx
        .output_files()
        .keys()
        .filter(|k| k.starts_with("c/"))
        .count();
    assert_eq!(
        chunks,
        0,
        "{}: a pre-cancelled run wrote chunks",
        backend.name()
    );

    let counters = Arc::new(Counters::new());
    let cancel = Cancel::new();
    let c = cancel.clone();
    let recorder = tap(&counters, move |stage, counters: &Counters| {
        if stage == Stage::Read && counters.items(Stage::Read) >= 10 {
            c.cancel();
        }
    });
    let r = run_staged(backend, &job, &workload, &recorder, &cancel);
    assert!(
        matches!(r, Err(RunError::Cancelled)),
        "{}: a run cancelled midway returned {r:?}",
        backend.name()
    );
    let reads = counters.snapshot().reads;
    let bound = 10 + 2 * limits.io_in_flight as u64 + limits.cpu_threads as u64;
    assert!(
        reads <= bound,
        "{}: {reads} reads after a cancel at 10 (at most {bound} expected of {})",
        backend.name(),
        job.input_count()
    );
    let temps: Vec<_> = fx
        .output_files()
        .into_keys()
        .filter(|k| k.rsplit('/').next().is_some_and(is_temp_name))
        .collect();
    assert!(
        temps.is_empty(),
        "{}: temporary files left: {temps:?}",
        backend.name()
    );
    Ok(())
}

/// With `overlap_groups = true` (reads of a group may start before the previous
/// group is written) the output is still byte-identical and the limits still hold,
/// also with a budget that fits little more than one variable.
pub fn check_overlap_groups(backend: &impl Backend, layout: Layout) -> CheckResult {
    overlap_groups(backend, Fixture::with_shape(layout, Codec::Zstd, 3, 3, 4))
}

/// [`check_overlap_groups`] for the fixture `fx` (chunked or sharded).
fn overlap_groups(backend: &impl Backend, fx: Fixture) -> CheckResult {
    supports(backend, fx.params.layout)?;
    let workload = Arc::new(fx.workload());
    for bytes_in_flight in [workload.min_bytes_in_flight() * 2, 64 << 20] {
        fs::remove_dir_all(&fx.output_root).unwrap();
        fs::create_dir_all(&fx.output_root).unwrap();
        let limits = Limits {
            cpu_threads: 2,
            io_in_flight: 4,
            bytes_in_flight,
        };
        let mut job = fx.job(limits);
        job.overlap_groups = true;
        let counters = Arc::new(Counters::new());
        run_staged(
            backend,
            &Arc::new(job),
            &workload,
            &(counters.clone() as _),
            &Cancel::new(),
        )
        .unwrap_or_else(|e| panic!("{} with overlapping groups failed: {e}", backend.name()));
        assert!(
            fx.output_files() == reference_output(&fx),
            "{}: output with overlapping groups differs from the reference",
            backend.name()
        );
        let c = counters.snapshot();
        assert!(c.max_bytes_in_flight <= bytes_in_flight && c.max_io_in_flight <= 4);
        assert_eq!(c.items["group"], 3, "{}: group items", backend.name());
    }
    Ok(())
}

/// The checks again with the sharded output layout ([`Fixture::sharded`]):
/// byte-identical output on both dataset layouts (shards that reach past the chunk
/// grid along y and, with 3 or 5 variables, past the last variable), the limits
/// (the tightest budget being a shard's two variables), a damaged input leaving no
/// shard of its block, and overlapping groups.
pub fn check_sharded(backend: &impl Backend) -> Vec<Skip> {
    let mut skipped = Vec::new();
    for (layout, codec) in [
        (Layout::Files, Codec::Zstd),
        (Layout::Container, Codec::Lz4),
    ] {
        skipped.extend(check_sharded_output_identical(backend, layout, codec).err());
        let fx = Fixture::with_shape(layout, Codec::Zstd, 2, 5, 6).sharded();
        skipped.extend(limits_hold(backend, fx).err());
        let fx = Fixture::with_shape(layout, Codec::Zstd, 3, 3, 4).sharded();
        skipped.extend(overlap_groups(backend, fx).err());
    }
    let fx = Fixture::tiny(Layout::Files, Codec::Zstd).sharded();
    skipped.extend(bad_input(backend, fx, Damage::Corrupt).err());
    skipped
}

/// Runs the whole suite; returns what was skipped and why.
pub fn check_all(backend: &impl Backend) -> Vec<Skip> {
    let mut skipped = check_all_layouts_and_codecs(backend);
    skipped.extend(check_sharded(backend));
    skipped.extend(check_all_bad_inputs(backend));
    for layout in [Layout::Files, Layout::Container] {
        skipped.extend(check_limits(backend, layout).err());
        skipped.extend(check_cancellation(backend, layout).err());
        skipped.extend(check_overlap_groups(backend, layout).err());
    }
    skipped
}
