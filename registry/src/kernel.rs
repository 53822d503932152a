//! The shared state behind the registry: the name table, its watchers, and the refs cached
//! for lookups.
//!
//! Two writers feed it: the Raft state machine on a member (commands, in log order) and the
//! feed on a client (changes, in revision order). Readers take the read lock only:
//! `whereis` is a hash lookup and, after the first call, the clone of a cached ref.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ractor::{ActorCell, ActorRef, ActorStatus};
use tokio::sync::{mpsc, watch};
use understudy_actor::wire_ref::RefError;
use understudy_actor::{ActorAddr, RemoteMessage};

use crate::core::command::{Outcome, Owner, Request};
use crate::core::placement::{MAX_RESTARTS, Placed};
use crate::core::table::{Change, NameTable, TableImage};
use crate::error::RegistryError;

/// How many changes a watch may have waiting before it is ended with
/// [`RegistryError::WatchOverflow`].
pub const WATCH_BACKLOG: usize = 4096;

/// How many recent changes the kernel keeps for a replica catching up (an older gap gets the
/// whole table instead).
pub(crate) const RECENT_CHANGES: usize = 4096;

/// A name's cached ref (the local actor or a proxy), reset when the holder changes.
#[derive(Debug, Default)]
pub(crate) struct CachedCell(Mutex<Option<ActorCell>>);

#[derive(Debug)]
enum Filter {
    Name(String),
    Prefix(String),
}

impl Filter {
    fn matches(&self, name: &str) -> bool {
        match self {
            Filter::Name(n) => n == name,
            Filter::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

#[derive(Debug)]
struct Watcher {
    filter: Filter,
    tx: mpsc::Sender<Change>,
    overflowed: Arc<AtomicBool>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) table: NameTable<CachedCell>,
    watchers: Vec<Watcher>,
    /// The latest changes, oldest first, for replicas resuming from a revision: every change
    /// made after revision `floor` is here.
    pub(crate) recent: VecDeque<Change>,
    /// The latest placement records changed, `(revision, name)`, oldest first, kept under
    /// the same `floor`.
    recent_placed: VecDeque<(u64, String)>,
    pub(crate) floor: u64,
}

/// The most placement records one feed batch carries; a replica further behind gets the
/// whole table instead.
pub(crate) const MAX_PLACED_PER_BATCH: usize = 64;

/// What a replica at some revision lacks: the name changes in order, and the placement
/// records that changed, as they are now (`None`: gone).
pub(crate) type Lacking = (Vec<Change>, Vec<(String, Option<Placed>)>);

impl State {
    /// The changes after `revision`, if all of them are still kept (and the placement
    /// records among them fit one batch).
    pub(crate) fn changes_after(&self, revision: u64) -> Option<Lacking> {
        if revision < self.floor {
            return None;
        }
        let changes = self
            .recent
            .iter()
            .filter(|c| c.revision > revision)
            .cloned()
            .collect();
        let mut names: Vec<&str> = self
            .recent_placed
            .iter()
            .filter(|(r, _)| *r > revision)
            .map(|(_, n)| n.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        if names.len() > MAX_PLACED_PER_BATCH {
            return None;
        }
        let placed = names
            .into_iter()
            .map(|n| (n.to_owned(), self.table.placements().get(n).cloned()))
            .collect();
        Some((changes, placed))
    }

    fn note_placed(&mut self, revision: u64, names: Vec<String>) {
        for name in names {
            if self.recent_placed.len() == RECENT_CHANGES
                && let Some((dropped, _)) = self.recent_placed.pop_front()
            {
                self.floor = self.floor.max(dropped);
            }
            self.recent_placed.push_back((revision, name));
        }
    }
}

/// The name table and everything that follows it.
#[derive(Debug)]
pub(crate) struct Kernel {
    state: RwLock<State>,
    revision: watch::Sender<u64>,
    changed: tokio::sync::broadcast::Sender<()>,
}

impl Kernel {
    pub(crate) fn new(max_names: u64) -> Arc<Kernel> {
        Arc::new(Kernel {
            state: RwLock::new(State {
                table: NameTable::new(max_names),
                watchers: Vec::new(),
                recent: VecDeque::new(),
                recent_placed: VecDeque::new(),
                floor: 0,
            }),
            revision: watch::Sender::new(0),
            changed: tokio::sync::broadcast::channel(1).0,
        })
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The revision the table is at.
    pub(crate) fn revision(&self) -> u64 {
        *self.revision.borrow()
    }

    /// Follows the revision (for reads that wait for one).
    pub(crate) fn revisions(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Wakes on every batch of changes (feeds to replicas).
    pub(crate) fn changes(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.changed.subscribe()
    }

    /// Applies a command from the log at `revision`. The table at revision R reflects the
    /// log up to R, whichever way it got there (this node's Raft, or a member's feed while it
    /// was a client), so an entry at or below R is already in it and is skipped.
    pub(crate) fn apply(&self, request: &Request, revision: u64) -> Outcome {
        let mut changes = Vec::new();
        let mut state = self.write();
        let at = state.table.revision();
        if at != 0 && revision <= at {
            // Remembered all the same, so every member skips a later copy of it.
            state.table.note_request(request.id);
            return Outcome::Repeated;
        }
        let outcome = state.table.apply_request(request, revision, &mut changes);
        let touched = state.table.placements_mut().take_touched();
        state.note_placed(revision, touched);
        self.publish(state, changes);
        outcome
    }

    /// Marks a log entry with no name in it applied.
    pub(crate) fn skip(&self, revision: u64) {
        let mut state = self.write();
        state.table.skip(revision);
        self.publish(state, Vec::new());
    }

    /// Applies the changes a member made after revision `from`, up to revision `to` (a
    /// replica's feed). False if this table is not at `from` (a gap: resync).
    pub(crate) fn follow(
        &self,
        from: u64,
        to: u64,
        changes: Vec<Change>,
        placed: Vec<(String, Option<Placed>)>,
    ) -> bool {
        let mut state = self.write();
        if state.table.revision() != from || to < from {
            return false;
        }
        // A batch is checked whole before any of it is applied: its revisions in order
        // within (from, to] (a revision past `to` would put this copy ahead of the log and
        // make it refuse every later image), and no more new names than the table may hold.
        let ordered = changes
            .iter()
            .try_fold(from, |at, c| {
                (c.revision > from && c.revision >= at && c.revision <= to).then_some(c.revision)
            })
            .is_some();
        let new_names = changes
            .iter()
            .filter(|c| c.new.is_some() && state.table.get(&c.name).is_none())
            .count();
        let new_records = placed
            .iter()
            .filter(|(n, p)| p.is_some() && state.table.placements().get(n).is_none())
            .count();
        let records_fit = placed.iter().all(|(_, p)| {
            p.as_ref()
                .is_none_or(|p| p.spec.fits() && p.restarts.len() <= MAX_RESTARTS as usize)
        });
        if !ordered
            || !records_fit
            || state.table.len() + new_names > state.table.max_names()
            || placed.len() > MAX_PLACED_PER_BATCH
            || state.table.placements().len() + new_records > state.table.max_names()
        {
            return false;
        }
        for change in &changes {
            state.table.apply_change(change);
        }
        let names: Vec<String> = placed.iter().map(|(n, _)| n.clone()).collect();
        for (name, record) in placed {
            state.table.placements_mut().set(&name, record);
        }
        state.note_placed(to, names);
        state.table.skip(to);
        self.publish(state, changes);
        true
    }

    /// Replaces the table with `image` (a snapshot, or a replica's resync), unless the table
    /// is past it already.
    pub(crate) fn restore(&self, image: &TableImage) {
        let mut changes = Vec::new();
        let mut state = self.write();
        if image.revision < state.table.revision() {
            // The names here are newer; the requests a member's snapshot remembers are still
            // needed (the entries after it are replayed next and remembered on top).
            if !image.requests.is_empty() {
                state.table.restore_requests(&image.requests);
            }
            return;
        }
        state.table.restore(image, &mut changes);
        state.recent.clear();
        state.recent_placed.clear();
        state.floor = image.revision;
        self.publish(state, changes);
    }

    pub(crate) fn image(&self) -> TableImage {
        self.read().table.image()
    }

    fn publish(&self, mut state: RwLockWriteGuard<'_, State>, changes: Vec<Change>) {
        let revision = state.table.revision();
        if !changes.is_empty() {
            state.watchers.retain(|w| {
                for change in changes.iter().filter(|c| w.filter.matches(&c.name)) {
                    match w.tx.try_send(change.clone()) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            w.overflowed.store(true, Ordering::Release);
                            return false;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return false,
                    }
                }
                true
            });
            for change in changes {
                if state.recent.len() == RECENT_CHANGES
                    && let Some(dropped) = state.recent.pop_front()
                {
                    state.floor = state.floor.max(dropped.revision);
                }
                state.recent.push_back(change);
            }
        }
        drop(state);
        self.revision.send_if_modified(|r| {
            let moved = *r != revision;
            *r = revision;
            moved
        });
        let _ = self.changed.send(());
    }

    /// The holder of `name`.
    pub(crate) fn owner(&self, name: &str) -> Option<Owner> {
        self.read().table.get(name).map(|s| s.owner)
    }

    /// A typed ref to the holder of `name`: the cached one while it runs, else `resolve`d.
    pub(crate) fn whereis<M: RemoteMessage>(
        &self,
        name: &str,
        resolve: impl FnOnce(ActorAddr) -> Result<ActorCell, RefError>,
    ) -> Result<ActorRef<M>, RegistryError> {
        let state = self.read();
        let Some(slot) = state.table.get(name) else {
            return Err(RegistryError::NotRegistered {
                name: name.to_owned(),
            });
        };
        if slot.owner.tag != M::TAG {
            return Err(RegistryError::TypeMismatch {
                name: name.to_owned(),
                expected: M::TAG,
                found: slot.owner.tag,
            });
        }
        let mut cached = slot.extra.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cell) = cached.as_ref()
            && cell.get_status() < ActorStatus::Stopping
        {
            return Ok(cell.clone().into());
        }
        let owner = slot.owner.addr;
        let cell = resolve(owner).map_err(|source| RegistryError::Unreachable {
            name: name.to_owned(),
            owner,
            source,
        })?;
        *cached = Some(cell.clone());
        Ok(cell.into())
    }

    /// The current holder of `name` and a watch of its later changes, atomically.
    pub(crate) fn watch(&self, name: &str) -> (Option<Owner>, NameWatch) {
        let mut state = self.write();
        let now = state.table.get(name).map(|s| s.owner);
        let watch = Self::add(&mut state, Filter::Name(name.to_owned()));
        (now, watch)
    }

    /// The names under `prefix` with their holders, and a watch of their later changes.
    pub(crate) fn watch_prefix(&self, prefix: &str) -> (Vec<(String, Owner)>, NameWatch) {
        let mut state = self.write();
        let now = state
            .table
            .with_prefix(prefix)
            .map(|(n, o)| (n.to_owned(), o))
            .collect();
        let watch = Self::add(&mut state, Filter::Prefix(prefix.to_owned()));
        (now, watch)
    }

    fn add(state: &mut State, filter: Filter) -> NameWatch {
        let (tx, rx) = mpsc::channel(WATCH_BACKLOG);
        let overflowed = Arc::new(AtomicBool::new(false));
        state.watchers.push(Watcher {
            filter,
            tx,
            overflowed: overflowed.clone(),
        });
        NameWatch { rx, overflowed }
    }
}

/// The changes to watched names, in the order the registry made them (each with its
/// revision). Dropping it ends the watch.
#[derive(Debug)]
pub struct NameWatch {
    rx: mpsc::Receiver<Change>,
    overflowed: Arc<AtomicBool>,
}

impl NameWatch {
    /// The next change. [`RegistryError::WatchOverflow`] if this watch fell more than
    /// [`WATCH_BACKLOG`] changes behind (watch again for a fresh snapshot);
    /// [`RegistryError::Stopped`] once the registry is gone.
    pub async fn recv(&mut self) -> Result<Change, RegistryError> {
        match self.rx.recv().await {
            Some(change) => Ok(change),
            None if self.overflowed.load(Ordering::Acquire) => Err(RegistryError::WatchOverflow {
                backlog: WATCH_BACKLOG,
            }),
            None => Err(RegistryError::Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command::{Command, RequestId};
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
            id: RequestId { session: 1, seq },
            command,
        }
    }

    fn register(seq: u64, name: &str, pid: u64) -> Request {
        request(
            seq,
            Command::Register {
                name: name.into(),
                owner: owner(pid),
            },
        )
    }

    #[tokio::test]
    async fn a_watch_gets_the_holder_then_every_later_change_in_order() {
        let kernel = Kernel::new(100);
        kernel.apply(&register(1, "a", 1), 1);
        let (now, mut watch) = kernel.watch("a");
        assert_eq!(now, Some(owner(1)));
        let (prefixed, mut under) = kernel.watch_prefix("b/");
        assert!(prefixed.is_empty());
        kernel.apply(
            &request(
                2,
                Command::Unregister {
                    name: "a".into(),
                    owner: owner(1),
                },
            ),
            2,
        );
        kernel.apply(&register(3, "a", 2), 3);
        kernel.apply(&register(4, "b/x", 3), 4);
        kernel.apply(&register(5, "c", 3), 5);
        let first = watch.recv().await.expect("a change");
        assert_eq!(
            (first.revision, first.old, first.new),
            (2, Some(owner(1)), None)
        );
        let second = watch.recv().await.expect("a change");
        assert_eq!(
            (second.revision, second.old, second.new),
            (3, None, Some(owner(2)))
        );
        let prefixed = under.recv().await.expect("a change");
        assert_eq!((prefixed.name.as_str(), prefixed.revision), ("b/x", 4));
        assert_eq!(kernel.revision(), 5);
    }

    #[tokio::test]
    async fn a_watch_that_falls_behind_is_ended_with_an_overflow_never_a_gap() {
        let kernel = Kernel::new(10_000);
        let (_, mut watch) = kernel.watch_prefix("");
        for i in 0..=WATCH_BACKLOG as u64 {
            kernel.apply(&register(i + 1, &format!("n{i}"), i), i + 1);
        }
        for _ in 0..WATCH_BACKLOG {
            watch.recv().await.expect("the backlog is delivered");
        }
        assert!(matches!(
            watch.recv().await,
            Err(RegistryError::WatchOverflow { backlog }) if backlog == WATCH_BACKLOG
        ));
    }

    #[tokio::test]
    async fn a_copy_follows_a_members_changes_and_refuses_a_gap() {
        let member = Kernel::new(100);
        member.apply(&register(1, "a", 1), 1);
        member.apply(&register(2, "b", 2), 2);
        let copy = Kernel::new(100);
        let (changes, placed) = member.read().changes_after(0).expect("kept");
        assert!(copy.follow(0, 2, changes, placed));
        assert_eq!(copy.owner("b"), Some(owner(2)));
        member.skip(3);
        member.apply(&register(4, "c", 3), 4);
        let (later, placed) = member.read().changes_after(3).expect("kept");
        assert!(!copy.follow(3, 4, later, placed), "the copy is at 2: a gap");
        assert_eq!(copy.revision(), 2);
    }

    #[tokio::test]
    async fn placement_records_travel_with_the_changes_that_touched_them() {
        use crate::core::placement::{Intensity, Placement, Spec, Target};
        let member = Kernel::new(100);
        let spec = Spec {
            kind: "k".into(),
            args: vec![1],
            placement: Placement::Hash,
            restart: understudy_actor::supervisor::Restart::Permanent,
            intensity: Intensity::default(),
        };
        let place = Command::Place {
            name: "p".into(),
            spec,
            target: Target {
                node: owner(1).node(),
                incarnation: 1,
            },
            replaces: None,
            at_ms: 0,
        };
        member.apply(&request(1, place), 1);
        member.apply(
            &request(
                2,
                Command::Bind {
                    name: "p".into(),
                    owner: owner(1),
                    epoch: 1,
                },
            ),
            2,
        );
        let copy = Kernel::new(100);
        let (changes, placed) = member.read().changes_after(0).expect("kept");
        assert_eq!(placed.len(), 1, "one record, as it is now");
        assert!(copy.follow(0, 2, changes, placed));
        assert_eq!(
            copy.read().table.placements(),
            member.read().table.placements()
        );
        // More records than a batch carries: refused whole.
        let too_many = (0..=MAX_PLACED_PER_BATCH)
            .map(|i| (format!("q{i}"), None))
            .collect();
        assert!(!copy.follow(2, 3, Vec::new(), too_many));
        assert_eq!(copy.revision(), 2);
    }

    #[tokio::test]
    async fn a_batch_out_of_its_range_or_over_the_limit_is_refused_whole() {
        let copy = Kernel::new(2);
        let change = |revision: u64, name: &str| Change {
            revision,
            name: name.into(),
            old: None,
            new: Some(owner(1)),
        };
        // A revision past `to` would put the copy ahead of the log.
        assert!(!copy.follow(0, 2, vec![change(1, "a"), change(900, "b")], Vec::new()));
        // Out of order.
        assert!(!copy.follow(0, 3, vec![change(3, "a"), change(2, "b")], Vec::new()));
        // More names than the table holds.
        assert!(!copy.follow(
            0,
            3,
            vec![change(1, "a"), change(2, "b"), change(3, "c")],
            Vec::new()
        ));
        assert_eq!((copy.revision(), copy.read().table.len()), (0, 0));
        assert!(copy.follow(0, 2, vec![change(1, "a"), change(2, "b")], Vec::new()));
    }
}
