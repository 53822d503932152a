//! The frames. Field order is the wire format: append new variants at the end only, and
//! bump [`PROTOCOL_VERSION`] for anything else.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The mesh protocol version a node speaks; a Hello with another is refused.
pub const PROTOCOL_VERSION: u16 = 1;

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
    /// How many actor lanes the sender writes (a DOWN is sent on every lane and acted on when
    /// all copies arrived, so it follows everything sent before it on any lane).
    pub lanes: u16,
}

/// Node-level traffic on the control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Control {
    /// The dialer's introduction.
    Hello(Hello),
    /// The acceptor's answer; the connection is usable once both sides have seen one.
    HelloAck(Hello),
    /// The acceptor refuses the connection (wrong cluster, version, identity, duplicate).
    Refuse {
        /// Why, for the dialer's log.
        reason: String,
    },
    /// The sender is leaving the cluster on purpose (peers report Left, not Failed).
    Leaving,
    /// Traffic of an extension service (registry, pg, locks, user services).
    Extension {
        /// The service's name.
        service: String,
        /// What it says.
        body: ExtensionBody,
    },
}

/// An extension's message: a one-way notice, a request, or the response to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExtensionBody {
    /// One-way.
    Notice(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Expects a [`ExtensionBody::Response`] with the same id.
    Request {
        /// Correlation id, unique per sender connection.
        id: u64,
        /// The request.
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// The answer to a request.
    Response {
        /// The request's id.
        id: u64,
        /// The answer, or why there is none.
        result: Result<serde_bytes::ByteBuf, String>,
    },
}

/// Why an actor exited, as carried by DOWN and EXIT signals. `None` is a normal exit.
pub type ExitReason = Option<String>;

/// How a remote ask ended on the owning node.
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

/// Actor-level traffic on the lanes. Pids are the *local* pids of the node that owns the
/// actor in question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Signal {
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
        /// Correlation id, unique per sender node and connection.
        call: u64,
        /// How long the asker waits (the receiver may drop the work after that).
        timeout_ms: u32,
        /// ractor's variant hint (empty for understudy messages).
        variant: String,
        /// The encoded message (tag ++ postcard).
        #[serde(with = "serde_bytes")]
        args: Vec<u8>,
    },
    /// The answer to an [`Signal::Ask`].
    Reply {
        /// The ask's correlation id.
        call: u64,
        /// The outcome.
        outcome: ReplyOutcome,
    },
    /// The sender's actor `watcher` wants a DOWN when the receiver's actor `target` exits.
    Monitor {
        /// Sender-side pid of the watcher.
        watcher: u64,
        /// Receiver-side pid of the watched actor.
        target: u64,
    },
    /// Cancels a [`Signal::Monitor`].
    Demonitor {
        /// Sender-side pid of the watcher.
        watcher: u64,
        /// Receiver-side pid of the watched actor.
        target: u64,
    },
    /// The sender's actor `target` exited (or never existed: reason `noproc`); the receiver's
    /// `watcher` asked to know.
    Down {
        /// Receiver-side pid of the watcher.
        watcher: u64,
        /// Sender-side pid of the actor that exited.
        target: u64,
        /// Its exit reason.
        reason: ExitReason,
    },
    /// Links the sender's actor `from` with the receiver's actor `to`: each learns of the
    /// other's exit as a supervision event.
    Link {
        /// Sender-side pid.
        from: u64,
        /// Receiver-side pid.
        to: u64,
    },
    /// Removes a [`Signal::Link`].
    Unlink {
        /// Sender-side pid.
        from: u64,
        /// Receiver-side pid.
        to: u64,
    },
    /// The sender's actor `from` exited; the receiver's actor `to` is linked to it.
    Exit {
        /// Sender-side pid of the actor that exited.
        from: u64,
        /// Receiver-side pid of the linked actor.
        to: u64,
        /// The exit reason.
        reason: ExitReason,
    },
}
