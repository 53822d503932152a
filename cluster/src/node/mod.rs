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
use crate::identity::{ClusterName, Incarnation, InvalidName, NodeName};
use crate::mesh::{EndpointError, FaultPlan, FrameStream, Mesh, MeshHandler, PeerLink};
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
}

impl NodeBuilder {
    /// Starts from a configuration.
    pub fn from_config(config: NodeConfig) -> Self {
        NodeBuilder {
            config,
            certs: None,
            faults: None,
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
        let identity = cert.identity(Incarnation::fresh(None));
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
        let inner = Arc::new(Inner {
            runtime,
            mesh: mesh.clone(),
            remote,
            name,
            cluster,
            peers_changed: peers_tx,
        });
        mesh.start(Arc::new(Handler {
            node: Arc::downgrade(&inner),
        }));
        for seed in &self.config.seeds {
            let mesh = mesh.clone();
            let seed = *seed;
            tokio::spawn(async move {
                let mut delay = mesh.config().redial_min;
                // A seed known only by address: once reached, the mesh keeps that connection.
                loop {
                    match mesh.dial(seed, None).await {
                        Ok(link) => {
                            mesh.want(link.info().name.clone(), link.info().mesh_addr);
                            return;
                        }
                        Err(crate::mesh::DialError::Duplicate)
                        | Err(crate::mesh::DialError::Shutdown) => return,
                        Err(e) => {
                            tracing::debug!(%seed, error = %e, "seed not reachable yet");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(mesh.config().redial_max);
                        }
                    }
                }
            });
        }
        Ok(Node { inner })
    }
}

struct Inner {
    runtime: Runtime,
    mesh: Mesh,
    remote: Arc<RemoteCore>,
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

    /// Links a local actor with a (possibly remote) one, both ways: each receives the other's
    /// exit as a supervision event (reason `noconnection` if the node goes away).
    pub async fn link(&self, local: &ActorCell, other: &ActorCell) -> Result<(), ResolveError> {
        self.inner.remote.link(local, other).await
    }

    /// Leaves gracefully: closes every connection and the endpoint.
    pub async fn shutdown(&self) {
        self.inner.mesh.shutdown("leaving").await;
        self.inner.remote.stop();
    }

    /// Stops abruptly, as a crash would: no goodbye to anyone (tests).
    pub fn crash(&self) {
        self.inner.mesh.crash();
        self.inner.remote.stop();
    }

    #[doc(hidden)]
    pub fn mesh(&self) -> &Mesh {
        &self.inner.mesh
    }
}

struct Handler {
    node: std::sync::Weak<Inner>,
}

impl MeshHandler for Handler {
    fn peer_up(&self, link: &Arc<PeerLink>) {
        if let Some(n) = self.node.upgrade() {
            n.remote.peer_up(link);
            n.peers_changed.send_modify(|v| *v += 1);
        }
    }

    fn peer_down(&self, link: &Arc<PeerLink>, reason: &str) {
        if let Some(n) = self.node.upgrade() {
            tracing::debug!(me = %n.name, peer = %link.info().name, reason, "peer down");
            n.remote.peer_down(link);
            n.peers_changed.send_modify(|v| *v += 1);
        }
    }

    fn signal(&self, link: &Arc<PeerLink>, signal: Signal) {
        if let Some(n) = self.node.upgrade() {
            n.remote.signal(link, signal);
        }
    }

    fn control(&self, _link: &Arc<PeerLink>, _control: Control) {}

    fn datagram(&self, _link: &Arc<PeerLink>, _data: Bytes) {}

    fn stream(&self, _link: Arc<PeerLink>, _kind: u8, _stream: FrameStream) {}
}
