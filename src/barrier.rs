//! The shards of a split job starting each repetition together (`harness run
//! --shard I/N --barrier`).
//!
//! Shards run free otherwise: a shard that generated its dataset later, or ran a
//! backend more slowly, drifts, and a repetition of one backend on one shard then
//! overlaps another backend's on the next, so the merged span measures the drift,
//! not the backend (measured: 4 shards of `s3.toml` started `sequential` up to 21 s
//! apart by the third round). With the barrier, before each scheduled step every
//! shard writes `barrier/<job>/step-<k>/shard-I` to the shared results location
//! (the results folder, or the `--results-url` prefix) and waits until every
//! shard's is there. The job's id (`--job`) keeps two jobs' rendezvous apart. It is a rendezvous, not a scheduler: the steps are each shard's own.
//!
//! A shard that does not arrive within the timeout is taken for dead: the others go
//! on without it (it is named in their results) and never wait for it again. A rerun
//! of one shard finds the others' markers of the earlier run and passes at once.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use stores::{S3Config, Store, StoreUrl};

use crate::split::ShardId;

/// What one wait at the barrier gave, recorded with the repetition that followed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BarrierWait {
    /// The step (the repetition's place in the shard's schedule, from 0).
    pub step: usize,
    /// Seconds this shard waited for the others.
    pub wait_seconds: f64,
    /// Shards that had not arrived when the timeout ran out (or earlier: taken
    /// for dead), by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u32>,
}

/// One shard's side of the barrier.
pub struct Barrier {
    store: Store,
    shard: ShardId,
    timeout: Duration,
    /// Shards that once missed the timeout: not waited for again.
    dead: BTreeSet<u32>,
    poll: Duration,
}

impl Barrier {
    /// The barrier under `<location>/barrier/`: an `s3://` results URL, or else the
    /// local results folder `dir`.
    pub fn open(
        results_url: Option<&StoreUrl>,
        dir: &Path,
        job: &str,
        shard: ShardId,
        timeout: Duration,
        s3: &S3Config,
    ) -> anyhow::Result<Barrier> {
        let (store, poll) = match results_url {
            Some(url) => (
                Store::open(&url.join(&format!("barrier/{job}")), dir, None, s3)?,
                Duration::from_millis(200),
            ),
            None => {
                let local = dir.join("barrier").join(job);
                std::fs::create_dir_all(&local)
                    .with_context(|| format!("creating {}", local.display()))?;
                (
                    Store::open(&StoreUrl::File, &local, None, s3)?,
                    Duration::from_millis(25),
                )
            }
        };
        Ok(Barrier {
            store,
            shard,
            timeout,
            dead: BTreeSet::new(),
            poll,
        })
    }

    /// Arrives at step `step` and waits for every shard (but the dead); a signal
    /// ends the wait with [`crate::signals::Interrupted`].
    pub fn wait(&mut self, step: usize) -> anyhow::Result<BarrierWait> {
        let start = Instant::now();
        let dir = format!("step-{step}");
        let me = format!("{dir}/{}", self.shard.folder());
        let stamp = format!(
            "{{\"at\":\"{}\"}}",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        stores::block_on(self.store.put(&me, stamp.into_bytes()))
            .map_err(anyhow::Error::msg)?
            .with_context(|| format!("arriving at the barrier ({})", self.store.url))?;
        loop {
            let keys = stores::block_on(self.store.list())
                .map_err(anyhow::Error::msg)?
                .with_context(|| format!("reading the barrier ({})", self.store.url))?;
            let here: BTreeSet<u32> = keys
                .iter()
                .filter_map(|k| k.strip_prefix(&format!("{dir}/")))
                .filter_map(crate::merge::parse_folder)
                .filter(|s| s.count == self.shard.count)
                .map(|s| s.index)
                .collect();
            let missing: Vec<u32> = (0..self.shard.count)
                .filter(|i| !here.contains(i) && !self.dead.contains(i))
                .collect();
            if missing.is_empty() {
                return Ok(BarrierWait {
                    step,
                    wait_seconds: start.elapsed().as_secs_f64(),
                    missing: self.dead.iter().copied().collect(),
                });
            }
            if start.elapsed() > self.timeout {
                eprintln!(
                    "shard {}: shards {missing:?} did not reach step {step} within {:.0} s: \
                     going on without them (and not waiting for them again)",
                    self.shard,
                    self.timeout.as_secs_f64()
                );
                self.dead.extend(&missing);
                return Ok(BarrierWait {
                    step,
                    wait_seconds: start.elapsed().as_secs_f64(),
                    missing: self.dead.iter().copied().collect(),
                });
            }
            if let Some(signal) = crate::signals::received() {
                return Err(signal.into());
            }
            std::thread::sleep(self.poll);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_meet_and_a_dead_one_is_left_behind() {
        let d = tempfile::tempdir().unwrap();
        let open = |i| {
            Barrier::open(
                None,
                d.path(),
                "job-1",
                ShardId { index: i, count: 3 },
                Duration::from_millis(300),
                &S3Config::default(),
            )
            .unwrap()
        };
        let (mut a, mut b) = (open(0), open(1));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            (b.wait(0).unwrap(), b.wait(1).unwrap())
        });
        // Shard 2 never comes: after the timeout, 0 goes on, naming it.
        let w = a.wait(0).unwrap();
        assert_eq!(w.missing, vec![2]);
        assert!(w.wait_seconds >= 0.3, "{w:?}");
        // Not waited for again: step 1 waits for shard 1 only.
        let w = a.wait(1).unwrap();
        assert_eq!(w.missing, vec![2]);
        assert!(w.wait_seconds < 0.3, "{w:?}");
        let (b0, b1) = t.join().unwrap();
        assert_eq!((b0.missing, b1.missing), (vec![2], vec![2]));
        // Shard 2 arriving late finds the others' markers and passes at once.
        let mut c = open(2);
        let w = c.wait(0).unwrap();
        assert!(w.missing.is_empty() && w.wait_seconds < 0.2, "{w:?}");
    }
}
