//! The exported-actor table: which local actors this node lets other nodes reach, and how
//! to decode what arrives for each.
//!
//! Inbound delivery always goes through this per-node table, never through ractor's
//! process-global pid registry: with several nodes in one process, node B must not reach
//! node A's actors just because they share an address space. Each entry remembers the
//! actor's message type as a decode function, so bytes are checked against the type tag
//! before anything is enqueued, and a failure is an error value to the caller.
//!
//! The concurrency lives in [`LiveTable`], a pid → entry map that forgets entries whose
//! actor has stopped. It is generic over the entry (anything that is an [`Owner`]), so the
//! same code is model-checked under loom with plain values (`tests/loom_exports.rs`) and used
//! here with ractor cells. The table itself exists with the `remote` feature only.

use crate::id::IdMap;

#[cfg(feature = "remote")]
mod table;
#[cfg(feature = "remote")]
pub use table::{DeliverError, ExportTable};

use crate::names::Owner;
use crate::sync::{Mutex, lock};

/// A concurrent pid → entry map that never hands out a dead entry.
///
/// Every operation is one critical section, which is what makes these promises hold under
/// any interleaving:
/// - a [`live`](Self::live) lookup that starts after a [`remove`](Self::remove) returned
///   never sees the removed entry;
/// - pruning a dead entry on lookup happens under the same lock as the liveness check, so it
///   can never remove an entry that was inserted in between;
/// - one pid has at most one entry; inserting again replaces it.
///
/// ```
/// use understudy_actor::exported::LiveTable;
/// use understudy_actor::names::Owner;
/// #[derive(Clone, Debug, PartialEq)]
/// struct Entry { alive: bool }
/// impl Owner for Entry { fn is_alive(&self) -> bool { self.alive } }
///
/// let table = LiveTable::new();
/// table.insert(1, Entry { alive: true });
/// table.insert(2, Entry { alive: false });
/// assert_eq!(table.live(1), Some(Entry { alive: true }));
/// assert_eq!(table.live(2), None); // dead: pruned on the way
/// assert_eq!(table.len(), 1);
/// assert!(table.remove(1));
/// assert!(table.is_empty());
/// ```
pub struct LiveTable<E> {
    entries: Mutex<Entries<E>>,
}

struct Entries<E> {
    map: IdMap<E>,
    /// Size after the last sweep; the next insert past twice this sweeps again, so entries
    /// of owners that died unnoticed never make up more than half the table.
    swept: usize,
}

/// Tables smaller than this are never swept on insert.
const SWEEP_FLOOR: usize = 64;

impl<E: Owner> Default for LiveTable<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Owner> LiveTable<E> {
    /// An empty table.
    pub fn new() -> Self {
        LiveTable {
            entries: Mutex::new(Entries {
                map: IdMap::default(),
                swept: 0,
            }),
        }
    }

    /// Inserts `entry` under `pid`, replacing any previous one. Returns whether one was there.
    pub fn insert(&self, pid: u64, entry: E) -> bool {
        let mut entries = lock(&self.entries);
        if entries.map.len() >= SWEEP_FLOOR.max(entries.swept * 2) {
            entries.map.retain(|_, e| e.is_alive());
            entries.swept = entries.map.len();
        }
        entries.map.insert(pid, entry).is_some()
    }

    /// Removes `pid`'s entry. Returns whether there was one.
    pub fn remove(&self, pid: u64) -> bool {
        lock(&self.entries).map.remove(&pid).is_some()
    }

    /// The entry for `pid` if its owner is alive; a dead owner's entry is pruned on the way.
    pub fn live(&self, pid: u64) -> Option<E> {
        let mut entries = lock(&self.entries);
        match entries.map.get(&pid) {
            Some(e) if e.is_alive() => Some(e.clone()),
            Some(_) => {
                entries.map.remove(&pid);
                None
            }
            None => None,
        }
    }

    /// How many entries the table holds (live or not yet pruned).
    pub fn len(&self) -> usize {
        lock(&self.entries).map.len()
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
