//! Shared helpers for the loom models (`tests/loom_*.rs`).
//!
//! Only compiled under `RUSTFLAGS="--cfg understudy_loom"`, together with the models.

#![allow(dead_code, unreachable_pub)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use understudy_actor::names::Owner;

/// Runs a loom model with a preemption bound of 2 unless `LOOM_MAX_PREEMPTIONS` says
/// otherwise: bound 2 catches most bugs (loom's docs, tokio's and crossbeam's CI) and keeps
/// every model here well under a second. Prints how many executions loom explored (shown
/// with `-- --nocapture`), so a model that accidentally explores nothing stands out.
pub fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new(); // reads the LOOM_* environment variables
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    // A plain std counter: loom must not see it, or it would become part of the model.
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = executions.clone();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    let name = std::thread::current().name().unwrap_or("model").to_owned();
    eprintln!(
        "{name}: {} executions (preemption bound {:?})",
        executions.load(std::sync::atomic::Ordering::Relaxed),
        builder.preemption_bound,
    );
}

/// A stand-in for an actor: an id plus a liveness that is fixed or flips at run time.
#[derive(Clone)]
pub struct Proc {
    pub id: u32,
    life: Life,
}

#[derive(Clone)]
enum Life {
    /// Never changes during the model; keeps the state space small (no modelled atomics).
    Fixed(bool),
    /// Can die while the model runs, as an actor that stops concurrently.
    Flag(Arc<AtomicBool>),
}

impl Proc {
    /// An owner that stays alive for the whole model.
    pub fn alive(id: u32) -> Self {
        Proc {
            id,
            life: Life::Fixed(true),
        }
    }

    /// An owner that has already stopped.
    pub fn dead(id: u32) -> Self {
        Proc {
            id,
            life: Life::Fixed(false),
        }
    }

    /// An owner that is alive now and stops when [`Proc::die`] is called.
    pub fn mortal(id: u32) -> Self {
        Proc {
            id,
            life: Life::Flag(Arc::new(AtomicBool::new(true))),
        }
    }

    /// Stops a [`Proc::mortal`] owner (what ractor does when the actor begins stopping).
    pub fn die(&self) {
        match &self.life {
            Life::Flag(alive) => alive.store(false, Ordering::SeqCst),
            Life::Fixed(_) => panic!("only a mortal Proc can die during a model"),
        }
    }
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never touches the loom flag: Debug runs inside assertion messages, where a modelled
        // load would be one more scheduling point (or a panic while panicking).
        let life = match self.life {
            Life::Fixed(true) => "alive",
            Life::Fixed(false) => "dead",
            Life::Flag(_) => "mortal",
        };
        write!(f, "Proc#{}({life})", self.id)
    }
}

impl PartialEq for Proc {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Owner for Proc {
    fn is_alive(&self) -> bool {
        match &self.life {
            Life::Fixed(alive) => *alive,
            Life::Flag(alive) => alive.load(Ordering::SeqCst),
        }
    }
}
