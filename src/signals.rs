//! Ctrl-C (SIGINT) and SIGTERM.
//!
//! The first of either asks the command to stop: generation stops between files,
//! the runner stops the repetition's child process (SIGTERM, then SIGKILL after
//! [`CHILD_GRACE`]), cleans up, marks `results.json` as interrupted, and exits with
//! 128 + the signal's number (130 for SIGINT, 143 for SIGTERM). A second signal
//! exits at once with that code. Child processes die with their parent
//! (`PR_SET_PDEATHSIG`), so none is left running whatever ends the parent.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use rechunk_contract::Cancel;

/// How long a child process may take to stop after SIGTERM before it is killed.
pub const CHILD_GRACE: Duration = Duration::from_secs(2);

/// The first signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// A command stopped by a signal; main exits with [`Interrupted::exit_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by {}", signal_name(*.0))]
pub struct Interrupted(pub i32);

impl Interrupted {
    /// The process's exit code: 128 + the signal's number (130 for SIGINT, 143 for
    /// SIGTERM).
    pub fn exit_code(self) -> u8 {
        (128 + self.0).clamp(0, 255) as u8
    }
}

/// SIGINT, SIGTERM or the number.
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// Installs the handlers in this process; `cancel`, if given, is cancelled by the
/// first signal (the child process's backend run).
pub fn install(cancel: Option<Cancel>) -> anyhow::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let cancel = cancel.clone();
        // SAFETY: the handler only does async-signal-safe things: atomic
        // operations (Cancel::cancel is one atomic store) and _exit.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                if let Err(first) =
                    RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                {
                    signal_hook::low_level::exit(128 + first);
                }
                if let Some(c) = &cancel {
                    c.cancel();
                }
            })
        }?;
    }
    Ok(())
}

/// The signal received, if any.
pub fn received() -> Option<Interrupted> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(Interrupted(s)),
    }
}

/// `Err(Interrupted)` once a signal came.
pub fn check() -> Result<(), Interrupted> {
    match received() {
        None => Ok(()),
        Some(i) => Err(i),
    }
}
