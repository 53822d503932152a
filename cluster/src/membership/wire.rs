//! Membership's wire format: the SWIM identity foca gossips, a codec that refuses anything a
//! well-behaved peer would never send, the custom broadcasts (load), and the push-pull sync
//! payload. Everything here decodes untrusted bytes: errors, never panics.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, BufMut};
use foca::{BroadcastHandler, Codec, Header, Invalidates, Message, PostcardCodec};
use serde::{Deserialize, Serialize};
use understudy_actor::NodeId;

use super::member::{Member, NodeLoad, NodeMeta};
use crate::identity::Incarnation;

/// The identity foca gossips: either a real node, or a placeholder for a seed known only by
/// its address (valid only as the destination of an `Announce`, see `Swim::handle_packet`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum SwimId {
    /// A seed we have not met yet: dial the address, accept any member of the cluster.
    Seed(SocketAddr),
    /// A node.
    Node(NodeRecord),
}

/// One node's SWIM identity. Ordered for conflicts by `(incarnation, generation, leaving)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    pub(crate) node_id: NodeId,
    pub(crate) addr: SocketAddr,
    /// The process run: grows on restart.
    pub(crate) incarnation: Incarnation,
    /// Bumped when the cluster declared this run down and it rejoins: same process, new SWIM
    /// identity (SWIM's Down is terminal per identity). See `Swim::rejoin`.
    pub(crate) generation: u32,
    /// Set in the identity a node declares down when it leaves on purpose, so every peer that
    /// learns the Down learns it was a graceful leave (see `Swim::leave`).
    pub(crate) leaving: bool,
    pub(crate) meta: NodeMeta,
}

impl NodeRecord {
    fn rank(&self) -> (Incarnation, u32, bool, SocketAddr) {
        (self.incarnation, self.generation, self.leaving, self.addr)
    }

    pub(crate) fn to_member(&self, load: Option<NodeLoad>) -> Member {
        Member {
            node_id: self.node_id,
            addr: self.addr,
            incarnation: self.incarnation,
            meta: self.meta.clone(),
            load,
        }
    }
}

impl SwimId {
    pub(crate) fn node(&self) -> Option<&NodeRecord> {
        match self {
            SwimId::Node(r) => Some(r),
            SwimId::Seed(_) => None,
        }
    }

    pub(crate) fn node_id(&self) -> Option<NodeId> {
        self.node().map(|r| r.node_id)
    }
}

impl foca::Identity for SwimId {
    /// The cluster-unique slot is the node id (`None` only for seed placeholders, which never
    /// enter foca's member list: the codec refuses them).
    type Addr = Option<NodeId>;

    /// No automatic rejoin inside foca: `Swim` rejoins on `Defunct` itself, with backoff and
    /// a generation past any it has seen (foca's auto-rejoin answers every "you are down" at
    /// once, which turns into a packet storm if the renewed identity still loses).
    fn renew(&self) -> Option<Self> {
        None
    }

    fn addr(&self) -> Option<NodeId> {
        self.node_id()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        match (self, adversary) {
            (SwimId::Node(a), SwimId::Node(b)) => a.rank().cmp(&b.rank()) == Ordering::Greater,
            (SwimId::Node(_), SwimId::Seed(_)) => true,
            (SwimId::Seed(_), _) => false,
        }
    }
}

/// Why bytes from a peer were refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("undecodable: {0}")]
    Postcard(#[from] postcard::Error),
    #[error("a seed placeholder where a node identity is required")]
    Placeholder,
    #[error("invalid metadata: {0}")]
    Meta(#[from] super::member::InvalidMeta),
    #[error("unsupported sync version {0}")]
    Version(u8),
}

fn check_node(id: &SwimId) -> Result<&NodeRecord, WireError> {
    let record = id.node().ok_or(WireError::Placeholder)?;
    record.meta.validate()?;
    Ok(record)
}

/// Every identity a message names besides `src` and `dst`.
fn message_ids(message: &Message<SwimId>) -> Option<&SwimId> {
    match message {
        Message::PingReq { target, .. } | Message::IndirectAck { target, .. } => Some(target),
        Message::IndirectPing { origin, .. } | Message::ForwardedAck { origin, .. } => Some(origin),
        _ => None,
    }
}

/// Checks a decoded header: every identity is a valid node, except that `dst` may be a seed
/// placeholder in an `Announce` when `allow_seed_dst`.
pub(crate) fn check_header(header: &Header<SwimId>, allow_seed_dst: bool) -> Result<(), WireError> {
    check_node(&header.src)?;
    match (&header.dst, &header.message) {
        (SwimId::Seed(_), Message::Announce) if allow_seed_dst => {}
        (dst, _) => {
            check_node(dst)?;
        }
    }
    if let Some(id) = message_ids(&header.message) {
        check_node(id)?;
    }
    Ok(())
}

/// Decodes the header at the front of a SWIM packet, returning it and the number of bytes it
/// took. Seed placeholders are allowed as the `dst` of an `Announce`.
pub(crate) fn peek_header(packet: &[u8]) -> Result<(Header<SwimId>, usize), WireError> {
    let (header, rest) = postcard::take_from_bytes::<Header<SwimId>>(packet)?;
    check_header(&header, true)?;
    Ok((header, packet.len() - rest.len()))
}

/// foca's postcard codec plus validation: no placeholders, valid metadata.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SwimCodec;

impl Codec<SwimId> for SwimCodec {
    type Error = WireError;

    fn encode_header(
        &mut self,
        header: &Header<SwimId>,
        buf: impl BufMut,
    ) -> Result<(), WireError> {
        Ok(PostcardCodec.encode_header(header, buf)?)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<SwimId>, WireError> {
        let header = PostcardCodec.decode_header(buf)?;
        check_header(&header, false)?;
        Ok(header)
    }

    fn encode_member(
        &mut self,
        member: &foca::Member<SwimId>,
        buf: impl BufMut,
    ) -> Result<(), WireError> {
        Ok(PostcardCodec.encode_member(member, buf)?)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<foca::Member<SwimId>, WireError> {
        let member = PostcardCodec.decode_member(buf)?;
        check_node(member.id())?;
        Ok(member)
    }
}

/// A node's load, versioned: `(incarnation, version)` orders updates from one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoadUpdate {
    pub(crate) node_id: NodeId,
    pub(crate) incarnation: Incarnation,
    pub(crate) version: u64,
    pub(crate) load: NodeLoad,
}

impl LoadUpdate {
    fn newer_than(&self, other: &LoadUpdate) -> bool {
        (self.incarnation, self.version) > (other.incarnation, other.version)
    }
}

/// A custom broadcast item. An enum so new kinds can be added; an unknown kind is ignored by
/// older nodes (not an error that would drop the rest of the packet).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum BroadcastItem {
    Load(LoadUpdate),
}

/// Which broadcast an item replaces in foca's dissemination queue: a newer load of the same
/// node replaces an older one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BroadcastKey {
    node_id: NodeId,
    incarnation: Incarnation,
    version: u64,
}

impl Invalidates for BroadcastKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.node_id == other.node_id
            && (self.incarnation, self.version) >= (other.incarnation, other.version)
    }
}

/// The freshest load known per node, and the fresh ones not yet surfaced as events.
#[derive(Debug, Default)]
pub(crate) struct LoadBook {
    pub(crate) latest: BTreeMap<NodeId, LoadUpdate>,
    pub(crate) fresh: Vec<LoadUpdate>,
    pub(crate) rejected: u64,
}

impl LoadBook {
    /// Records `update` if it is newer than what we have; says whether it was.
    pub(crate) fn offer(&mut self, update: LoadUpdate) -> bool {
        if let Some(known) = self.latest.get(&update.node_id)
            && !update.newer_than(known)
        {
            return false;
        }
        self.latest.insert(update.node_id, update.clone());
        self.fresh.push(update);
        true
    }
}

/// The shared [`LoadBook`]: foca owns the handler, the core reads the book after each call.
/// Never contended (one task drives both), so the lock is only there to stay `Send`.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedBook(Arc<Mutex<LoadBook>>);

impl SharedBook {
    pub(crate) fn lock(&self) -> MutexGuard<'_, LoadBook> {
        // A poisoned lock only means a panic elsewhere while holding it; the book is still a
        // valid map, so keep going.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// foca's custom-broadcast handler: accepts new loads, ignores old or unknown items.
pub(crate) struct LoadHandler(pub(crate) SharedBook);

impl BroadcastHandler<SwimId> for LoadHandler {
    type Key = BroadcastKey;
    type Error = std::convert::Infallible;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&SwimId>,
    ) -> Result<Option<BroadcastKey>, Self::Error> {
        let mut book = self.0.lock();
        // Lenient: an error here would make foca drop the rest of the packet.
        match postcard::from_bytes::<BroadcastItem>(data) {
            Ok(BroadcastItem::Load(update)) => {
                let key = BroadcastKey {
                    node_id: update.node_id,
                    incarnation: update.incarnation,
                    version: update.version,
                };
                Ok(book.offer(update).then_some(key))
            }
            Err(_) => {
                book.rejected += 1;
                Ok(None)
            }
        }
    }
}

/// The version of [`SyncPayload`].
pub(crate) const SYNC_VERSION: u8 = 1;

/// What a push-pull sync carries each way: the sender's whole membership state (itself
/// included, as alive) and the freshest load of every node it knows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SyncPayload {
    pub(crate) version: u8,
    pub(crate) members: Vec<foca::Member<SwimId>>,
    pub(crate) loads: Vec<LoadUpdate>,
}

impl SyncPayload {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail; an empty payload is refused by the
        // peer, which is the right outcome if it ever did.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<SyncPayload, WireError> {
        let payload: SyncPayload = postcard::from_bytes(bytes)?;
        if payload.version != SYNC_VERSION {
            return Err(WireError::Version(payload.version));
        }
        for member in &payload.members {
            check_node(member.id())?;
        }
        Ok(payload)
    }
}
