//! The async shell: the `pg` extension, its driver task and the watcher of local members.
//!
//! The driver feeds the scopes' pure cores from the extension inbox, in order: connections
//! coming and going become `peer_up`/`peer_down` (as Erlang's pg follows `nodeup`/`nodedown`:
//! a lost connection means the peer's members are unreachable, and their refs here have
//! stopped with `noconnection`), notices from peers are decoded and applied (the core checks
//! a notice whole before it applies any of it; a remote member is stored as its address, so
//! a peer's notice makes no actor, task or monitor here, and the driver never waits); a timer
//! runs the anti-entropy rounds. The watcher is one plain actor that monitors every local
//! member and turns its exit into `member_down` in every scope.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use ractor::{ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use understudy_actor::route::Route;
use understudy_actor::{ActorAddr, NodeId, RemoteMessage, Runtime};
use understudy_cluster::extension::{
    Extension, ExtensionContext, ExtensionInbox, ExtensionMessage, Starting,
};
use understudy_cluster::identity::{ClusterName, NodeName, node_id};

use crate::error::PgError;
use crate::kernel::Kernel;
use crate::scope::{Scope, ScopeShared};
use crate::wire::{Envelope, PeerMessage, REJECTED_METRIC};

/// The extension's channel name on the mesh.
pub const SERVICE: &str = "pg";

/// The scope every node has (Erlang's default scope `pg`).
pub const DEFAULT_SCOPE: &str = "default";

/// How often each scope sends its digest to every peer by default.
pub const DEFAULT_ANTI_ENTROPY: Duration = Duration::from_secs(1);

/// What a scope needs of its node: sending to peers, exporting and watching local actors.
pub(crate) struct Env {
    pub(crate) me: NodeId,
    ctx: ExtensionContext,
    runtime: Runtime,
    cluster: ClusterName,
    names: Mutex<HashMap<NodeId, NodeName>>,
    /// The route id of the connection to each peer that broadcasts went to.
    routes: Mutex<HashMap<NodeId, u64>>,
    watcher: ActorCell,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Env {
    /// Sends one scope message to each of `to` (encoded once). A peer that cannot be reached
    /// now is repaired by anti-entropy later.
    pub(crate) fn send(&self, scope: &str, to: Vec<NodeId>, message: PeerMessage) {
        let bytes = Envelope {
            scope: scope.to_owned(),
            message,
        }
        .encode();
        let names = lock(&self.names);
        for peer in to {
            let Some(name) = names.get(&peer) else {
                tracing::debug!(%peer, "pg: no name known for a peer; anti-entropy will repair");
                continue;
            };
            if let Err(e) = self.ctx.notify(name, bytes.clone()) {
                tracing::debug!(peer = %name, error = %e, "pg: notice not sent; anti-entropy will repair");
            }
        }
    }

    pub(crate) fn export<M: RemoteMessage>(&self, actor: &ActorRef<M>) {
        self.runtime.export(actor);
    }

    /// Watches a local member (idempotent: ractor keeps one monitor per pair).
    pub(crate) fn watch(&self, cell: &ActorCell) {
        self.watcher.monitor(cell.clone());
    }

    /// A ref for a member: the local actor's cell, or the proxy of a remote one (made now if
    /// this node has none).
    pub(crate) async fn resolve(&self, addr: ActorAddr) -> Result<ActorCell, PgError> {
        let node = self.ctx.node().ok_or(PgError::NodeGone)?;
        node.actor_cell(addr)
            .await
            .map_err(|source| PgError::Unreachable {
                member: addr,
                source,
            })
    }

    /// The route to `peer`'s actors (the connection a remote `tell` to them takes), if a
    /// broadcast found it already on the current connection.
    pub(crate) fn known_route(&self, peer: NodeId) -> Option<Arc<dyn Route>> {
        let id = lock(&self.routes).get(&peer).copied()?;
        understudy_actor::route::lookup(id).filter(|route| route.node() == peer)
    }

    /// Finds the route to `peer`'s actors from `member`, one of them: its proxy (made now if
    /// there is none) names the connection. That one proxy is all a broadcast to the peer's
    /// members makes. `None` if `peer` is not connected.
    pub(crate) async fn find_route(&self, peer: NodeId, member: u64) -> Option<Arc<dyn Route>> {
        let addr = ActorAddr {
            node: peer,
            pid: member,
        };
        let cell = self.resolve(addr).await.ok()?;
        // A remote cell's id carries the route id of its connection (`understudy_actor::route`).
        let ActorId::Remote { node_id: id, .. } = cell.get_id() else {
            return None;
        };
        let route = understudy_actor::route::lookup(id).filter(|r| r.node() == peer)?;
        lock(&self.routes).insert(peer, id);
        Some(route)
    }

    fn forget_route(&self, peer: NodeId) {
        lock(&self.routes).remove(&peer);
    }

    fn learn(&self, name: &NodeName) -> NodeId {
        let id = node_id(&self.cluster, name);
        lock(&self.names).entry(id).or_insert_with(|| name.clone());
        id
    }
}

/// Cluster-wide process groups: the `pg` extension and the handle to its scopes.
///
/// Register a clone on the node builder, then use it once the node has started:
///
/// ```
/// # use understudy_pg::__doc::*;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ca = ClusterCa::ephemeral("docs");
/// let pg = Pg::new();
/// let node = Node::builder("docs", "a")
///     .ephemeral_certs(&ca)
///     .extension(pg.clone())
///     .start()
///     .await?;
/// let chat = pg.scope("chat")?; // a named scope; `pg.default_scope()` is the default one
/// assert!(chat.which_groups().is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Pg {
    inner: Arc<PgInner>,
}

#[derive(Debug)]
struct PgInner {
    anti_entropy: Duration,
    started: OnceLock<Started>,
}

#[derive(Debug)]
struct Started {
    env: Arc<Env>,
    registry: Mutex<Registry>,
}

/// The scopes of this node and the peers they exchange with (one lock, so a scope created
/// while a peer comes up cannot miss it).
#[derive(Debug, Default)]
struct Registry {
    scopes: HashMap<String, Scope>,
    peers: BTreeSet<NodeId>,
}

impl Default for Pg {
    fn default() -> Self {
        Pg::new()
    }
}

impl Pg {
    /// A pg extension with the default anti-entropy period (1 s).
    pub fn new() -> Pg {
        Pg::with_anti_entropy(DEFAULT_ANTI_ENTROPY)
    }

    /// A pg extension whose scopes send their digest to every peer each `period` (a lost
    /// change is repaired within one period).
    pub fn with_anti_entropy(period: Duration) -> Pg {
        Pg {
            inner: Arc::new(PgInner {
                anti_entropy: period.max(Duration::from_millis(1)),
                started: OnceLock::new(),
            }),
        }
    }

    fn started(&self) -> Result<&Started, PgError> {
        self.inner.started.get().ok_or(PgError::NotStarted)
    }

    /// The default scope.
    pub fn default_scope(&self) -> Result<Scope, PgError> {
        self.scope(DEFAULT_SCOPE)
    }

    /// The scope `name`, started on this node on first use. A scope is its own overlay:
    /// it exchanges only with the nodes that run it too.
    pub fn scope(&self, name: &str) -> Result<Scope, PgError> {
        let started = self.started()?;
        let mut registry = lock(&started.registry);
        if let Some(scope) = registry.scopes.get(name) {
            return Ok(scope.clone());
        }
        let scope = Scope::new(Arc::new(ScopeShared {
            name: name.to_owned(),
            kernel: Kernel::new(started.env.me),
            env: started.env.clone(),
        }));
        for peer in &registry.peers {
            scope.shared().update(|core| core.peer_up(*peer));
        }
        registry.scopes.insert(name.to_owned(), scope.clone());
        Ok(scope)
    }

    /// The names of the scopes this node runs, sorted.
    pub fn scopes(&self) -> Vec<String> {
        let Ok(started) = self.started() else {
            return Vec::new();
        };
        let mut names: Vec<String> = lock(&started.registry).scopes.keys().cloned().collect();
        names.sort();
        names
    }

    fn each_scope(&self, f: impl Fn(&Scope)) {
        if let Ok(started) = self.started() {
            let scopes: Vec<Scope> = lock(&started.registry).scopes.values().cloned().collect();
            for scope in &scopes {
                f(scope);
            }
        }
    }

    fn find_scope(&self, name: &str) -> Option<Scope> {
        lock(&self.started().ok()?.registry)
            .scopes
            .get(name)
            .cloned()
    }

    fn peer_up(&self, peer: NodeId) {
        if let Ok(started) = self.started() {
            let mut registry = lock(&started.registry);
            if registry.peers.insert(peer) {
                for scope in registry.scopes.values() {
                    scope.shared().update(|core| core.peer_up(peer));
                }
            }
        }
    }

    fn peer_down(&self, peer: NodeId) {
        if let Ok(started) = self.started() {
            let mut registry = lock(&started.registry);
            registry.peers.remove(&peer);
            for scope in registry.scopes.values() {
                scope.shared().update(|core| core.peer_down(peer));
            }
        }
    }
}

impl Extension for Pg {
    fn name(&self) -> &'static str {
        SERVICE
    }

    fn start(&self, ctx: ExtensionContext) -> Starting {
        let pg = self.clone();
        Box::pin(async move {
            let node = ctx.node().ok_or("the node is gone")?;
            let inbox = ctx.take_inbox().ok_or("the pg inbox was taken already")?;
            let (watcher, _) = ractor::Actor::spawn(
                None,
                Watcher {
                    pg: Arc::downgrade(&pg.inner),
                },
                (),
            )
            .await
            .map_err(|e| format!("could not start the member watcher: {e}"))?;
            let env = Arc::new(Env {
                me: node.runtime().node_id(),
                ctx,
                runtime: node.runtime().clone(),
                cluster: node.cluster().clone(),
                names: Mutex::new(HashMap::new()),
                routes: Mutex::new(HashMap::new()),
                watcher: watcher.get_cell(),
            });
            let started = Started {
                env,
                registry: Mutex::new(Registry::default()),
            };
            if pg.inner.started.set(started).is_err() {
                watcher.stop(None);
                return Err("this Pg is already running on a node; use one Pg per node".into());
            }
            pg.default_scope().map_err(|e| e.to_string())?;
            // Peers connected before the inbox was read; later ones arrive as `PeerUp`
            // (a peer in both is taken once).
            if let Some(env) = pg.started().ok().map(|s| s.env.clone()) {
                for name in node.connected() {
                    pg.peer_up(env.learn(&name));
                }
            }
            drop(node);
            tokio::spawn(run(pg, inbox, watcher));
            Ok(())
        })
    }
}

/// The driver: connections, notices and anti-entropy rounds, one at a time.
async fn run(pg: Pg, mut inbox: ExtensionInbox, watcher: ActorRef<()>) {
    let mut tick = tokio::time::interval(pg.inner.anti_entropy);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = inbox.recv() => match message {
                Some(message) => on_message(&pg, message),
                None => break,
            },
            _ = tick.tick() => pg.each_scope(|s| s.shared().update(|core| core.tick())),
        }
    }
    watcher.stop(None);
}

fn on_message(pg: &Pg, message: ExtensionMessage) {
    let Ok(env) = pg.started().map(|s| s.env.clone()) else {
        return;
    };
    let (from, body) = match message {
        ExtensionMessage::Notice { from, body } => (from, body),
        ExtensionMessage::PeerUp { node, .. } => {
            pg.peer_up(env.learn(&node));
            return;
        }
        ExtensionMessage::PeerDown { node, .. } => {
            let peer = env.learn(&node);
            env.forget_route(peer);
            pg.peer_down(peer);
            return;
        }
        ExtensionMessage::Request { reply, .. } => {
            reply.respond(Err("pg answers no requests".into()));
            return;
        }
        _ => return,
    };
    let envelope = match Envelope::decode(&body) {
        Ok(envelope) => envelope,
        Err(e) => {
            metrics::counter!(REJECTED_METRIC).increment(1);
            tracing::warn!(peer = %from, error = %e, "pg: dropped a malformed notice");
            return;
        }
    };
    let peer = env.learn(&from);
    // A scope this node does not run: not part of that overlay.
    let Some(scope) = pg.find_scope(&envelope.scope) else {
        return;
    };
    // A remote member gets no handle until a ref to it is asked for (see `scope`).
    let rejected = scope.shared().update(|core| {
        let before = core.rejected();
        core.receive(peer, envelope.message, &mut |_, _| None);
        core.rejected() > before
    });
    if rejected {
        metrics::counter!(REJECTED_METRIC).increment(1);
        tracing::warn!(peer = %from, "pg: dropped a notice above the limits or retyping a member");
    }
}

/// Monitors the local members and reports their exits to every scope.
struct Watcher {
    pg: Weak<PgInner>,
}

impl ractor::Actor for Watcher {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let cell = match event {
            SupervisionEvent::ActorTerminated(cell, ..)
            | SupervisionEvent::ActorFailed(cell, _) => cell,
            _ => return Ok(()),
        };
        if let Some(inner) = self.pg.upgrade() {
            let pg = Pg { inner };
            let pid = cell.get_id().pid();
            pg.each_scope(|scope| scope.member_down(pid));
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
