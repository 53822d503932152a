//! Transparent remote actors: remote `ActorRef`s, asks across nodes, and monitors, links and
//! exit signals that work across nodes, with `noconnection` when a node goes away.
//!
//! Semantics (Erlang's, on ractor):
//! - **Addresses.** A local actor whose message type is a `RemoteMessage` gets an
//!   [`ActorAddr`] by being exported; the address travels in messages and resolves, on any
//!   node, to a working `ActorRef` ([`RemoteDriver::resolve`]).
//! - **Order.** Messages from one sender to one receiver arrive in send order and are never
//!   duplicated; a message sent before the sender exits is delivered before that exit's DOWN
//!   takes effect (the DOWN carries a barrier, see `barrier.rs`). Messages in flight may be
//!   lost if the connection drops (at most once).
//! - **Monitors.** Every proxy asks the owning node to tell it when its actor exits; the proxy
//!   then stops with the actor's exit reason (`noproc` if it never existed), so ractor monitors
//!   and links on the proxy fire like local ones. A DOWN is never dropped: it waits for room
//!   on the signal stream, and if the peer stops reading even that, the connection fails and
//!   every watcher hears `noconnection`.
//! - **Node down.** When the connection to a node ends, every proxy of its actors stops with
//!   reason [`NOCONNECTION`], and every ask waiting on it fails.
//! - **Links.** [`RemoteDriver::link`] links a local actor with a remote one both ways: each
//!   side gets a dedicated proxy of the other, supervised by its own actor, so each learns of
//!   the other's exit as a supervision event. [`RemoteDriver::unlink`] removes both halves
//!   without an event. Linking twice is linking once.
//! - **Exit signals.** [`RemoteDriver::exit`] is Erlang's `exit(Pid, Reason)`: `kill` kills
//!   the target, `normal` is ignored, any other reason stops it with that reason. It takes
//!   effect after the messages sent before it.
//! - **Backpressure.** Messages from the network are charged to their lane's backlog until
//!   the receiving actor takes them out of its mailbox; a lane over
//!   [`RemoteConfig::lane_backlog`] is not read until its actors catch up, so the sender's
//!   lane fills and its sends fail with `Overloaded`. What any peer can make this node hold
//!   is bounded: backlogs per lane, monitors and links per peer ([`RemoteConfig`]).
//!
//! The pure parts — the barrier queue and the bounded tables — are in `barrier.rs` and
//! `tables.rs`; [`RemoteDriver`] is their async shell on ractor.

mod barrier;
mod config;
pub mod gate;
mod inbound;
mod proxy;
mod route;
mod session;
mod tables;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ractor::{ActorCell, ActorId, ActorRef, ActorRuntime};
use understudy_actor::backlog::Backlog;
use understudy_actor::names::Owner;
use understudy_actor::wire_ref::{self, RefError, RefResolver, ResolverId, ResolverRegistration};
use understudy_actor::{ActorAddr, NodeId, RemoteMessage, Runtime};

pub use barrier::BarrierError;
pub use config::{InvalidRemoteConfig, RemoteConfig};

use crate::mesh::PeerLink;
use crate::wire::{ExitReason, Signal};
use proxy::{Agent, Proxy, ProxyState};
use session::{ProxyEntry, Session};
use tables::Interests;

/// The exit reasons of remote actors whose node or connection went away
/// ([`NOCONNECTION`]), and of one that did not exist or was not exported ([`NOPROC`]);
/// typed as [`ExitReason`](understudy_actor::ExitReason).
pub use understudy_actor::exit::{NOCONNECTION, NOPROC};
/// The exit reason that kills an actor outright ([`RemoteDriver::exit`]).
pub const KILL: &str = "kill";
/// The exit reason of a normal exit; as an exit signal from another actor, it is ignored.
pub const NORMAL: &str = "normal";

/// Metric counting inbound messages that could not be delivered (unknown actor, bad bytes).
pub const DEAD_LETTERS_METRIC: &str = "understudy_dead_letters_total";

/// Why an address could not be turned into a ref, or a link or exit signal not sent.
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
    /// The node is shutting down.
    #[error("the node is shut down")]
    Stopped,
    /// The proxy actor could not be started (ractor refused the spawn).
    #[error("could not start the proxy of {0}")]
    Spawn(ActorAddr),
}

/// What [`RemoteDriver::find`] found.
enum Found {
    Cell(ActorCell),
    /// No proxy yet: one is spawned on this session, under this supervisor.
    Spawn(Arc<Session>, ActorCell),
}

struct State {
    sessions: HashMap<NodeId, Arc<Session>>,
    interests: Interests,
    /// Local actors the agent monitors (once each).
    watched: HashSet<u64>,
    /// Local actors linked to remote ones (reachable for monitors even if not exported).
    linkable: HashMap<u64, ActorCell>,
    /// Per peer and lane, what its messages hold in mailboxes (kept across connections).
    backlogs: HashMap<(NodeId, usize), Arc<Backlog>>,
}

/// One node's remote-actor machinery: the async shell (ractor proxies, the watch agent,
/// sessions) around the pure barrier and table code.
pub struct RemoteDriver {
    runtime: Runtime,
    config: RemoteConfig,
    state: Mutex<State>,
    next_key: AtomicU64,
    agent: OnceLock<ActorCell>,
    /// This driver as the resolver of refs inside messages (see `wire_ref`); the token
    /// inbound deliveries carry names it.
    refs: OnceLock<ResolverRegistration>,
}

impl std::fmt::Debug for RemoteDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteDriver").finish_non_exhaustive()
    }
}

impl RemoteDriver {
    /// Creates the driver and its watch agent.
    pub async fn start(
        runtime: Runtime,
        config: RemoteConfig,
    ) -> Result<Arc<RemoteDriver>, ResolveError> {
        let driver = Arc::new(RemoteDriver {
            runtime,
            state: Mutex::new(State {
                sessions: HashMap::new(),
                interests: Interests::new(config.max_monitors_per_peer),
                watched: HashSet::new(),
                linkable: HashMap::new(),
                backlogs: HashMap::new(),
            }),
            next_key: AtomicU64::new(1),
            agent: OnceLock::new(),
            refs: OnceLock::new(),
            config,
        });
        let resolver: Arc<dyn RefResolver> = driver.clone();
        let _ = driver.refs.set(wire_ref::register(&resolver));
        let (agent, _) = ractor::Actor::spawn(
            None,
            Agent {
                driver: Arc::downgrade(&driver),
            },
            (),
        )
        .await
        .map_err(|_| ResolveError::Stopped)?;
        let _ = driver.agent.set(agent.get_cell());
        Ok(driver)
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

    /// A connection came up: its session starts (before any of its frames are read).
    pub fn peer_up(&self, link: &Arc<PeerLink>) {
        // An honest peer's barrier makes a paused lane deliver at most what the peer had
        // queued when it sent it (its lane buffer, plus the chunk being written) and what was
        // in flight (a stream window): in bytes on the wire, beyond the backlog's budget
        // (which is in memory bytes, never fewer). More is a peer lying about its counts.
        let info = link.info();
        let hard_limit = self
            .config
            .lane_backlog
            .saturating_add(info.lane_buffer.saturating_mul(2))
            .saturating_add(info.max_frame.saturating_mul(2))
            .saturating_add(crate::mesh::STREAM_WINDOW);
        let mut st = self.state();
        let backlogs = (0..link.lanes())
            .map(|lane| {
                st.backlogs
                    .entry((info.id, lane))
                    .or_insert_with(|| Backlog::new(self.config.lane_backlog))
                    .clone()
            })
            .collect();
        let session = Session::new(
            link.clone(),
            backlogs,
            hard_limit,
            self.config.max_links_per_peer,
            self.resolver(),
        );
        link.set_session(session.clone());
        st.sessions.insert(info.id, session);
    }

    /// A connection went down (after its last frame): its proxies stop with
    /// `noconnection`, its asks fail, and its interest in our actors is forgotten.
    pub fn peer_down(&self, link: &Arc<PeerLink>) {
        let Some(session) = link.session::<Session>() else {
            return;
        };
        {
            let mut st = self.state();
            if st
                .sessions
                .get(&link.info().id)
                .is_some_and(|s| s.serial() == link.serial())
            {
                st.sessions.remove(&link.info().id);
            }
            st.interests.drop_link(link.serial());
            // A peer's backlogs outlive its connections while they hold charges: messages an
            // old connection put into mailboxes still count against the next one.
            let node = link.info().id;
            st.backlogs
                .retain(|(peer, _), backlog| *peer != node || backlog.total() > 0);
        }
        session.route.fail_all();
        for cell in session.take_all_proxies() {
            cell.stop(Some(NOCONNECTION.to_owned()));
        }
    }

    fn session(&self, node: NodeId) -> Result<Arc<Session>, ResolveError> {
        self.state()
            .sessions
            .get(&node)
            .cloned()
            .ok_or(ResolveError::NotConnected(node))
    }

    /// Makes `actor` reachable from other nodes; returns its address. The export ends when
    /// the actor stops.
    pub fn export<M: RemoteMessage>(&self, actor: &ActorRef<M>) -> ActorAddr {
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
        match self.find(addr)? {
            Found::Cell(cell) => Ok(cell),
            Found::Spawn(session, supervisor) => self
                .spawn_proxy(&session, addr, supervisor, Proxied::Shared)
                .await
                .map(|(cell, _)| cell),
        }
    }

    /// The cell for `addr` if it exists (the local actor, or a live shared proxy), else what
    /// a new proxy needs.
    fn find(&self, addr: ActorAddr) -> Result<Found, ResolveError> {
        if addr.node == self.node_id() {
            return self
                .runtime
                .exports()
                .cell_of(addr.pid)
                .map(Found::Cell)
                .ok_or(ResolveError::NoSuchActor(addr));
        }
        let session = self.session(addr.node)?;
        let existing = {
            let p = session.proxies();
            p.shared
                .get(&addr.pid)
                .and_then(|k| p.by_key.get(k))
                .filter(|e| e.cell.is_alive())
                .map(|e| e.cell.clone())
        };
        if let Some(cell) = existing {
            return Ok(Found::Cell(cell));
        }
        let supervisor = self.agent().ok_or(ResolveError::Stopped)?;
        Ok(Found::Spawn(session, supervisor))
    }

    /// This driver as a ref resolver, for the routes it makes.
    fn resolver(&self) -> Option<ResolverId> {
        self.refs.get().map(ResolverRegistration::id)
    }

    /// The metadata token naming this node as the resolver of refs in a delivered message.
    pub(crate) fn refs_token(&self) -> Option<[u8; 16]> {
        self.refs.get().map(ResolverRegistration::token)
    }

    /// Spawns a proxy of `addr` supervised by `supervisor`, registers it and asks the owner to
    /// report the actor's exit. Returns the proxy (or the shared one that won a race) and its
    /// key.
    async fn spawn_proxy(
        &self,
        session: &Arc<Session>,
        addr: ActorAddr,
        supervisor: ActorCell,
        kind: Proxied,
    ) -> Result<(ActorCell, u64), ResolveError> {
        let state = ProxyState {
            route: session.route.clone(),
            pid: addr.pid,
        };
        let id = ActorId::Remote {
            node_id: session.route_id,
            pid: addr.pid,
        };
        let (proxy, _) = ActorRuntime::spawn_linked_remote(None, Proxy, id, state, supervisor)
            .await
            .map_err(|_| ResolveError::Spawn(addr))?;
        let cell = proxy.get_cell();
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        if session.link.is_closed() {
            cell.stop(Some(NOCONNECTION.to_owned()));
            return Err(ResolveError::NotConnected(addr.node));
        }
        {
            let mut p = session.proxies();
            match kind {
                Proxied::Shared => {
                    let raced = p
                        .shared
                        .get(&addr.pid)
                        .and_then(|k| p.by_key.get(k).map(|e| (*k, e)))
                        .filter(|(_, e)| e.cell.is_alive())
                        .map(|(k, e)| (e.cell.clone(), k));
                    if let Some(winner) = raced {
                        drop(p);
                        cell.stop(None);
                        return Ok(winner);
                    }
                    p.shared.insert(addr.pid, key);
                }
                Proxied::OwnLink { local } => {
                    p.own_links.insert((local, addr.pid), key);
                }
                Proxied::TheirLink => {}
            }
            p.by_key.insert(
                key,
                ProxyEntry {
                    pid: addr.pid,
                    cell: cell.clone(),
                },
            );
        }
        let monitor = Signal::Monitor {
            watcher: key,
            target: addr.pid,
        };
        if session.link.send_signal(&monitor).is_err() {
            session.take_proxy(key);
            cell.stop(Some(NOCONNECTION.to_owned()));
            return Err(ResolveError::NotConnected(addr.node));
        }
        Ok((cell, key))
    }

    /// Links a local actor with a (possibly remote) one, both ways (see the module docs).
    pub async fn link(&self, local: &ActorCell, other: &ActorCell) -> Result<(), ResolveError> {
        let Some((session, ActorAddr { node, pid })) = self.remote_session(other)? else {
            // Both local: ractor's own link, the other supervising.
            local.link(other.clone());
            return Ok(());
        };
        let local_pid = local.get_id().pid();
        if session.proxies().own_links.contains_key(&(local_pid, pid)) {
            return Ok(());
        }
        self.state().linkable.insert(local_pid, local.clone());
        self.watch_local(local_pid, local);
        // Our side: a dedicated proxy of the remote actor, supervised by the local one.
        self.spawn_proxy(
            &session,
            ActorAddr { node, pid },
            local.clone(),
            Proxied::OwnLink { local: local_pid },
        )
        .await?;
        // Their side: they make a proxy of our actor supervised by theirs.
        session
            .link
            .send_signal(&Signal::Link {
                from: local_pid,
                to: pid,
            })
            .map_err(|_| ResolveError::NotConnected(node))
    }

    /// Removes a link made with [`link`](Self::link), on both sides, without either actor
    /// hearing of it. Unlinking actors that are not linked does nothing.
    pub fn unlink(&self, local: &ActorCell, other: &ActorCell) -> Result<(), ResolveError> {
        let Some((session, ActorAddr { node, pid })) = self.remote_session(other)? else {
            local.unlink(other.clone());
            return Ok(());
        };
        let local_pid = local.get_id().pid();
        let key = session.proxies().own_links.remove(&(local_pid, pid));
        if let Some(key) = key {
            self.drop_proxy(&session, key, Some(local));
        }
        session
            .link
            .send_signal(&Signal::Unlink {
                from: local_pid,
                to: pid,
            })
            .map_err(|_| ResolveError::NotConnected(node))
    }

    /// Sends an exit signal to `target`, local or remote (Erlang's `exit(Pid, Reason)`):
    /// [`KILL`] kills it, `None` or [`NORMAL`] is ignored, any other reason stops it with that
    /// reason. To a remote actor it takes effect after the messages sent to it before.
    pub fn exit(&self, target: &ActorCell, reason: ExitReason) -> Result<(), ResolveError> {
        let Some((session, ActorAddr { node, pid })) = self.remote_session(target)? else {
            apply_exit(target, reason);
            return Ok(());
        };
        let after = session.link.barrier();
        session
            .link
            .send_signal(&Signal::Exit {
                from: 0,
                to: pid,
                reason: short_reason(reason),
                after,
            })
            .map_err(|_| ResolveError::NotConnected(node))
    }

    /// For a remote cell, the session of its connection and its address; `None` for a local
    /// one.
    fn remote_session(
        &self,
        cell: &ActorCell,
    ) -> Result<Option<(Arc<Session>, ActorAddr)>, ResolveError> {
        if !matches!(cell.get_id(), ActorId::Remote { .. }) {
            return Ok(None);
        }
        let here = self.node_id();
        let addr = ActorAddr::of(cell, here).ok_or(ResolveError::NotConnected(here))?;
        Ok(Some((self.session(addr.node)?, addr)))
    }

    /// A local actor by pid: linked to a remote one, or exported.
    fn local_cell(&self, pid: u64) -> Option<ActorCell> {
        let linked = self.state().linkable.get(&pid).cloned();
        linked.or_else(|| self.runtime.exports().cell_of(pid))
    }

    /// Makes the agent monitor a local actor (once), so its exit reaches its remote watchers.
    /// Returns whether it was already watched.
    fn watch_local(&self, pid: u64, cell: &ActorCell) -> bool {
        let first = self.state().watched.insert(pid);
        if first && let Some(agent) = self.agent() {
            agent.monitor(cell.clone());
        }
        !first
    }

    /// Stops proxy `key` quietly (without an event to `supervisor`, if given) and tells the
    /// owner it no longer needs the DOWN, so its monitor is released there too.
    fn drop_proxy(&self, session: &Session, key: u64, supervisor: Option<&ActorCell>) {
        let Some(entry) = session.take_proxy(key) else {
            return;
        };
        if let Some(supervisor) = supervisor {
            entry.cell.unlink(supervisor.clone());
        }
        entry.cell.stop(None);
        let _ = session.link.send_signal(&Signal::Demonitor {
            watcher: key,
            target: entry.pid,
        });
    }

    /// A proxy stopped by someone else than this layer (its user stopped it): forget it and
    /// release the owner's monitor.
    fn proxy_exited(&self, route_id: u64, cell: &ActorCell) {
        let ActorId::Remote { pid, .. } = cell.get_id() else {
            return;
        };
        let sessions: Vec<Arc<Session>> = self.state().sessions.values().cloned().collect();
        let Some(session) = sessions.into_iter().find(|s| s.route_id == route_id) else {
            return;
        };
        let key = {
            let p = session.proxies();
            p.shared.get(&pid).copied().filter(|k| {
                p.by_key
                    .get(k)
                    .is_some_and(|e| e.cell.get_id() == cell.get_id())
            })
        };
        if let Some(key) = key {
            self.drop_proxy(&session, key, None);
        }
    }

    /// A watched local actor exited: send each interested watcher its DOWN, once.
    fn local_exit(&self, pid: u64, reason: ExitReason) {
        let (interests, sessions) = {
            let mut st = self.state();
            st.watched.remove(&pid);
            st.linkable.remove(&pid);
            let interests = st.interests.take(pid);
            let sessions: HashMap<u64, Arc<Session>> = st
                .sessions
                .values()
                .map(|s| (s.serial(), s.clone()))
                .collect();
            (interests, sessions)
        };
        for i in interests {
            if let Some(session) = sessions.get(&i.serial) {
                send_down(&session.link, i.watcher, pid, reason.clone());
            }
        }
        for session in sessions.values() {
            for lane in session.lanes.iter() {
                lane.backlog.forget(pid);
            }
            // The links this actor made: their proxies go with it (the peer's half hears of
            // the exit through its own monitor of this actor).
            let keys: Vec<u64> = {
                let mut p = session.proxies();
                let keys = p
                    .own_links
                    .iter()
                    .filter(|((local, _), _)| *local == pid)
                    .map(|(_, k)| *k)
                    .collect::<Vec<_>>();
                p.own_links.retain(|(local, _), _| *local != pid);
                keys
            };
            for key in keys {
                self.drop_proxy(session, key, None);
            }
        }
    }
}

impl Drop for RemoteDriver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A snapshot of what this node holds for remote actors (for operations and tests). Every
/// figure that peers drive is bounded by [`RemoteConfig`]; pending asks are this node's own,
/// each kept at most a little past its timeout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteStats {
    /// Live connections.
    pub connections: usize,
    /// Proxies of remote actors.
    pub proxies: usize,
    /// Remote watchers of this node's actors.
    pub monitors: usize,
    /// Links peers made to this node's actors.
    pub links: usize,
    /// DOWNs and exit signals waiting for the messages before them.
    pub waiting_signals: usize,
    /// Bytes of messages from the network waiting in this node's mailboxes.
    pub backlog_bytes: usize,
    /// Asks this node sent to remote actors that wait for their answer.
    pub pending_asks: usize,
}

impl RemoteDriver {
    /// What peers make this node hold now.
    pub fn stats(&self) -> RemoteStats {
        let (sessions, monitors) = {
            let st = self.state();
            let sessions: Vec<Arc<Session>> = st.sessions.values().cloned().collect();
            (sessions, st.interests.len())
        };
        let mut stats = RemoteStats {
            connections: sessions.len(),
            monitors,
            ..RemoteStats::default()
        };
        for s in &sessions {
            stats.proxies += s.proxies().by_key.len();
            stats.links += s.linked.lock().unwrap_or_else(|p| p.into_inner()).len();
            stats.waiting_signals += s.waiting();
            stats.backlog_bytes += s.lanes.iter().map(|l| l.backlog.total()).sum::<usize>();
            stats.pending_asks += s.route.pending_asks();
        }
        stats
    }
}

/// What a proxy is for.
#[derive(Debug, Clone, Copy)]
enum Proxied {
    /// The one `resolve` hands out for the remote pid.
    Shared,
    /// Stands for the remote end of a link our actor `local` made.
    OwnLink { local: u64 },
    /// Stands for the remote end of a link the peer made.
    TheirLink,
}

/// The longest exit reason sent (bytes): a panic message can be long, and a DOWN must always
/// fit in a frame (a longer one is cut, marked with `…`).
pub const MAX_REASON: usize = 1024;

/// `reason`, cut to [`MAX_REASON`] bytes on a character boundary.
fn short_reason(reason: ExitReason) -> ExitReason {
    reason.map(|mut r| {
        if r.len() > MAX_REASON {
            let mut end = MAX_REASON - '…'.len_utf8();
            while !r.is_char_boundary(end) {
                end -= 1;
            }
            r.truncate(end);
            r.push('…');
        }
        r
    })
}

/// Sends a DOWN that takes effect after everything queued to the peer so far.
fn send_down(link: &PeerLink, watcher: u64, target: u64, reason: ExitReason) {
    let down = Signal::Down {
        watcher,
        target,
        reason: short_reason(reason),
        after: link.barrier(),
    };
    // On failure the connection is gone (or was failed for not reading): the watcher hears
    // `noconnection` from its own side.
    let _ = link.send_signal(&down);
}

/// Applies an exit signal to a local actor (see [`RemoteDriver::exit`]).
fn apply_exit(target: &ActorCell, reason: ExitReason) {
    match reason.as_deref() {
        None | Some(NORMAL) => {}
        Some(KILL) => target.kill(),
        Some(_) => target.stop(reason),
    }
}

impl RefResolver for RemoteDriver {
    fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    fn resolve_now(&self, addr: ActorAddr) -> Result<ActorCell, RefError> {
        let refused = |e: ResolveError| match e {
            ResolveError::NoSuchActor(_) | ResolveError::WrongType(_) => {
                RefError::NoSuchActor(addr)
            }
            ResolveError::NotConnected(_) => RefError::NotConnected(addr),
            ResolveError::Stopped | ResolveError::Spawn(_) => RefError::Stopped,
        };
        match self.find(addr).map_err(refused)? {
            Found::Cell(cell) => Ok(cell),
            Found::Spawn(session, _)
                if session.proxies().by_key.len() >= self.config.max_proxies_per_peer =>
            {
                Err(RefError::TooManyProxies(addr))
            }
            Found::Spawn(session, supervisor) => {
                // A proxy's start never waits (its `pre_start` is ready at once), so one poll
                // completes it; this runs in a deserialise hook, which cannot await. A start
                // that did wait is dropped (which stops the half-made proxy) and refused.
                let spawn = self.spawn_proxy(&session, addr, supervisor, Proxied::Shared);
                match poll_once(spawn) {
                    Some(result) => result.map(|(cell, _)| cell).map_err(refused),
                    None => {
                        // Never seen with ractor 0.16.5 (tests/cluster_refs.rs resolves refs
                        // this way); a ractor whose start waits would land here.
                        tracing::warn!(%addr, "a proxy's start did not complete at once; the ref is refused");
                        Err(RefError::Stopped)
                    }
                }
            }
        }
    }
}

/// Polls `future` once: its output if it was ready without waiting.
fn poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}
