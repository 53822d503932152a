//! A process-wide table from ids to things held weakly: how a token in a message's metadata
//! finds the connection or node it names (ractor's hooks pass nothing else). Ids are never
//! reused, so a stale token finds nothing rather than something else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use crate::id::IdMap;

pub(crate) struct WeakRegistry<T: ?Sized> {
    next: AtomicU64,
    entries: RwLock<IdMap<Weak<T>>>,
}

impl<T: ?Sized> WeakRegistry<T> {
    pub(crate) fn new() -> Self {
        WeakRegistry {
            next: AtomicU64::new(1),
            entries: RwLock::new(IdMap::default()),
        }
    }

    /// Holds `item` weakly under a fresh id.
    pub(crate) fn insert(&self, item: &Arc<T>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::downgrade(item));
        id
    }

    pub(crate) fn remove(&self, id: u64) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// The item under `id`, if it is registered and alive.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<T>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .and_then(Weak::upgrade)
    }
}
