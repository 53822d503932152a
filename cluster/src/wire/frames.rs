//! The frames. Field order is the wire format: append new variants at the end only, and
//! bump [`PROTOCOL_VERSION`] for anything else.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The mesh protocol version a node speaks; a Hello with another is refused.
pub const PROTOCOL_VERSION: u16 = 2;

/// Who a node says it is. Sent first on a new connection (as [`Control::Hello`] by the
/// dialer, answered by [`Control::HelloAck`]); nothing else is accepted before it, and it must
/// match the peer's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// The cluster the sender belongs to.
    pub cluster: String,
    /// The sender's node name (checked against its certificate).
    pub name: String,
    /// The sender's node id.
    pub node_id: u64,
    /// The sender's incarnation (grows on every restart).
    pub incarnation: u64,
    /// Where the sender's mesh endpoint listens.
    pub mesh_addr: SocketAddr,
    /// How many data lanes the sender can write and read; a connection uses the smaller of
    /// the two sides' counts in each direction.
    pub lanes: u16,
    /// The sender's lane buffer: how much it may queue per lane (see `remote`'s barriers).
    pub lane_buffer: u64,
    /// The largest frame the sender writes.
    pub max_frame: u64,
}

/// Why a Hello was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Another protocol version.
    #[error("protocol version {theirs} is not {ours}; upgrade the older node")]
    Version {
        /// Theirs.
        theirs: u16,
        /// Ours.
        ours: u16,
    },
    /// Another cluster.
    #[error("node is of cluster {theirs:?}, this is {ours:?}")]
    Cluster {
        /// Theirs.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// The Hello names another node than the certificate.
    #[error("Hello claims to be {claimed:?} but the certificate is {certified:?}")]
    NameMismatch {
        /// Name in the Hello.
        claimed: String,
        /// Name in the certificate.
        certified: String,
    },
    /// The node id is not the one derived from the name.
    #[error("node id {claimed:016x} does not belong to {name:?}")]
    NodeId {
        /// Claimed id.
        claimed: u64,
        /// Name.
        name: String,
    },
    /// The peer is this node (dialed our own address).
    #[error("connected to itself")]
    Myself,
    /// A lane count outside 1–64.
    #[error("invalid lane count {0}")]
    Lanes(u16),
    /// Buffer sizes outside what any node may be configured with.
    #[error("invalid lane buffer {lane_buffer} or frame size {max_frame}")]
    Buffers {
        /// The declared lane buffer.
        lane_buffer: u64,
        /// The declared largest frame.
        max_frame: u64,
    },
    /// An older incarnation than one already connected.
    #[error("stale incarnation {theirs}: incarnation {current} of that node is connected")]
    Stale {
        /// Theirs.
        theirs: u64,
        /// The connected one.
        current: u64,
    },
    /// A connection to this peer is already up (or wins the tie-break).
    #[error("duplicate connection")]
    Duplicate,
}

/// Node-level traffic on the control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Control {
    /// The dialer's introduction.
    Hello(Hello),
    /// The acceptor's answer; the connection is usable once both sides have seen one.
    HelloAck(Hello),
    /// The acceptor refuses the connection (wrong cluster, version, identity, duplicate).
    Refuse(Refusal),
    /// Traffic of an extension service (registry, pg, locks, user services).
    Extension {
        /// The service's name.
        service: String,
        /// What it says.
        body: ExtensionBody,
    },
}

/// An extension's message: a one-way notice or a request. (The response to a request is a
/// [`Signal::ExtensionResponse`]: it must not wait behind a paused control stream.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExtensionBody {
    /// One-way.
    Notice(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Expects a [`Signal::ExtensionResponse`] with the same id.
    Request {
        /// Correlation id, unique per sender connection.
        id: u64,
        /// The request.
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
}

/// Why an actor exited, as carried by DOWN and EXIT signals. `None` is a normal exit.
pub type ExitReason = Option<String>;

/// How a remote ask ended on the owning node. An ask that is not answered in time gets no
/// reply at all: the asker's own timer decides, so a timed-out ask is always a timeout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReplyOutcome {
    /// The actor answered; the reply's bytes.
    Ok(#[serde(with = "serde_bytes")] Vec<u8>),
    /// No such exported actor (stopped, or never exported).
    UnknownActor,
    /// The message did not decode as the actor's type.
    Rejected(String),
    /// The actor stopped (or dropped the reply) before answering.
    ActorStopped,
}

/// Actor messages on the data lanes. Pids are the *local* pids of the receiving node.
///
/// A message's lane is chosen by its target, so everything one actor receives from one node
/// arrives in send order. The receiver may stop reading a lane while the actors it feeds are
/// backlogged; that is the backpressure that fills the sender's lane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Delivery {
    /// A one-way message to the receiver's actor `to`.
    Tell {
        /// Receiver-side pid.
        to: u64,
        /// ractor's variant hint (empty for understudy messages).
        variant: String,
        /// The encoded message (tag ++ postcard).
        #[serde(with = "serde_bytes")]
        args: Vec<u8>,
    },
    /// A message expecting an answer ([`Signal::Reply`] with the same `call`).
    Ask {
        /// Receiver-side pid.
        to: u64,
        /// Correlation id, unique per sender connection.
        call: u64,
        /// How long the asker waits (the receiver may drop the work after that).
        timeout_ms: u32,
        /// ractor's variant hint (empty for understudy messages).
        variant: String,
        /// The encoded message (tag ++ postcard).
        #[serde(with = "serde_bytes")]
        args: Vec<u8>,
    },
}

/// How many data frames the sender had queued on each of its lanes when it sent a signal
/// that must not overtake them (a DOWN or an exit signal). The receiver acts on the signal
/// only once it has read that many frames from every lane.
pub type Barrier = Vec<u64>;

/// Actor control signals, on the connection's signal stream. Pids are the *local* pids of
/// the node that owns the actor in question.
///
/// The signal stream is never paused by the receiver and never refused by the sender for
/// lack of room: a signal is delivered, or the connection fails (and every watcher hears
/// `noconnection`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Signal {
    /// The answer to a [`Delivery::Ask`].
    Reply {
        /// The ask's correlation id.
        call: u64,
        /// The outcome.
        outcome: ReplyOutcome,
    },
    /// The sender's proxy `watcher` wants a DOWN when the receiver's actor `target` exits.
    Monitor {
        /// Sender-side key of the watching proxy.
        watcher: u64,
        /// Receiver-side pid of the watched actor.
        target: u64,
    },
    /// Cancels a [`Signal::Monitor`].
    Demonitor {
        /// Sender-side key of the watching proxy.
        watcher: u64,
        /// Receiver-side pid of the watched actor.
        target: u64,
    },
    /// The sender's actor `target` exited (or never existed: reason `noproc`); the receiver's
    /// proxy `watcher` asked to know. Acted on after `after` (so after every message the
    /// actor sent before it exited).
    Down {
        /// Receiver-side key of the watching proxy.
        watcher: u64,
        /// Sender-side pid of the actor that exited.
        target: u64,
        /// Its exit reason.
        reason: ExitReason,
        /// The sender's lane counts when it sent this.
        after: Barrier,
    },
    /// Links the sender's actor `from` with the receiver's actor `to`: each learns of the
    /// other's exit as a supervision event.
    Link {
        /// Sender-side pid.
        from: u64,
        /// Receiver-side pid.
        to: u64,
    },
    /// Removes a [`Signal::Link`]: neither side hears of the other's exit any more.
    Unlink {
        /// Sender-side pid.
        from: u64,
        /// Receiver-side pid.
        to: u64,
    },
    /// An exit signal from the sender's actor `from` to the receiver's actor `to` (Erlang's
    /// `exit(To, Reason)`): `kill` kills it, `normal` is ignored, anything else stops it with
    /// that reason. Acted on after `after`.
    Exit {
        /// Sender-side pid of the actor that sends the signal.
        from: u64,
        /// Receiver-side pid of the target.
        to: u64,
        /// The exit reason.
        reason: ExitReason,
        /// The sender's lane counts when it sent this.
        after: Barrier,
    },
    /// The answer to an extension's request ([`ExtensionBody::Request`]).
    ExtensionResponse {
        /// The service's name.
        service: String,
        /// The request's id.
        id: u64,
        /// The answer, or why there is none.
        result: Result<serde_bytes::ByteBuf, String>,
    },
    /// The sender is leaving the cluster on purpose: record this run of it as left (peers
    /// report Left, not Failed) even if its leave datagrams are lost.
    Leaving,
}
