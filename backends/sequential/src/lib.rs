//! The `sequential` backend: one thread, `std::fs`, every step in order.
//!
//! It is the correctness oracle and the baseline that every other backend is
//! compared with in the same run, so it is written plainly, the way a careful user
//! would write the loop, with no concurrency at all: IO in flight is always at most
//! one and `cpu_threads` is ignored (the results say so).

pub mod options;

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use rechunk_contract::input::open_input;
use rechunk_contract::output::{io_detail, write_metadata, write_recorded, LocalWriter};
use rechunk_contract::steps;
use rechunk_contract::{
    Backend, ByteBudget, Cancel, Capabilities, GroupReducer, InputRef, Io, Job, OutputObject,
    Recorder, RunError, RunOutcome, Stage, Workload,
};

/// See the crate documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sequential;

impl Backend for Sequential {
    fn name(&self) -> &'static str {
        "sequential"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            byte_ranges: true,
            needs_io_uring: false,
            s3: false,
            parallel: false,
        }
    }

    fn run<W: Workload>(
        &self,
        job: &Arc<Job>,
        workload: &Arc<W>,
        recorder: &Arc<dyn Recorder>,
        cancel: &Cancel,
    ) -> Result<RunOutcome, RunError> {
        workload.check_job(job).map_err(|e| RunError::Job(e.0))?;
        cancel.check()?;
        let budget = ByteBudget::new(job.limits.bytes_in_flight, recorder.clone());
        let recorder = &**recorder;
        let mut run = Run {
            recorder,
            writer: LocalWriter::new(&job.output_root),
            outcome: RunOutcome::default(),
        };
        write_metadata(&**workload, recorder, &mut run.outcome, |key, bytes| {
            run.writer.write(key, bytes)
        })?;
        let mut reader = Reader::default();
        for group in &job.groups {
            let group_start = Instant::now();
            let mut reducer = workload.reduce_group(group);
            for (index, input) in group.inputs.iter().enumerate() {
                cancel.check()?;
                let cost = workload.cost(group, index);
                budget.acquire(cost.total(), cancel)?;

                let read_start = Instant::now();
                recorder.io_begin(Io::Read);
                let raw = reader.read(job, input, cost.read);
                recorder.io_end(Io::Read);
                let raw = raw?;
                recorder.stage_done(Stage::Read, read_start, raw.len() as u64);
                run.outcome.inputs += 1;
                run.outcome.input_bytes += raw.len() as u64;

                let at_fault = || job.input_path(input);
                let decoded = steps::decode(
                    &**workload,
                    recorder,
                    group,
                    index,
                    raw,
                    cost.transient,
                    &at_fault,
                )?;
                let emission = steps::push(&mut reducer, recorder, index, decoded, &at_fault)?;
                recorder.stage_done(Stage::Input, read_start, 0);
                budget.release(cost.read + cost.transient);

                for chunk in emission.chunks {
                    let object = steps::encode(&**workload, recorder, job, group, chunk)?;
                    run.write(object)?;
                }
                budget.release(emission.retired_bytes);
            }
            reducer.finish().map_err(|e| RunError::Job(e.0))?;
            recorder.stage_done(Stage::Group, group_start, 0);
        }
        run.outcome.details.insert("io".into(), "std::fs".into());
        run.outcome.details.insert("threads".into(), 1.into());
        Ok(run.outcome)
    }
}

struct Run<'a> {
    recorder: &'a dyn Recorder,
    writer: LocalWriter,
    outcome: RunOutcome,
}

impl Run<'_> {
    fn write(&mut self, object: OutputObject) -> Result<(), RunError> {
        let writer = &mut self.writer;
        write_recorded(self.recorder, &mut self.outcome, &object, |key, bytes| {
            writer.write(key, bytes)
        })
    }
}

/// Reads inputs into one reused buffer; keeps the current container file open so a
/// group's byte ranges cost one `pread` each.
#[derive(Default)]
struct Reader {
    buf: Vec<u8>,
    container: Option<(Box<str>, File)>,
}

impl Reader {
    fn read(&mut self, job: &Job, input: &InputRef, max_len: u64) -> Result<&[u8], RunError> {
        let path = || job.input_path(input);
        match input.range {
            None => {
                // A regular file only: a FIFO or a device is refused, never waited on.
                let mut file = open_input(&path())?;
                // Room for the largest valid input plus one byte, to tell "too large".
                let cap = max_len as usize + 1;
                if self.buf.len() < cap {
                    self.buf.resize(cap, 0);
                }
                let mut n = 0;
                loop {
                    match file.read(&mut self.buf[n..cap]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(RunError::input(path(), io_detail(&e))),
                    }
                    if n == cap {
                        return Err(RunError::input(
                            path(),
                            format!("larger than any valid input ({max_len} bytes at most)"),
                        ));
                    }
                }
                Ok(&self.buf[..n])
            }
            Some(range) => {
                if self
                    .container
                    .as_ref()
                    .is_none_or(|(p, _)| *p != input.path)
                {
                    let file = open_input(&path())?;
                    self.container = Some((input.path.clone(), file));
                }
                let (_, file) = self.container.as_ref().expect("just opened");
                let len = range.len as usize;
                if self.buf.len() < len {
                    self.buf.resize(len, 0);
                }
                file.read_exact_at(&mut self.buf[..len], range.offset)
                    .map_err(|e| {
                        if e.kind() == ErrorKind::UnexpectedEof {
                            RunError::input(
                                path(),
                                format!(
                                    "truncated: the file ends before byte {}",
                                    range.offset + range.len
                                ),
                            )
                        } else {
                            RunError::input(path(), io_detail(&e))
                        }
                    })?;
                Ok(&self.buf[..len])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Sequential;
    use rechunk_contract::conformance;

    #[test]
    fn conformance_output_identical_on_every_layout_and_codec() {
        assert!(conformance::check_all_layouts_and_codecs(&Sequential).is_empty());
    }

    #[test]
    fn conformance_sharded_output() {
        assert!(conformance::check_sharded(&Sequential).is_empty());
    }

    #[test]
    fn conformance_bad_inputs_are_named() {
        assert!(conformance::check_all_bad_inputs(&Sequential).is_empty());
    }

    #[test]
    fn conformance_limits() {
        for layout in [
            rechunk_contract::nwp::Layout::Files,
            rechunk_contract::nwp::Layout::Container,
        ] {
            conformance::check_limits(&Sequential, layout).unwrap();
        }
    }

    #[test]
    fn conformance_cancellation() {
        for layout in [
            rechunk_contract::nwp::Layout::Files,
            rechunk_contract::nwp::Layout::Container,
        ] {
            conformance::check_cancellation(&Sequential, layout).unwrap();
        }
    }
}
