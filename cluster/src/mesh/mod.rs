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
//! On a live connection: K ordered actor lanes per direction ([`PeerLink::send_signal`]), a
//! priority control stream, unreliable datagrams for SWIM, and on-demand bi-directional
//! streams (membership sync) — see [`crate::wire`] for what they carry. Inbound traffic goes
//! to a [`MeshHandler`]; the mesh itself knows nothing of actors or membership.

mod config;
mod endpoint;
mod faults;
mod handshake;
mod lane;
mod link;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;

pub use config::{InvalidMeshConfig, MeshConfig};
pub use endpoint::EndpointError;
pub use faults::FaultPlan;
pub use handshake::Refusal;
pub use lane::SendError;
pub use link::{FrameStream, PROTOCOL_ERRORS_METRIC, PeerInfo, PeerLink};

use crate::certs::{ClusterTrust, NodeCert, cluster_san, node_name_of, node_san};
use crate::identity::{ClusterName, NodeName, node_id};
use crate::wire::{Control, FrameDecoder, Hello, PROTOCOL_VERSION, Signal, encode_frame};
use handshake::{Decision, Existing, RefuseWhy, check_hello, decide_accepted};
use link::close_code;
use understudy_actor::NodeId;

/// Kinds of bi-directional streams (their first byte).
pub mod stream_kind {
    /// The control stream, opened by the dialer, starting with the Hello.
    pub const CONTROL: u8 = 0;
    /// A membership push-pull sync.
    pub const MEMBERSHIP_SYNC: u8 = 1;
}

/// What the mesh hands to the layers above. Called from the connection's tasks; must not
/// block.
pub trait MeshHandler: Send + Sync + 'static {
    /// A connection to a peer is up (after the Hello).
    fn peer_up(&self, link: &Arc<PeerLink>);
    /// That connection ended (closed by either side, timed out, or replaced).
    fn peer_down(&self, link: &Arc<PeerLink>, reason: &str);
    /// A signal arrived on a lane.
    fn signal(&self, link: &Arc<PeerLink>, signal: Signal);
    /// A control frame arrived (after the handshake).
    fn control(&self, link: &Arc<PeerLink>, control: Control);
    /// A datagram arrived.
    fn datagram(&self, link: &Arc<PeerLink>, data: Bytes);
    /// The peer opened a stream of `kind` (other than control).
    fn stream(&self, link: Arc<PeerLink>, kind: u8, stream: FrameStream);
}

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// QUIC or TLS failed (unreachable, refused certificate, timeout).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The peer's certificate does not name the expected node.
    #[error("peer certificate: {0}")]
    Identity(String),
    /// The peer refused our Hello, or sent a bad one.
    #[error("handshake refused: {0}")]
    Refused(String),
    /// A connection to this peer already exists (this one was dropped).
    #[error("already connected")]
    Duplicate,
    /// The mesh is shutting down.
    #[error("the mesh is shut down")]
    Shutdown,
    /// The mesh has not been started ([`Mesh::start`]) yet.
    #[error("the mesh is not started yet")]
    NotStarted,
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
    handler: OnceLock<Arc<dyn MeshHandler>>,
    serials: AtomicU64,
    closing: std::sync::atomic::AtomicBool,
    silenced: Arc<std::sync::atomic::AtomicBool>,
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
        faults: Option<FaultPlan>,
    ) -> Result<Mesh, EndpointError> {
        cfg.validate()
            .map_err(|e| EndpointError::Quic(e.to_string()))?;
        let silenced = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let endpoint = endpoint::bind(addr, cert, trust, &cfg, faults, silenced.clone())?;
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
            lanes: cfg.lanes as u16,
        };
        Ok(Mesh {
            inner: Arc::new(Inner {
                endpoint,
                cfg,
                cluster,
                me,
                my_id,
                hello,
                peers: Mutex::new(HashMap::new()),
                wanted: Mutex::new(HashMap::new()),
                redialing: Mutex::new(HashSet::new()),
                handler: OnceLock::new(),
                serials: AtomicU64::new(1),
                closing: std::sync::atomic::AtomicBool::new(false),
                silenced,
            }),
        })
    }

    /// Starts accepting connections, handing traffic to `handler`.
    pub fn start(&self, handler: Arc<dyn MeshHandler>) {
        if self.inner.handler.set(handler).is_err() {
            return;
        }
        let mesh = self.clone();
        tokio::spawn(async move {
            while let Some(incoming) = mesh.inner.endpoint.accept().await {
                let mesh = mesh.clone();
                tokio::spawn(async move {
                    if let Err(e) = mesh.accept(incoming).await {
                        tracing::debug!(error = %e, "inbound connection not established");
                    }
                });
            }
        });
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

    /// Keeps a connection to `name` at `addr`: dials now if not connected, and redials with
    /// backoff whenever the connection is lost, until [`Mesh::unwant`].
    pub fn want(&self, name: NodeName, addr: SocketAddr) {
        if name == self.inner.me {
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
        let mesh = self.clone();
        tokio::spawn(async move {
            let mut delay = mesh.inner.cfg.redial_min;
            loop {
                let addr = lock(&mesh.inner.wanted).get(&name).copied();
                let Some(addr) = addr else { break };
                if mesh.link(&name).is_some() || mesh.inner.closing.load(Ordering::Relaxed) {
                    break;
                }
                match mesh.dial(addr, Some(name.clone())).await {
                    Ok(_) | Err(DialError::Shutdown) => break,
                    // Another dial to this peer is in flight (ours or theirs): look again
                    // shortly; if that one fails, this loop is what retries.
                    Err(e) => {
                        tracing::debug!(peer = %name, error = %e, ?delay, "not connected yet; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(mesh.inner.cfg.redial_max);
                    }
                }
            }
            lock(&mesh.inner.redialing).remove(&name);
        });
    }

    /// Dials `addr`. With `expected`, the peer must be that node (its node SAN is the TLS
    /// server name); without, any node of the cluster (a seed known only by address).
    pub async fn dial(
        &self,
        addr: SocketAddr,
        expected: Option<NodeName>,
    ) -> Result<Arc<PeerLink>, DialError> {
        if self.inner.closing.load(Ordering::Relaxed) {
            return Err(DialError::Shutdown);
        }
        if self.inner.handler.get().is_none() {
            return Err(DialError::NotStarted);
        }
        let server_name = match &expected {
            Some(n) => node_san(&self.inner.cluster, n),
            None => cluster_san(&self.inner.cluster),
        };
        let timeout = self.inner.cfg.dial_timeout;
        let conn = tokio::time::timeout(timeout, async {
            self.inner
                .endpoint
                .connect(addr, &server_name)
                .map_err(|e| DialError::Connect(e.to_string()))?
                .await
                .map_err(|e| DialError::Connect(e.to_string()))
        })
        .await
        .map_err(|_| DialError::Connect(format!("timed out after {timeout:?}")))??;
        let certified = self.certified_name(&conn).map_err(DialError::Identity)?;
        if expected.as_ref().is_some_and(|e| e != &certified) {
            conn.close(close_code::REFUSED.into(), b"unexpected peer");
            return Err(DialError::Identity(format!(
                "expected {expected:?}, reached {certified}"
            )));
        }
        // Claim the peer before the Hello so a crossing dial from it sees us dialing.
        {
            let mut peers = lock(&self.inner.peers);
            match peers.get(&certified) {
                Some(Slot::Up(_)) | Some(Slot::Dialing) => {
                    conn.close(close_code::NORMAL.into(), b"duplicate");
                    return Err(DialError::Duplicate);
                }
                None => {
                    peers.insert(certified.clone(), Slot::Dialing);
                }
            }
        }
        let result = tokio::time::timeout(timeout, self.hello_as_dialer(&conn, &certified)).await;
        let (hello, control) = match result {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.release_dialing(&certified);
                conn.close(close_code::REFUSED.into(), b"handshake failed");
                return Err(e);
            }
            Err(_) => {
                self.release_dialing(&certified);
                conn.close(close_code::REFUSED.into(), b"handshake timed out");
                return Err(DialError::Refused("Hello not answered in time".into()));
            }
        };
        Ok(self.install(conn, &certified, &hello, control, false))
    }

    async fn hello_as_dialer(
        &self,
        conn: &quinn::Connection,
        certified: &NodeName,
    ) -> Result<(Hello, (quinn::SendStream, quinn::RecvStream)), DialError> {
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| DialError::Connect(e.to_string()))?;
        let mut out = vec![stream_kind::CONTROL];
        out.extend(
            encode_frame(
                &Control::Hello(self.inner.hello.clone()),
                self.inner.cfg.max_frame,
            )
            .map_err(|e| DialError::Refused(e.to_string()))?,
        );
        send.write_all(&out)
            .await
            .map_err(|e| DialError::Connect(e.to_string()))?;
        match read_one_control(&mut recv, self.inner.cfg.max_frame).await? {
            Control::HelloAck(h) => {
                check_hello(&self.inner.cluster, &self.inner.me, certified, &h)
                    .map_err(|e| DialError::Refused(e.to_string()))?;
                Ok((h, (send, recv)))
            }
            Control::Refuse { reason } if reason == Refusal::Duplicate.to_string() => {
                Err(DialError::Duplicate)
            }
            Control::Refuse { reason } => Err(DialError::Refused(reason)),
            other => Err(DialError::Refused(format!(
                "expected HelloAck, got {other:?}"
            ))),
        }
    }

    async fn accept(&self, incoming: quinn::Incoming) -> Result<(), DialError> {
        let timeout = self.inner.cfg.dial_timeout;
        let conn = tokio::time::timeout(timeout, incoming)
            .await
            .map_err(|_| DialError::Connect("handshake timed out".into()))?
            .map_err(|e| DialError::Connect(e.to_string()))?;
        let certified = self.certified_name(&conn).map_err(DialError::Identity)?;
        // Released if this accept reserved the peer and then failed, timed out or was dropped
        // before installing the connection — otherwise a stale reservation would block the
        // pair for good.
        let mut reservation = Reservation {
            mesh: self,
            name: certified.clone(),
            armed: false,
        };
        let step = async {
            let (mut send, mut recv) = conn
                .accept_bi()
                .await
                .map_err(|e| DialError::Connect(e.to_string()))?;
            let mut kind = [0u8; 1];
            recv.read_exact(&mut kind)
                .await
                .map_err(|e| DialError::Connect(e.to_string()))?;
            if kind[0] != stream_kind::CONTROL {
                return Err(DialError::Refused(
                    "first stream is not the control stream".into(),
                ));
            }
            let hello = match read_one_control(&mut recv, self.inner.cfg.max_frame).await? {
                Control::Hello(h) => h,
                other => return Err(DialError::Refused(format!("expected Hello, got {other:?}"))),
            };
            let refuse = |why: String| Control::Refuse { reason: why };
            if let Err(r) = check_hello(&self.inner.cluster, &self.inner.me, &certified, &hello) {
                let _ = write_control(&mut send, &refuse(r.to_string()), self.inner.cfg.max_frame)
                    .await;
                return Err(DialError::Refused(r.to_string()));
            }
            // Decide and reserve atomically, so two inbound connections cannot both win.
            let decision = {
                let mut peers = lock(&self.inner.peers);
                let existing = match peers.get(&certified) {
                    None => Existing::None,
                    Some(Slot::Dialing) => Existing::Dialing,
                    Some(Slot::Up(l)) => Existing::Up {
                        incarnation: l.info().incarnation,
                    },
                };
                let d = decide_accepted(
                    self.inner.my_id.get(),
                    hello.node_id,
                    hello.incarnation,
                    existing,
                );
                if matches!(d, Decision::Keep | Decision::Replace)
                    && !matches!(existing, Existing::Up { .. })
                {
                    peers.insert(certified.clone(), Slot::Dialing);
                    reservation.armed = true;
                }
                d
            };
            match decision {
                Decision::Refuse(why) => {
                    let r = match why {
                        RefuseWhy::Duplicate => Refusal::Duplicate,
                        RefuseWhy::Stale => Refusal::Stale {
                            theirs: hello.incarnation,
                            current: 0,
                        },
                    };
                    let _ =
                        write_control(&mut send, &refuse(r.to_string()), self.inner.cfg.max_frame)
                            .await;
                    Err(DialError::Duplicate)
                }
                Decision::Keep | Decision::Replace => {
                    write_control(
                        &mut send,
                        &Control::HelloAck(self.inner.hello.clone()),
                        self.inner.cfg.max_frame,
                    )
                    .await
                    .map_err(|e| DialError::Connect(e.to_string()))?;
                    Ok((hello, (send, recv)))
                }
            }
        };
        let outcome = tokio::time::timeout(timeout, step).await;
        match outcome {
            Ok(Ok((hello, control))) => {
                reservation.armed = false;
                self.install(conn, &certified, &hello, control, true);
                Ok(())
            }
            Ok(Err(e)) => {
                // Give the Refuse frame a moment to leave before closing.
                let conn2 = conn.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    conn2.close(close_code::REFUSED.into(), b"refused");
                });
                if !matches!(e, DialError::Duplicate) {
                    tracing::warn!(peer = %certified, error = %e, "refused an inbound connection");
                }
                Err(e)
            }
            Err(_) => {
                conn.close(close_code::REFUSED.into(), b"handshake timed out");
                Err(DialError::Refused("Hello not received in time".into()))
            }
        }
    }

    fn certified_name(&self, conn: &quinn::Connection) -> Result<NodeName, String> {
        let certs = conn
            .peer_identity()
            .and_then(|any| {
                any.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                    .ok()
            })
            .ok_or_else(|| "peer presented no certificate".to_owned())?;
        let leaf = certs
            .first()
            .ok_or_else(|| "empty certificate chain".to_owned())?;
        node_name_of(&self.inner.cluster, leaf.as_ref()).map_err(|e| e.to_string())
    }

    fn release_dialing(&self, name: &NodeName) {
        let mut peers = lock(&self.inner.peers);
        if matches!(peers.get(name), Some(Slot::Dialing)) {
            peers.remove(name);
        }
    }

    /// Puts an established connection in the table and starts its tasks.
    fn install(
        &self,
        conn: quinn::Connection,
        name: &NodeName,
        hello: &Hello,
        control: (quinn::SendStream, quinn::RecvStream),
        _accepted: bool,
    ) -> Arc<PeerLink> {
        let info = PeerInfo {
            name: name.clone(),
            id: node_id(&self.inner.cluster, name),
            incarnation: hello.incarnation,
            mesh_addr: hello.mesh_addr,
            lanes: hello.lanes,
        };
        let cfg = &self.inner.cfg;
        let serial = self.inner.serials.fetch_add(1, Ordering::Relaxed);
        let link = Arc::new(PeerLink::new(
            info,
            conn,
            cfg.lanes,
            cfg.lane_buffer,
            cfg.max_frame,
            serial,
        ));
        let Some(handler) = self.inner.handler.get().cloned() else {
            // Not started: never table a link nobody reads (it would look up forever).
            self.release_dialing(name);
            link.close(close_code::NORMAL, "node not started");
            return link;
        };
        let replaced = {
            let mut peers = lock(&self.inner.peers);
            match peers.insert(name.clone(), Slot::Up(link.clone())) {
                Some(Slot::Up(old)) => Some(old),
                _ => None,
            }
        };
        if let Some(old) = replaced {
            old.close(close_code::NORMAL, "replaced by a newer connection");
            handler.peer_down(&old, "replaced by a newer incarnation");
        }
        tracing::debug!(me = %self.inner.me, peer = %name, incarnation = hello.incarnation, "peer connected");
        handler.peer_up(&link);
        link::start(self, link.clone(), handler, control);
        link
    }

    /// Called by a link's watcher when its connection ended.
    fn link_closed(&self, link: &Arc<PeerLink>, reason: &str) {
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
        if !current {
            return; // replaced: peer_down was already reported
        }
        if let Some(h) = self.inner.handler.get() {
            h.peer_down(link, reason);
        }
        if !self.inner.closing.load(Ordering::Relaxed)
            && lock(&self.inner.wanted).contains_key(&link.info().name)
        {
            self.ensure_redial(link.info().name.clone());
        }
    }

    /// Closes every connection and the endpoint, waiting briefly for close frames to leave.
    pub async fn shutdown(&self, reason: &str) {
        self.inner.closing.store(true, Ordering::Relaxed);
        lock(&self.inner.wanted).clear();
        for link in self.links() {
            link.close(close_code::NORMAL, reason);
        }
        self.inner
            .endpoint
            .close(close_code::NORMAL.into(), reason.as_bytes());
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.endpoint.wait_idle()).await;
    }

    /// Falls silent at once, as a crashed process does: nothing more goes out or comes in,
    /// so peers learn of it only by silence (SWIM, idle timeout). The links are closed
    /// locally (their close frames never leave).
    pub fn crash(&self) {
        self.inner.silenced.store(true, Ordering::Relaxed);
        self.inner.closing.store(true, Ordering::Relaxed);
        lock(&self.inner.wanted).clear();
        self.inner.endpoint.set_server_config(None);
        for link in self.links() {
            link.close(close_code::NORMAL, "crashed");
        }
    }

    /// The live link to the node listening at `addr`, if any.
    pub fn link_at(&self, addr: SocketAddr) -> Option<Arc<PeerLink>> {
        self.links()
            .into_iter()
            .find(|l| l.info().mesh_addr == addr)
    }
}

/// A peer slot reserved by an accept in progress (see [`Mesh::accept`]).
struct Reservation<'a> {
    mesh: &'a Mesh,
    name: NodeName,
    armed: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.mesh.release_dialing(&self.name);
        }
    }
}

async fn read_one_control(
    recv: &mut quinn::RecvStream,
    max_frame: usize,
) -> Result<Control, DialError> {
    let mut dec = FrameDecoder::<Control>::new(max_frame);
    let mut buf = [0u8; 4096];
    loop {
        if let Some(frame) = dec
            .next_frame()
            .map_err(|e| DialError::Refused(e.to_string()))?
        {
            return Ok(frame);
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => dec.push(&buf[..n]),
            Ok(None) => {
                return Err(DialError::Refused(
                    "stream ended before the handshake completed".into(),
                ));
            }
            Err(e) => return Err(DialError::Connect(e.to_string())),
        }
    }
}

async fn write_control(
    send: &mut quinn::SendStream,
    frame: &Control,
    max_frame: usize,
) -> Result<(), DialError> {
    let bytes = encode_frame(frame, max_frame).map_err(|e| DialError::Refused(e.to_string()))?;
    send.write_all(&bytes)
        .await
        .map_err(|e| DialError::Connect(e.to_string()))
}
