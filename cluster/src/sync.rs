//! The `sync` shim: std types normally, loom's under `--cfg understudy_loom`.
//!
//! The remote layer's barrier gate ([`crate::remote::gate`]) takes its primitives from here,
//! so the very same code runs in production and inside its loom models
//! (`cluster/tests/loom_gate.rs`).

#[cfg(understudy_loom)]
pub(crate) use loom::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

#[cfg(not(understudy_loom))]
pub(crate) use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

/// Locks a mutex, recovering from poisoning (every critical section leaves the data whole).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
