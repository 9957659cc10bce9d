//! Where the CPU steps run, and the hand-over from async code to them.
//!
//! The three designs under test differ only here, so they share everything else:
//! - `Oneshot`: `rayon::ThreadPool::spawn`, the result sent back through a
//!   `tokio::sync::oneshot` channel (the pattern of Alice Ryhl's "Async: What is
//!   blocking?");
//! - `TokioRayon`: the same hand-over through the tokio-rayon crate's
//!   `AsyncThreadPool::spawn_async`;
//! - `Blocking`: `tokio::task::spawn_blocking`, in the blocking pool that also
//!   runs `tokio::fs`.
//!
//! Every hand-over first takes a slot of a semaphore of `cpu_in_flight` permits, so
//! the pool's queue is bounded by it (never by the byte budget alone), and a panic
//! in the work becomes a [`RunError`], never an abort or a hang.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use rayon::ThreadPool;
use rechunk_contract::RunError;
use tokio::sync::{oneshot, Semaphore};
use tokio_rayon::AsyncThreadPool;

use crate::limits::Stop;

#[derive(Clone)]
enum Pool {
    Oneshot(Arc<ThreadPool>),
    TokioRayon(Arc<ThreadPool>),
    Blocking,
}

/// The CPU executor of a run.
#[derive(Clone)]
pub struct Cpu {
    pool: Pool,
    /// Bounds the CPU jobs handed over and not yet finished: the pool's queue.
    slots: Arc<Semaphore>,
    /// Hand-overs made, for the results.
    hops: Arc<AtomicU64>,
}

/// Which bridge carries CPU work, as the scenario names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bridge {
    /// `rayon::ThreadPool::spawn`, the result sent back by a
    /// `tokio::sync::oneshot` channel (`bridge = "oneshot"`).
    Oneshot,
    /// The tokio-rayon crate's `AsyncThreadPool::spawn_async` (`bridge =
    /// "tokio-rayon"`).
    TokioRayon,
    /// `tokio::task::spawn_blocking`, no Rayon pool (the `spawn-blocking` backend).
    SpawnBlocking,
}

impl Bridge {
    /// The mechanism, as the results record it.
    pub fn name(self) -> &'static str {
        match self {
            Bridge::Oneshot => "rayon::spawn + tokio::sync::oneshot",
            Bridge::TokioRayon => "tokio_rayon::AsyncThreadPool::spawn_async",
            Bridge::SpawnBlocking => "tokio::task::spawn_blocking",
        }
    }
}

impl Cpu {
    /// A Rayon pool of `threads` (for the Rayon bridges), and `in_flight` slots.
    pub fn new(bridge: Bridge, threads: usize, in_flight: usize) -> Result<Cpu, RunError> {
        let rayon_pool = || {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads.max(1))
                .thread_name(|i| format!("rayon-cpu-{i}"))
                .build()
                .map(Arc::new)
                .map_err(|e| RunError::Internal(format!("building the Rayon pool: {e}")))
        };
        let pool = match bridge {
            Bridge::Oneshot => Pool::Oneshot(rayon_pool()?),
            Bridge::TokioRayon => Pool::TokioRayon(rayon_pool()?),
            Bridge::SpawnBlocking => Pool::Blocking,
        };
        Ok(Cpu {
            pool,
            slots: Arc::new(Semaphore::new(in_flight.max(1))),
            hops: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Threads of the Rayon pool (0 for spawn_blocking, whose threads are Tokio's).
    pub fn rayon_threads(&self) -> usize {
        match &self.pool {
            Pool::Oneshot(p) | Pool::TokioRayon(p) => p.current_num_threads(),
            Pool::Blocking => 0,
        }
    }

    /// Hand-overs made so far.
    pub fn hops(&self) -> u64 {
        self.hops.load(Relaxed)
    }

    /// Runs `f` on the CPU executor and awaits its result. `what` names the work
    /// in the error if it panics.
    pub async fn run<R, F>(&self, stop: &Stop, what: &str, f: F) -> Result<R, RunError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let _slot = tokio::select! {
            s = self.slots.acquire() => s.map_err(|_| RunError::Internal("CPU slots closed".into()))?,
            _ = stop.wait() => return Err(RunError::Cancelled),
        };
        self.hops.fetch_add(1, Relaxed);
        match &self.pool {
            Pool::Oneshot(pool) => {
                let (tx, rx) = oneshot::channel();
                pool.spawn(move || {
                    // The receiver is gone only if the run was abandoned; nothing to do.
                    let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
                });
                match rx.await {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(p)) => Err(RunError::panicked(what, p)),
                    Err(_) => Err(RunError::Internal(format!(
                        "{what}: the Rayon job was dropped without an answer"
                    ))),
                }
            }
            Pool::TokioRayon(pool) => pool
                .spawn_async(move || catch_unwind(AssertUnwindSafe(f)))
                .await
                .map_err(|p| RunError::panicked(what, p)),
            Pool::Blocking => tokio::task::spawn_blocking(f).await.map_err(|e| {
                if e.is_panic() {
                    RunError::panicked(what, e.into_panic())
                } else {
                    RunError::Internal(format!("{what}: the blocking task was cancelled"))
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rechunk_contract::Cancel;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn every_bridge_returns_results_and_turns_panics_into_errors() {
        let stop = Stop::new(&Cancel::new());
        for bridge in [Bridge::Oneshot, Bridge::TokioRayon, Bridge::SpawnBlocking] {
            let cpu = Cpu::new(bridge, 2, 4).unwrap();
            assert_eq!(cpu.run(&stop, "adding", || 40 + 2).await.unwrap(), 42);
            let err = cpu
                .run(&stop, "decoding x", || -> u32 { panic!("boom") })
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("decoding x panicked: boom"),
                "{bridge:?}: {err}"
            );
            assert_eq!(cpu.hops(), 2);
        }
    }
}
