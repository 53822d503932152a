//! What pg instances say to each other, on the `pg` extension channel.
//!
//! One notice carries one [`Envelope`]: the scope and a [`PeerMessage`] for it. Bytes from a
//! peer are untrusted: decoding is fallible, bounded by the frame size the mesh already
//! enforces, and a bad notice is dropped with a log line and a metric, nothing else.

use serde::{Deserialize, Serialize};
use understudy_actor::Tag;

/// Metric counting pg notices from peers that could not be decoded.
pub const REJECTED_METRIC: &str = "understudy_pg_rejected_total";

/// A message between the instances of one scope on two nodes (see the core's module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// The sender's whole local membership: group → (pid, type tag, join count).
    Sync {
        /// The sender's version.
        version: u64,
        /// Its groups.
        groups: Vec<(String, Vec<SyncedMember>)>,
        /// Whether the receiver should answer with its own `Sync`.
        reply: bool,
    },
    /// Local actors of the sender joined (one entry per join).
    Join {
        /// The sender's version after the change.
        version: u64,
        /// The group.
        group: String,
        /// (pid, type tag) per join.
        members: Vec<(u64, Tag)>,
    },
    /// Local actors of the sender left (one pid per leave).
    Leave {
        /// The sender's version after the change.
        version: u64,
        /// The group.
        group: String,
        /// One pid per leave.
        members: Vec<u64>,
    },
    /// Anti-entropy: the sender's version and membership hash.
    Digest {
        /// The sender's version.
        version: u64,
        /// Its membership hash.
        hash: u64,
    },
}

/// A member in a `Sync`: (pid, type tag, join count).
pub type SyncedMember = (u64, Tag, u32);

/// One notice: a message for a scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The scope.
    pub scope: String,
    /// The message.
    pub message: PeerMessage,
}

/// Why a notice could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed pg notice: {0}")]
pub struct WireError(String);

impl Envelope {
    /// Encodes the notice.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data (strings, integers, vectors): postcard cannot fail on it.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Decodes a notice from a peer; trailing bytes are an error too.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, WireError> {
        let (envelope, rest) =
            postcard::take_from_bytes(bytes).map_err(|e| WireError(e.to_string()))?;
        if !rest.is_empty() {
            return Err(WireError(format!("{} trailing bytes", rest.len())));
        }
        Ok(envelope)
    }
}
