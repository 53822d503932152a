//! The `sync` shim: std types normally, loom's under `--cfg understudy_loom`.
//!
//! Every concurrency kernel of this crate (the Local name table, the exported-actor table)
//! takes its primitives from here, so the very same code runs in production and inside loom
//! models. The cfg is project-specific on purpose: a global `--cfg loom` would also switch
//! tokio's internals and break `tokio::net` (and with it quinn) in the rest of the graph.

#[cfg(understudy_loom)]
pub(crate) use loom::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicU64, Ordering},
};

#[cfg(not(understudy_loom))]
pub(crate) use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicU64, Ordering},
};

/// Locks a mutex, recovering from poisoning.
///
/// Our critical sections never leave a table half-updated (every update is a single map
/// operation), so a panic elsewhere while the lock was held cannot break an invariant; taking
/// the data back is correct and keeps one panicking actor from poisoning a whole node.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
