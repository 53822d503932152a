//! The [`Node`]: one member of a cluster — its actor runtime, its mesh, its remote actors.
//!
//! Lifecycle: [`NodeBuilder::start`] checks the whole configuration before it binds
//! anything, and a start that fails after binding tears down what it started, so the
//! address is free again and a retry can succeed. [`Node::leave`] says goodbye (peers report
//! the node `Left`) and then closes. Dropping the last `Node` handle without leaving stops
//! everything at once — endpoint, connections, membership, the remote agent — and peers see
//! the node fail.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use understudy_cluster::certs::ClusterCa;
//! use understudy_cluster::node::Node;
//!
//! let ca = ClusterCa::ephemeral("demo");             // tests and demos: an in-memory CA
//! let a = Node::builder("demo", "a").ephemeral_certs(&ca).start().await?;
//! let b = Node::builder("demo", "b").ephemeral_certs(&ca).seed(a.local_addr()).start().await?;
//! b.wait_for_peer(a.node_id(), std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

mod config;
mod transport;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ractor::{ActorCell, ActorRef};
use tokio::sync::{broadcast, watch};
use understudy_actor::{ActorAddr, NodeId, RemoteMessage, Runtime};

pub use config::{InvalidConfig, NodeConfig};

use crate::certs::{CertError, ClusterCa, ClusterTrust, IdentityMismatch, NodeCert};
use crate::extension::{Extension, ExtensionStartError, Extensions};
use crate::identity::{ClusterName, Incarnation, NodeName};
use crate::membership::{
    Inbound, LocalNode, Member, Membership, MembershipEvent, NodeMeta, inbound,
};
#[cfg(feature = "testing")]
use crate::mesh::FaultPlan;
use crate::mesh::{Admit, EndpointError, FrameStream, Mesh, MeshHandler, PeerLink, stream_kind};
use crate::remote::{RemoteDriver, RemoteStats, ResolveError};
use crate::wire::{Control, Delivery, ExitReason, Signal};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is invalid (nothing was started).
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    /// Certificates are missing or invalid.
    #[error(transparent)]
    Certs(#[from] CertError),
    /// No certificates were configured.
    #[error(
        "no certificates: set certs_dir (see `understudy certs init|issue`) or, for tests, ephemeral_certs"
    )]
    NoCerts,
    /// The certificate is for another node or cluster.
    #[error(
        "the certificate is for {found}, but this node is {expected}; issue one with `understudy certs issue {expected}`"
    )]
    CertMismatch {
        /// The configured node.
        expected: String,
        /// What the certificate names.
        found: String,
    },
    /// The certificate is not signed by the configured CA.
    #[error("the node certificate is not trusted by the cluster CA")]
    Untrusted(#[source] IdentityMismatch),
    /// The mesh endpoint could not start.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The remote-actor machinery could not start.
    #[error(transparent)]
    Remote(#[from] ResolveError),
    /// Two extensions share a name.
    #[error("two extensions are named {0:?}; extension names must be unique on a node")]
    DuplicateExtension(&'static str),
    /// An extension could not start.
    #[error("the {name:?} extension could not start")]
    ExtensionStart {
        /// The extension.
        name: &'static str,
        /// What went wrong.
        #[source]
        source: ExtensionStartError,
    },
    /// Waited too long for something.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// Builds a [`Node`].
#[must_use = "call .start().await"]
pub struct NodeBuilder {
    config: NodeConfig,
    certs: Option<Result<(NodeCert, ClusterTrust), NodeError>>,
    #[cfg(feature = "testing")]
    faults: Option<FaultPlan>,
    incarnation: Option<Incarnation>,
    extensions: Vec<Box<dyn Extension>>,
}

impl NodeBuilder {
    /// Starts from a configuration.
    pub fn from_config(config: NodeConfig) -> Self {
        NodeBuilder {
            config,
            certs: None,
            #[cfg(feature = "testing")]
            faults: None,
            incarnation: None,
            extensions: Vec::new(),
        }
    }

    /// Where the mesh listens.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config.bind = addr;
        self
    }

    /// Adds a seed address to join through.
    pub fn seed(mut self, addr: SocketAddr) -> Self {
        self.config.seeds.push(addr);
        self
    }

    /// Uses these certificates.
    pub fn certs(mut self, cert: NodeCert, trust: ClusterTrust) -> Self {
        self.certs = Some(Ok((cert, trust)));
        self
    }

    /// Issues this node a certificate from an in-memory CA (tests and demos).
    pub fn ephemeral_certs(mut self, ca: &ClusterCa) -> Self {
        let issued = NodeName::new(self.config.name.clone())
            .map_err(|e| NodeError::Config(e.into()))
            .and_then(|name| Ok((ca.issue(&name)?, ca.trust())));
        self.certs = Some(issued);
        self
    }

    /// Routes the mesh's datagrams through a fault plan (tests: partitions, loss).
    #[cfg(feature = "testing")]
    pub fn fault_plan(mut self, plan: FaultPlan) -> Self {
        self.faults = Some(plan);
        self
    }

    /// Runs as this incarnation instead of one from the clock (a restart must use a larger
    /// one than the run before; tests use this to be exact).
    pub fn incarnation(mut self, incarnation: Incarnation) -> Self {
        self.incarnation = Some(incarnation);
        self
    }

    /// Runs an extension (a cluster service) on this node; see [`crate::extension`].
    pub fn extension(mut self, extension: impl Extension) -> Self {
        self.extensions.push(Box::new(extension));
        self
    }

    /// The configuration so far.
    pub fn config_mut(&mut self) -> &mut NodeConfig {
        &mut self.config
    }

    fn load_certs(
        &mut self,
        cluster: &ClusterName,
        name: &NodeName,
    ) -> Result<(NodeCert, ClusterTrust), NodeError> {
        let (cert, trust) = if let Some(given) = self.certs.take() {
            given?
        } else if let Some(dir) = &self.config.certs_dir {
            (
                NodeCert::load_from(dir, name)?,
                ClusterTrust::load_from(dir)?,
            )
        } else {
            return Err(NodeError::NoCerts);
        };
        if cert.name() != name || cert.cluster() != cluster {
            return Err(NodeError::CertMismatch {
                expected: format!("{name} in {cluster}"),
                found: format!("{} in {}", cert.name(), cert.cluster()),
            });
        }
        trust
            .verify_node_cert(&cert)
            .map_err(NodeError::Untrusted)?;
        Ok((cert, trust))
    }

    fn bind_mesh(
        &self,
        cert: &NodeCert,
        trust: &ClusterTrust,
        incarnation: u64,
    ) -> Result<Mesh, EndpointError> {
        let (addr, cfg) = (self.config.bind, self.config.mesh.clone());
        #[cfg(feature = "testing")]
        if self.faults.is_some() {
            return Mesh::bind_with_faults(
                addr,
                cert,
                trust,
                incarnation,
                cfg,
                self.faults.clone(),
            );
        }
        Mesh::bind(addr, cert, trust, incarnation, cfg)
    }

    /// Starts the node: checks the configuration, binds the mesh, starts the remote-actor
    /// machinery, membership and the extensions, and joins through the seeds. On an error
    /// nothing is left running and the address is free.
    pub async fn start(mut self) -> Result<Node, NodeError> {
        self.config.validate()?;
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.extensions.iter().find(|e| !seen.insert(e.name())) {
            return Err(NodeError::DuplicateExtension(dup.name()));
        }
        let cluster = ClusterName::new(self.config.cluster.clone()).map_err(InvalidConfig::from)?;
        let name = NodeName::new(self.config.name.clone()).map_err(InvalidConfig::from)?;
        let (cert, trust) = self.load_certs(&cluster, &name)?;
        let identity = cert.identity(self.incarnation.unwrap_or_else(|| Incarnation::fresh(None)));
        let runtime = Runtime::with_node_id(identity.node_id());
        let mesh = self.bind_mesh(&cert, &trust, identity.incarnation().get())?;
        // Until the node exists, a failure must close the mesh again: `Teardown` does on
        // drop. After that, dropping the node's `Inner` does.
        let teardown = Teardown {
            mesh: Some(mesh.clone()),
        };
        let remote = RemoteDriver::start(runtime.clone(), self.config.remote.clone()).await?;
        let (peers_tx, _) = watch::channel(0u64);
        let (inbound, inbox) = inbound(self.config.membership.inbound_queue);
        let local = LocalNode {
            identity: identity.clone(),
            addr: mesh.local_addr(),
            meta: NodeMeta {
                name: name.clone(),
                role: self.config.role.clone(),
                failure_domain: self.config.failure_domain.clone(),
                raft_eligible: self.config.raft_eligible,
                raft_priority: self.config.raft_priority,
            },
        };
        let extensions = Arc::new(Extensions::new(self.config.extensions.clone()));
        // The mesh must accept (and be able to dial) before membership starts announcing.
        let transport = Arc::new(transport::MeshTransport::new(
            mesh.clone(),
            self.config.membership.sync_timeout,
        ));
        let membership = Membership::start(
            local,
            self.config.membership.clone(),
            self.config.seeds.clone(),
            transport.clone(),
            inbox,
        )
        .map_err(InvalidConfig::from)?;
        let inner = Arc::new(Inner {
            runtime,
            mesh: mesh.clone(),
            remote: remote.clone(),
            extensions: extensions.clone(),
            membership,
            leave_linger: self.config.leave_linger,
            name,
            cluster,
            peers_changed: peers_tx.clone(),
            identity,
            settings: NodeSettings {
                raft_eligible: self.config.raft_eligible,
                raft_priority: self.config.raft_priority,
                failure_domain: self.config.failure_domain.clone(),
                data_dir: self.config.data_dir.clone(),
                seeded: !self.config.seeds.is_empty(),
            },
            started: std::sync::Mutex::new(Vec::new()),
        });
        teardown.disarm();
        inner.runtime.attach(Arc::downgrade(&inner));
        mesh.start(Arc::new(Handler {
            node: Arc::downgrade(&inner),
            remote,
            extensions,
            inbound,
            transport,
            peers_changed: peers_tx,
        }));
        follow_membership(&inner);
        // Contexts first (so every inbox exists before any extension sends), then start.
        let started: Vec<(Arc<dyn Extension>, _)> = std::mem::take(&mut self.extensions)
            .into_iter()
            .map(Arc::<dyn Extension>::from)
            .map(|ext| {
                let ctx = inner.extensions.context(Arc::downgrade(&inner), ext.name());
                (ext, ctx)
            })
            .collect();
        for (ext, ctx) in started {
            let name = ext.name();
            if let Err(source) = ext.start(ctx).await {
                // Dropping `inner` stops everything started so far.
                return Err(NodeError::ExtensionStart { name, source });
            }
            inner
                .started
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(ext);
        }
        Ok(Node { inner })
    }
}

/// Closes a mesh whose node did not finish starting.
struct Teardown {
    mesh: Option<Mesh>,
}

impl Teardown {
    fn disarm(mut self) {
        self.mesh = None;
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Some(mesh) = &self.mesh {
            mesh.close("node start failed");
        }
    }
}

pub(crate) struct Inner {
    runtime: Runtime,
    pub(crate) mesh: Mesh,
    pub(crate) extensions: Arc<Extensions>,
    remote: Arc<RemoteDriver>,
    membership: Membership,
    leave_linger: Duration,
    name: NodeName,
    cluster: ClusterName,
    peers_changed: watch::Sender<u64>,
    identity: crate::identity::NodeIdentity,
    settings: NodeSettings,
    /// The extensions that started, in start order (told when the node leaves).
    started: std::sync::Mutex<Vec<Arc<dyn Extension>>>,
}

/// What a node was started with that its extensions read (the registry: where its data goes,
/// whether it may vote, whether it starts a new cluster).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeSettings {
    /// The node may hold a Raft vote or stand by for one.
    pub raft_eligible: bool,
    /// Among eligible nodes, higher is preferred as a voter.
    pub raft_priority: u8,
    /// Where the node fails together with others.
    pub failure_domain: Option<String>,
    /// Where durable state goes (none: in memory).
    pub data_dir: Option<std::path::PathBuf>,
    /// The node was given seeds (it joins a cluster rather than starting one).
    pub seeded: bool,
}

impl Drop for Inner {
    /// The last handle is gone without `leave()`: stop at once, as a crashed process would,
    /// except that the connections are closed (peers hear it at once; SWIM declares the
    /// node failed). Membership's task stops when `membership` drops.
    fn drop(&mut self) {
        self.mesh.close("node dropped");
        self.remote.stop();
    }
}

/// A running cluster node. Derefs to its actor [`Runtime`], so `node.spawn(..)` works.
///
/// Cheap to clone; the node runs while any clone lives (or until [`Node::leave`]).
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.inner.name)
            .field("addr", &self.local_addr())
            .finish()
    }
}

impl Deref for Node {
    type Target = Runtime;
    fn deref(&self) -> &Runtime {
        &self.inner.runtime
    }
}

/// A handler's way to its cluster node: `ctx.node()` (in `understudy::prelude`).
///
/// The node it returns is a full handle: keep it for the handler's duration, not in the
/// actor's state (an actor that holds its own node keeps it running after its last other
/// handle is dropped).
///
/// ```
/// use understudy_actor::{Actor, ActorError, Ctx, Handler};
/// use understudy_cluster::node::CtxNode;
///
/// struct Greeter;
/// struct WhereAmI(ractor::RpcReplyPort<String>);
/// impl ractor::Message for WhereAmI {}
/// impl Actor for Greeter {}
/// impl Handler for Greeter {
///     type Msg = WhereAmI;
///     async fn handle(&mut self, ctx: &Ctx<Self>, ask: WhereAmI) -> Result<(), ActorError> {
///         let name = ctx.node().map(|n| n.name().to_string()).unwrap_or_default();
///         let _ = ask.0.send(name);
///         Ok(())
///     }
/// }
/// ```
pub trait CtxNode {
    /// The cluster node this actor runs on; `None` for an actor of a plain `Runtime`, or
    /// once the node has shut down.
    fn node(&self) -> Option<Node>;
}

impl<A> CtxNode for understudy_actor::Ctx<A> {
    fn node(&self) -> Option<Node> {
        Node::of(self.runtime())
    }
}

impl Node {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Node {
        Node { inner }
    }

    /// The running node `runtime` belongs to, if any. From inside an actor, [`CtxNode::node`].
    pub fn of(runtime: &Runtime) -> Option<Node> {
        runtime.owner::<Inner>().map(Node::from_inner)
    }

    /// A builder for a node `name` of cluster `cluster`.
    pub fn builder(cluster: impl Into<String>, name: impl Into<String>) -> NodeBuilder {
        NodeBuilder::from_config(NodeConfig::new(cluster, name))
    }

    /// This node's name.
    pub fn name(&self) -> &NodeName {
        &self.inner.name
    }

    /// This node's cluster.
    pub fn cluster(&self) -> &ClusterName {
        &self.inner.cluster
    }

    /// Where the mesh listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.mesh.local_addr()
    }

    /// The actor runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Names of the nodes this node is connected to.
    pub fn connected(&self) -> Vec<NodeName> {
        let mut v: Vec<NodeName> = self
            .inner
            .mesh
            .links()
            .iter()
            .map(|l| l.info().name.clone())
            .collect();
        v.sort();
        v
    }

    /// Whether this node has a live connection to `node`.
    pub fn is_connected(&self, node: NodeId) -> bool {
        self.inner.mesh.links().iter().any(|l| l.info().id == node)
    }

    /// Waits until connected to `node`.
    pub async fn wait_for_peer(&self, node: NodeId, timeout: Duration) -> Result<(), NodeError> {
        let mut rx = self.inner.peers_changed.subscribe();
        tokio::time::timeout(timeout, async {
            while !self.is_connected(node) {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .map_err(|_| NodeError::Timeout(format!("no connection to node {node} within {timeout:?}")))
    }

    /// Makes a local actor reachable from other nodes; its address can travel in messages.
    /// The export ends when the actor stops.
    pub fn export<M: RemoteMessage>(&self, actor: &ActorRef<M>) -> ActorAddr {
        self.inner.remote.export(actor)
    }

    /// A working ref for an address, local or remote.
    pub async fn actor_ref<M: RemoteMessage>(
        &self,
        addr: ActorAddr,
    ) -> Result<ActorRef<M>, ResolveError> {
        self.inner.remote.resolve(addr).await
    }

    /// A working cell for an address, local or remote, when the message type is not known
    /// here (process groups, routers); prefer [`Node::actor_ref`], which checks it.
    pub async fn actor_cell(&self, addr: ActorAddr) -> Result<ActorCell, ResolveError> {
        self.inner.remote.resolve_cell(addr).await
    }

    /// Links a local actor with a (possibly remote) one, both ways: each receives the other's
    /// exit as a supervision event (reason `noconnection` if the node goes away).
    pub async fn link(&self, local: &ActorCell, other: &ActorCell) -> Result<(), ResolveError> {
        self.inner.remote.link(local, other).await
    }

    /// Removes a link made with [`Node::link`], on both sides, without an event.
    pub fn unlink(&self, local: &ActorCell, other: &ActorCell) -> Result<(), ResolveError> {
        self.inner.remote.unlink(local, other)
    }

    /// Sends an exit signal to a (possibly remote) actor, as Erlang's `exit(Pid, Reason)`:
    /// `Some("kill")` kills it, `None` or `Some("normal")` is ignored, any other reason stops
    /// it with that reason. To a remote actor it takes effect after the messages sent to it
    /// before.
    ///
    /// ```no_run
    /// # async fn demo(node: understudy_cluster::node::Node, worker: ractor::ActorCell) {
    /// node.exit(&worker, Some("shutdown".into())).expect("connected");
    /// # }
    /// ```
    pub fn exit(&self, target: &ActorCell, reason: ExitReason) -> Result<(), ResolveError> {
        self.inner.remote.exit(target, reason)
    }

    /// What this node holds for remote actors now (proxies, monitors, links, backlogs, its
    /// own pending asks); what peers drive is bounded by the `[remote]` configuration.
    pub fn remote_stats(&self) -> RemoteStats {
        self.inner.remote.stats()
    }

    /// The live members of the cluster (never this node).
    pub fn members(&self) -> Vec<Member> {
        self.inner.membership.members()
    }

    /// Membership events from now on: `NodeJoined`, `NodeLeft { reason }`, `NodeUpdated`.
    pub fn subscribe(&self) -> broadcast::Receiver<MembershipEvent> {
        self.inner.membership.subscribe()
    }

    /// The current members and the events after them, atomically (no gap, no duplicate).
    pub fn subscribe_with_snapshot(&self) -> (Vec<Member>, broadcast::Receiver<MembershipEvent>) {
        self.inner.membership.subscribe_with_snapshot()
    }

    /// Waits until `count` other nodes are members and connected.
    pub async fn wait_for_members(&self, count: usize, timeout: Duration) -> Result<(), NodeError> {
        let mut events = self.subscribe();
        let mut changed = self.inner.peers_changed.subscribe();
        let ready = |n: &Node| {
            let members = n.members();
            members.len() >= count && members.iter().all(|m| n.is_connected(m.node_id()))
        };
        tokio::time::timeout(timeout, async {
            while !ready(self) {
                tokio::select! {
                    _ = events.recv() => {}
                    _ = changed.changed() => {}
                }
            }
        })
        .await
        .map_err(|_| {
            NodeError::Timeout(format!(
                "{count} members not reached within {timeout:?} (have {})",
                self.members().len()
            ))
        })
    }

    /// Leaves the cluster gracefully: each extension hands its work over
    /// ([`Extension::leaving`]), peers report this node `Left` (not `Failed`), then every
    /// connection and the endpoint close, after what is queued has been delivered (waiting
    /// at most `leave_linger`).
    pub async fn leave(&self) {
        // Extensions hand their work over first, while every connection is up.
        let started: Vec<Arc<dyn Extension>> = self
            .inner
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for ext in started.iter().rev() {
            let _ = tokio::time::timeout(crate::extension::LEAVING_LIMIT, ext.leaving()).await;
        }
        self.inner.membership.leave().await;
        for link in self.inner.mesh.links() {
            let _ = link.send_signal(&Signal::Leaving);
        }
        self.inner
            .mesh
            .shutdown("leaving", self.inner.leave_linger)
            .await;
        self.inner.remote.stop();
    }

    /// This node's identity: name, id and incarnation (this run).
    pub fn identity(&self) -> &crate::identity::NodeIdentity {
        &self.inner.identity
    }

    /// What the node was started with that its extensions read.
    pub fn settings(&self) -> &NodeSettings {
        &self.inner.settings
    }

    /// The local actor, or a proxy of the remote one, for `addr`, without waiting: a proxy
    /// that does not exist yet is made now. Fails if `addr`'s node is not connected.
    pub fn actor_cell_now(
        &self,
        addr: ActorAddr,
    ) -> Result<ActorCell, understudy_actor::wire_ref::RefError> {
        use understudy_actor::wire_ref::RefResolver;
        self.inner.remote.resolve_now(addr)
    }

    /// Stops abruptly and silently, as a crash would: no goodbye, nothing more on the
    /// network; peers find out by failure detection (tests and benchmarks).
    #[cfg(feature = "testing")]
    pub fn crash(&self) {
        self.inner.mesh.crash();
        self.inner.remote.stop();
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.membership.stop().await });
    }

    #[doc(hidden)]
    pub fn mesh(&self) -> &Mesh {
        &self.inner.mesh
    }
}

/// The node's side of the mesh: hands each kind of traffic to its layer.
struct Handler {
    node: std::sync::Weak<Inner>,
    remote: Arc<RemoteDriver>,
    extensions: Arc<Extensions>,
    inbound: Inbound,
    transport: Arc<transport::MeshTransport>,
    peers_changed: watch::Sender<u64>,
}

/// Keeps the mesh in step with membership: connect to members, drop the connections of nodes
/// that left or failed (which fires `noconnection` for their actors). If it falls behind the
/// events, it starts over from a fresh snapshot, so no join or leave is missed.
fn follow_membership(inner: &Arc<Inner>) {
    let weak = Arc::downgrade(inner);
    let (members, events) = inner.membership.subscribe_with_snapshot();
    reconcile(inner, &members, false);
    tokio::spawn(async move {
        let mut events = events;
        loop {
            let event = match events.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let Some(inner) = weak.upgrade() else { return };
                    tracing::debug!(me = %inner.name, missed, "membership events lagged; reconciling");
                    let (members, fresh) = inner.membership.subscribe_with_snapshot();
                    reconcile(&inner, &members, true);
                    events = fresh;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(inner) = weak.upgrade() else { return };
            match event {
                MembershipEvent::NodeJoined(m) => inner.mesh.want(m.name().clone(), m.addr()),
                MembershipEvent::NodeUpdated(_) => {}
                MembershipEvent::NodeLeft { member, reason } => {
                    tracing::debug!(me = %inner.name, peer = %member.name(), %reason, "member left");
                    // A restart is followed by the new run's NodeJoined; keep wanting it.
                    if !matches!(reason, crate::membership::LeaveReason::Restarted) {
                        inner.mesh.unwant(member.name());
                    }
                    if let Some(link) = inner.mesh.link(member.name())
                        && link.info().incarnation <= member.incarnation().get()
                    {
                        if matches!(reason, crate::membership::LeaveReason::Left) {
                            // It is leaving on purpose and closes itself once its last
                            // messages are delivered; closing now could cut them off.
                            let (mesh, name) = (inner.mesh.clone(), member.name().clone());
                            let grace = inner.leave_linger;
                            let serial = link.serial();
                            tokio::spawn(async move {
                                tokio::time::sleep(grace).await;
                                if mesh.link(&name).is_some_and(|l| l.serial() == serial) {
                                    mesh.disconnect(&name, "member left the cluster");
                                }
                            });
                        } else {
                            inner
                                .mesh
                                .disconnect(member.name(), "member left the cluster");
                        }
                    }
                }
            }
        }
    });
}

/// Wants every member; after a lag, also stops wanting (and disconnects) every node that is
/// no longer a member.
fn reconcile(inner: &Inner, members: &[Member], drop_others: bool) {
    for m in members {
        inner.mesh.want(m.name().clone(), m.addr());
    }
    if !drop_others {
        return;
    }
    let live: std::collections::HashSet<&NodeName> = members.iter().map(|m| m.name()).collect();
    for name in inner.mesh.wanted() {
        if !live.contains(&name) {
            inner.mesh.unwant(&name);
        }
    }
    for link in inner.mesh.links() {
        if !live.contains(&link.info().name) {
            inner
                .mesh
                .disconnect(&link.info().name, "not a member any more");
        }
    }
}

impl MeshHandler for Handler {
    fn peer_up(&self, link: &Arc<PeerLink>) {
        self.transport.flush(link);
        self.remote.peer_up(link);
        self.extensions.peer_up(link);
        self.peers_changed.send_modify(|v| *v += 1);
    }

    fn peer_down(&self, link: &Arc<PeerLink>, reason: &str) {
        tracing::debug!(peer = %link.info().name, reason, "peer down");
        self.remote.peer_down(link);
        self.extensions.peer_down(link);
        self.peers_changed.send_modify(|v| *v += 1);
    }

    fn delivery(
        &self,
        link: &Arc<PeerLink>,
        lane: usize,
        delivery: Delivery,
        size: usize,
    ) -> Admit {
        self.remote.delivery(link, lane, delivery, size)
    }

    fn signal(&self, link: &Arc<PeerLink>, signal: Signal) {
        match signal {
            Signal::ExtensionResponse { id, result, .. } => {
                self.extensions.response(link, id, result)
            }
            // The peer is leaving on purpose: its goodbye came on a reliable stream, so the
            // cluster hears `Left` even if every leave datagram is lost.
            Signal::Leaving => {
                if let Some(node) = self.node.upgrade() {
                    let info = link.info();
                    node.membership
                        .member_leaving(info.id, Incarnation::new(info.incarnation));
                }
            }
            other => self.remote.signal(link, other),
        }
    }

    fn control(&self, link: &Arc<PeerLink>, control: Control) -> Admit {
        match control {
            Control::Extension { service, body } => self.extensions.inbound(link, service, body),
            // Handshake frames after the handshake, or notices membership already carries.
            other => {
                tracing::debug!(peer = %link.info().name, ?other, "control frame ignored");
                Admit::Next
            }
        }
    }

    fn datagram(&self, link: &Arc<PeerLink>, data: Bytes) {
        self.inbound.deliver(link.info().id, data);
    }

    fn stream(&self, link: Arc<PeerLink>, kind: u8, stream: FrameStream) {
        if kind == stream_kind::MEMBERSHIP_SYNC {
            tokio::spawn(
                self.transport
                    .answer_sync(self.inbound.clone(), link, stream),
            );
        }
    }
}
