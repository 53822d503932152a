//! The name table: the registry's replicated state, as a pure state machine.
//!
//! Semantics (Erlang's `global` names, made linearizable by the log in front of it):
//! - **First writer wins.** `Register` gives a free name to its owner; a name held by another
//!   actor answers [`Outcome::AlreadyRegistered`] with the holder. Registering a name one
//!   already holds (the same [`Owner`]: actor, type and run) is success, so a retried write
//!   answers as the first try did.
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

use super::command::{Command, Outcome, Owner, Request, RequestId};
use super::placement::{Placed, Placements, Placing, Stage};

/// How many recent requests the table remembers the outcome of (in log order). A retry
/// arrives within the write deadline (5 s), far fewer requests later than this.
pub const REQUEST_WINDOW: usize = 1 << 18;

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
    /// The latest requests' outcomes, and their order (oldest first).
    requests: HashMap<RequestId, Outcome>,
    request_order: std::collections::VecDeque<RequestId>,
    /// The placed names' records (a member's; a client's copy has none).
    placed: Placements,
}

/// A table's content as it travels in a snapshot: the revision and every `(name, owner)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableImage {
    /// The revision the image was taken at.
    pub revision: u64,
    /// The names, in order.
    pub names: Vec<(String, Owner)>,
    /// The latest requests and their outcomes, oldest first (a member's snapshot; empty in a
    /// client's feed).
    #[serde(default)]
    pub requests: Vec<(RequestId, Outcome)>,
    /// The placed names' records (a member's snapshot; empty in a client's feed).
    #[serde(default)]
    pub placed: Vec<(String, Placed)>,
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
            requests: HashMap::new(),
            request_order: std::collections::VecDeque::new(),
            placed: Placements::default(),
        }
    }

    /// The placed names' records.
    pub fn placements(&self) -> &Placements {
        &self.placed
    }

    /// The placed names' records, to change (a replica following a feed; the kernel's
    /// record of which changed).
    pub(crate) fn placements_mut(&mut self) -> &mut Placements {
        &mut self.placed
    }

    /// Applies `request` as the entry at `revision`: its command, unless the request was
    /// applied before (then its first outcome, and no change).
    pub fn apply_request(
        &mut self,
        request: &Request,
        revision: u64,
        changes: &mut Vec<Change>,
    ) -> Outcome {
        if let Some(outcome) = self.requests.get(&request.id) {
            let outcome = outcome.clone();
            self.skip(revision);
            return outcome;
        }
        let outcome = self.apply(&request.command, revision, changes);
        self.remember(request.id, outcome.clone());
        outcome
    }

    /// Records that `id` was applied, outcome unknown here (this copy already had its
    /// effect from another member's feed).
    pub fn note_request(&mut self, id: RequestId) {
        if !self.requests.contains_key(&id) {
            self.remember(id, Outcome::Repeated);
        }
    }

    fn remember(&mut self, id: RequestId, outcome: Outcome) {
        if self.request_order.len() == REQUEST_WINDOW
            && let Some(oldest) = self.request_order.pop_front()
        {
            self.requests.remove(&oldest);
        }
        self.request_order.push_back(id);
        self.requests.insert(id, outcome);
    }

    /// Replaces the remembered requests with `requests` (oldest first).
    pub fn restore_requests(&mut self, requests: &[(RequestId, Outcome)]) {
        self.requests.clear();
        self.request_order.clear();
        for (id, outcome) in requests.iter().rev().take(REQUEST_WINDOW).rev() {
            self.remember(*id, outcome.clone());
        }
    }

    /// The revision of the last applied entry (0 before any).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The most names the table holds.
    pub fn max_names(&self) -> usize {
        usize::try_from(self.max_names).unwrap_or(usize::MAX)
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
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |n| n.starts_with(prefix))
            .filter_map(|n| self.names.get(n).map(|s| (&**n, s.owner)))
    }

    /// The names `actor` holds.
    pub fn names_of(&self, actor: ActorAddr) -> impl Iterator<Item = &str> {
        self.by_actor
            .get(&actor)
            .into_iter()
            .flatten()
            .map(|n| &**n)
    }

    /// Marks `revision` applied without a change (membership entries, blanks).
    pub fn skip(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
    }

    /// Applies `command` as the entry at `revision`; the changes go to `changes`.
    pub fn apply(
        &mut self,
        command: &Command,
        revision: u64,
        changes: &mut Vec<Change>,
    ) -> Outcome {
        self.skip(revision);
        match command {
            Command::Register { name, owner } => match self.names.get(name.as_str()) {
                // The same owner, run included: a later run reuses pids, and must not be
                // told it holds a name that `ReleaseNode` of the earlier run will take.
                Some(slot) if slot.owner == *owner => Outcome::Registered,
                Some(slot) => Outcome::AlreadyRegistered(slot.owner),
                None if self.placed.get(name).is_some() => self.reserved(name),
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
                Some(slot) if slot.owner != *owner => Outcome::NotOwner(slot.owner),
                Some(_) => {
                    self.release(name, revision, changes);
                    self.placed.forget(name);
                    Outcome::Unregistered
                }
            },
            Command::ReleaseActor {
                actor,
                incarnation,
                abnormal,
            } => {
                let names: Vec<Arc<str>> = self
                    .names_of_arc(*actor)
                    .into_iter()
                    .filter(|n| {
                        self.names
                            .get(n)
                            .is_some_and(|s| s.owner.incarnation == *incarnation)
                    })
                    .collect();
                for name in &names {
                    if let Some(old) = self.release(name, revision, changes) {
                        self.placed.holder_stopped(name, &old, *abnormal);
                    }
                }
                Outcome::Released(names.len() as u64)
            }
            Command::ReleaseNode { node, incarnation } => {
                let lo = ActorAddr {
                    node: *node,
                    pid: 0,
                };
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
                    if let Some(old) = self.release(name, revision, changes) {
                        self.placed.holder_stopped(name, &old, true);
                    }
                }
                self.placed.node_gone(*node, *incarnation);
                Outcome::Released(names.len() as u64)
            }
            Command::Place {
                name,
                spec,
                target,
                replaces,
                at_ms,
            } => {
                if let Some(slot) = self.names.get(name.as_str()) {
                    return Outcome::AlreadyRegistered(slot.owner);
                }
                // A record beyond the limits every copy holds records to (a peer may forward
                // any bytes) would be refused by every client's feed: it never enters.
                if !spec.fits() {
                    return Outcome::Stale;
                }
                if replaces.is_none()
                    && self.placed.get(name).is_none()
                    && self.names.len() as u64 >= self.max_names
                {
                    return Outcome::Full(self.max_names);
                }
                match self
                    .placed
                    .place(name, spec, *target, *replaces, *at_ms, revision)
                {
                    Placing::Assigned { epoch } => Outcome::Placed {
                        target: *target,
                        epoch,
                    },
                    Placing::Starting { target, epoch } => Outcome::Starting { target, epoch },
                    Placing::Stale => Outcome::Stale,
                    Placing::GaveUp => Outcome::GaveUp,
                }
            }
            Command::Bind { name, owner, epoch } => {
                let record = self.placed.get(name);
                let running = record.is_some_and(|r| {
                    r.epoch == *epoch && r.stage == Stage::Running { owner: *owner }
                });
                if running {
                    // A repeated bind (its answer was lost): as the first.
                    return Outcome::Registered;
                }
                // A move's holder gives the name to its successor in this one step.
                let moving_from = record.and_then(|r| match r.stage {
                    Stage::Moving { owner, .. } => Some(owner),
                    _ => None,
                });
                let held = self.names.get(name.as_str()).map(|s| s.owner);
                if held != moving_from || !self.placed.may_bind(name, owner, *epoch) {
                    return Outcome::Stale;
                }
                if held.is_some() {
                    self.remove(name);
                }
                self.insert(name, *owner);
                self.placed.bound(name, *owner);
                changes.push(Change {
                    revision,
                    name: name.clone(),
                    old: held,
                    new: Some(*owner),
                });
                Outcome::Registered
            }
            Command::Move {
                name,
                owner,
                target,
            } => match self.placed.begin_move(name, owner, *target, revision) {
                Some(epoch) => Outcome::Placed {
                    target: *target,
                    epoch,
                },
                None => Outcome::Stale,
            },
            Command::Abandon { name, epoch } => {
                if self.placed.abandon(name, *epoch) {
                    Outcome::Abandoned
                } else {
                    Outcome::Stale
                }
            }
        }
    }

    /// The answer to a `Register` of a name kept for a placed actor.
    fn reserved(&self, name: &str) -> Outcome {
        match self.placed.get(name).map(|p| (&p.stage, p.epoch)) {
            Some((Stage::Starting { target }, epoch)) => Outcome::Starting {
                target: *target,
                epoch,
            },
            _ => Outcome::Reserved,
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

    /// Frees `name`; the holder it had, if any.
    fn release(&mut self, name: &str, revision: u64, changes: &mut Vec<Change>) -> Option<Owner> {
        let slot = self.remove(name)?;
        changes.push(Change {
            revision,
            name: name.to_owned(),
            old: Some(slot.owner),
            new: None,
        });
        Some(slot.owner)
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
            requests: self
                .request_order
                .iter()
                .filter_map(|id| self.requests.get(id).map(|o| (*id, o.clone())))
                .collect(),
            revision: self.revision,
            names: self
                .ordered
                .iter()
                .filter_map(|n| self.names.get(n).map(|s| (n.to_string(), s.owner)))
                .collect(),
            placed: self.placed.image(),
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
        self.restore_requests(&image.requests);
        self.placed.restore(&image.placed);
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

impl<X: Default> NameTable<X> {
    /// How many names each node's actors hold.
    pub fn holder_counts(&self) -> BTreeMap<understudy_actor::NodeId, u64> {
        let mut counts = BTreeMap::new();
        for (addr, names) in &self.by_actor {
            *counts.entry(addr.node).or_insert(0) += names.len() as u64;
        }
        counts
    }

    /// Each node that holds names, with the latest incarnation among its holders.
    pub fn holder_nodes(&self) -> BTreeMap<understudy_actor::NodeId, u64> {
        let mut nodes = BTreeMap::new();
        for slot in self.names.values() {
            let latest = nodes.entry(slot.owner.node()).or_insert(0);
            *latest = (*latest).max(slot.owner.incarnation);
        }
        nodes
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;
    use understudy_actor::{ActorAddr, NodeId, Tag};

    use super::*;

    fn node(n: u64) -> NodeId {
        NodeId::new(n).expect("non-zero")
    }

    fn addr(n: u64, pid: u64) -> ActorAddr {
        ActorAddr { node: node(n), pid }
    }

    fn owner(n: u64, pid: u64, incarnation: u64) -> Owner {
        Owner {
            addr: addr(n, pid),
            tag: Tag(7),
            incarnation,
        }
    }

    fn register(name: &str, owner: Owner) -> Command {
        Command::Register {
            name: name.to_owned(),
            owner,
        }
    }

    fn unregister(name: &str, owner: Owner) -> Command {
        Command::Unregister {
            name: name.to_owned(),
            owner,
        }
    }

    /// Applies `command` at `revision` and returns the outcome with the changes it made.
    fn apply(table: &mut NameTable, command: &Command, revision: u64) -> (Outcome, Vec<Change>) {
        let mut changes = Vec::new();
        let outcome = table.apply(command, revision, &mut changes);
        (outcome, changes)
    }

    fn made(revision: u64, name: &str, old: Option<Owner>, new: Option<Owner>) -> Change {
        Change {
            revision,
            name: name.to_owned(),
            old,
            new,
        }
    }

    #[test]
    fn the_first_writer_wins_and_a_retry_answers_as_the_first_try() {
        let (a, b) = (owner(1, 1, 1), owner(2, 1, 1));
        let mut table = NameTable::new(10);
        assert_eq!(
            apply(&mut table, &register("x", a), 1),
            (Outcome::Registered, vec![made(1, "x", None, Some(a))])
        );
        assert_eq!(
            apply(&mut table, &register("x", b), 2),
            (Outcome::AlreadyRegistered(a), vec![])
        );
        assert_eq!(
            apply(&mut table, &register("x", a), 3),
            (Outcome::Registered, vec![])
        );
        assert_eq!(table.get("x").map(|s| s.owner), Some(a));
        assert_eq!(table.revision(), 3);
    }

    #[test]
    fn unregister_takes_a_name_only_from_the_actor_named() {
        let (a, b) = (owner(1, 1, 1), owner(2, 1, 1));
        let mut table = NameTable::new(10);
        apply(&mut table, &register("x", a), 1);
        assert_eq!(
            apply(&mut table, &unregister("x", b), 2),
            (Outcome::NotOwner(a), vec![])
        );
        assert_eq!(
            apply(&mut table, &unregister("x", a), 3),
            (Outcome::Unregistered, vec![made(3, "x", Some(a), None)])
        );
        // A late retry answers NotRegistered and takes nothing, even once the name moved on.
        assert_eq!(
            apply(&mut table, &unregister("x", a), 4),
            (Outcome::NotRegistered, vec![])
        );
        apply(&mut table, &register("x", b), 5);
        assert_eq!(
            apply(&mut table, &unregister("x", a), 6),
            (Outcome::NotOwner(b), vec![])
        );
        assert_eq!(table.get("x").map(|s| s.owner), Some(b));
    }

    #[test]
    fn a_full_table_refuses_new_names_but_answers_for_held_ones() {
        let a = owner(1, 1, 1);
        let mut table = NameTable::new(2);
        apply(&mut table, &register("x", a), 1);
        apply(&mut table, &register("y", a), 2);
        assert_eq!(
            apply(&mut table, &register("z", a), 3),
            (Outcome::Full(2), vec![])
        );
        assert_eq!(
            apply(&mut table, &register("x", a), 4),
            (Outcome::Registered, vec![])
        );
        assert_eq!(table.len(), 2);
        apply(&mut table, &unregister("x", a), 5);
        assert_eq!(
            apply(&mut table, &register("z", a), 6).0,
            Outcome::Registered
        );
        assert_eq!(table.names().collect::<Vec<_>>(), ["y", "z"]);
        assert_eq!(
            apply(&mut NameTable::new(0), &register("x", a), 1).0,
            Outcome::Full(0)
        );
    }

    #[test]
    fn release_node_stops_at_the_incarnation_and_the_node() {
        let old = owner(1, 1, 1);
        let later = owner(1, 2, 2);
        let other_node = owner(2, 1, 1);
        let mut table = NameTable::new(10);
        apply(&mut table, &register("old", old), 1);
        apply(&mut table, &register("later", later), 2);
        apply(&mut table, &register("other", other_node), 3);
        let release = Command::ReleaseNode {
            node: node(1),
            incarnation: 1,
        };
        assert_eq!(
            apply(&mut table, &release, 4),
            (Outcome::Released(1), vec![made(4, "old", Some(old), None)])
        );
        assert_eq!(table.names().collect::<Vec<_>>(), ["later", "other"]);
        assert_eq!(
            apply(&mut table, &release, 5),
            (Outcome::Released(0), vec![])
        );
    }

    /// A restarted node reuses pids (ractor counts them from 0 in every process), so its
    /// later run can ask for a name its earlier run's actor of the same pid still holds. That
    /// is someone else's name until the earlier run is released: answering `Registered` would
    /// let `ReleaseNode` of the earlier run take a name the later run was told it holds.
    #[test]
    fn a_later_run_with_a_reused_pid_does_not_inherit_its_earlier_run_s_name() {
        let earlier = owner(1, 5, 1);
        let later = owner(1, 5, 2);
        let mut table = NameTable::new(10);
        apply(&mut table, &register("x", earlier), 1);
        assert_eq!(
            apply(&mut table, &register("x", later), 2),
            (Outcome::AlreadyRegistered(earlier), vec![])
        );
        let release = Command::ReleaseNode {
            node: node(1),
            incarnation: 1,
        };
        assert_eq!(apply(&mut table, &release, 3).0, Outcome::Released(1));
        assert_eq!(
            apply(&mut table, &register("x", later), 4).0,
            Outcome::Registered
        );
        assert_eq!(apply(&mut table, &release, 5).0, Outcome::Released(0));
        assert_eq!(table.get("x").map(|s| s.owner), Some(later));
    }

    #[test]
    fn release_actor_takes_every_name_of_that_actor_only() {
        let (a, b) = (owner(1, 1, 1), owner(1, 2, 1));
        let mut table = NameTable::new(10);
        apply(&mut table, &register("y", a), 1);
        apply(&mut table, &register("x", a), 2);
        apply(&mut table, &register("z", b), 3);
        assert_eq!(table.names_of(a.addr).collect::<Vec<_>>(), ["x", "y"]);
        let (outcome, changes) = apply(
            &mut table,
            &Command::ReleaseActor {
                actor: a.addr,
                incarnation: a.incarnation,
                abnormal: false,
            },
            4,
        );
        assert_eq!(outcome, Outcome::Released(2));
        assert_eq!(
            changes,
            [made(4, "x", Some(a), None), made(4, "y", Some(a), None)]
        );
        assert_eq!(table.names_of(a.addr).count(), 0);
        assert_eq!(table.names().collect::<Vec<_>>(), ["z"]);
    }

    #[test]
    fn the_revision_never_goes_back() {
        let mut table: NameTable = NameTable::new(10);
        table.skip(5);
        table.skip(3);
        assert_eq!(table.revision(), 5);
        apply(&mut table, &register("x", owner(1, 1, 1)), 4);
        assert_eq!(table.revision(), 5);
    }

    #[test]
    fn apply_change_ignores_a_change_older_than_the_table() {
        let a = owner(1, 1, 1);
        let mut replica: NameTable = NameTable::new(10);
        replica.apply_change(&made(5, "x", None, Some(a)));
        replica.apply_change(&made(4, "y", None, Some(a)));
        replica.apply_change(&made(5, "z", None, Some(a)));
        assert_eq!(replica.names().collect::<Vec<_>>(), ["x", "z"]);
        assert_eq!(replica.revision(), 5);
    }

    #[test]
    fn restore_reports_a_moved_name_as_one_change() {
        let (a, b) = (owner(1, 1, 1), owner(2, 1, 1));
        let mut table = NameTable::new(10);
        apply(&mut table, &register("gone", a), 1);
        apply(&mut table, &register("kept", a), 2);
        apply(&mut table, &register("moved", a), 3);
        let image = TableImage {
            revision: 9,
            names: vec![("kept".into(), a), ("moved".into(), b), ("new".into(), b)],
            requests: Vec::new(),
            placed: Vec::new(),
        };
        let mut changes = Vec::new();
        table.restore(&image, &mut changes);
        assert_eq!(
            changes,
            [
                made(9, "gone", Some(a), None),
                made(9, "moved", Some(a), Some(b)),
                made(9, "new", None, Some(b)),
            ]
        );
        assert_eq!(table.image(), image);
        assert_eq!(table.names_of(a.addr).collect::<Vec<_>>(), ["kept"]);
        assert_eq!(table.names_of(b.addr).collect::<Vec<_>>(), ["moved", "new"]);
    }

    // The model: a map from name to owner, and the rules of the module doc.

    const NAMES: [&str; 7] = ["a", "ab", "abc", "b", "ba", "c", "é"];
    const PREFIXES: [&str; 8] = ["", "a", "ab", "abd", "b", "c", "d", "é"];

    #[derive(Clone, Debug, Default)]
    struct Model {
        names: BTreeMap<String, Owner>,
        max_names: u64,
    }

    impl Model {
        fn apply(&mut self, command: &Command) -> Outcome {
            match command {
                Command::Register { name, owner } => match self.names.get(name) {
                    Some(held) if held == owner => Outcome::Registered,
                    Some(held) => Outcome::AlreadyRegistered(*held),
                    None if self.names.len() as u64 >= self.max_names => {
                        Outcome::Full(self.max_names)
                    }
                    None => {
                        self.names.insert(name.clone(), *owner);
                        Outcome::Registered
                    }
                },
                Command::Unregister { name, owner } => match self.names.get(name) {
                    None => Outcome::NotRegistered,
                    Some(held) if held != owner => Outcome::NotOwner(*held),
                    Some(_) => {
                        self.names.remove(name);
                        Outcome::Unregistered
                    }
                },
                Command::ReleaseActor {
                    actor, incarnation, ..
                } => self.release(|o| o.addr == *actor && o.incarnation == *incarnation),
                Command::ReleaseNode { node, incarnation } => {
                    self.release(|o| o.addr.node == *node && o.incarnation <= *incarnation)
                }
                Command::Place { .. }
                | Command::Bind { .. }
                | Command::Abandon { .. }
                | Command::Move { .. } => {
                    unreachable!("the model covers plain names; placements have their own tests")
                }
            }
        }

        fn release(&mut self, gone: impl Fn(&Owner) -> bool) -> Outcome {
            let before = self.names.len();
            self.names.retain(|_, o| !gone(o));
            Outcome::Released((before - self.names.len()) as u64)
        }

        fn entries(&self) -> Vec<(String, Owner)> {
            self.names.iter().map(|(n, o)| (n.clone(), *o)).collect()
        }
    }

    /// The changes that turn `before` into `after`, in name order, all at `revision`.
    fn diff(
        before: &BTreeMap<String, Owner>,
        after: &BTreeMap<String, Owner>,
        revision: u64,
    ) -> Vec<Change> {
        let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        names
            .into_iter()
            .filter(|n| before.get(*n) != after.get(*n))
            .map(|n| made(revision, n, before.get(n).copied(), after.get(n).copied()))
            .collect()
    }

    fn sorted(mut changes: Vec<Change>) -> Vec<Change> {
        changes.sort_by(|a, b| a.name.cmp(&b.name));
        changes
    }

    /// Every read of `table` agrees with `model`.
    fn agrees(table: &NameTable, model: &Model) -> Result<(), TestCaseError> {
        prop_assert_eq!(&table.image().names, &model.entries());
        prop_assert_eq!(table.len(), model.names.len());
        prop_assert_eq!(table.is_empty(), model.names.is_empty());
        let names: Vec<&str> = table.names().collect();
        prop_assert_eq!(
            names,
            model.names.keys().map(String::as_str).collect::<Vec<_>>()
        );
        for name in NAMES {
            prop_assert_eq!(
                table.get(name).map(|s| s.owner),
                model.names.get(name).copied()
            );
        }
        for n in 1..=2 {
            for pid in 0..2 {
                let held: Vec<&str> = table.names_of(addr(n, pid)).collect();
                let expected: Vec<&str> = model
                    .names
                    .iter()
                    .filter(|(_, o)| o.addr == addr(n, pid))
                    .map(|(name, _)| name.as_str())
                    .collect();
                prop_assert_eq!(held, expected, "names of {}", addr(n, pid));
            }
        }
        for prefix in PREFIXES {
            let got: Vec<(&str, Owner)> = table.with_prefix(prefix).collect();
            let expected: Vec<(&str, Owner)> = model
                .names
                .iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .map(|(name, o)| (name.as_str(), *o))
                .collect();
            prop_assert_eq!(got, expected, "prefix {:?}", prefix);
        }
        Ok(())
    }

    fn any_addr() -> impl Strategy<Value = ActorAddr> {
        (1u64..=2, 0u64..2).prop_map(|(n, pid)| addr(n, pid))
    }

    fn any_owner() -> impl Strategy<Value = Owner> {
        (any_addr(), 0u64..2, 1u64..=3).prop_map(|(addr, tag, incarnation)| Owner {
            addr,
            tag: Tag(tag),
            incarnation,
        })
    }

    fn any_name() -> impl Strategy<Value = String> {
        proptest::sample::select(&NAMES[..]).prop_map(str::to_owned)
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            4 => (any_name(), any_owner()).prop_map(|(name, owner)| Command::Register { name, owner }),
            2 => (any_name(), any_owner()).prop_map(|(name, owner)| Command::Unregister { name, owner }),
            1 => (any_owner(), any::<bool>()).prop_map(|(o, abnormal)| Command::ReleaseActor { actor: o.addr, incarnation: o.incarnation, abnormal }),
            1 => (1u64..=2, 0u64..=3).prop_map(|(n, incarnation)| Command::ReleaseNode {
                node: node(n),
                incarnation,
            }),
        ]
    }

    /// A table and its model after `commands`, the first at `first_revision`.
    fn build(commands: &[Command], max_names: u64, first_revision: u64) -> (NameTable, Model) {
        let mut table = NameTable::new(max_names);
        let mut model = Model {
            max_names,
            ..Model::default()
        };
        for (i, command) in commands.iter().enumerate() {
            apply(&mut table, command, first_revision + i as u64);
            model.apply(command);
        }
        (table, model)
    }

    /// What the same command answers when applied again right after (the module doc: a
    /// retried register answers as the first try did; a retried unregister finds the name
    /// gone; a retried release finds nothing left).
    fn retried(first: &Outcome) -> Outcome {
        match first {
            Outcome::Unregistered => Outcome::NotRegistered,
            Outcome::Released(_) => Outcome::Released(0),
            same => same.clone(),
        }
    }

    /// A fixed seed, so every run checks the same cases (`PROPTEST_RNG_SEED` explores others).
    fn fixed_seed(cases: u32) -> ProptestConfig {
        let default = ProptestConfig::with_cases(cases);
        match default.rng_seed {
            RngSeed::Random => ProptestConfig {
                rng_seed: RngSeed::Fixed(0x7ab1e),
                ..default
            },
            _ => default,
        }
    }

    proptest! {
        #![proptest_config(fixed_seed(512))]

        /// Random commands (each maybe retried at once): every outcome and change is the
        /// model's, a retry changes nothing, and a replica following the changes stays equal.
        #[test]
        fn the_table_follows_the_model(
            steps in proptest::collection::vec((any_command(), any::<bool>()), 0..60),
            max_names in 0u64..6,
        ) {
            let (mut table, mut model) = build(&[], max_names, 1);
            let mut replica: NameTable = NameTable::new(max_names);
            let mut last_change = 0;
            let mut revision = 0;
            for (command, retry) in &steps {
                revision += 1;
                let before = model.names.clone();
                let expected = model.apply(command);
                let (outcome, changes) = apply(&mut table, command, revision);
                prop_assert_eq!(&outcome, &expected, "{}", command);
                prop_assert_eq!(
                    sorted(changes.clone()),
                    diff(&before, &model.names, revision),
                    "{}", command
                );
                prop_assert_eq!(table.revision(), revision);
                agrees(&table, &model)?;
                for change in &changes {
                    replica.apply_change(change);
                    last_change = change.revision;
                }
                prop_assert_eq!(&replica.image().names, &table.image().names);
                prop_assert_eq!(replica.revision(), last_change);
                if *retry {
                    revision += 1;
                    let (again, changes) = apply(&mut table, command, revision);
                    prop_assert_eq!(again, retried(&outcome), "retried {}", command);
                    prop_assert_eq!(changes, vec![]);
                    prop_assert_eq!(model.apply(command), retried(&outcome));
                    agrees(&table, &model)?;
                }
            }
        }

        /// Restoring any table's image into any other gives the image; the changes restore
        /// reports are exactly the difference, and they bring a copy of the old table (via
        /// `apply_change`) to the same names. The restored table keeps working as the model.
        #[test]
        fn restore_reaches_the_image_and_reports_the_difference(
            first in proptest::collection::vec(any_command(), 0..30),
            second in proptest::collection::vec(any_command(), 0..30),
            then in proptest::collection::vec(any_command(), 0..20),
            max_names in 0u64..6,
        ) {
            // `first` is the newer history (later revisions), so both directions are covered.
            let histories = [(&first, 1000), (&second, 1)];
            for (source, target) in [(0, 1), (1, 0)] {
                let (src, src_model) = build(histories[source].0, max_names, histories[source].1);
                let (mut dst, dst_model) = build(histories[target].0, max_names, histories[target].1);
                let image = src.image();
                let old_revision = dst.revision();
                let mut changes = Vec::new();
                dst.restore(&image, &mut changes);
                prop_assert_eq!(dst.image(), image.clone());
                prop_assert!(changes.windows(2).all(|w| w[0].name < w[1].name), "in name order");
                prop_assert_eq!(&changes, &diff(&dst_model.names, &src_model.names, image.revision));

                if image.revision >= old_revision {
                    let (mut copy, _) = build(histories[target].0, max_names, histories[target].1);
                    for change in &changes {
                        copy.apply_change(change);
                    }
                    prop_assert_eq!(&copy.image().names, &image.names);
                }

                let mut model = Model { names: src_model.names.clone(), max_names };
                let mut revision = dst.revision();
                for command in &then {
                    revision += 1;
                    let (outcome, _) = apply(&mut dst, command, revision);
                    prop_assert_eq!(outcome, model.apply(command), "{} after restore", command);
                    agrees(&dst, &model)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;
    use crate::core::command::RequestId;
    use understudy_actor::{NodeId, Tag};

    fn owner(pid: u64) -> Owner {
        Owner {
            addr: ActorAddr {
                node: NodeId::new(1).expect("non-zero"),
                pid,
            },
            tag: Tag(1),
            incarnation: 1,
        }
    }

    fn request(seq: u64, command: Command) -> Request {
        Request {
            id: RequestId { session: 9, seq },
            command,
        }
    }

    #[test]
    fn a_repeated_request_answers_its_first_outcome_and_changes_nothing() {
        let mut table: NameTable = NameTable::new(10);
        let mut changes = Vec::new();
        let take = request(
            1,
            Command::Register {
                name: "x".into(),
                owner: owner(1),
            },
        );
        assert_eq!(
            table.apply_request(&take, 1, &mut changes),
            Outcome::Registered
        );
        let free = request(
            2,
            Command::Unregister {
                name: "x".into(),
                owner: owner(1),
            },
        );
        assert_eq!(
            table.apply_request(&free, 2, &mut changes),
            Outcome::Unregistered
        );
        changes.clear();
        // A late copy of the first request (a retry whose answer was lost) does not take
        // the name back, and answers as the first time did.
        assert_eq!(
            table.apply_request(&take, 3, &mut changes),
            Outcome::Registered
        );
        assert!(changes.is_empty());
        assert!(table.get("x").is_none());
        assert_eq!(table.revision(), 3);
        // A retried unregister answers Unregistered, not NotRegistered.
        assert_eq!(
            table.apply_request(&free, 4, &mut changes),
            Outcome::Unregistered
        );
    }

    #[test]
    fn the_window_travels_in_the_image_and_forgets_the_oldest_first() {
        let mut table: NameTable = NameTable::new(REQUEST_WINDOW as u64 + 10);
        let mut changes = Vec::new();
        for seq in 0..(REQUEST_WINDOW as u64 + 2) {
            let r = request(
                seq,
                Command::ReleaseNode {
                    node: NodeId::new(2).expect("non-zero"),
                    incarnation: 0,
                },
            );
            table.apply_request(&r, seq + 1, &mut changes);
        }
        let image = table.image();
        assert_eq!(image.requests.len(), REQUEST_WINDOW);
        assert_eq!(image.requests[0].0.seq, 2, "the two oldest were forgotten");
        let mut copy: NameTable = NameTable::new(10);
        copy.restore(&image, &mut changes);
        assert_eq!(copy.image().requests, image.requests);
        // A request noted without its outcome answers Repeated.
        let unseen = RequestId { session: 1, seq: 1 };
        copy.note_request(unseen);
        let again = Request {
            id: unseen,
            command: Command::Register {
                name: "y".into(),
                owner: owner(2),
            },
        };
        assert_eq!(
            copy.apply_request(&again, image.revision + 1, &mut changes),
            Outcome::Repeated
        );
        assert!(copy.get("y").is_none());
    }
}
