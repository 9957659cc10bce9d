//! Writes an nwp-fields dataset, in parallel on the current Rayon pool.
//!
//! Deterministic: the bytes depend only on the [`DatasetParams`]. Caching and the
//! manifest are the harness's business; this only writes messages.

use std::fs;
use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use super::message::encode_message;
use super::{DatasetParams, Format, Layout};
use crate::grib2::{self, message::FieldId, Wrap};

/// Messages encoded per parallel batch of the container layout: enough to keep all
/// threads busy, few enough that a batch's buffers stay small (a few MiB).
const CONTAINER_BATCH: usize = 256;

/// Per-thread scratch space, so a message costs no allocation after the first.
struct Scratch {
    field: Vec<f32>,
    /// The packed integers of a GRIB2 field.
    q: Vec<u32>,
    /// The unwrapped GRIB2 message before bzip2.
    plain: Vec<u8>,
    msg: Vec<u8>,
}

impl DatasetParams {
    fn scratch(&self) -> Scratch {
        let n = (self.ny * self.nx) as usize;
        let grib2 = matches!(self.format, Format::Grib2(_));
        Scratch {
            field: if grib2 { Vec::new() } else { vec![0.0; n] },
            q: if grib2 { vec![0; n] } else { Vec::new() },
            plain: Vec::new(),
            msg: Vec::with_capacity(self.max_input_len() as usize),
        }
    }

    /// Encodes message (g, v, s) into `scratch.msg`.
    fn encode_into(&self, g: u32, v: u32, s: u32, scratch: &mut Scratch) -> Result<(), String> {
        scratch.msg.clear();
        match &self.format {
            Format::NwpFields => {
                self.values().fill_field(g, v, s, &mut scratch.field);
                encode_message(
                    &mut scratch.msg,
                    self.codec,
                    self.zstd_level,
                    g,
                    v,
                    s,
                    self.ny,
                    self.nx,
                    &scratch.field,
                );
            }
            Format::Grib2(p) => {
                self.values().fill_field_q(g, v, s, &mut scratch.q);
                let id = FieldId {
                    g,
                    v,
                    s,
                    ny: self.ny,
                    nx: self.nx,
                };
                let plain = match p.wrap {
                    Wrap::None => &mut scratch.msg,
                    Wrap::Bz2 => &mut scratch.plain,
                };
                plain.clear();
                grib2::message::encode_message(plain, p, id, self.noise_bits, &scratch.q)?;
                if p.wrap == Wrap::Bz2 {
                    // Level 9 (900 kB blocks), bzip2's default and what `bzip2 file`
                    // writes, as DWD's server serves.
                    let mut z =
                        bzip2::write::BzEncoder::new(&mut scratch.msg, bzip2::Compression::best());
                    z.write_all(&scratch.plain)
                        .and_then(|_| z.finish().map(|_| ()))
                        .map_err(|e| format!("bzip2: {e}"))?;
                }
            }
            Format::Grib2Dir(_) => {
                return Err("a directory of your own files (grib2-dir) is read, never \
                            generated"
                    .into())
            }
        }
        Ok(())
    }

    /// One message as stored (for tests, the completeness check and small tools);
    /// an error if the format cannot hold it (see [`DatasetParams::format_problem`]).
    pub fn message_bytes(&self, g: u32, v: u32, s: u32) -> Result<Vec<u8>, String> {
        let mut scratch = self.scratch();
        self.encode_into(g, v, s, &mut scratch)?;
        Ok(scratch.msg)
    }
}

/// Writes every message of `params` under `root` (which must exist). `progress` is
/// called with the number of messages and bytes just written, from any thread.
pub fn generate(
    params: &DatasetParams,
    root: &Path,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(), String> {
    generate_until(params, root, progress, &|| false).map_err(|e| match e {
        Stopped::Failed(e) => e,
        Stopped::Asked => unreachable!("never asked to stop"),
    })
}

/// Why [`generate_until`] did not write every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// `stop` said so; the messages written so far are complete files (the files
    /// layout) or a container cut between messages.
    Asked,
    /// A file could not be written: the error names it.
    Failed(String),
}

/// [`generate`], asking `stop` between files (the files layout) or batches of
/// messages (the container layout), so a caller can end it within milliseconds.
pub fn generate_until(
    params: &DatasetParams,
    root: &Path,
    progress: &(dyn Fn(u64, u64) + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<(), Stopped> {
    match params.layout {
        Layout::Files => generate_files(params, root, progress, stop),
        Layout::Container => generate_container(params, root, progress, stop),
    }
}

fn generate_files(
    params: &DatasetParams,
    root: &Path,
    progress: &(dyn Fn(u64, u64) + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<(), Stopped> {
    // One task per variable directory: large enough to amortise the task, small
    // enough (one directory of `steps` files) to balance over the threads.
    let vars: Vec<(u32, u32)> = (0..params.groups)
        .flat_map(|g| (0..params.variables).map(move |v| (g, v)))
        .collect();
    vars.par_iter().try_for_each_init(
        || params.scratch(),
        |scratch, &(g, v)| {
            let dir = root.join(format!("g{g:05}/v{v:04}"));
            fs::create_dir_all(&dir)
                .map_err(|e| Stopped::Failed(format!("{}: {e}", dir.display())))?;
            let (mut bytes, mut written) = (0, 0);
            for s in 0..params.steps {
                if stop() {
                    progress(written, bytes);
                    return Err(Stopped::Asked);
                }
                let path = root.join(params.message_path(g, v, s));
                params
                    .encode_into(g, v, s, scratch)
                    .map_err(|e| Stopped::Failed(format!("{}: {e}", path.display())))?;
                bytes += scratch.msg.len() as u64;
                fs::write(&path, &scratch.msg).map_err(|e| {
                    Stopped::Failed(format!(
                        "{}: {}",
                        path.display(),
                        crate::output::io_detail(&e)
                    ))
                })?;
                written += 1;
            }
            progress(written, bytes);
            Ok(())
        },
    )
}

fn generate_container(
    params: &DatasetParams,
    root: &Path,
    progress: &(dyn Fn(u64, u64) + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<(), Stopped> {
    let per_group = params.variables as usize * params.steps as usize;
    for g in 0..params.groups {
        let path = root.join(params.container_path(g));
        let idx_path = root.join(DatasetParams::index_path(g));
        let fail = |p: &Path, e: std::io::Error| {
            Stopped::Failed(format!("{}: {}", p.display(), crate::output::io_detail(&e)))
        };
        let mut file =
            std::io::BufWriter::new(fs::File::create(&path).map_err(|e| fail(&path, e))?);
        let mut index = String::with_capacity(per_group * 24);
        let mut offset = 0u64;
        for start in (0..per_group).step_by(CONTAINER_BATCH) {
            if stop() {
                return Err(Stopped::Asked);
            }
            let end = (start + CONTAINER_BATCH).min(per_group);
            let batch: Vec<Vec<u8>> = (start..end)
                .into_par_iter()
                .map_init(
                    || params.scratch(),
                    |scratch, i| {
                        let (v, s) = params.item_vs(i);
                        params.encode_into(g, v, s, scratch)?;
                        Ok(scratch.msg.clone())
                    },
                )
                .collect::<Result<_, String>>()
                .map_err(|e| Stopped::Failed(format!("{}: {e}", path.display())))?;
            let before = offset;
            for (i, msg) in (start..end).zip(&batch) {
                let (v, s) = params.item_vs(i);
                file.write_all(msg).map_err(|e| fail(&path, e))?;
                index.push_str(&format!("{v} {s} {offset} {}\n", msg.len()));
                offset += msg.len() as u64;
            }
            progress((end - start) as u64, offset - before);
        }
        file.flush().map_err(|e| fail(&path, e))?;
        fs::write(&idx_path, index).map_err(|e| fail(&idx_path, e))?;
    }
    Ok(())
}
