//! A scope: one independent overlay of groups, and the handle applications use.
//!
//! A remote member is stored as its address and message type; the ractor proxy that a ref to
//! it needs (an actor of its own, several KB) is made only when a ref is asked for
//! ([`Scope::get_members`], [`Member::typed`](crate::Member::typed)), then kept in the view
//! and reused while it runs. [`Scope::broadcast`] needs no proxy per member: it sends by
//! address on the connection to each member's node, the path a remote `tell` takes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ractor::message::SerializedMessage;
use ractor::{ActorCell, ActorId, ActorRef, ActorStatus};
use understudy_actor::{ActorAddr, RemoteMessage, tell};

use crate::core::{Entry, Output, ScopeCore};
use crate::driver::Env;
use crate::error::PgError;
use crate::event::{EventQueue, Member, Subscription};
use crate::kernel::Kernel;

/// A member's handle in the view: a local member's cell; for a remote member the proxy
/// made for it once a ref was asked for, `None` until then.
pub(crate) type Handle = Option<ActorCell>;

/// Whether a cell's actor still takes messages.
pub(crate) fn is_live(cell: &ActorCell) -> bool {
    !matches!(
        cell.get_status(),
        ActorStatus::Stopping | ActorStatus::Stopped
    )
}

/// A scope's shared state: its kernel and the node it runs on.
#[derive(Debug)]
pub(crate) struct ScopeShared {
    pub(crate) name: String,
    pub(crate) kernel: Kernel<Handle, EventQueue>,
    pub(crate) env: Arc<Env>,
}

impl ScopeShared {
    /// Applies a change and sends what it produced to peers.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut ScopeCore<Handle, EventQueue>) -> R) -> R {
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
/// assert_eq!(workers.get_members::<WorkerMsg>("workers").await?.len(), 1);
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
                handle: Some(actor.get_cell()),
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

    /// Every member of `group` on every node (an actor that joined twice is listed twice),
    /// as of one instant. An error if the group's members take another message type.
    ///
    /// A remote member's ref is a proxy actor on this node: the first lookup that needs one
    /// makes it (this is what may wait), later lookups reuse it while it runs. A member whose
    /// node cannot be reached now is left out: its node is gone and its leave is on the way.
    pub async fn get_members<M: RemoteMessage>(
        &self,
        group: &str,
    ) -> Result<Vec<ActorRef<M>>, PgError> {
        let (refs, missing) = self.refs_now::<M>(group)?;
        if missing.is_empty() {
            return Ok(refs);
        }
        // Boxed: making proxies is a large future, and a lookup that needs none should not
        // carry (and move) it.
        Box::pin(self.make_refs(group, refs, missing)).await
    }

    /// The refs of `group`'s members that exist now, and the addresses of those that have
    /// none (remote members no ref was asked for yet, or whose proxy stopped).
    fn refs_now<M: RemoteMessage>(
        &self,
        group: &str,
    ) -> Result<(Vec<ActorRef<M>>, Vec<ActorAddr>), PgError> {
        let me = self.shared.env.me;
        self.shared.kernel.read(|core| {
            let members = typed_members::<M>(group, core)?;
            let mut refs = Vec::with_capacity(members.len());
            let mut missing = Vec::new();
            for entry in members {
                match &entry.handle {
                    Some(cell) if entry.addr.node == me || is_live(cell) => {
                        refs.push(ActorRef::from(cell.clone()));
                    }
                    _ => missing.push(entry.addr),
                }
            }
            Ok((refs, missing))
        })
    }

    /// Makes the `missing` members' refs, keeps them in the view, and adds them to `refs`.
    async fn make_refs<M: RemoteMessage>(
        &self,
        group: &str,
        mut refs: Vec<ActorRef<M>>,
        missing: Vec<ActorAddr>,
    ) -> Result<Vec<ActorRef<M>>, PgError> {
        let me = self.shared.env.me;
        let mut made: HashMap<ActorAddr, ActorCell> = HashMap::new();
        for addr in &missing {
            if made.contains_key(addr) {
                continue;
            }
            match self.shared.env.resolve(*addr).await {
                Ok(cell) => {
                    made.insert(*addr, cell);
                }
                Err(e) => tracing::debug!(member = %addr, error = %e, "pg: member left out"),
            }
        }
        // Keep the proxies that run (one that stopped at once is not worth keeping: its
        // actor is gone, or its monitor could not be sent and the next lookup retries).
        self.shared.update(|core| {
            core.set_handles(group, |entry| match &entry.handle {
                Some(cell) if entry.addr.node == me || is_live(cell) => None,
                _ => made
                    .get(&entry.addr)
                    .filter(|cell| is_live(cell))
                    .map(|cell| Some(cell.clone())),
            })
        });
        refs.extend(
            missing
                .iter()
                .filter_map(|addr| made.get(addr))
                .map(|cell| ActorRef::from(cell.clone())),
        );
        Ok(refs)
    }

    /// The members of `group` on this node.
    pub fn get_local_members<M: RemoteMessage>(
        &self,
        group: &str,
    ) -> Result<Vec<ActorRef<M>>, PgError> {
        let me = self.shared.env.me;
        self.shared.kernel.read(|core| {
            Ok(typed_members::<M>(group, core)?
                .iter()
                .filter(|e| e.addr.node == me)
                .filter_map(|e| e.handle.clone())
                .map(ActorRef::from)
                .collect())
        })
    }

    /// Every member of `group`, whatever its message type (addresses and tags; see
    /// [`Member::typed`](crate::Member::typed) for a ref).
    pub fn members(&self, group: &str) -> Vec<Member> {
        let scope = Arc::downgrade(&self.shared);
        self.shared.kernel.read(|core| {
            core.members(group)
                .iter()
                .cloned()
                .map(|e| Member::from_entry(e, scope.clone()))
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
        let (queue, rx, reader) = EventQueue::new();
        let (id, snapshot) = self.shared.update(|core| core.monitor_scope(queue));
        let scope = Arc::downgrade(&self.shared);
        let snapshot = snapshot
            .into_iter()
            .map(|(g, members)| {
                let members = members
                    .into_iter()
                    .map(|e| Member::from_entry(e, scope.clone()))
                    .collect();
                (g, members)
            })
            .collect();
        (snapshot, Subscription::new(rx, reader, id, scope))
    }

    /// Monitors one group: its current members and, atomically, a subscription to every
    /// later join and leave (Erlang's `pg:monitor/2`). Members come untyped, with their
    /// addresses (a member whose node died can still be told apart);
    /// [`Member::typed`] gives the ref.
    pub fn monitor(&self, group: &str) -> (Vec<Member>, Subscription) {
        let (queue, rx, reader) = EventQueue::new();
        let (id, snapshot) = self.shared.update(|core| core.monitor_group(group, queue));
        let scope = Arc::downgrade(&self.shared);
        let members = snapshot
            .into_iter()
            .map(|e| Member::from_entry(e, scope.clone()))
            .collect();
        (members, Subscription::new(rx, reader, id, scope))
    }

    /// How many monitors this scope has on this node.
    pub fn monitor_count(&self) -> usize {
        self.shared.kernel.read(|core| core.monitor_count())
    }

    /// How many notices from peers this scope refused as invalid (a count above the limits,
    /// a member that changes type): each is dropped whole, before anything of it is made.
    /// Also counted, with notices that do not decode, in the `understudy_pg_rejected_total`
    /// metric.
    pub fn rejected(&self) -> u64 {
        self.shared.kernel.read(|core| core.rejected())
    }

    // ---- broadcast --------------------------------------------------------------------

    /// Sends `message` to every member of `group` on every node; returns how many it was
    /// handed to (a local member that stopped, a member whose node is unreachable, or a send
    /// refused `Overloaded` is skipped).
    ///
    /// A remote member is sent to by address, on the connection to its node, exactly as a
    /// `tell` to its ref would be (so the order of one sender's messages to one member
    /// holds): no proxy is made per member. A message to a remote member that has just
    /// stopped is dropped on its node, as in Erlang. It waits only to learn the connection
    /// to a node it has not sent to yet.
    pub async fn broadcast<M: RemoteMessage + Clone>(
        &self,
        group: &str,
        message: M,
    ) -> Result<usize, PgError> {
        let me = self.shared.env.me;
        let (local, mut remote) = self.shared.kernel.read(|core| {
            let members = typed_members::<M>(group, core)?;
            let mut local = Vec::new();
            let mut remote = Vec::new();
            for entry in members {
                match &entry.handle {
                    Some(cell) if entry.addr.node == me => {
                        local.push(ActorRef::<M>::from(cell.clone()))
                    }
                    _ => remote.push(entry.addr),
                }
            }
            Ok::<_, PgError>((local, remote))
        })?;
        if remote.is_empty() {
            return Ok(send_all(&local, message));
        }
        let mut sent = send_all(&local, message.clone());
        let wire = match Copies::new(message) {
            Ok(wire) => wire,
            Err(e) => {
                tracing::debug!(error = %e, "pg: broadcast message does not encode");
                return Ok(sent);
            }
        };
        remote.sort_unstable_by_key(|a| a.node);
        for run in remote.chunk_by(|a, b| a.node == b.node) {
            let node = run[0].node;
            let route = match self.shared.env.known_route(node) {
                Some(route) => route,
                // Boxed: it may make a proxy, a large future a broadcast should not carry.
                None => match Box::pin(self.shared.env.find_route(node, run[0].pid)).await {
                    Some(route) => route,
                    None => continue,
                },
            };
            sent += run
                .iter()
                .filter(|addr| wire.copy().is_some_and(|m| route.send(addr.pid, m).is_ok()))
                .count();
        }
        Ok(sent)
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

/// A message for each remote member it goes to: encoded once and copied (a tell), or
/// encoded for each (anything else a `RemoteMessage` may encode to).
enum Copies<M> {
    Tell {
        variant: String,
        args: Vec<u8>,
        metadata: Option<Vec<u8>>,
    },
    Each(M),
}

impl<M: RemoteMessage + Clone> Copies<M> {
    fn new(message: M) -> Result<Copies<M>, understudy_actor::EncodeError> {
        match message.clone().to_wire()? {
            SerializedMessage::Cast {
                variant,
                args,
                metadata,
            } => Ok(Copies::Tell {
                variant,
                args,
                metadata,
            }),
            _ => Ok(Copies::Each(message)),
        }
    }

    fn copy(&self) -> Option<SerializedMessage> {
        match self {
            Copies::Tell {
                variant,
                args,
                metadata,
            } => Some(SerializedMessage::Cast {
                variant: variant.clone(),
                args: args.clone(),
                metadata: metadata.clone(),
            }),
            Copies::Each(message) => message.clone().to_wire().ok(),
        }
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

/// `group`'s members, or an error if they take another message type than `M`.
fn typed_members<'a, M: RemoteMessage>(
    group: &str,
    core: &'a ScopeCore<Handle, EventQueue>,
) -> Result<&'a [Entry<Handle>], PgError> {
    core.typed_members(group, M::TAG)
        .map_err(|found| PgError::TypeMismatch {
            group: group.to_owned(),
            wanted: std::any::type_name::<M>(),
            found,
        })
}

fn local_pid(cell: ActorCell) -> Result<u64, PgError> {
    match cell.get_id() {
        ActorId::Local(pid) => Ok(pid),
        remote => Err(PgError::NotLocal {
            actor: remote.to_string(),
        }),
    }
}
