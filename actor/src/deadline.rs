//! The deadline of a timed ask, and the timer that enforces it.
//!
//! A timed ask needs a timer only if the reply is not there at its first poll, so the timer is
//! armed then, not when the ask is built; the deadline itself is taken when the ask is sent.
//!
//! Arming a fresh `tokio::time::Sleep` per ask costs two trips through tokio's timer wheel
//! under the driver's lock: insert on the first poll, remove on drop (about 800 instructions
//! an ask, a fifth of a local ask's cost). Worse, inserting a timer due earlier than any the
//! parked worker knows of wakes that worker, which then steals the actor the ask just woke,
//! and the ask becomes a cross-thread round trip (twice the latency; docs/BENCHMARKS.md,
//! "The price of the default ask timeout"). So timers are reused: each
//! thread keeps a few armed `Sleep`s of its runtime, and an ask that needs one takes a pooled
//! one. tokio moves a timer to a *later* deadline without its lock (the wheel re-files the
//! entry only when the old deadline comes round), and a pooled timer is never removed from
//! the wheel, so in the steady state neither trip is taken.
//!
//! Timers fire up to [`SLACK`] (1 ms) after the deadline, tokio's own resolution: a pooled
//! timer whose deadline is within that of the ask's is used as it is, otherwise it is moved
//! to the ask's deadline plus the slack. Asks sent within a millisecond of each other (all
//! of a hot loop's) so share one deadline and do not even move the timer.
//!
//! What a pooled timer keeps between asks: its last waker. If it fires before it is reused
//! (its thread made no timed ask for a whole timeout), that task gets one spurious wake-up,
//! which futures must tolerate, and the waker (so the task's allocation) is held until then.
//! The pool is small and per thread, so this is bounded: [`POOL_SIZE`] wakers per thread,
//! for at most one timeout. Likewise a runtime with a paused clock (tokio's `test-util`) that
//! auto-advances while idle may advance to a pooled timer's deadline, as it would to any
//! other pending timer's.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::{Handle, Id};
// tokio's clock, not std's: it is the one timers follow (and tests pause).
use tokio::time::{Instant, Sleep};

/// When a timed ask gives up: the time it was sent plus its timeout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    pub(crate) timeout: Duration,
}

impl Deadline {
    /// `timeout` from now.
    pub(crate) fn after(timeout: Duration) -> Deadline {
        let now = Instant::now();
        Deadline {
            // A timeout too large to add (e.g. `Duration::MAX`) waits about as long as it says.
            at: now.checked_add(timeout).unwrap_or_else(|| now + FAR_FUTURE),
            timeout,
        }
    }
}

/// What tokio itself uses for "never" (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// How late after its deadline a timed ask may give up: tokio's timer resolution.
pub(crate) const SLACK: Duration = Duration::from_millis(1);

/// Timers kept per thread. A thread rarely has more timed asks pending than this at once;
/// beyond it, timers are dropped as usual.
pub(crate) const POOL_SIZE: usize = 16;

/// The armed timers of one thread, all of one runtime (a `Sleep` belongs to the runtime it
/// was made in; a thread may run several runtimes over its life, one at a time).
struct Pool {
    runtime: Option<Id>,
    timers: Vec<Pin<Box<Sleep>>>,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            runtime: None,
            timers: Vec::new(),
        })
    };
}

/// A timer that fires at a deadline; goes back to its thread's pool when dropped.
pub(crate) struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
    runtime: Id,
}

impl Timer {
    /// A timer that fires between `at` and `at` + [`SLACK`], on the current tokio runtime
    /// (panics outside one, as `tokio::time` does).
    pub(crate) fn arm(at: Instant) -> Timer {
        let runtime = Handle::current().id();
        let pooled = POOL
            .try_with(|pool| {
                let mut pool = pool.try_borrow_mut().ok()?;
                if pool.runtime == Some(runtime) {
                    pool.timers.pop()
                } else {
                    None
                }
            })
            .ok()
            .flatten();
        let latest = at.checked_add(SLACK).unwrap_or(at);
        let sleep = match pooled {
            Some(mut sleep) => {
                let fires = sleep.deadline();
                if fires < at || fires > latest {
                    sleep.as_mut().reset(latest);
                }
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(latest)),
        };
        Timer {
            sleep: Some(sleep),
            runtime,
        }
    }

    /// Ready once the deadline has passed.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let Some(sleep) = self.sleep.take() else {
            return;
        };
        // On a thread that is exiting (no pool any more) the timer is simply dropped.
        let _ = POOL.try_with(|pool| {
            let Ok(mut pool) = pool.try_borrow_mut() else {
                return;
            };
            if pool.runtime != Some(self.runtime) {
                // This thread moved on to another runtime: the old timers are of no use.
                pool.timers.clear();
                pool.runtime = Some(self.runtime);
            }
            if pool.timers.len() < POOL_SIZE {
                pool.timers.push(sleep);
            }
        });
    }
}
