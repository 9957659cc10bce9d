//! The byte budget: the shared implementation of the `bytes_in_flight` limit for
//! thread-based backends, reporting every reservation and release to a
//! [`Recorder`].

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::backend::{Cancel, RunError};
use crate::recorder::Recorder;

/// A blocking counting semaphore over bytes: the shared implementation of the
/// `bytes_in_flight` limit for thread-based backends. Every reservation and release
/// is reported to the recorder, so limits are checked the same way for all.
pub struct ByteBudget {
    capacity: u64,
    used: Mutex<u64>,
    freed: Condvar,
    recorder: Arc<dyn Recorder>,
}

impl ByteBudget {
    /// A budget of `capacity` bytes, none reserved, reporting to `recorder`.
    pub fn new(capacity: u64, recorder: Arc<dyn Recorder>) -> Self {
        ByteBudget {
            capacity,
            used: Mutex::new(0),
            freed: Condvar::new(),
            recorder,
        }
    }

    /// The bytes it holds at most.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Waits until `n` bytes fit, then reserves them. Fails at once if `n` can never
    /// fit, and with `Cancelled` if `cancel` is set while waiting.
    pub fn acquire(&self, n: u64, cancel: &Cancel) -> Result<(), RunError> {
        if n > self.capacity {
            return Err(RunError::Job(format!(
                "one item needs {n} bytes but bytes_in_flight is {}",
                self.capacity
            )));
        }
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used + n > self.capacity {
            cancel.check()?;
            // A timeout, so that a cancel is seen even if nobody releases.
            used = self
                .freed
                .wait_timeout(used, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *used += n;
        self.recorder.bytes_reserved(n);
        Ok(())
    }

    /// Reserves `n` bytes if they fit now.
    pub fn try_acquire(&self, n: u64) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if *used + n > self.capacity {
            return false;
        }
        *used += n;
        self.recorder.bytes_reserved(n);
        true
    }

    /// Gives back `n` reserved bytes and wakes whoever waits for room.
    pub fn release(&self, n: u64) {
        if n == 0 {
            return;
        }
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        debug_assert!(*used >= n, "released more than was reserved");
        *used -= n;
        self.recorder.bytes_released(n);
        drop(used);
        self.freed.notify_all();
    }
}
