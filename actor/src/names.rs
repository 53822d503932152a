//! The Local name table: a per-node map from names to live actors.
//!
//! Semantics (as Erlang's `register/2`, per node, never process-global):
//! - at most one owner per name; a second `register` fails and tells the loser who owns it;
//! - an owner that has stopped no longer holds its name: the next `register` takes it over,
//!   so a supervisor restarting a named child gets the name back at once, without waiting
//!   for the old incarnation's cleanup to run;
//! - every registration carries a generation; `unregister` removes a name only if it still
//!   holds *that* registration, so a late cleanup of an old owner never removes a newer one.
//!
//! The table is generic over the owner (anything that can say whether it is alive) so the
//! same code is model-checked under loom with plain values, and used with `ActorCell`s here.

use std::collections::HashMap;

use crate::sync::{AtomicU64, Mutex, Ordering, lock};

/// Something that can own a name: it must be able to tell whether it is still alive.
pub trait Owner: Clone {
    /// Whether this owner still holds its names. A stopping or stopped actor does not.
    fn is_alive(&self) -> bool;
}

impl Owner for ractor::ActorCell {
    fn is_alive(&self) -> bool {
        !matches!(
            self.get_status(),
            ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped
        )
    }
}

/// Proof of one registration; give it back to [`NameTable::unregister`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    name: String,
    generation: u64,
}

impl Registration {
    /// The registered name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

struct Entry<V> {
    owner: V,
    generation: u64,
}

/// A concurrent name → owner table with at-most-one-owner and stale-safe unregister.
///
/// ```
/// use understudy_actor::names::{NameTable, Owner};
/// #[derive(Clone, Debug, PartialEq)]
/// struct Proc { id: u32, alive: bool }
/// impl Owner for Proc { fn is_alive(&self) -> bool { self.alive } }
///
/// let table = NameTable::new();
/// let first = table.register("db", Proc { id: 1, alive: true }).unwrap();
/// // A second owner loses and learns who holds the name.
/// assert_eq!(table.register("db", Proc { id: 2, alive: true }).unwrap_err().id, 1);
/// assert!(table.unregister(&first));
/// assert!(table.whereis("db").is_none());
/// ```
pub struct NameTable<V> {
    entries: Mutex<HashMap<String, Entry<V>>>,
    next_generation: AtomicU64,
}

impl<V: Owner> Default for NameTable<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Owner> NameTable<V> {
    /// An empty table.
    pub fn new() -> Self {
        NameTable {
            entries: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(1),
        }
    }

    /// Registers `owner` under `name`. Fails with the current owner if a live one holds it;
    /// a dead owner's entry is replaced.
    pub fn register(&self, name: &str, owner: V) -> Result<Registration, V> {
        // Drawn before the lock: generations only need to be unique, not ordered by the lock.
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let mut entries = lock(&self.entries);
        if let Some(current) = entries.get(name)
            && current.owner.is_alive()
        {
            return Err(current.owner.clone());
        }
        entries.insert(name.to_owned(), Entry { owner, generation });
        Ok(Registration {
            name: name.to_owned(),
            generation,
        })
    }

    /// Removes the registration if the name still holds exactly it. Returns whether it did.
    pub fn unregister(&self, registration: &Registration) -> bool {
        let mut entries = lock(&self.entries);
        match entries.get(&registration.name) {
            Some(e) if e.generation == registration.generation => {
                entries.remove(&registration.name);
                true
            }
            _ => false,
        }
    }

    /// The live owner of `name`, if any.
    pub fn whereis(&self, name: &str) -> Option<V> {
        let entries = lock(&self.entries);
        entries
            .get(name)
            .filter(|e| e.owner.is_alive())
            .map(|e| e.owner.clone())
    }

    /// All names with a live owner, sorted.
    pub fn registered(&self) -> Vec<String> {
        let entries = lock(&self.entries);
        let mut names: Vec<String> = entries
            .iter()
            .filter(|(_, e)| e.owner.is_alive())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }
}
