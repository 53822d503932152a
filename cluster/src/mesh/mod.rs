//! The QUIC mesh: one mutually authenticated connection per pair of nodes.
//!
//! Every node has one QUIC endpoint (server and client on one UDP socket). A connection is
//! trusted only after (1) TLS 1.3 with certificates of the cluster CA on both sides, (2) the
//! peer certificate naming a node of this cluster, and (3) an application-level [`Hello`]
//! that matches that name, the cluster, the protocol version and the node id. Simultaneous
//! dials are resolved without talking (the connection dialed by the lower node id wins), a
//! restarted peer (higher incarnation) replaces its old connection, and peers the node wants
//! (cluster members) are redialed with exponential backoff.
//!
//! To keep the number of handshakes down when many nodes start together, a node dials a
//! wanted peer with a *higher* node id at once but leaves a peer with a lower id a grace
//! period ([`MeshConfig::dial_grace`]) to dial it first; and at most
//! [`MeshConfig::max_handshakes`] handshakes run at a time.
//!
//! On a live connection (see [`link`](PeerLink)): K ordered data lanes per direction
//! ([`PeerLink::send`]), a signal stream ([`PeerLink::send_signal`]), a control stream,
//! unreliable datagrams for SWIM, and on-demand bi-directional streams (membership sync) —
//! see [`crate::wire`] for what they carry. Inbound traffic goes to a [`MeshHandler`], which
//! sees, per peer, `peer_up`, that connection's frames, `peer_down`, and only then the next
//! connection's `peer_up`. The mesh itself knows nothing of actors or membership.

mod config;
mod connect;
mod endpoint;
#[cfg(feature = "testing")]
mod faults;
mod handshake;
mod lane;
mod link;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::Bytes;

pub use config::{InvalidMeshConfig, MeshConfig};
pub use connect::{ConnectFailure, DialError};
pub use endpoint::EndpointError;
pub(crate) use endpoint::STREAM_WINDOW;
#[cfg(feature = "testing")]
pub use faults::FaultPlan;
pub use lane::SendError;
pub use link::{Admit, FrameStream, PROTOCOL_ERRORS_METRIC, PeerInfo, PeerLink};

pub use crate::wire::Refusal;

use crate::certs::{ClusterTrust, NodeCert};
use crate::identity::{ClusterName, NodeName, node_id};
use crate::wire::{Control, Delivery, Hello, PROTOCOL_VERSION, Signal};
use link::close_code;
use understudy_actor::NodeId;

/// Kinds of bi-directional streams (their first byte).
pub mod stream_kind {
    /// The control stream, opened by the dialer, starting with the Hello.
    pub const CONTROL: u8 = 0;
    /// A membership push-pull sync.
    pub const MEMBERSHIP_SYNC: u8 = 1;
}

/// Names of uni-directional streams (their first byte): a data lane's index (below 64), or
/// the signal stream.
pub mod uni_kind {
    /// The signal stream.
    pub const SIGNALS: u8 = 0xFF;
}

/// What the mesh hands to the layers above. Called from the connection's tasks; must not
/// block (a handler that wants a stream to wait returns [`Admit::After`]).
pub trait MeshHandler: Send + Sync + 'static {
    /// A connection to a peer is up (after the Hello), before any of its frames.
    fn peer_up(&self, link: &Arc<PeerLink>);
    /// That connection ended (closed by either side, timed out, or replaced), after all of
    /// its frames.
    fn peer_down(&self, link: &Arc<PeerLink>, reason: &str);
    /// A message of `size` bytes on the wire arrived on data lane `lane`.
    fn delivery(&self, link: &Arc<PeerLink>, lane: usize, delivery: Delivery, size: usize)
    -> Admit;
    /// A signal arrived on the signal stream (which is never paused).
    fn signal(&self, link: &Arc<PeerLink>, signal: Signal);
    /// A control frame arrived (after the handshake).
    fn control(&self, link: &Arc<PeerLink>, control: Control) -> Admit;
    /// A datagram arrived.
    fn datagram(&self, link: &Arc<PeerLink>, data: Bytes);
    /// The peer opened a stream of `kind` (other than control).
    fn stream(&self, link: Arc<PeerLink>, kind: u8, stream: FrameStream);
}

enum Slot {
    Dialing,
    Up(Arc<PeerLink>),
}

struct Inner {
    endpoint: quinn::Endpoint,
    cfg: MeshConfig,
    cluster: ClusterName,
    me: NodeName,
    my_id: NodeId,
    hello: Hello,
    peers: Mutex<HashMap<NodeName, Slot>>,
    wanted: Mutex<HashMap<NodeName, SocketAddr>>,
    redialing: Mutex<HashSet<NodeName>>,
    /// Taken out on shutdown, which breaks the cycle handler → layers above → mesh.
    handler: RwLock<Option<Arc<dyn MeshHandler>>>,
    serials: AtomicU64,
    closing: AtomicBool,
    /// Handshakes this node starts (dials) and answers (accepts), limited separately: peers
    /// that stall their handshakes must not keep this node from dialing.
    dials: tokio::sync::Semaphore,
    accepts: tokio::sync::Semaphore,
    #[cfg(feature = "testing")]
    silenced: Arc<AtomicBool>,
}

impl Drop for Inner {
    /// The last handle is gone: close the endpoint, which ends the accept loop and frees the
    /// port (a mesh that was not closed would otherwise keep it).
    fn drop(&mut self) {
        self.endpoint
            .close(close_code::NORMAL.into(), b"mesh dropped");
    }
}

/// A node's mesh. Cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("me", &self.inner.me)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Mesh {
    /// Binds the endpoint at `addr` (port 0 picks one). Call [`Mesh::start`] to accept.
    pub fn bind(
        addr: SocketAddr,
        cert: &NodeCert,
        trust: &ClusterTrust,
        incarnation: u64,
        cfg: MeshConfig,
    ) -> Result<Mesh, EndpointError> {
        Self::bind_inner(
            addr,
            cert,
            trust,
            incarnation,
            cfg,
            endpoint::Faults::default(),
        )
    }

    /// [`Mesh::bind`] with every datagram routed through a fault plan (tests: partitions,
    /// loss, silent crashes).
    #[cfg(feature = "testing")]
    pub fn bind_with_faults(
        addr: SocketAddr,
        cert: &NodeCert,
        trust: &ClusterTrust,
        incarnation: u64,
        cfg: MeshConfig,
        plan: Option<FaultPlan>,
    ) -> Result<Mesh, EndpointError> {
        let faults = endpoint::Faults {
            plan,
            silenced: Arc::new(AtomicBool::new(false)),
        };
        Self::bind_inner(addr, cert, trust, incarnation, cfg, faults)
    }

    fn bind_inner(
        addr: SocketAddr,
        cert: &NodeCert,
        trust: &ClusterTrust,
        incarnation: u64,
        cfg: MeshConfig,
        faults: endpoint::Faults,
    ) -> Result<Mesh, EndpointError> {
        cfg.validate()?;
        #[cfg(feature = "testing")]
        let silenced = faults.silenced.clone();
        let endpoint = endpoint::bind(addr, cert, trust, &cfg, faults)?;
        let local = endpoint
            .local_addr()
            .map_err(|source| EndpointError::Bind { addr, source })?;
        let cluster = cert.cluster().clone();
        let me = cert.name().clone();
        let my_id = node_id(&cluster, &me);
        let hello = Hello {
            version: PROTOCOL_VERSION,
            cluster: cluster.as_str().to_owned(),
            name: me.as_str().to_owned(),
            node_id: my_id.get(),
            incarnation,
            mesh_addr: local,
            // validate() keeps lanes within 1..=64.
            lanes: u16::try_from(cfg.lanes).unwrap_or(64),
            lane_buffer: cfg.lane_buffer as u64,
            max_frame: cfg.max_frame as u64,
        };
        Ok(Mesh {
            inner: Arc::new(Inner {
                endpoint,
                dials: tokio::sync::Semaphore::new(cfg.max_handshakes),
                accepts: tokio::sync::Semaphore::new(cfg.max_handshakes),
                cfg,
                cluster,
                me,
                my_id,
                hello,
                peers: Mutex::new(HashMap::new()),
                wanted: Mutex::new(HashMap::new()),
                redialing: Mutex::new(HashSet::new()),
                handler: RwLock::new(None),
                serials: AtomicU64::new(1),
                closing: AtomicBool::new(false),
                #[cfg(feature = "testing")]
                silenced,
            }),
        })
    }

    /// Starts accepting connections, handing traffic to `handler`. A second call is ignored.
    pub fn start(&self, handler: Arc<dyn MeshHandler>) {
        {
            let mut slot = self
                .inner
                .handler
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if slot.is_some() || self.is_closing() {
                return;
            }
            *slot = Some(handler);
        }
        // The loop holds the endpoint, not the mesh, so dropping every `Mesh` handle ends it.
        let (endpoint, weak) = (self.inner.endpoint.clone(), Arc::downgrade(&self.inner));
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let Some(inner) = weak.upgrade() else { return };
                let mesh = Mesh { inner };
                tokio::spawn(async move {
                    if let Err(e) = mesh.accept(incoming).await {
                        tracing::debug!(error = %e, "inbound connection not established");
                    }
                });
            }
        });
    }

    fn handler(&self) -> Option<Arc<dyn MeshHandler>> {
        self.inner
            .handler
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::Acquire)
    }

    /// Where the endpoint listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.hello.mesh_addr
    }

    /// This node's name.
    pub fn name(&self) -> &NodeName {
        &self.inner.me
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.my_id
    }

    /// The cluster.
    pub fn cluster(&self) -> &ClusterName {
        &self.inner.cluster
    }

    /// The configuration.
    pub fn config(&self) -> &MeshConfig {
        &self.inner.cfg
    }

    /// The live link to `name`, if connected.
    pub fn link(&self, name: &NodeName) -> Option<Arc<PeerLink>> {
        match lock(&self.inner.peers).get(name) {
            Some(Slot::Up(l)) => Some(l.clone()),
            _ => None,
        }
    }

    /// All live links.
    pub fn links(&self) -> Vec<Arc<PeerLink>> {
        lock(&self.inner.peers)
            .values()
            .filter_map(|s| match s {
                Slot::Up(l) => Some(l.clone()),
                Slot::Dialing => None,
            })
            .collect()
    }

    /// The live link to the node listening at `addr`, if any.
    pub fn link_at(&self, addr: SocketAddr) -> Option<Arc<PeerLink>> {
        self.links()
            .into_iter()
            .find(|l| l.info().mesh_addr == addr)
    }

    /// Keeps a connection to `name` at `addr`: connects now if not connected (see the module
    /// docs for who dials), and again whenever the connection is lost, until
    /// [`Mesh::unwant`].
    pub fn want(&self, name: NodeName, addr: SocketAddr) {
        if name == self.inner.me || self.is_closing() {
            return;
        }
        lock(&self.inner.wanted).insert(name.clone(), addr);
        self.ensure_redial(name);
    }

    /// Stops keeping a connection to `name` (an existing one stays until closed).
    pub fn unwant(&self, name: &NodeName) {
        lock(&self.inner.wanted).remove(name);
    }

    /// The peers this mesh keeps connections to ([`Mesh::want`]), sorted: the ones it dials
    /// and redials until [`Mesh::unwant`].
    ///
    /// ```no_run
    /// # fn show(mesh: &understudy_cluster::mesh::Mesh) {
    /// for name in mesh.wanted() {
    ///     println!("keeping a connection to {name}");
    /// }
    /// # }
    /// ```
    pub fn wanted(&self) -> Vec<NodeName> {
        let mut names: Vec<NodeName> = lock(&self.inner.wanted).keys().cloned().collect();
        names.sort();
        names
    }

    /// Closes the connection to `name`, if any.
    pub fn disconnect(&self, name: &NodeName, reason: &str) {
        if let Some(link) = self.link(name) {
            link.close(close_code::NORMAL, reason);
        }
    }

    fn ensure_redial(&self, name: NodeName) {
        if self.link(&name).is_some() || !lock(&self.inner.redialing).insert(name.clone()) {
            return;
        }
        // The loop holds the mesh only while it dials: a sleeping redial must not keep a
        // dropped node's endpoint (and port) alive.
        let weak = Arc::downgrade(&self.inner);
        let cfg = self.inner.cfg.clone();
        let lower = node_id(&self.inner.cluster, &name) < self.inner.my_id;
        tokio::spawn(async move {
            // A peer with a lower id dials us: give it the first chance.
            if lower {
                tokio::time::sleep(cfg.dial_grace).await;
            }
            let mut delay = cfg.redial_min;
            while let Some(inner) = weak.upgrade() {
                let mesh = Mesh { inner };
                let addr = lock(&mesh.inner.wanted).get(&name).copied();
                let Some(addr) = addr else {
                    lock(&mesh.inner.redialing).remove(&name);
                    return;
                };
                if mesh.link(&name).is_some() || mesh.is_closing() {
                    lock(&mesh.inner.redialing).remove(&name);
                    return;
                }
                match mesh.dial(addr, Some(name.clone())).await {
                    Ok(_) | Err(DialError::Shutdown) => {
                        lock(&mesh.inner.redialing).remove(&name);
                        return;
                    }
                    // Another dial to this peer is in flight (ours or theirs): look again
                    // shortly; if that one fails, this loop is what retries.
                    Err(e) => {
                        tracing::debug!(peer = %name, error = %e, ?delay, "not connected yet; retrying");
                    }
                }
                drop(mesh);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(cfg.redial_max);
            }
        });
    }

    fn release_dialing(&self, name: &NodeName) {
        let mut peers = lock(&self.inner.peers);
        if matches!(peers.get(name), Some(Slot::Dialing)) {
            peers.remove(name);
        }
    }

    /// Puts an established connection in the table and starts its tasks. A connection that
    /// replaces an older one to the same peer is announced (`peer_up`) and read only after
    /// the old one has been reported down, so the layers above never see the two overlap.
    fn install(
        &self,
        conn: quinn::Connection,
        name: &NodeName,
        hello: &Hello,
        control: (quinn::SendStream, quinn::RecvStream),
    ) -> Arc<PeerLink> {
        let cfg = &self.inner.cfg;
        // Both sides use the smaller lane count, so every lane written is read.
        let lanes = hello.lanes.min(self.inner.hello.lanes);
        let info = PeerInfo {
            name: name.clone(),
            id: node_id(&self.inner.cluster, name),
            incarnation: hello.incarnation,
            mesh_addr: hello.mesh_addr,
            lanes,
            // check_hello keeps both within 1 GiB.
            lane_buffer: usize::try_from(hello.lane_buffer).unwrap_or(usize::MAX),
            max_frame: usize::try_from(hello.max_frame).unwrap_or(usize::MAX),
        };
        // The lanes, the signal stream, and one spare so that a stray stream is read (and
        // refused) instead of blocking the peer's writer.
        conn.set_max_concurrent_uni_streams(quinn::VarInt::from_u32(u32::from(lanes) + 2));
        let window = endpoint::connection_window(usize::from(lanes));
        conn.set_receive_window(quinn::VarInt::from_u32(
            u32::try_from(window).unwrap_or(u32::MAX),
        ));
        let serial = self.inner.serials.fetch_add(1, Ordering::Relaxed);
        let link = Arc::new(PeerLink::new(
            info,
            conn,
            cfg.lane_buffer,
            cfg.max_frame,
            serial,
        ));
        let (control_send, control_recv) = control;
        let Some(handler) = self.handler().filter(|_| !self.is_closing()) else {
            // Not started (or shutting down): never table a link nobody reads.
            self.release_dialing(name);
            link.close(close_code::NORMAL, "node not running");
            return link;
        };
        let replaced = {
            let mut peers = lock(&self.inner.peers);
            match peers.insert(name.clone(), Slot::Up(link.clone())) {
                Some(Slot::Up(old)) => Some(old),
                _ => None,
            }
        };
        tracing::debug!(me = %self.inner.me, peer = %name, incarnation = hello.incarnation, "peer connected");
        link::start_writers(&link, control_send);
        match replaced {
            None => {
                handler.peer_up(&link);
                link::start_readers(self, link.clone(), handler, control_recv);
            }
            Some(old) => {
                old.close(close_code::NORMAL, "replaced by a newer connection");
                let (mesh, link) = (self.clone(), link.clone());
                tokio::spawn(async move {
                    old.reported_down().await;
                    handler.peer_up(&link);
                    link::start_readers(&mesh, link, handler, control_recv);
                });
            }
        }
        link
    }

    /// Called by a link's watcher when its connection ended and its readers are done.
    fn link_closed(&self, link: &Arc<PeerLink>, reason: &str, handler: &Arc<dyn MeshHandler>) {
        let current = {
            let mut peers = lock(&self.inner.peers);
            match peers.get(&link.info().name) {
                Some(Slot::Up(l)) if l.serial() == link.serial() => {
                    peers.remove(&link.info().name);
                    true
                }
                _ => false,
            }
        };
        handler.peer_down(link, reason);
        link.mark_reported_down();
        if current && !self.is_closing() && lock(&self.inner.wanted).contains_key(&link.info().name)
        {
            self.ensure_redial(link.info().name.clone());
        }
    }

    /// Closes every connection and the endpoint at once, without waiting: what dropping a
    /// node does. Nothing is dialed or accepted afterwards.
    pub fn close(&self, reason: &str) {
        self.inner.closing.store(true, Ordering::Release);
        lock(&self.inner.wanted).clear();
        for link in self.links() {
            link.close(close_code::NORMAL, reason);
        }
        self.inner
            .endpoint
            .close(close_code::NORMAL.into(), reason.as_bytes());
        // The handler holds the layers above, which hold the mesh.
        self.inner
            .handler
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Closes gracefully: dials and accepts no more, lets every connection deliver what is
    /// queued (a goodbye, last replies) and waits at most `linger` for the peers to
    /// acknowledge it, then closes every connection and the endpoint.
    pub async fn shutdown(&self, reason: &str, linger: Duration) {
        self.inner.closing.store(true, Ordering::Release);
        lock(&self.inner.wanted).clear();
        let mut finishing = tokio::task::JoinSet::new();
        for link in self.links() {
            let reason = reason.to_owned();
            finishing.spawn(async move { link.finish(linger, &reason).await });
        }
        while finishing.join_next().await.is_some() {}
        self.close(reason);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.endpoint.wait_idle()).await;
    }

    /// Falls silent at once, as a crashed process does: nothing more goes out or comes in,
    /// so peers learn of it only by silence (SWIM, idle timeout). The links are closed
    /// locally (their close frames never leave).
    #[cfg(feature = "testing")]
    pub fn crash(&self) {
        self.inner.silenced.store(true, Ordering::Relaxed);
        self.inner.endpoint.set_server_config(None);
        self.close("crashed");
    }
}
