//! How a supervisor stops a child: politely with a deadline, or at once.
//!
//! As OTP's `shutdown` child-spec field:
//! - [`Shutdown::Timeout`]: ask the child to stop with reason `"shutdown"` (its `on_stop`
//!   runs), wait at most the given time, then kill it;
//! - [`Shutdown::BrutalKill`]: kill it at once (no `on_stop`);
//! - [`Shutdown::Infinity`]: ask it to stop and wait as long as it takes — the default for
//!   children that are supervisors themselves, which need the time to stop their own
//!   subtrees in order.
//!
//! A kill always ends the child's current await point (ractor aborts the running future), so
//! the wait after a kill is short — unless the child blocks its thread, which nothing in
//! async Rust can interrupt.

use std::time::Duration;

use ractor::ActorCell;

/// The stop reason a supervisor gives a child it stops (Erlang's `shutdown`).
pub const SHUTDOWN_REASON: &str = "shutdown";

/// How a supervisor stops a child (OTP's `shutdown`). A kill ends the child at its current
/// await point; only a child that blocks its thread can delay it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Kill at once; `on_stop` does not run.
    BrutalKill,
    /// Stop gracefully with reason `"shutdown"`; kill if it has not stopped in time.
    Timeout(Duration),
    /// Stop gracefully and wait for as long as it takes.
    Infinity,
}

impl Shutdown {
    /// The default for workers: `Timeout(5 s)`, as OTP.
    pub const WORKER_DEFAULT: Shutdown = Shutdown::Timeout(Duration::from_secs(5));
    /// The default for supervisors: `Infinity`, as OTP.
    pub const SUPERVISOR_DEFAULT: Shutdown = Shutdown::Infinity;
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::WORKER_DEFAULT
    }
}

/// Stops `cell` as `how` says and returns once it has stopped. Returns whether it had to be
/// killed after its graceful stop timed out.
pub(crate) async fn shut_down(cell: &ActorCell, how: Shutdown) -> bool {
    match how {
        Shutdown::BrutalKill => {
            cell.kill();
            let _ = cell.wait(None).await;
            false
        }
        Shutdown::Timeout(limit) => {
            // A failed send means it is already stopping: waiting is all there is to do.
            cell.stop(Some(SHUTDOWN_REASON.to_owned()));
            if cell.wait(Some(limit)).await.is_ok() {
                return false;
            }
            tracing::warn!(actor = %cell.get_id(), ?limit, "child ignored the shutdown deadline; killing it");
            cell.kill();
            let _ = cell.wait(None).await;
            true
        }
        Shutdown::Infinity => {
            cell.stop(Some(SHUTDOWN_REASON.to_owned()));
            let _ = cell.wait(None).await;
            false
        }
    }
}
