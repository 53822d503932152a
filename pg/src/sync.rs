//! The `sync` shim: std's lock normally, loom's under `--cfg understudy_loom`, so the scope
//! kernel runs unchanged inside the loom model (tests/loom_kernel.rs).

#[cfg(understudy_loom)]
pub(crate) use loom::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

#[cfg(not(understudy_loom))]
pub(crate) use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Read-locks, recovering from poisoning: every update of the core completes or panics before
/// touching shared state through a half-made change, and one panicking caller must not take
/// a whole scope down.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

/// Write-locks, recovering from poisoning (see [`read`]).
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}
