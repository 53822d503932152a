//! The seam between membership and the network: [`Transport`] (outbound) and [`Inbound`]
//! (what the network hands to membership).
//!
//! Membership needs two things from a network, and gives it two:
//!
//! | direction | what | semantics |
//! |---|---|---|
//! | out | [`Transport::send`] a SWIM packet to a member | fire and forget, never waits, may drop (SWIM tolerates loss) |
//! | out | [`Transport::send_once`] a SWIM packet to a non-member | the same, and keeps nothing (no connection) for it |
//! | out | [`Transport::sync`] a push-pull request | reliable request/response (the mesh: a QUIC bi-stream) |
//! | in | [`Inbound::deliver`] a packet from a verified peer | never waits; dropped if membership is overloaded |
//! | in | [`Inbound::sync`] a peer's push-pull request | answered with our state |
//!
//! The network authenticates peers; membership checks that what a peer *says* inside a packet
//! matches who the network *verified* it to be. So every inbound call names the sender by the
//! [`NodeId`] of its verified identity (for the mesh: derived from the node name in the peer's
//! certificate, after the Hello).
//!
//! The trait is object-safe (`Arc<dyn Transport>`): the mesh implements it over QUIC
//! datagrams and streams, [`testing::MemNetwork`](super::testing::MemNetwork) in memory.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use understudy_actor::NodeId;

use crate::identity::{Incarnation, NodeName};

/// Where a packet or a sync goes.
///
/// ```
/// use understudy_cluster::membership::Peer;
/// let seed = Peer::Seed("127.0.0.1:7000".parse()?);
/// assert_eq!(seed.addr().port(), 7000);
/// assert!(seed.node_id().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A seed known only by its address: dial it and accept any node of the cluster (the
    /// cluster-wide certificate name).
    Seed(SocketAddr),
    /// A known node: dial `addr` and expect the certificate of `name`.
    Node {
        /// The node's id.
        node_id: NodeId,
        /// The node's name (its certificate says `<name>.node.<cluster>`).
        name: NodeName,
        /// Its mesh address.
        addr: SocketAddr,
        /// The run of the node this packet is meant for. A connection to an older run is
        /// stale.
        incarnation: Incarnation,
    },
}

impl Peer {
    /// The address to dial.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Peer::Seed(addr) | Peer::Node { addr, .. } => *addr,
        }
    }

    /// The node's id, unless this is a seed not met yet.
    pub fn node_id(&self) -> Option<NodeId> {
        match self {
            Peer::Seed(_) => None,
            Peer::Node { node_id, .. } => Some(*node_id),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Seed(addr) => write!(f, "seed {addr}"),
            Peer::Node { name, addr, .. } => write!(f, "{name} ({addr})"),
        }
    }
}

/// A SWIM packet to hand to the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The destination.
    pub to: Peer,
    /// The packet (at most `max_packet_size` bytes).
    pub packet: Bytes,
    /// Whether `to` is a live member in this node's view (that run of it): then hand it to
    /// [`Transport::send`], else to [`Transport::send_once`]. SWIM also writes to nodes it
    /// considers gone (announces, so that the two sides of a healed partition find each
    /// other), to seeds, and to nodes it has not reported joined yet.
    pub to_member: bool,
}

/// A push-pull sync to run: send `payload` to `to`, and give the response (or the failure)
/// back to `Swim::handle_sync_response` with the same `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// Identifies the sync in the response.
    pub id: u64,
    /// Who to sync with.
    pub to: Peer,
    /// Our membership state.
    pub payload: Bytes,
}

/// Why a push-pull sync failed.
///
/// ```
/// use understudy_cluster::membership::SyncError;
/// assert_eq!(SyncError::Timeout.to_string(), "timed out");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The peer could not be reached (no route, dial failed, partitioned).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No response in time.
    #[error("timed out")]
    Timeout,
    /// The peer's membership refused the request (malformed, or it has left).
    #[error("refused: {0}")]
    Refused(String),
    /// The local membership task is gone.
    #[error("membership stopped")]
    Stopped,
}

/// The future of a [`Transport::sync`].
pub type SyncFuture = Pin<Box<dyn Future<Output = Result<Bytes, SyncError>> + Send + 'static>>;

/// How membership talks to the network.
///
/// Implementations must not block in [`send`](Transport::send): it is called from the
/// membership task, whose timing *is* the failure detector. Hand the packet to a queue or a
/// socket and return; drop it if it cannot go now (no connection yet, full buffer) — SWIM
/// retries by design. [`sync`](Transport::sync) returns a future that membership runs beside
/// its loop, under its own timeout.
///
/// ```
/// use bytes::Bytes;
/// use understudy_cluster::membership::{Peer, SyncError, SyncFuture, Transport};
///
/// /// A network that loses everything.
/// struct Void;
/// impl Transport for Void {
///     fn send(&self, _to: &Peer, _packet: Bytes) {}
///     fn sync(&self, to: &Peer, _request: Bytes) -> SyncFuture {
///         let to = to.to_string();
///         Box::pin(async move { Err(SyncError::Unreachable(to)) })
///     }
/// }
/// let _transport: std::sync::Arc<dyn Transport> = std::sync::Arc::new(Void);
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Sends a SWIM packet to `to`, a live member, without waiting; may drop it.
    fn send(&self, to: &Peer, packet: Bytes);

    /// Sends a SWIM packet to `to`, which is *not* a live member (a node that left or failed,
    /// a seed, a node not reported joined yet; see [`Transmit::to_member`]), without waiting;
    /// may drop it. Unlike [`send`](Transport::send) it must leave nothing behind for `to`:
    /// a transport that keeps connections to members (the mesh redials them) would otherwise
    /// keep one to every node that ever left. By default, `send`.
    fn send_once(&self, to: &Peer, packet: Bytes) {
        self.send(to, packet);
    }

    /// Sends a push-pull sync request to `to` and resolves to the peer's response (the bytes
    /// its [`Inbound::sync`] returned).
    fn sync(&self, to: &Peer, request: Bytes) -> SyncFuture;
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send(&self, to: &Peer, packet: Bytes) {
        (**self).send(to, packet);
    }

    fn send_once(&self, to: &Peer, packet: Bytes) {
        (**self).send_once(to, packet);
    }

    fn sync(&self, to: &Peer, request: Bytes) -> SyncFuture {
        (**self).sync(to, request)
    }
}

/// Metric: inbound SWIM packets dropped because the membership task's queue was full.
pub const INBOUND_DROPPED_METRIC: &str = "understudy_membership_inbound_dropped_total";

/// What the network delivers to the membership task.
pub(crate) enum InboundMessage {
    Packet {
        from: NodeId,
        packet: Bytes,
    },
    Sync {
        from: NodeId,
        request: Bytes,
        reply: oneshot::Sender<Result<Bytes, SyncError>>,
    },
}

/// The network's handle into one node's membership: deliver packets and sync requests from
/// verified peers. Cheap to clone.
///
/// Create it with [`inbound`] before the transport (the transport needs it), then pass the
/// [`InboundReceiver`] to [`Membership::start`](super::Membership::start).
///
/// ```
/// use bytes::Bytes;
/// use understudy_cluster::membership::inbound;
/// use understudy_cluster::NodeId;
///
/// let (inbound, _receiver) = inbound(16);
/// let peer = NodeId::new(7).expect("non-zero");
/// assert!(inbound.deliver(peer, Bytes::from_static(b"swim packet")));
/// ```
#[derive(Clone, Debug)]
pub struct Inbound {
    tx: mpsc::Sender<InboundMessage>,
    dropped: Arc<AtomicU64>,
}

impl fmt::Debug for InboundMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InboundMessage::Packet { from, packet } => {
                write!(f, "Packet({from}, {} bytes)", packet.len())
            }
            InboundMessage::Sync { from, request, .. } => {
                write!(f, "Sync({from}, {} bytes)", request.len())
            }
        }
    }
}

/// The membership task's end of [`Inbound`].
#[derive(Debug)]
pub struct InboundReceiver {
    pub(crate) rx: mpsc::Receiver<InboundMessage>,
    pub(crate) dropped: Arc<AtomicU64>,
}

/// A channel from the network to membership, holding up to `capacity` packets (use
/// [`MembershipConfig::inbound_queue`](super::MembershipConfig::inbound_queue)).
pub fn inbound(capacity: usize) -> (Inbound, InboundReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        Inbound {
            tx,
            dropped: dropped.clone(),
        },
        InboundReceiver { rx, dropped },
    )
}

impl Inbound {
    /// Delivers a SWIM packet that arrived from the verified peer `from`. Never waits: if the
    /// membership task is overloaded or gone, the packet is dropped (counted) and `false`
    /// returned.
    pub fn deliver(&self, from: NodeId, packet: Bytes) -> bool {
        let ok = self
            .tx
            .try_send(InboundMessage::Packet { from, packet })
            .is_ok();
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(INBOUND_DROPPED_METRIC).increment(1);
        }
        ok
    }

    /// Answers the verified peer `from`'s push-pull sync `request` with our state.
    pub async fn sync(&self, from: NodeId, request: Bytes) -> Result<Bytes, SyncError> {
        let (reply, response) = oneshot::channel();
        self.tx
            .send(InboundMessage::Sync {
                from,
                request,
                reply,
            })
            .await
            .map_err(|_| SyncError::Stopped)?;
        response.await.map_err(|_| SyncError::Stopped)?
    }

    /// Whether the membership task is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
