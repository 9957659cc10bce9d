//! Writes an nwp-fields dataset, in parallel on the current Rayon pool.
//!
//! Deterministic: the bytes depend only on the [`DatasetParams`]. Caching and the
//! manifest are the harness's business; this only writes messages.

use std::fs;
use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use super::message::encode_message;
use super::{DatasetParams, Layout};

/// Messages encoded per parallel batch of the container layout: enough to keep all
/// threads busy, few enough that a batch's buffers stay small (a few MiB).
const CONTAINER_BATCH: usize = 256;

/// Per-thread scratch space, so a message costs no allocation after the first.
struct Scratch {
    field: Vec<f32>,
    msg: Vec<u8>,
}

impl DatasetParams {
    fn scratch(&self) -> Scratch {
        Scratch {
            field: vec![0.0; (self.ny * self.nx) as usize],
            msg: Vec::with_capacity(super::message::max_message_len(self.ny, self.nx) as usize),
        }
    }

    /// Encodes message (g, v, s) into `scratch.msg`.
    fn encode_into(&self, g: u32, v: u32, s: u32, scratch: &mut Scratch) {
        self.values().fill_field(g, v, s, &mut scratch.field);
        scratch.msg.clear();
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

    /// One message as bytes (for tests and small tools).
    pub fn message_bytes(&self, g: u32, v: u32, s: u32) -> Vec<u8> {
        let mut scratch = self.scratch();
        self.encode_into(g, v, s, &mut scratch);
        scratch.msg
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
                params.encode_into(g, v, s, scratch);
                bytes += scratch.msg.len() as u64;
                let path = root.join(DatasetParams::message_path(g, v, s));
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
        let path = root.join(DatasetParams::container_path(g));
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
                        params.encode_into(g, v, s, scratch);
                        scratch.msg.clone()
                    },
                )
                .collect();
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
