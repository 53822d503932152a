//! Membership's wire format: the SWIM identity foca gossips, a codec that refuses anything a
//! well-behaved peer would never send, the load reports, and the push-pull sync payload.
//! Everything here decodes untrusted bytes: errors, never panics.
//!
//! A member holds a certificate of the cluster, so it can speak; what it must not do is speak
//! *for another node*. Hence: every node record must carry the id its name derives to in this
//! cluster ([`check_node`]), so no record can take over another node's slot; a sync payload
//! carries at most `max_sync_members` records; and a node's load is accepted only from that
//! node itself, sent directly (never relayed), so no member can invent or freeze another's.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, BufMut};
use foca::{BroadcastHandler, Codec, Header, Invalidates, Message, PostcardCodec};
use serde::{Deserialize, Serialize};
use understudy_actor::NodeId;

use super::member::{Member, NodeLoad, NodeMeta};
use crate::identity::{ClusterName, Incarnation, NodeName, node_id};

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
    /// A record whose node id is not the id of its name in this cluster: it would take over
    /// another node's slot.
    #[error("record names node {name} with id {node_id}, which is not that name's id")]
    ForeignId { node_id: NodeId, name: NodeName },
    #[error("a sync payload of {count} members exceeds the limit of {max}")]
    TooManyMembers { count: u64, max: usize },
}

/// Checks that `id` is a node (not a seed placeholder) with valid metadata, whose id is the
/// id its name derives to in `cluster`.
fn check_node<'a>(id: &'a SwimId, cluster: &ClusterName) -> Result<&'a NodeRecord, WireError> {
    let record = id.node().ok_or(WireError::Placeholder)?;
    record.meta.validate()?;
    if node_id(cluster, &record.meta.name) != record.node_id {
        return Err(WireError::ForeignId {
            node_id: record.node_id,
            name: record.meta.name.clone(),
        });
    }
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

/// Checks a decoded header: every identity is a valid node of `cluster`, except that `dst`
/// may be a seed placeholder in an `Announce` when `allow_seed_dst`.
pub(crate) fn check_header(
    header: &Header<SwimId>,
    allow_seed_dst: bool,
    cluster: &ClusterName,
) -> Result<(), WireError> {
    check_node(&header.src, cluster)?;
    match (&header.dst, &header.message) {
        (SwimId::Seed(_), Message::Announce) if allow_seed_dst => {}
        (dst, _) => {
            check_node(dst, cluster)?;
        }
    }
    if let Some(id) = message_ids(&header.message) {
        check_node(id, cluster)?;
    }
    Ok(())
}

/// Decodes the header at the front of a SWIM packet, returning it and the number of bytes it
/// took. Seed placeholders are allowed as the `dst` of an `Announce`.
pub(crate) fn peek_header(
    packet: &[u8],
    cluster: &ClusterName,
) -> Result<(Header<SwimId>, usize), WireError> {
    let (header, rest) = postcard::take_from_bytes::<Header<SwimId>>(packet)?;
    check_header(&header, true, cluster)?;
    Ok((header, packet.len() - rest.len()))
}

/// foca's postcard codec plus validation: no placeholders, valid metadata, and ids bound to
/// names in this node's cluster.
#[derive(Clone, Debug)]
pub(crate) struct SwimCodec {
    cluster: ClusterName,
}

impl SwimCodec {
    pub(crate) fn new(cluster: ClusterName) -> SwimCodec {
        SwimCodec { cluster }
    }
}

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
        check_header(&header, false, &self.cluster)?;
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
        check_node(member.id(), &self.cluster)?;
        Ok(member)
    }
}

/// A node's load, versioned: `(incarnation, version)` orders one node's reports.
///
/// Only the node itself reports its load, each report sent straight to each member, so the
/// version is that node's own counter: a late datagram carries a smaller one and is ignored.
/// No other member can make a report for it, so no one can make its version jump (to
/// `u64::MAX`, say) and freeze its load; a restart (a larger incarnation) starts over.
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

    /// Whether `sender` (the verified sender of the packet or sync carrying it) may report
    /// this load: only the node itself, in the run the load is for.
    pub(crate) fn is_from(&self, sender: &NodeRecord) -> bool {
        self.node_id == sender.node_id && self.incarnation == sender.incarnation
    }
}

/// A custom broadcast item. An enum so new kinds can be added; an unknown kind is ignored by
/// older nodes (not an error that would drop the rest of the packet).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum BroadcastItem {
    Load(LoadUpdate),
}

/// A SWIM packet from `src` to `dst` that carries only `update`, for the node that `update`
/// describes to send to each member itself (see [`LoadUpdate`]): foca's `Broadcast` message
/// layout, a header then one length-prefixed custom broadcast item.
///
/// The header's `src_incarnation` (foca's refutation counter) is 0: foca keeps its own
/// private, and a receiver takes an `Alive` at an older counter as "still alive" without
/// changing anything, which is all this packet needs to say about its sender.
pub(crate) fn load_packet(
    src: &SwimId,
    dst: &SwimId,
    update: &LoadUpdate,
) -> Result<Vec<u8>, WireError> {
    let item = postcard::to_stdvec(&BroadcastItem::Load(update.clone()))?;
    let header = Header {
        src: src.clone(),
        src_incarnation: 0,
        dst: dst.clone(),
        message: Message::Broadcast,
    };
    let mut buf = Vec::with_capacity(256);
    PostcardCodec.encode_header(&header, &mut buf)?;
    // An item is a few dozen bytes; foca's length prefix is a u16.
    let len = u16::try_from(item.len()).map_err(|_| postcard::Error::SerializeBufferFull)?;
    buf.put_u16(len);
    buf.extend_from_slice(&item);
    Ok(buf)
}

/// Never produced: load reports are not relayed (see [`LoadUpdate`]), so foca never queues
/// one for re-dissemination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoRelay {}

impl Invalidates for NoRelay {
    fn invalidates(&self, _other: &Self) -> bool {
        match *self {}
    }
}

/// The freshest load known per node, and the fresh ones not yet surfaced as events.
#[derive(Debug, Default)]
pub(crate) struct LoadBook {
    pub(crate) latest: BTreeMap<NodeId, LoadUpdate>,
    pub(crate) fresh: Vec<LoadUpdate>,
    /// Broadcast items that did not decode.
    pub(crate) undecodable: u64,
    /// Load reports about a node other than their sender.
    pub(crate) refused: u64,
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

    /// Records `update` if `sender` may report it (see [`LoadUpdate::is_from`]) and it is
    /// newer; counts it as refused otherwise.
    pub(crate) fn offer_from(&mut self, sender: Option<&NodeRecord>, update: LoadUpdate) {
        if sender.is_some_and(|s| update.is_from(s)) {
            self.offer(update);
        } else {
            self.refused += 1;
        }
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

/// foca's custom-broadcast handler: accepts a node's new load from that node, never asks
/// foca to relay anything, ignores unknown items.
pub(crate) struct LoadHandler(pub(crate) SharedBook);

impl BroadcastHandler<SwimId> for LoadHandler {
    type Key = NoRelay;
    type Error = std::convert::Infallible;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&SwimId>,
    ) -> Result<Option<NoRelay>, Self::Error> {
        let mut book = self.0.lock();
        // Lenient: an error here would make foca drop the rest of the packet.
        match postcard::from_bytes::<BroadcastItem>(data) {
            Ok(BroadcastItem::Load(update)) => {
                book.offer_from(sender.and_then(SwimId::node), update)
            }
            Err(_) => book.undecodable += 1,
        }
        Ok(None)
    }
}

/// The version of [`SyncPayload`].
pub(crate) const SYNC_VERSION: u8 = 1;

/// What a push-pull sync carries each way: the sender's whole membership state (itself
/// included, as alive), at most `max_sync_members` records, and the sender's own load.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SyncPayload {
    pub(crate) version: u8,
    pub(crate) members: Vec<foca::Member<SwimId>>,
    /// The sender's own load, if it has one. A list because nodes before the rule "a load
    /// only from its node" sent every load they knew, in the same format; a receiver takes
    /// only the sender's entry and counts the rest as refused.
    pub(crate) loads: Vec<LoadUpdate>,
}

impl SyncPayload {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail; an empty payload is refused by the
        // peer, which is the right outcome if it ever did.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Decodes a peer's payload: a known version, at most `max_members` records (counted
    /// before any is decoded), each a valid node of `cluster`.
    pub(crate) fn decode(
        bytes: &[u8],
        cluster: &ClusterName,
        max_members: usize,
    ) -> Result<SyncPayload, WireError> {
        let (version, rest) = postcard::take_from_bytes::<u8>(bytes)?;
        if version != SYNC_VERSION {
            return Err(WireError::Version(version));
        }
        // postcard writes a sequence's length as the same varint as a u64.
        let (count, _) = postcard::take_from_bytes::<u64>(rest)?;
        if usize::try_from(count).map_or(true, |n| n > max_members) {
            return Err(WireError::TooManyMembers {
                count,
                max: max_members,
            });
        }
        let payload: SyncPayload = postcard::from_bytes(bytes)?;
        for member in &payload.members {
            check_node(member.id(), cluster)?;
        }
        Ok(payload)
    }
}
