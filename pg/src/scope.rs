//! A scope: one independent overlay of groups, and the handle applications use.

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::{ActorCell, ActorId, ActorRef, ActorStatus};
use tokio::sync::mpsc;
use understudy_actor::{ActorAddr, RemoteMessage, tell};

use crate::core::{Entry, Output};
use crate::driver::Env;
use crate::error::PgError;
use crate::event::{EventQueue, Member, Subscription};
use crate::kernel::Kernel;

/// A scope's shared state: its kernel and the node it runs on.
#[derive(Debug)]
pub(crate) struct ScopeShared {
    pub(crate) name: String,
    pub(crate) kernel: Kernel<ActorCell, EventQueue>,
    pub(crate) env: Arc<Env>,
}

impl ScopeShared {
    /// Applies a change and sends what it produced to peers.
    pub(crate) fn update<R>(
        &self,
        f: impl FnOnce(&mut crate::core::ScopeCore<ActorCell, EventQueue>) -> R,
    ) -> R {
        self.kernel.update(f, |output| self.send(output))
    }

    fn send(&self, output: Output) {
        let Output::Send { to, message } = output;
        self.env.send(&self.name, to, message);
    }

    pub(crate) fn demonitor(&self, id: u64) {
        let sink = self.update(|core| core.demonitor(id));
        drop(sink);
    }
}

/// A handle on one scope of process groups on this node (cheap to clone).
///
/// Groups are named by strings; the members of a group are actors of one message type
/// (`M: RemoteMessage`, so that every node can reach them). Lookups read this node's view,
/// which every node keeps up to date from the others (eventually consistent; see the crate
/// docs for what is guaranteed).
///
/// ```
/// # use understudy_pg::__doc::*;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let (node, pg) = one_node().await?;
/// let workers = pg.default_scope()?;
/// let w = node.spawn(Worker).await?;
/// workers.join("workers", &w)?;
/// assert_eq!(workers.get_members::<WorkerMsg>("workers")?.len(), 1);
/// workers.leave("workers", &w)?;
/// assert!(workers.leave("workers", &w).is_err()); // not_joined
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Scope {
    shared: Arc<ScopeShared>,
}

impl Scope {
    pub(crate) fn new(shared: Arc<ScopeShared>) -> Scope {
        Scope { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<ScopeShared> {
        &self.shared
    }

    /// The scope's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    // ---- join and leave ---------------------------------------------------------------

    /// A local actor joins `group` (again, if it is in it already: joins are counted).
    pub fn join<M: RemoteMessage>(&self, group: &str, actor: &ActorRef<M>) -> Result<(), PgError> {
        self.join_many(group, std::slice::from_ref(actor))
    }

    /// Several local actors join `group` in one change (one event, one delta).
    pub fn join_many<M: RemoteMessage>(
        &self,
        group: &str,
        actors: &[ActorRef<M>],
    ) -> Result<(), PgError> {
        let env = &self.shared.env;
        let mut entries = Vec::with_capacity(actors.len());
        for actor in actors {
            let pid = local_pid(actor.get_cell())?;
            env.export(actor);
            entries.push(Entry {
                addr: ActorAddr { node: env.me, pid },
                tag: M::TAG,
                handle: actor.get_cell(),
            });
        }
        self.shared
            .update(|core| core.join(group, entries))
            .map_err(|e| PgError::from_core(e, std::any::type_name::<M>()))?;
        for actor in actors {
            let cell = actor.get_cell();
            env.watch(&cell);
            // Stopped before the watch was in place: no exit will be reported, so leave now.
            if matches!(
                cell.get_status(),
                ActorStatus::Stopping | ActorStatus::Stopped
            ) {
                self.member_down(cell.get_id().pid());
            }
        }
        Ok(())
    }

    /// A local actor leaves `group` once. [`PgError::NotJoined`] if it was not in it.
    pub fn leave<M: RemoteMessage>(&self, group: &str, actor: &ActorRef<M>) -> Result<(), PgError> {
        self.leave_many(group, std::slice::from_ref(actor))
    }

    /// Several local actors leave `group` once each. [`PgError::NotJoined`] if none of them
    /// was in it; otherwise those that were leave.
    pub fn leave_many<M: RemoteMessage>(
        &self,
        group: &str,
        actors: &[ActorRef<M>],
    ) -> Result<(), PgError> {
        let pids = actors
            .iter()
            .map(|a| local_pid(a.get_cell()))
            .collect::<Result<Vec<u64>, PgError>>()?;
        self.shared
            .update(|core| core.leave(group, &pids))
            .map_err(|e| PgError::from_core(e, std::any::type_name::<M>()))
    }

    /// A local actor stopped: it leaves every group of this scope.
    pub(crate) fn member_down(&self, pid: u64) {
        self.shared.update(|core| core.member_down(pid));
    }

    // ---- lookups ----------------------------------------------------------------------

    /// Every member of `group` on every node (an actor that joined twice is listed twice).
    /// An error if the group's members take another message type.
    pub fn get_members<M: RemoteMessage>(&self, group: &str) -> Result<Vec<ActorRef<M>>, PgError> {
        self.shared
            .kernel
            .read(|core| typed(group, core.members(group).iter()))
    }

    /// The members of `group` on this node.
    pub fn get_local_members<M: RemoteMessage>(
        &self,
        group: &str,
    ) -> Result<Vec<ActorRef<M>>, PgError> {
        self.shared
            .kernel
            .read(|core| typed(group, core.local_members(group)))
    }

    /// Every member of `group`, whatever its message type.
    pub fn members(&self, group: &str) -> Vec<Member> {
        self.shared.kernel.read(|core| {
            core.members(group)
                .iter()
                .cloned()
                .map(Member::from_entry)
                .collect()
        })
    }

    /// Every group with at least one member on any node, sorted.
    pub fn which_groups(&self) -> Vec<String> {
        self.shared.kernel.read(|core| core.groups())
    }

    /// The groups with members on this node, sorted.
    pub fn which_local_groups(&self) -> Vec<String> {
        self.shared.kernel.read(|core| core.local_groups())
    }

    // ---- monitors ---------------------------------------------------------------------

    /// Monitors every group of the scope: the current membership and, atomically, a
    /// subscription to every later change.
    pub fn monitor_scope(&self) -> (BTreeMap<String, Vec<Member>>, Subscription) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (id, snapshot) = self.shared.update(|core| core.monitor_scope(tx));
        let snapshot = snapshot
            .into_iter()
            .map(|(g, members)| (g, members.into_iter().map(Member::from_entry).collect()))
            .collect();
        (
            snapshot,
            Subscription::new(rx, id, Arc::downgrade(&self.shared)),
        )
    }

    /// Monitors one group: its current members and, atomically, a subscription to every
    /// later join and leave (Erlang's `pg:monitor/2`). Members come untyped, with their
    /// addresses (a member whose node died can still be told apart);
    /// [`Member::typed`] gives the ref.
    pub fn monitor(&self, group: &str) -> (Vec<Member>, Subscription) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (id, snapshot) = self.shared.update(|core| core.monitor_group(group, tx));
        (
            snapshot.into_iter().map(Member::from_entry).collect(),
            Subscription::new(rx, id, Arc::downgrade(&self.shared)),
        )
    }

    /// How many monitors this scope has on this node.
    pub fn monitor_count(&self) -> usize {
        self.shared.kernel.read(|core| core.monitor_count())
    }

    // ---- broadcast --------------------------------------------------------------------

    /// Sends `message` to every member of `group` on every node; returns how many it was
    /// handed to (a member that just stopped, or whose node is unreachable, is skipped).
    pub fn broadcast<M: RemoteMessage + Clone>(
        &self,
        group: &str,
        message: M,
    ) -> Result<usize, PgError> {
        Ok(send_all(&self.get_members::<M>(group)?, message))
    }

    /// Sends `message` to the members of `group` on this node; returns how many got it.
    pub fn broadcast_local<M: RemoteMessage + Clone>(
        &self,
        group: &str,
        message: M,
    ) -> Result<usize, PgError> {
        Ok(send_all(&self.get_local_members::<M>(group)?, message))
    }
}

fn send_all<M: RemoteMessage + Clone>(members: &[ActorRef<M>], message: M) -> usize {
    let Some((last, rest)) = members.split_last() else {
        return 0;
    };
    let mut sent = rest
        .iter()
        .filter(|m| tell(m, message.clone()).is_ok())
        .count();
    if tell(last, message).is_ok() {
        sent += 1;
    }
    sent
}

fn typed<'a, M: RemoteMessage>(
    group: &str,
    entries: impl Iterator<Item = &'a Entry<ActorCell>>,
) -> Result<Vec<ActorRef<M>>, PgError> {
    let (lower, _) = entries.size_hint();
    let mut out = Vec::with_capacity(lower);
    for entry in entries {
        if entry.tag != M::TAG {
            return Err(PgError::TypeMismatch {
                group: group.to_owned(),
                wanted: std::any::type_name::<M>(),
                found: entry.tag,
            });
        }
        out.push(ActorRef::from(entry.handle.clone()));
    }
    Ok(out)
}

fn local_pid(cell: ActorCell) -> Result<u64, PgError> {
    match cell.get_id() {
        ActorId::Local(pid) => Ok(pid),
        remote => Err(PgError::NotLocal {
            actor: remote.to_string(),
        }),
    }
}
