//! What registry nodes say to each other: Raft's RPCs, formation, forwarded writes and reads.
//!
//! Every message is postcard, decoded fallibly: a peer's bad bytes are dropped and counted
//! in [`REJECTED_METRIC`], and the connection stays up. Frames are capped by the mesh
//! (`mesh.max_frame`), so nothing here can make a node allocate more than one frame's worth.

use serde::{Deserialize, Serialize};
use understudy_actor::Tag;

use crate::core::command::{Outcome, Owner, Request};
use crate::core::placement::{Placed, Spec};
use crate::core::table::Change;
use crate::raft::network::RaftRequest;

/// Counts the registry messages from peers that did not decode.
pub const REJECTED_METRIC: &str = "understudy_registry_rejected_messages_total";

/// One message between registry nodes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerMessage {
    /// A Raft RPC (request) for the Raft node `to` (the receiver refuses it if it runs
    /// another: a node that lost its disk must not answer for its old id, or a quorum could
    /// count it twice).
    Raft {
        /// The Raft id the sender means.
        to: u64,
        /// The RPC.
        request: RaftRequest,
    },
    /// Who this node is to the registry (notice, on every new connection and on change).
    Hello(Hello),
    /// A node proposes the first voter set (request; answered with [`Grant`]).
    Claim(Claim),
    /// A write to pass on to the leader (request; answered with [`Forwarded`]).
    Forward(Request),
    /// The leader's read index for a linearizable read (request; answered with
    /// [`ReadIndex`]).
    ReadIndex,
    /// A client asks a member for its names from `from` on (request; answered with
    /// [`Subscribed`]); the member then sends [`Feed`] notices.
    Subscribe {
        /// The revision the client has.
        from: u64,
    },
    /// A client no longer wants the feed (notice).
    Unsubscribe,
    /// A member's names, for a client (notice).
    Feed(Feed),
    /// Answer once this node's copy has reached `revision`, waiting at most `within_ms`
    /// (request; answered with a `bool`: reached or not).
    Ack {
        /// The revision.
        revision: u64,
        /// How long the sender will wait.
        within_ms: u64,
    },
    /// The Eventual scope's exchange (notice).
    Eventual(crate::eventual::wire::EventualMessage),
    /// Start the placed name's actor, assigned to this node under `epoch`, and bind it
    /// (request; answered with [`Started`]).
    Start {
        /// The name.
        name: String,
        /// The assignment.
        epoch: u64,
        /// What to start.
        spec: Spec,
    },
}

/// The answer to a `Start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Started {
    /// The actor runs and holds the name.
    Bound(Owner),
    /// The assignment is no longer in force (another start holds the name, or it moved).
    Stale,
    /// The actor could not be started here: why.
    Failed(String),
}

/// The answer to a `Subscribe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Subscribed {
    /// The feed starts.
    Accepted,
    /// This node is not a member, or serves as many clients as it may.
    Refused,
}

/// What a member sends a subscribed client, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Feed {
    /// Part of the whole table at `revision` (sent when the client is too far behind for
    /// changes); the client replaces its copy once the `last` part arrives.
    Image {
        /// The revision of the table.
        revision: u64,
        /// Some of its names, in order.
        names: Vec<(String, Owner)>,
        /// Some of its placement records.
        placed: Vec<(String, Placed)>,
        /// The last part.
        last: bool,
    },
    /// The changes after revision `from` up to `to` (none: a heartbeat that the client is
    /// current up to `to`).
    Changes {
        /// The revision the client must be at.
        from: u64,
        /// The revision after these changes.
        to: u64,
        /// The changes, in order.
        changes: Vec<Change>,
        /// The placement records these changes touched, as they are at `to` (`None`: gone).
        placed: Vec<(String, Option<Placed>)>,
    },
}

impl PeerMessage {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("registry messages always encode")
    }

    /// Decodes a peer's bytes; any trailing byte is an error too.
    pub(crate) fn decode(bytes: &[u8]) -> Result<PeerMessage, postcard::Error> {
        let (message, rest) = postcard::take_from_bytes(bytes)?;
        if rest.is_empty() {
            Ok(message)
        } else {
            Err(postcard::Error::DeserializeBadEncoding)
        }
    }
}

/// A node's registry state, as its peers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// Its Raft id (fresh for each store; 0 if it runs no Raft).
    pub(crate) raft_id: u64,
    /// It belongs to a formed registry (initialised, or added by one).
    pub(crate) formed: bool,
    /// It may take part in forming one (`bootstrap_expect` above 0).
    pub(crate) forming: bool,
    /// The leader it follows, by node name, if it knows one.
    pub(crate) leader: Option<String>,
    /// The actor kinds it can start, with the message type each takes.
    pub(crate) kinds: Vec<(String, Tag)>,
}

/// A proposal of the first voter set: `(raft id, node name)` for each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claim {
    /// The Raft id of the proposing node (one of the voters).
    pub(crate) claimant: u64,
    /// The voters.
    pub(crate) voters: Vec<(u64, String)>,
}

/// The answer to a [`Claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Grant {
    /// This node takes part, and grants no other claim.
    Granted,
    /// This node granted another claim, or belongs to a formed registry already.
    Refused,
}

/// The answer to a forwarded write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Forwarded {
    /// Committed and applied at this revision, with this outcome.
    Done { outcome: Outcome, revision: u64 },
    /// The receiver is not the leader; try this node (if it knows one).
    NotLeader { leader: Option<String> },
    /// The receiver's Raft failed (its store).
    Failed(String),
}

/// The answer to a read-index request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ReadIndex {
    /// Reads at or after this revision are linearizable.
    At(u64),
    /// The receiver is not the leader (or lost its lease); try this node.
    NotLeader { leader: Option<String> },
}

/// Encodes an answer (they always encode).
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("registry answers always encode")
}

/// Decodes an answer.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}
