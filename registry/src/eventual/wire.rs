//! What the Eventual scope's instances say to each other, and the claims they carry.
//!
//! A node only ever speaks for itself: an entry on the wire names a pid, a message type and
//! a stamp, and the receiver completes it with the sender's node id and run (the
//! incarnation in the message's [`Version`]). So no message can express a claim for an actor
//! of another node, or of another run, and there is nothing of the kind to check.
//!
//! Bytes from a peer are untrusted: decoding is fallible, bounded by the frame size the mesh
//! enforces, and the core checks a decoded message whole against its limits before it
//! applies any of it.

use serde::{Deserialize, Serialize};
use understudy_actor::{ActorAddr, NodeId, Tag};

use crate::core::command::Owner;

/// Orders the claims on one name across nodes: the lowest stamp wins. First by the
/// registering node's clock (ms since the Unix epoch), then by node id, then by that node's
/// change counter when it registered. One node holds at most one claim per name, so two
/// claims on one name never tie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Stamp {
    /// The registering node's clock when it registered (ms since the Unix epoch).
    pub(crate) at_ms: u64,
    /// The registering node.
    pub(crate) node: NodeId,
    /// The registering node's change counter after the registration (unique in its run).
    pub(crate) seq: u64,
}

/// One node's claim on a name: who holds it there, and the stamp that ranks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Claim {
    /// The actor that registered the name.
    pub(crate) owner: Owner,
    /// Its rank among the claims on the name.
    pub(crate) stamp: Stamp,
}

impl Claim {
    /// What the owner's node sends of it (the node and run are the message's).
    pub(crate) fn to_wire(self) -> WireClaim {
        WireClaim {
            pid: self.owner.addr.pid,
            tag: self.owner.tag,
            at_ms: self.stamp.at_ms,
            seq: self.stamp.seq,
        }
    }

    /// A key that orders claims totally: the stamp decides (it never ties on one name), the
    /// owner only makes the order total for any two claims at all.
    fn key(&self) -> (Stamp, ActorAddr, Tag, u64) {
        (
            self.stamp,
            self.owner.addr,
            self.owner.tag,
            self.owner.incarnation,
        )
    }
}

impl Ord for Claim {
    /// The winner of a name sorts first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Claim {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A claim as its node sends it: the node and its run come from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireClaim {
    /// The actor's pid on the sender.
    pub(crate) pid: u64,
    /// Its message type.
    pub(crate) tag: Tag,
    /// The sender's clock when it registered (ms since the Unix epoch).
    pub(crate) at_ms: u64,
    /// The sender's change counter after the registration.
    pub(crate) seq: u64,
}

impl WireClaim {
    /// The claim of the sender `node` in its run `incarnation`.
    pub(crate) fn claim(self, node: NodeId, incarnation: u64) -> Claim {
        Claim {
            owner: Owner {
                addr: ActorAddr {
                    node,
                    pid: self.pid,
                },
                tag: self.tag,
                incarnation,
            },
            stamp: Stamp {
                at_ms: self.at_ms,
                node,
                seq: self.seq,
            },
        }
    }
}

/// Where a node's entries stand: its run, and its change counter in that run. A later run
/// (a restarted node) orders after every version of an earlier one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub(crate) struct Version {
    /// The node's incarnation (run).
    pub(crate) incarnation: u64,
    /// Bumped by each change of the node's entries in this run.
    pub(crate) counter: u64,
}

impl Version {
    /// The version right after this one in the same run.
    pub(crate) fn next(self) -> Version {
        Version {
            incarnation: self.incarnation,
            counter: self.counter.saturating_add(1),
        }
    }
}

/// A message between the Eventual scope's instances on two nodes (the core's module docs
/// give the exchange).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EventualMessage {
    /// The sender's whole set of entries at `version`; with `reply` set, the receiver
    /// answers with its own.
    Sync {
        /// The sender's version.
        version: Version,
        /// Its entries: name → claim, each name once.
        entries: Vec<(String, WireClaim)>,
        /// Whether the receiver should answer with its own `Sync`.
        reply: bool,
    },
    /// The sender took `name` for one of its actors.
    Put {
        /// The sender's version after the change.
        version: Version,
        /// The name.
        name: String,
        /// The claim.
        claim: WireClaim,
    },
    /// The sender gave `name` up (unregistered, its actor stopped, or its claim lost).
    Remove {
        /// The sender's version after the change.
        version: Version,
        /// The name.
        name: String,
    },
    /// Anti-entropy: the sender's version and the hash of its entries.
    Digest {
        /// The sender's version.
        version: Version,
        /// The hash of its entries ([`entries_hash`]).
        hash: u64,
    },
}

impl EventualMessage {
    /// Encodes the message.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "the registry's peer message carries it")
    )]
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Plain data (strings, integers, vectors): postcard cannot fail on it.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a peer's bytes; trailing bytes are an error too.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "the registry's peer message carries it")
    )]
    pub(crate) fn decode(bytes: &[u8]) -> Result<EventualMessage, postcard::Error> {
        let (message, rest) = postcard::take_from_bytes(bytes)?;
        if rest.is_empty() {
            Ok(message)
        } else {
            Err(postcard::Error::DeserializeBadEncoding)
        }
    }
}

/// The hash of one entry, to be summed over a node's entries: order-independent, so a
/// view kept apart from the node's own copy hashes the same, and updated as entries come
/// and go (the sum of what is there, wrapping). The node and run are the same for every
/// entry of one node, so only the fields on the wire go in.
pub(crate) fn entry_hash(name: &str, claim: &Claim) -> u64 {
    let c = claim.to_wire();
    let mut h = mix(Tag::of(name).0);
    for part in [c.pid, c.tag.0, c.at_ms, c.seq] {
        h = mix(h ^ part);
    }
    h
}

/// The digest hash of a node's entries: the sum of [`entry_hash`] over them.
pub(crate) fn entries_hash<'a>(entries: impl IntoIterator<Item = (&'a String, &'a Claim)>) -> u64 {
    entries.into_iter().fold(0u64, |sum, (name, claim)| {
        sum.wrapping_add(entry_hash(name, claim))
    })
}

/// splitmix64's finaliser.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
