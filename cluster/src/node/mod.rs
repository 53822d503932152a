//! The [`Node`]: one member of a cluster — its actor runtime, its mesh, its remote actors.
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
use tokio::sync::watch;
use understudy_actor::{ActorAddr, NodeId, RemoteMessage, Runtime};

pub use config::NodeConfig;

use crate::certs::{CertError, ClusterCa, ClusterTrust, NodeCert};
use crate::extension::{Extension, Extensions};
use crate::identity::{ClusterName, Incarnation, InvalidName, NodeName};
use crate::membership::{
    Inbound, InvalidMembershipConfig, LocalNode, Member, Membership, MembershipEvent, NodeMeta,
    inbound,
};
use crate::mesh::{
    EndpointError, FaultPlan, FrameStream, Mesh, MeshHandler, PeerLink, stream_kind,
};
use crate::remote::{RemoteCore, ResolveError};
use crate::wire::{Control, Signal};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A name in the configuration is invalid.
    #[error(transparent)]
    Name(#[from] InvalidName),
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
    /// The mesh endpoint could not start.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The remote-actor machinery could not start.
    #[error(transparent)]
    Remote(#[from] ResolveError),
    /// The membership configuration or metadata is invalid.
    #[error(transparent)]
    Membership(#[from] InvalidMembershipConfig),
    /// Two extensions share a name.
    #[error("two extensions are named {0:?}; extension names must be unique on a node")]
    DuplicateExtension(&'static str),
    /// An extension could not start.
    #[error("the {name:?} extension could not start: {reason}")]
    ExtensionStart {
        /// The extension.
        name: &'static str,
        /// What went wrong.
        reason: String,
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
            .map_err(NodeError::from)
            .and_then(|name| Ok((ca.issue(&name)?, ca.trust())));
        self.certs = Some(issued);
        self
    }

    /// Routes the mesh's datagrams through a fault plan (tests: partitions, loss).
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
            .map_err(|e| CertError::Generate(e.to_string()))?;
        Ok((cert, trust))
    }

    /// Starts the node: binds the mesh, starts the remote-actor machinery, dials the seeds.
    pub async fn start(mut self) -> Result<Node, NodeError> {
        let cluster = ClusterName::new(self.config.cluster.clone())?;
        let name = NodeName::new(self.config.name.clone())?;
        let (cert, trust) = self.load_certs(&cluster, &name)?;
        let identity = cert.identity(self.incarnation.unwrap_or_else(|| Incarnation::fresh(None)));
        let runtime = Runtime::with_node_id(identity.node_id());
        let mesh = Mesh::bind(
            self.config.bind,
            &cert,
            &trust,
            identity.incarnation().get(),
            self.config.mesh.clone(),
            self.faults.clone(),
        )?;
        let remote = RemoteCore::start(runtime.clone()).await?;
        let (peers_tx, _) = watch::channel(0u64);
        let (inbound, inbox) = inbound(self.config.membership.inbound_queue);
        let local = LocalNode {
            identity,
            addr: mesh.local_addr(),
            meta: NodeMeta {
                name: name.clone(),
                role: self.config.role.clone(),
                failure_domain: self.config.failure_domain.clone(),
                raft_eligible: self.config.raft_eligible,
                raft_priority: self.config.raft_priority,
            },
        };
        let inner = Arc::new(Inner {
            runtime,
            mesh: mesh.clone(),
            remote,
            extensions: Extensions::default(),
            membership: std::sync::OnceLock::new(),
            leave_linger: self.config.leave_linger,
            name,
            cluster,
            peers_changed: peers_tx,
        });
        // The mesh must accept (and be able to dial) before membership starts announcing.
        let transport = Arc::new(transport::MeshTransport::new(
            mesh.clone(),
            self.config.membership.sync_timeout,
        ));
        mesh.start(Arc::new(Handler {
            node: Arc::downgrade(&inner),
            inbound,
            transport: transport.clone(),
        }));
        let membership = Membership::start(
            local,
            self.config.membership.clone(),
            self.config.seeds.clone(),
            transport,
            inbox,
        )?;
        let _ = inner.membership.set(membership);
        follow_membership(&inner);
        // Contexts first (so every inbox exists before any extension sends), then start.
        let mut seen = std::collections::HashSet::new();
        let mut started = Vec::new();
        for ext in self.extensions {
            if !seen.insert(ext.name()) {
                return Err(NodeError::DuplicateExtension(ext.name()));
            }
            let ctx = inner.extensions.context(Arc::downgrade(&inner), ext.name());
            started.push((ext, ctx));
        }
        for (ext, ctx) in started {
            let name = ext.name();
            if let Err(reason) = ext.start(ctx).await {
                return Err(NodeError::ExtensionStart { name, reason });
            }
        }
        Ok(Node { inner })
    }
}

pub(crate) struct Inner {
    runtime: Runtime,
    pub(crate) mesh: Mesh,
    pub(crate) extensions: Extensions,
    remote: Arc<RemoteCore>,
    membership: std::sync::OnceLock<Membership>,
    leave_linger: Duration,
    name: NodeName,
    cluster: ClusterName,
    peers_changed: watch::Sender<u64>,
}

/// A running cluster node. Derefs to its actor [`Runtime`], so `node.spawn(..)` works.
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

impl Node {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Node {
        Node { inner }
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

    /// The live members of the cluster (never this node).
    pub fn members(&self) -> Vec<Member> {
        self.inner.membership().members()
    }

    /// Membership events from now on: `NodeJoined`, `NodeLeft { reason }`, `NodeUpdated`.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<MembershipEvent> {
        self.inner.membership().subscribe()
    }

    /// The current members and the events after them, atomically (no gap, no duplicate).
    pub fn subscribe_with_snapshot(
        &self,
    ) -> (
        Vec<Member>,
        tokio::sync::broadcast::Receiver<MembershipEvent>,
    ) {
        self.inner.membership().subscribe_with_snapshot()
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

    /// Leaves the cluster gracefully: peers report this node `Left` (not `Failed`), then
    /// every connection and the endpoint close.
    pub async fn leave(&self) {
        self.inner.membership().leave().await;
        // SWIM's goodbye is datagrams; closing at once could drop them with the connections.
        tokio::time::sleep(self.inner.leave_linger).await;
        self.inner.mesh.shutdown("leaving").await;
        self.inner.remote.stop();
    }

    /// Stops abruptly and silently, as a crash would: no goodbye, nothing more on the
    /// network; peers find out by failure detection (tests and benchmarks).
    pub fn crash(&self) {
        self.inner.mesh.crash();
        self.inner.remote.stop();
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.membership().stop().await });
    }

    #[doc(hidden)]
    pub fn mesh(&self) -> &Mesh {
        &self.inner.mesh
    }
}

impl Inner {
    fn membership(&self) -> &Membership {
        // Set in `start` right after the mesh starts, before the node is handed out.
        self.membership
            .get()
            .expect("membership is set before the node is used")
    }
}

struct Handler {
    node: std::sync::Weak<Inner>,
    inbound: Inbound,
    transport: Arc<transport::MeshTransport>,
}

/// Keeps the mesh in step with membership: connect to members, drop the connections of nodes
/// that left or failed (which fires `noconnection` for their actors).
fn follow_membership(inner: &Arc<Inner>) {
    let (members, mut events) = inner.membership().subscribe_with_snapshot();
    for m in &members {
        inner.mesh.want(m.name().clone(), m.addr());
    }
    let weak = Arc::downgrade(inner);
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Events were missed (a NodeLeft among them would leave its node wanted
                    // for ever): want exactly the members; the events still queued follow.
                    let Some(inner) = weak.upgrade() else { return };
                    want_exactly_the_members(&inner);
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
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
                        inner
                            .mesh
                            .disconnect(member.name(), "member left the cluster");
                    }
                }
            }
        }
    });
}

/// Makes the mesh want the live members and no one else.
fn want_exactly_the_members(inner: &Inner) {
    let members = inner.membership().members();
    for name in inner.mesh.wanted() {
        if !members.iter().any(|m| m.name() == &name) {
            inner.mesh.unwant(&name);
        }
    }
    for m in &members {
        inner.mesh.want(m.name().clone(), m.addr());
    }
}

impl MeshHandler for Handler {
    fn peer_up(&self, link: &Arc<PeerLink>) {
        self.transport.flush(link);
        if let Some(n) = self.node.upgrade() {
            n.remote.peer_up(link);
            n.extensions.peer_up(link);
            n.peers_changed.send_modify(|v| *v += 1);
        }
    }

    fn peer_down(&self, link: &Arc<PeerLink>, reason: &str) {
        if let Some(n) = self.node.upgrade() {
            tracing::debug!(me = %n.name, peer = %link.info().name, reason, "peer down");
            n.remote.peer_down(link);
            n.extensions.peer_down(link);
            n.peers_changed.send_modify(|v| *v += 1);
        }
    }

    fn signal(&self, link: &Arc<PeerLink>, signal: Signal) {
        if let Some(n) = self.node.upgrade() {
            n.remote.signal(link, signal);
        }
    }

    fn control(&self, link: &Arc<PeerLink>, control: Control) {
        let Some(n) = self.node.upgrade() else { return };
        match control {
            Control::Extension { service, body } => n.extensions.inbound(link, service, body),
            // Handshake frames after the handshake, or notices membership already carries.
            other => tracing::debug!(peer = %link.info().name, ?other, "control frame ignored"),
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
