//! The concurrency kernel of a scope: the core behind one lock, and the rule that makes
//! monitors exact.
//!
//! Every change to the core, the events it pushes to monitors and the messages it sends to
//! peers happen inside one write-locked section; a monitor is registered (and its snapshot
//! taken) inside one too. So a monitor sees a snapshot and then exactly the later changes —
//! no gap, no duplicate — and peers receive deltas in version order. Lookups share the lock
//! for reading and never wait for each other.
//!
//! The loom model in `tests/loom_kernel.rs` checks this under every interleaving.

use crate::core::{EventSink, Output, ScopeCore};
use crate::sync::{RwLock, read, write};
use understudy_actor::NodeId;

/// A scope's core behind its lock.
#[derive(Debug)]
pub struct Kernel<H, S> {
    core: RwLock<ScopeCore<H, S>>,
}

impl<H: Clone, S: EventSink<H>> Kernel<H, S> {
    /// An empty scope on node `me`.
    pub fn new(me: NodeId) -> Self {
        Kernel {
            core: RwLock::new(ScopeCore::new(me)),
        }
    }

    /// Reads the core (lookups).
    pub fn read<R>(&self, f: impl FnOnce(&ScopeCore<H, S>) -> R) -> R {
        f(&read(&self.core))
    }

    /// Changes the core and carries out its outputs, in order, before anyone else may change
    /// it (`send` must not block).
    pub fn update<R>(
        &self,
        f: impl FnOnce(&mut ScopeCore<H, S>) -> R,
        mut send: impl FnMut(Output),
    ) -> R {
        let mut core = write(&self.core);
        let result = f(&mut core);
        for output in core.take_outputs() {
            send(output);
        }
        result
    }
}
