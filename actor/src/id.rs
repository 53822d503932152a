//! Identities that can cross the network: [`NodeId`] and [`ActorAddr`].
//!
//! ractor identifies a remote actor by `ActorId::Remote { node_id, pid }`, where `node_id == 0`
//! would print exactly like a local actor. understudy's node ids are therefore never zero, and
//! stable for the life of a node, so an [`ActorAddr`] taken on one node still names the same
//! actor when it is decoded on another.

use std::fmt;
use std::num::NonZeroU64;

use ractor::{ActorCell, ActorId};
use serde::{Deserialize, Serialize};

/// The identity of a node, unique in its cluster and never zero.
///
/// ```
/// use understudy_actor::NodeId;
/// let id = NodeId::new(7).expect("non-zero");
/// assert_eq!(id.get(), 7);
/// assert!(NodeId::new(0).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(NonZeroU64);

impl NodeId {
    /// A node id from a raw value; `None` for zero, which ractor reserves for "local".
    pub const fn new(raw: u64) -> Option<NodeId> {
        match NonZeroU64::new(raw) {
            Some(n) => Some(NodeId(n)),
            None => None,
        }
    }

    /// A fresh id for a node that was given none: different for every call in a process and,
    /// with overwhelming probability, across processes (it mixes the process id, the clock and
    /// std's per-process random hash keys).
    pub fn random() -> NodeId {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(1);
        let mut h = RandomState::new().build_hasher();
        h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        NodeId(NonZeroU64::new(h.finish()).unwrap_or(NonZeroU64::MIN))
    }

    /// The raw, non-zero value.
    pub const fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Where an actor lives: its node and its pid on that node. Serialisable, so actor references
/// can travel inside messages.
///
/// ```
/// use understudy_actor::{ActorAddr, NodeId};
/// let node = NodeId::new(42).unwrap();
/// let addr = ActorAddr { node, pid: 9 };
/// assert_eq!(addr.to_string(), format!("<{node}.9>"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorAddr {
    /// The node the actor runs on.
    pub node: NodeId,
    /// The actor's pid on that node (ractor's local id there).
    pub pid: u64,
}

impl ActorAddr {
    /// The address of `cell` as seen from the node `here`: a local cell lives on `here`, a
    /// remote proxy cell on the node its route leads to. `None` for a proxy whose connection
    /// is gone (or that understudy did not create).
    pub fn of(cell: &ActorCell, here: NodeId) -> Option<ActorAddr> {
        match cell.get_id() {
            ActorId::Local(pid) => Some(ActorAddr { node: here, pid }),
            #[cfg(feature = "remote")]
            ActorId::Remote { node_id, pid } => crate::route::lookup(node_id).map(|r| ActorAddr {
                node: r.node(),
                pid,
            }),
            // Without `remote`, ractor makes no proxies, so no remote id comes from a cell.
            #[cfg(not(feature = "remote"))]
            ActorId::Remote { .. } => None,
        }
    }
}

impl fmt::Display for ActorAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}>", self.node, self.pid)
    }
}

/// A map keyed by ids the process hands out itself (pids, registry ids).
///
/// SipHash, std's default, guards against keys an attacker chooses; these keys are never
/// chosen by a peer (a peer's pid is only ever looked up in a table of this node's own), and
/// the lookups sit on the per-message path, so a multiplicative hash is used instead.
pub type IdMap<V> = std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`]: one multiplication per `u64`.
#[derive(Default, Clone, Copy, Debug)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: spreads sequential ids over the table's high bits, which
        // hashbrown uses for its control bytes as well as the low bits for the bucket.
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(26);
    }
}
