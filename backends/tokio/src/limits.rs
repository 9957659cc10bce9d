//! The shared limits as async primitives: the byte budget, IO operations in flight,
//! and the stop signal every task watches.
//!
//! Both limits are Tokio semaphores, which are fair (first come, first served):
//! inputs reserve their bytes in the order they are issued, so the items of one
//! variable are always reserved before those of the next, and a budget just large
//! enough for one variable (the workload's `check_job`) can never deadlock.

use std::sync::Arc;

use rechunk_contract::{Cancel, Io, Recorder, RunError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// The user's cancel plus an internal one, set by the first error so that every
/// task stops at its next step.
///
/// Waiting is notification, not polling: every budget reservation, IO slot and CPU
/// hand-over `select!`s on [`Stop::wait`], and a timer each (as a first version had)
/// is three timer entries per input. The user's flag is a plain atomic that the
/// harness sets from a signal handler, which cannot notify; [`Stop::watch`] turns
/// it into a notification and must run while anything waits on a user cancel.
#[derive(Clone, Default)]
pub struct Stop {
    user: Cancel,
    internal: Cancel,
    notify: Arc<Notify>,
}

impl Stop {
    /// A stop signal that is set when `user` is cancelled (seen by waiters while
    /// [`Stop::watch`] runs) or when [`Stop::stop`] is called.
    pub fn new(user: &Cancel) -> Self {
        Stop {
            user: user.clone(),
            internal: Cancel::new(),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Tells every task to stop (after an error elsewhere) and wakes every waiter.
    pub fn stop(&self) {
        self.internal.cancel();
        self.notify.notify_waiters();
    }

    /// Whether the user cancelled or [`Stop::stop`] was called.
    pub fn is_set(&self) -> bool {
        self.user.is_cancelled() || self.internal.is_cancelled()
    }

    /// `Err(Cancelled)` once set: `stop.check()?` between steps.
    pub fn check(&self) -> Result<(), RunError> {
        if self.is_set() {
            Err(RunError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Resolves once set, to `select!` on while waiting.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a `stop()` in between is not missed.
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }

    /// Checks the user's flag every 5 ms and turns it into [`Stop::stop`]; returns
    /// once set. One timer for the whole run instead of one per wait.
    pub async fn watch(&self) {
        while !self.is_set() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        self.stop();
    }
}

/// `bytes_in_flight` as a fair semaphore of bytes, reported to the recorder.
#[derive(Clone)]
pub struct Budget {
    sem: Arc<Semaphore>,
    capacity: u64,
    recorder: Arc<dyn Recorder>,
}

impl Budget {
    /// A budget of `capacity` bytes (at most Tokio's largest semaphore), reporting
    /// to `recorder`.
    pub fn new(capacity: u64, recorder: Arc<dyn Recorder>) -> Self {
        // Tokio caps a semaphore's permits; a larger budget is as good as unlimited.
        let permits = capacity.min(Semaphore::MAX_PERMITS as u64);
        Budget {
            sem: Arc::new(Semaphore::new(permits as usize)),
            capacity: permits,
            recorder,
        }
    }

    /// Waits until `n` bytes fit, then reserves them; `Cancelled` if `stop` is set
    /// first; an error at once if `n` can never fit.
    pub async fn reserve(&self, n: u64, stop: &Stop) -> Result<Reservation, RunError> {
        self.can_fit(n)?;
        let permit = tokio::select! {
            p = self.sem.clone().acquire_many_owned(n as u32) => {
                p.map_err(|_| RunError::Internal("byte budget closed".into()))?
            }
            _ = stop.wait() => return Err(RunError::Cancelled),
        };
        Ok(self.reserved(permit))
    }

    /// Reserves `n` bytes if they fit now, `None` if not (without waiting); an
    /// error at once if `n` can never fit. It never overtakes a waiting
    /// [`Budget::reserve`]: the semaphore gives released bytes to its waiters first,
    /// so the order in which inputs are reserved still holds.
    pub fn try_reserve(&self, n: u64) -> Result<Option<Reservation>, RunError> {
        self.can_fit(n)?;
        match self.sem.clone().try_acquire_many_owned(n as u32) {
            Ok(permit) => Ok(Some(self.reserved(permit))),
            Err(TryAcquireError::NoPermits) => Ok(None),
            Err(TryAcquireError::Closed) => Err(RunError::Internal("byte budget closed".into())),
        }
    }

    /// An error if `n` bytes can never be reserved at once.
    fn can_fit(&self, n: u64) -> Result<(), RunError> {
        if n > self.capacity || n > u32::MAX as u64 {
            return Err(RunError::Job(format!(
                "one item needs {n} bytes but bytes_in_flight is {}",
                self.capacity
            )));
        }
        Ok(())
    }

    /// `permit`, reported as reserved.
    fn reserved(&self, permit: OwnedSemaphorePermit) -> Reservation {
        self.recorder.bytes_reserved(permit.num_permits() as u64);
        Reservation {
            permit: Some(permit),
            recorder: self.recorder.clone(),
        }
    }

    /// An empty reservation to merge others into.
    pub fn empty(&self) -> Reservation {
        Reservation {
            permit: None,
            recorder: self.recorder.clone(),
        }
    }
}

/// Bytes held from the budget; given back (and reported) when dropped, so that an
/// error path can never leak budget.
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    recorder: Arc<dyn Recorder>,
}

impl Reservation {
    /// Bytes it holds.
    pub fn bytes(&self) -> u64 {
        self.permit.as_ref().map_or(0, |p| p.num_permits() as u64)
    }

    /// Takes `n` bytes out into a reservation of their own (to release them earlier
    /// or later than the rest). Takes what there is if `n` is more.
    pub fn split(&mut self, n: u64) -> Reservation {
        let n = n.min(self.bytes()) as usize;
        let part = if n == 0 {
            None
        } else {
            self.permit.as_mut().and_then(|p| p.split(n))
        };
        Reservation {
            permit: part,
            recorder: self.recorder.clone(),
        }
    }

    /// Adds `other`'s bytes to this reservation.
    pub fn merge(&mut self, mut other: Reservation) {
        if let Some(p) = other.permit.take() {
            match &mut self.permit {
                Some(mine) => mine.merge(p),
                None => self.permit = Some(p),
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            // Reported before the permits go back, so that the recorder's gauge can
            // never see the next reservation before this release.
            self.recorder.bytes_released(p.num_permits() as u64);
            drop(p);
        }
    }
}

/// `io_in_flight` over reads and writes together.
#[derive(Clone)]
pub struct IoLimit {
    sem: Arc<Semaphore>,
    recorder: Arc<dyn Recorder>,
}

impl IoLimit {
    /// At most `io_in_flight` (at least 1) operations at once, reported to
    /// `recorder`.
    pub fn new(io_in_flight: usize, recorder: Arc<dyn Recorder>) -> Self {
        IoLimit {
            sem: Arc::new(Semaphore::new(io_in_flight.max(1))),
            recorder,
        }
    }

    /// Waits for a slot, then reports the operation begun; the guard ends it.
    pub async fn begin(&self, io: Io, stop: &Stop) -> Result<IoGuard, RunError> {
        let permit = tokio::select! {
            p = self.sem.clone().acquire_owned() => {
                p.map_err(|_| RunError::Internal("IO limit closed".into()))?
            }
            _ = stop.wait() => return Err(RunError::Cancelled),
        };
        self.recorder.io_begin(io);
        Ok(IoGuard {
            io,
            permit: Some(permit),
            recorder: self.recorder.clone(),
        })
    }

    /// Waits for a slot to run several operations in, one after another (see
    /// [`IoSlot`]); nothing is reported until each begins.
    pub async fn slot(&self, stop: &Stop) -> Result<IoSlot, RunError> {
        let permit = tokio::select! {
            p = self.sem.clone().acquire_owned() => {
                p.map_err(|_| RunError::Internal("IO limit closed".into()))?
            }
            _ = stop.wait() => return Err(RunError::Cancelled),
        };
        Ok(IoSlot {
            _permit: permit,
            recorder: self.recorder.clone(),
        })
    }
}

/// One of the `io_in_flight` slots, held by operations that run one after another
/// on one thread (a batch of reads in one blocking-pool hop): the slot is taken
/// once, and each operation is reported as it begins and ends
/// ([`IoSlot::begin`]), so the recorder counts every read and never sees more in
/// flight than slots are taken.
pub struct IoSlot {
    _permit: OwnedSemaphorePermit,
    recorder: Arc<dyn Recorder>,
}

impl IoSlot {
    /// Reports one operation begun in this slot; the guard ends it. Call it again
    /// only once the previous guard is dropped.
    pub fn begin(&self, io: Io) -> SlotOp<'_> {
        self.recorder.io_begin(io);
        SlotOp { slot: self, io }
    }
}

/// One operation in an [`IoSlot`]; dropping it reports the operation ended.
pub struct SlotOp<'a> {
    slot: &'a IoSlot,
    io: Io,
}

impl Drop for SlotOp<'_> {
    fn drop(&mut self) {
        self.slot.recorder.io_end(self.io);
    }
}

/// One IO operation in flight.
pub struct IoGuard {
    io: Io,
    permit: Option<OwnedSemaphorePermit>,
    recorder: Arc<dyn Recorder>,
}

impl Drop for IoGuard {
    fn drop(&mut self) {
        self.recorder.io_end(self.io);
        drop(self.permit.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rechunk_contract::Counters;

    #[tokio::test]
    async fn reservations_split_merge_and_release_on_drop() {
        let counters = Arc::new(Counters::new());
        let budget = Budget::new(100, counters.clone());
        let stop = Stop::new(&Cancel::new());
        let mut a = budget.reserve(60, &stop).await.unwrap();
        let b = a.split(25);
        assert_eq!((a.bytes(), b.bytes()), (35, 25));
        let mut pool = budget.empty();
        pool.merge(b);
        assert_eq!(pool.bytes(), 25);
        drop(a);
        assert_eq!(counters.snapshot().bytes_in_flight_now, 25);
        drop(pool);
        let c = counters.snapshot();
        assert_eq!((c.bytes_in_flight_now, c.max_bytes_in_flight), (0, 60));
    }

    #[tokio::test]
    async fn try_reserve_never_overtakes_a_waiting_reservation() {
        let counters = Arc::new(Counters::new());
        let budget = Budget::new(100, counters.clone());
        let stop = Stop::new(&Cancel::new());
        let held = budget.reserve(80, &stop).await.unwrap();
        assert!(budget.try_reserve(30).unwrap().is_none());
        let b = budget.clone();
        let s = stop.clone();
        let waiter = tokio::spawn(async move { b.reserve(50, &s).await.map(|r| r.bytes()) });
        // The waiter is queued for 50 of which 20 are free; 40 more come back.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut held = held;
        drop(held.split(40));
        // 60 free in all, but the first 50 belong to the waiter.
        assert!(budget.try_reserve(20).unwrap().is_none());
        assert_eq!(waiter.await.unwrap().unwrap(), 50);
        assert_eq!(budget.try_reserve(10).unwrap().map(|r| r.bytes()), Some(10));
        assert!(matches!(budget.try_reserve(101), Err(RunError::Job(_))));
    }

    #[tokio::test]
    async fn a_user_cancel_reaches_waiters_through_watch() {
        let cancel = Cancel::new();
        let stop = Stop::new(&cancel);
        tokio::spawn({
            let stop = stop.clone();
            async move { stop.watch().await }
        });
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.wait().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        cancel.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiter woke")
            .unwrap();
    }

    #[tokio::test]
    async fn a_waiting_reservation_sees_the_stop() {
        let counters = Arc::new(Counters::new());
        let budget = Budget::new(10, counters);
        let stop = Stop::new(&Cancel::new());
        let _held = budget.reserve(10, &stop).await.unwrap();
        let s = stop.clone();
        tokio::spawn(async move { s.stop() });
        assert!(matches!(
            budget.reserve(5, &stop).await,
            Err(RunError::Cancelled)
        ));
        assert!(matches!(
            budget.reserve(11, &stop).await,
            Err(RunError::Job(_))
        ));
    }
}
