//! Transparent remote actors: remote `ActorRef`s, asks across nodes, and monitors and links
//! that fire with `noconnection` when a node goes away.
//!
//! Semantics (Erlang's, on ractor):
//! - **Addresses.** A local actor whose message type is a `RemoteMessage` gets an
//!   [`ActorAddr`] by being exported; the address travels in messages and resolves, on any
//!   node, to a working `ActorRef` ([`RemoteCore::resolve`]).
//! - **Order.** Signals from one sender to one receiver arrive in send order and are never
//!   duplicated; a message sent before the sender exits arrives before that exit's DOWN (the
//!   DOWN travels on every lane and is acted on when all copies arrived). Messages in flight
//!   may be lost if the connection drops (at most once).
//! - **Monitors.** Every proxy asks the owning node to tell it when its actor exits; the proxy
//!   then stops with the actor's exit reason (`noproc` if it never existed), so ractor monitors
//!   and links on the proxy fire like local ones.
//! - **Node down.** When the connection to a node ends, every proxy of its actors stops with
//!   reason [`NOCONNECTION`], and every ask waiting on it fails.
//! - **Links.** [`RemoteCore::link`] links a local actor with a remote one both ways: each side
//!   gets a dedicated proxy of the other, supervised by its own actor, so each learns of the
//!   other's exit as a supervision event.

mod inbound;
mod proxy;
mod route;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ractor::{ActorCell, ActorId, ActorRef, ActorRuntime};
use understudy_actor::route::RouteRegistration;
use understudy_actor::{ActorAddr, NodeId, RemoteMessage, Runtime};

use crate::mesh::PeerLink;
use crate::wire::{ExitReason, Signal};
use proxy::{Agent, Proxy, ProxyState};
use route::LinkRoute;

/// The exit reason of remote actors whose node or connection went away.
pub const NOCONNECTION: &str = "noconnection";
/// The exit reason of a remote actor that did not exist (or was not exported).
pub const NOPROC: &str = "noproc";

/// Metric counting inbound messages that could not be delivered (unknown actor, bad bytes).
pub const DEAD_LETTERS_METRIC: &str = "understudy_dead_letters_total";

/// Why an address could not be turned into a ref.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// No connection to the address's node.
    #[error("not connected to node {0}; it is not (or no longer) a member")]
    NotConnected(NodeId),
    /// A local address of an actor that is not exported (or has stopped).
    #[error("no exported actor {0} on this node")]
    NoSuchActor(ActorAddr),
    /// The local actor's message type is not the one asked for.
    #[error("actor {0} takes another message type")]
    WrongType(ActorAddr),
    /// The proxy could not be started.
    #[error("could not create the remote ref: {0}")]
    Spawn(String),
}

struct PeerState {
    route: Arc<LinkRoute>,
    _registration: RouteRegistration,
    route_id: u64,
    /// pid → key of the shared proxy.
    shared: HashMap<u64, u64>,
}

struct ProxyEntry {
    peer: NodeId,
    serial: u64,
    cell: ActorCell,
}

/// Who on which connection watches a local actor.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Interest {
    peer: NodeId,
    serial: u64,
    watcher: u64,
}

#[derive(Default)]
struct State {
    peers: HashMap<NodeId, PeerState>,
    proxies: HashMap<u64, ProxyEntry>,
    interests: HashMap<u64, Vec<Interest>>,
    barriers: HashMap<(u64, u64), u16>,
    linkable: HashMap<u64, ActorCell>,
}

/// One node's remote-actor machinery.
pub struct RemoteCore {
    runtime: Runtime,
    state: Mutex<State>,
    next_key: AtomicU64,
    agent: OnceLock<ActorCell>,
}

impl std::fmt::Debug for RemoteCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCore").finish_non_exhaustive()
    }
}

impl RemoteCore {
    /// Creates the core and its watch agent.
    pub async fn start(runtime: Runtime) -> Result<Arc<RemoteCore>, ResolveError> {
        let core = Arc::new(RemoteCore {
            runtime,
            state: Mutex::new(State::default()),
            next_key: AtomicU64::new(1),
            agent: OnceLock::new(),
        });
        let (agent, _) = ractor::Actor::spawn(
            None,
            Agent {
                core: Arc::downgrade(&core),
            },
            (),
        )
        .await
        .map_err(|e| ResolveError::Spawn(e.to_string()))?;
        let _ = core.agent.set(agent.get_cell());
        Ok(core)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn agent(&self) -> Option<ActorCell> {
        self.agent.get().cloned()
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.runtime.node_id()
    }

    /// Stops the watch agent (the node is shutting down).
    pub fn stop(&self) {
        if let Some(a) = self.agent() {
            a.stop(None);
        }
    }

    /// A connection came up.
    pub fn peer_up(&self, link: &Arc<PeerLink>) {
        let route = LinkRoute::new(link.clone());
        let registration = understudy_actor::route::register(route.clone());
        let route_id = registration.id();
        self.state().peers.insert(
            link.info().id,
            PeerState {
                route,
                _registration: registration,
                route_id,
                shared: HashMap::new(),
            },
        );
    }

    /// A connection went down: its proxies stop with `noconnection`, its asks fail, and its
    /// interest in our actors is forgotten.
    pub fn peer_down(&self, link: &Arc<PeerLink>) {
        let (node, serial) = (link.info().id, link.serial());
        let (dead, route) = {
            let mut st = self.state();
            let route = match st.peers.get(&node) {
                Some(p) if p.route.link.serial() == serial => {
                    st.peers.remove(&node).map(|p| p.route)
                }
                _ => None,
            };
            let keys: Vec<u64> = st
                .proxies
                .iter()
                .filter(|(_, p)| p.peer == node && p.serial == serial)
                .map(|(k, _)| *k)
                .collect();
            let dead: Vec<ActorCell> = keys
                .iter()
                .filter_map(|k| st.proxies.remove(k))
                .map(|p| p.cell)
                .collect();
            for list in st.interests.values_mut() {
                list.retain(|i| !(i.peer == node && i.serial == serial));
            }
            st.interests.retain(|_, l| !l.is_empty());
            st.barriers.retain(|(s, _), _| *s != serial);
            (dead, route)
        };
        if let Some(route) = route {
            route.fail_all();
        }
        for cell in dead {
            cell.stop(Some(NOCONNECTION.to_owned()));
        }
    }

    /// Makes `actor` reachable from other nodes; returns its address.
    pub fn export<M: RemoteMessage>(&self, actor: &ActorRef<M>) -> ActorAddr {
        // The export table prunes stopped actors itself; `watch` looks there too.
        self.runtime.export(actor)
    }

    /// The ref for an address: the local actor itself, or a proxy of the remote one.
    pub async fn resolve<M: RemoteMessage>(
        &self,
        addr: ActorAddr,
    ) -> Result<ActorRef<M>, ResolveError> {
        let cell = self.resolve_cell(addr).await?;
        if addr.node == self.node_id() && cell.is_message_type_of::<M>() == Some(false) {
            return Err(ResolveError::WrongType(addr));
        }
        Ok(ActorRef::from(cell))
    }

    /// The cell for an address, untyped: the local actor itself, or a proxy of the remote one.
    pub async fn resolve_cell(&self, addr: ActorAddr) -> Result<ActorCell, ResolveError> {
        if addr.node == self.node_id() {
            return self
                .runtime
                .exports()
                .cell_of(addr.pid)
                .ok_or(ResolveError::NoSuchActor(addr));
        }
        let existing = {
            let st = self.state();
            let peer = st
                .peers
                .get(&addr.node)
                .ok_or(ResolveError::NotConnected(addr.node))?;
            peer.shared
                .get(&addr.pid)
                .and_then(|k| st.proxies.get(k))
                .filter(|p| understudy_actor::names::Owner::is_alive(&p.cell))
                .map(|p| p.cell.clone())
        };
        if let Some(cell) = existing {
            return Ok(cell);
        }
        let supervisor = self
            .agent()
            .ok_or_else(|| ResolveError::Spawn("node is stopped".into()))?;
        self.spawn_proxy(addr, supervisor, true).await
    }

    /// Spawns a proxy of `addr` supervised by `supervisor`, registers it and asks the owner to
    /// report the actor's exit. A shared proxy is the one `resolve` hands out.
    async fn spawn_proxy(
        &self,
        addr: ActorAddr,
        supervisor: ActorCell,
        shared: bool,
    ) -> Result<ActorCell, ResolveError> {
        let (route, route_id) = {
            let st = self.state();
            let peer = st
                .peers
                .get(&addr.node)
                .ok_or(ResolveError::NotConnected(addr.node))?;
            (peer.route.clone(), peer.route_id)
        };
        let state = ProxyState {
            route: route.clone(),
            pid: addr.pid,
        };
        let id = ActorId::Remote {
            node_id: route_id,
            pid: addr.pid,
        };
        let (proxy, _) = ActorRuntime::spawn_linked_remote(None, Proxy, id, state, supervisor)
            .await
            .map_err(|e| ResolveError::Spawn(e.to_string()))?;
        let cell = proxy.get_cell();
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let winner = {
            let mut st = self.state();
            let Some(peer) = st
                .peers
                .get_mut(&addr.node)
                .filter(|p| p.route_id == route_id)
            else {
                drop(st);
                cell.stop(Some(NOCONNECTION.to_owned()));
                return Err(ResolveError::NotConnected(addr.node));
            };
            let raced = if shared {
                peer.shared.get(&addr.pid).copied()
            } else {
                None
            };
            let live_other = raced
                .and_then(|k| st.proxies.get(&k))
                .filter(|p| understudy_actor::names::Owner::is_alive(&p.cell))
                .map(|p| p.cell.clone());
            match live_other {
                Some(other) => Some(other),
                None => {
                    if shared && let Some(peer) = st.peers.get_mut(&addr.node) {
                        peer.shared.insert(addr.pid, key);
                    }
                    st.proxies.insert(
                        key,
                        ProxyEntry {
                            peer: addr.node,
                            serial: route.link.serial(),
                            cell: cell.clone(),
                        },
                    );
                    None
                }
            }
        };
        if let Some(other) = winner {
            cell.stop(None);
            return Ok(other);
        }
        let monitor = Signal::Monitor {
            watcher: key,
            target: addr.pid,
        };
        if route.link.send_signal(addr.pid, &monitor).is_err() {
            self.state().proxies.remove(&key);
            cell.stop(Some(NOCONNECTION.to_owned()));
        }
        Ok(cell)
    }

    /// Links a local actor with a remote one, both ways (see the module docs).
    pub async fn link(&self, local: &ActorCell, remote: &ActorCell) -> Result<(), ResolveError> {
        let ActorId::Remote { pid, .. } = remote.get_id() else {
            // Both local: ractor's own link, the remote one supervising.
            local.link(remote.clone());
            return Ok(());
        };
        let here = self.node_id();
        let addr = ActorAddr::of(remote, here)
            .ok_or_else(|| ResolveError::Spawn("the remote ref's connection is gone".into()))?;
        let local_pid = local.get_id().pid();
        self.state().linkable.insert(local_pid, local.clone());
        // Our side: a dedicated proxy of the remote actor, supervised by the local one.
        self.spawn_proxy(
            ActorAddr {
                node: addr.node,
                pid,
            },
            local.clone(),
            false,
        )
        .await?;
        // Their side: they make a proxy of our actor supervised by theirs.
        let route = {
            let st = self.state();
            st.peers
                .get(&addr.node)
                .map(|p| p.route.clone())
                .ok_or(ResolveError::NotConnected(addr.node))?
        };
        route
            .link
            .send_signal(
                pid,
                &Signal::Link {
                    from: local_pid,
                    to: pid,
                },
            )
            .map_err(|_| ResolveError::NotConnected(addr.node))
    }

    /// A watched local actor exited: send each interested watcher its DOWN, once.
    fn local_exit(&self, pid: u64, reason: ExitReason) {
        let (interests, links) = {
            let mut st = self.state();
            st.linkable.remove(&pid);
            let interests = st.interests.remove(&pid).unwrap_or_default();
            let links: HashMap<NodeId, Arc<LinkRoute>> = st
                .peers
                .iter()
                .map(|(n, p)| (*n, p.route.clone()))
                .collect();
            (interests, links)
        };
        for i in interests {
            if let Some(route) = links.get(&i.peer).filter(|r| r.link.serial() == i.serial) {
                send_down(&route.link, i.watcher, pid, reason.clone());
            }
        }
    }

    /// A remote node asks to hear of `target`'s exit.
    fn watch(&self, link: &Arc<PeerLink>, watcher: u64, target: u64) {
        let cell = {
            let st = self.state();
            st.linkable
                .get(&target)
                .cloned()
                .or_else(|| self.runtime.exports().cell_of(target))
        };
        let interest = Interest {
            peer: link.info().id,
            serial: link.serial(),
            watcher,
        };
        let alive = cell
            .as_ref()
            .is_some_and(understudy_actor::names::Owner::is_alive);
        if let (true, Some(cell), Some(agent)) = (alive, cell.clone(), self.agent()) {
            self.state()
                .interests
                .entry(target)
                .or_default()
                .push(interest);
            agent.monitor(cell.clone());
            // It may have exited between the check and the monitor: then no event will come.
            if understudy_actor::names::Owner::is_alive(&cell) {
                return;
            }
        }
        // Not there (or just gone): DOWN now, unless the agent's event already sent it.
        let still_pending = {
            let mut st = self.state();
            match st.interests.get_mut(&target) {
                Some(list) => {
                    let before = list.len();
                    list.retain(|i| *i != interest);
                    before != list.len() || !alive
                }
                None => !alive,
            }
        };
        if still_pending {
            send_down(link, watcher, target, Some(NOPROC.to_owned()));
        }
    }

    fn unwatch(&self, link: &Arc<PeerLink>, watcher: u64, target: u64) {
        let mut st = self.state();
        if let Some(list) = st.interests.get_mut(&target) {
            list.retain(|i| {
                !(i.peer == link.info().id && i.serial == link.serial() && i.watcher == watcher)
            });
        }
    }

    /// One copy of a DOWN arrived; act when every lane's copy is in.
    fn down_copy(&self, link: &Arc<PeerLink>, watcher: u64, reason: ExitReason) {
        let lanes = link.info().lanes.max(1);
        let cell = {
            let mut st = self.state();
            let count = st.barriers.entry((link.serial(), watcher)).or_insert(0);
            *count += 1;
            if *count < lanes {
                return;
            }
            st.barriers.remove(&(link.serial(), watcher));
            let Some(entry) = st.proxies.remove(&watcher) else {
                return;
            };
            if let Some(peer) = st.peers.get_mut(&entry.peer) {
                peer.shared.retain(|_, k| *k != watcher);
            }
            entry.cell
        };
        cell.stop(reason);
    }

    /// The other side linked its actor `from` to our actor `to`.
    async fn linked(&self, link: Arc<PeerLink>, from: u64, to: u64) {
        let local = {
            let st = self.state();
            st.linkable
                .get(&to)
                .cloned()
                .or_else(|| self.runtime.exports().cell_of(to))
        };
        // Without our actor, their side's proxy of it gets `noproc` and they learn it that way.
        let Some(local) = local else { return };
        let addr = ActorAddr {
            node: link.info().id,
            pid: from,
        };
        if let Err(e) = self.spawn_proxy(addr, local, false).await {
            tracing::debug!(error = %e, "remote link not established");
        }
    }
}

fn send_down(link: &PeerLink, watcher: u64, target: u64, reason: ExitReason) {
    let down = Signal::Down {
        watcher,
        target,
        reason,
    };
    for lane in 0..link.lanes() {
        let _ = link.send_signal_on(lane, &down);
    }
}
