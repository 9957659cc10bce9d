//! The read-only workload: every input is read once and its bytes counted; nothing
//! is decoded, reduced, encoded or written. Any backend runs it unchanged, so it
//! gives each design's IO ceiling on the same files, and the like-for-like
//! comparison with fio. What remains of the pipeline is each backend's own
//! scheduling, including its hand-over of every input to its CPU side (which here
//! does no work).

use crate::job::{Group, Job};
use crate::workload::{Emission, GroupReducer, ItemCost, OutputObject, Workload, WorkloadError};

/// Reads what `W` would read (the same inputs, the same read buffer bounds).
#[derive(Clone, Debug)]
pub struct ReadOnly<W>(pub W);

impl<W: Workload> Workload for ReadOnly<W> {
    /// The input's length in bytes.
    type Decoded = u64;
    type Chunk = ();
    type Reducer = Counting;

    fn name(&self) -> &str {
        "read-only"
    }

    fn metadata(&self) -> Vec<OutputObject> {
        Vec::new()
    }

    fn cost(&self, group: &Group, index: usize) -> ItemCost {
        ItemCost {
            read: self.0.cost(group, index).read,
            transient: 0,
            retained: 0,
        }
    }

    fn decode(&self, _: &Group, _: usize, raw: &[u8]) -> Result<u64, WorkloadError> {
        Ok(raw.len() as u64)
    }

    fn reduce_group(&self, group: &Group) -> Counting {
        Counting {
            expected: group.inputs.len(),
            seen: vec![false; group.inputs.len()],
            count: 0,
        }
    }

    fn encode(&self, _: ()) -> Result<OutputObject, WorkloadError> {
        Err(WorkloadError::new("the read-only workload has no chunks"))
    }

    fn check_job(&self, job: &Job) -> Result<(), WorkloadError> {
        let need = job
            .groups
            .iter()
            .flat_map(|g| (0..g.inputs.len()).map(move |i| (g, i)))
            .map(|(g, i)| self.cost(g, i).total())
            .max()
            .unwrap_or(0);
        if job.limits.bytes_in_flight < need {
            return Err(WorkloadError::new(format!(
                "bytes_in_flight = {} cannot hold one read of {need} bytes",
                job.limits.bytes_in_flight
            )));
        }
        Ok(())
    }

    fn expected_outputs(&self, _: &Job) -> u64 {
        0
    }
}

/// Counts a group's inputs; an input pushed twice or missing at the end is an error.
pub struct Counting {
    expected: usize,
    seen: Vec<bool>,
    count: usize,
}

impl GroupReducer for Counting {
    type Decoded = u64;
    type Chunk = ();

    fn push(&mut self, index: usize, _bytes: u64) -> Result<Emission<()>, WorkloadError> {
        match self.seen.get_mut(index) {
            Some(seen) if !*seen => {
                *seen = true;
                self.count += 1;
                Ok(Emission::none())
            }
            Some(_) => Err(WorkloadError::new(format!("input {index} pushed twice"))),
            None => Err(WorkloadError::new(format!(
                "input {index} is not in the group"
            ))),
        }
    }

    fn finish(self) -> Result<(), WorkloadError> {
        if self.count == self.expected {
            Ok(())
        } else {
            Err(WorkloadError::new(format!(
                "{} of {} inputs read",
                self.count, self.expected
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::InputRef;

    #[test]
    fn counting_catches_duplicates_and_gaps() {
        let g = Group {
            index: 0,
            first_item: 0,
            inputs: (0..3)
                .map(|i| InputRef {
                    path: format!("f{i}").into(),
                    range: None,
                })
                .collect(),
        };
        let w = ReadOnly(crate::nwp::workload::NwpWorkload::new(
            crate::nwp::DatasetParams {
                layout: crate::nwp::Layout::Files,
                groups: 1,
                variables: 1,
                steps: 3,
                ny: 4,
                nx: 4,
                codec: crate::nwp::Codec::None,
                zstd_level: 1,
                noise_bits: 0,
                seed: 0,
                format: crate::nwp::Format::NwpFields,
            },
            crate::nwp::zarr::OutputParams {
                cy: 4,
                cx: 4,
                zstd_level: 1,
                shard: None,
            },
        ));
        assert_eq!(w.decode(&g, 0, b"abcd").unwrap(), 4);
        let mut r = w.reduce_group(&g);
        r.push(0, 4).unwrap();
        assert!(r.push(0, 4).is_err());
        r.push(2, 4).unwrap();
        assert!(r.finish().unwrap_err().0.contains("2 of 3 inputs read"));
        assert_eq!(w.cost(&g, 0).transient + w.cost(&g, 0).retained, 0);
    }
}
