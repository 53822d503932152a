//! The name table: the registry's replicated state, as a pure state machine.
//!
//! Semantics (Erlang's `global` names, made linearizable by the log in front of it):
//! - **First writer wins.** `Register` gives a free name to its owner; a name held by another
//!   actor answers [`Outcome::AlreadyRegistered`] with the holder. Registering a name one
//!   already holds is success, so a retried write answers as the first try did.
//! - **Conditional unregister.** `Unregister` names the actor expected to hold the name, so a
//!   late retry cannot take a name that has moved on to someone else.
//! - **Release.** A stopped actor's names go with `ReleaseActor`; a failed, departed or
//!   restarted node's names go with `ReleaseNode` up to an incarnation, which never touches
//!   names its later run registered.
//! - **Bounded.** At most `max_names` names; one more is [`Outcome::Full`].
//!
//! Every change carries its revision, the log index that made it, so a replica that applies
//! changes in revision order ends equal to the table, and one that sees a gap knows it.
//! Each entry carries an `X` the table never reads (a driver's cache: the kernel keeps a
//! resolved actor ref there).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use understudy_actor::ActorAddr;

use super::command::{Command, Outcome, Owner};

/// One change to one name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The log index that made it.
    pub revision: u64,
    /// The name.
    pub name: String,
    /// Who held it before.
    pub old: Option<Owner>,
    /// Who holds it now.
    pub new: Option<Owner>,
}

/// One entry: the owner and the driver's cache beside it.
#[derive(Debug)]
pub struct Slot<X> {
    /// Who holds the name.
    pub owner: Owner,
    /// The driver's data for this holder (reset when the holder changes).
    pub extra: X,
}

/// The names and their holders, with the revision of the last applied entry.
#[derive(Debug)]
pub struct NameTable<X = ()> {
    names: HashMap<Arc<str>, Slot<X>>,
    ordered: BTreeSet<Arc<str>>,
    by_actor: BTreeMap<ActorAddr, BTreeSet<Arc<str>>>,
    revision: u64,
    max_names: u64,
}

/// A table's content as it travels in a snapshot: the revision and every `(name, owner)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableImage {
    /// The revision the image was taken at.
    pub revision: u64,
    /// The names, in order.
    pub names: Vec<(String, Owner)>,
}

impl<X: Default> NameTable<X> {
    /// An empty table holding at most `max_names` names.
    pub fn new(max_names: u64) -> Self {
        NameTable {
            names: HashMap::new(),
            ordered: BTreeSet::new(),
            by_actor: BTreeMap::new(),
            revision: 0,
            max_names,
        }
    }

    /// The revision of the last applied entry (0 before any).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// How many names are held.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The slot of `name`.
    pub fn get(&self, name: &str) -> Option<&Slot<X>> {
        self.names.get(name)
    }

    /// Every name in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.ordered.iter().map(|n| &**n)
    }

    /// The names starting with `prefix`, in order, with their holders.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, Owner)> {
        self.ordered
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(move |n| n.starts_with(prefix))
            .filter_map(|n| self.names.get(n).map(|s| (&**n, s.owner)))
    }

    /// The names `actor` holds.
    pub fn names_of(&self, actor: ActorAddr) -> impl Iterator<Item = &str> {
        self.by_actor.get(&actor).into_iter().flatten().map(|n| &**n)
    }

    /// Marks `revision` applied without a change (membership entries, blanks).
    pub fn skip(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
    }

    /// Applies `command` as the entry at `revision`; the changes go to `changes`.
    pub fn apply(&mut self, command: &Command, revision: u64, changes: &mut Vec<Change>) -> Outcome {
        self.skip(revision);
        match command {
            Command::Register { name, owner } => match self.names.get(name.as_str()) {
                Some(slot) if slot.owner.addr == owner.addr => Outcome::Registered,
                Some(slot) => Outcome::AlreadyRegistered(slot.owner),
                None if self.names.len() as u64 >= self.max_names => Outcome::Full(self.max_names),
                None => {
                    self.insert(name, *owner);
                    changes.push(Change {
                        revision,
                        name: name.clone(),
                        old: None,
                        new: Some(*owner),
                    });
                    Outcome::Registered
                }
            },
            Command::Unregister { name, owner } => match self.names.get(name.as_str()) {
                None => Outcome::NotRegistered,
                Some(slot) if slot.owner.addr != *owner => Outcome::NotOwner(slot.owner),
                Some(_) => {
                    self.release(name, revision, changes);
                    Outcome::Unregistered
                }
            },
            Command::ReleaseActor { actor } => {
                let names: Vec<Arc<str>> = self.names_of_arc(*actor);
                for name in &names {
                    self.release(name, revision, changes);
                }
                Outcome::Released(names.len() as u64)
            }
            Command::ReleaseNode { node, incarnation } => {
                let lo = ActorAddr { node: *node, pid: 0 };
                let hi = ActorAddr {
                    node: *node,
                    pid: u64::MAX,
                };
                let names: Vec<Arc<str>> = self
                    .by_actor
                    .range(lo..=hi)
                    .flat_map(|(_, names)| names.iter().cloned())
                    .filter(|n| {
                        self.names
                            .get(n)
                            .is_some_and(|s| s.owner.incarnation <= *incarnation)
                    })
                    .collect();
                for name in &names {
                    self.release(name, revision, changes);
                }
                Outcome::Released(names.len() as u64)
            }
        }
    }

    fn names_of_arc(&self, actor: ActorAddr) -> Vec<Arc<str>> {
        self.by_actor
            .get(&actor)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn insert(&mut self, name: &str, owner: Owner) {
        let name: Arc<str> = Arc::from(name);
        self.ordered.insert(name.clone());
        self.by_actor
            .entry(owner.addr)
            .or_default()
            .insert(name.clone());
        self.names.insert(
            name,
            Slot {
                owner,
                extra: X::default(),
            },
        );
    }

    fn release(&mut self, name: &str, revision: u64, changes: &mut Vec<Change>) {
        if let Some(slot) = self.remove(name) {
            changes.push(Change {
                revision,
                name: name.to_owned(),
                old: Some(slot.owner),
                new: None,
            });
        }
    }

    fn remove(&mut self, name: &str) -> Option<Slot<X>> {
        let slot = self.names.remove(name)?;
        self.ordered.remove(name);
        if let Some(held) = self.by_actor.get_mut(&slot.owner.addr) {
            held.remove(name);
            if held.is_empty() {
                self.by_actor.remove(&slot.owner.addr);
            }
        }
        Some(slot)
    }

    /// The table's content, for a snapshot.
    pub fn image(&self) -> TableImage {
        TableImage {
            revision: self.revision,
            names: self
                .ordered
                .iter()
                .filter_map(|n| self.names.get(n).map(|s| (n.to_string(), s.owner)))
                .collect(),
        }
    }

    /// Replaces the content with `image`; the changes that turn the old content into the new
    /// one (all at the image's revision, in name order) go to `changes`, so watchers see a
    /// snapshot install as ordinary changes.
    pub fn restore(&mut self, image: &TableImage, changes: &mut Vec<Change>) {
        let revision = image.revision;
        let incoming: HashMap<&str, Owner> =
            image.names.iter().map(|(n, o)| (n.as_str(), *o)).collect();
        let stale: Vec<Arc<str>> = self
            .ordered
            .iter()
            .filter(|n| incoming.get(&***n) != self.names.get(&***n).map(|s| &s.owner))
            .cloned()
            .collect();
        let mut dropped: BTreeMap<String, Owner> = BTreeMap::new();
        for name in &stale {
            if let Some(slot) = self.remove(name) {
                dropped.insert(name.to_string(), slot.owner);
            }
        }
        let mut made = Vec::new();
        for (name, owner) in &image.names {
            if self.names.contains_key(name.as_str()) {
                continue;
            }
            self.insert(name, *owner);
            made.push(Change {
                revision,
                name: name.clone(),
                old: dropped.remove(name),
                new: Some(*owner),
            });
        }
        made.extend(dropped.into_iter().map(|(name, old)| Change {
            revision,
            name,
            old: Some(old),
            new: None,
        }));
        made.sort_by(|a, b| a.name.cmp(&b.name));
        changes.extend(made);
        self.revision = revision;
    }
}

impl<X: Default> NameTable<X> {
    /// Applies a change made elsewhere (a replica following a member's table). Changes must
    /// come in revision order; an older one is ignored.
    pub fn apply_change(&mut self, change: &Change) {
        if change.revision < self.revision {
            return;
        }
        self.revision = change.revision;
        self.remove(&change.name);
        if let Some(owner) = change.new {
            self.insert(&change.name, owner);
        }
    }
}
