//! Cluster membership: which nodes are alive, gossiped with SWIM (foca 2), over any network
//! that implements a small [`Transport`] trait.
//!
//! # What it promises
//!
//! - **Failure detection in under 2 s on average, 3 s at worst** with the defaults: a node
//!   that stops answering is probed directly and indirectly, suspected, and declared down
//!   everywhere; see [`MembershipConfig`] for the arithmetic and the knobs.
//! - **Fast joins.** A node announces itself to its seeds (retried with exponential backoff
//!   until one answers), then pulls the whole view from the first member that answered with a
//!   *push-pull sync* ([`Transport::sync`]); the same sync runs every `sync_interval` with a
//!   random member as anti-entropy.
//! - **Left is not Failed.** [`Membership::leave`] makes every peer report
//!   [`LeaveReason::Left`]; a crash or partition is [`LeaveReason::Failed`]; a restarted node
//!   (same name, larger [`Incarnation`](crate::identity::Incarnation)) replaces its old run,
//!   reported as `NodeLeft { old, Restarted }` then `NodeJoined(new)`.
//! - **Isolation heals.** A node with no live members keeps announcing to its seeds and to
//!   the members it remembers; nodes on both sides of a healed partition announce to the
//!   members they consider down. A node the cluster declared down rejoins under a renewed
//!   identity (same run, so peers that never saw it fail see no event).
//! - **Peers speak only for themselves.** The sender identity in every SWIM packet must be
//!   the peer the transport verified (the mesh: the TLS certificate), or the packet is
//!   refused, counted and logged. Every node record a peer sends (in a packet or a sync) must
//!   carry the id its name derives to ([`node_id`](crate::identity::node_id)), so no record
//!   can take over another node's slot; a sync carries at most
//!   [`max_sync_members`](MembershipConfig::max_sync_members) records; and a node's load is
//!   accepted only from that node. No byte sequence from the network panics.
//!
//! # Layers
//!
//! - [`Swim`]: the state machine — foca plus timers, seeds, sync scheduling and the event
//!   view — with no I/O, no clock reads and a seeded RNG. Inputs carry `now`; outputs are
//!   polled. Deterministic, so it is property-tested directly.
//! - [`Membership`]: a tokio task that feeds it from a [`Transport`] and its timers, never
//!   awaiting I/O inside the SWIM loop, and publishes [`MembershipEvent`]s
//!   ([`Membership::subscribe`]) and a member snapshot ([`Membership::members`]).
//! - [`Transport`] / [`Inbound`]: the network seam. The QUIC mesh carries SWIM packets as
//!   datagrams and syncs over a bi-stream; [`testing::MemNetwork`] does it in memory, with
//!   loss and partitions.
//!
//! # Identities
//!
//! SWIM needs an identity per node *run* that it can declare dead for good. Ours carries the
//! mesh address, the [`NodeId`](crate::NodeId), the incarnation, static [`NodeMeta`] (name,
//! role, failure domain, Raft eligibility and priority — so every peer has them the moment it
//! learns of a node), and two internal fields: a *generation* bumped when the cluster declared
//! this run down and it rejoins, and a *leaving* flag (see [`Swim::leave`]). foca keys members
//! by node id, so one node has one entry however often it restarts or rejoins, and the
//! newest identity wins. A seed known only by address is reached through a placeholder
//! identity; the receiving node accepts an `Announce` to a placeholder as addressed to itself.
//!
//! Dynamic metadata ([`NodeLoad`]) is not part of the identity (changing an identity churns
//! the cluster): it travels as a versioned report that the node sends straight to every
//! member (on change, at most once per `gossip_interval`; to each new member as it joins;
//! every `load_refresh`; and in its syncs), and shows up as
//! [`MembershipEvent::NodeUpdated`]. It is never relayed: a member takes a node's load only
//! from that node, since a relayed report could not be told from a forged one. That costs a
//! packet per member per change, where gossip would cost a few.
//!
//! ```
//! use understudy_cluster::membership::testing::{MemNetwork, local_node};
//! use understudy_cluster::membership::{LeaveReason, MembershipConfig, MembershipEvent};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = MemNetwork::new(1);
//! let config = MembershipConfig::default();
//! let seeds = vec![local_node("demo", "a", 7000, 1)?.addr];
//! let a = net.start(local_node("demo", "a", 7000, 1)?, config.clone(), seeds.clone())?;
//! let mut events = a.subscribe();
//! let b = net.start(local_node("demo", "b", 7001, 1)?, config, seeds)?;
//!
//! let joined = events.recv().await?;
//! assert!(matches!(joined, MembershipEvent::NodeJoined(ref m) if m.name().as_str() == "b"));
//! b.leave().await;
//! let left = events.recv().await?;
//! assert!(matches!(left, MembershipEvent::NodeLeft { reason: LeaveReason::Left, .. }));
//! # Ok(()) }
//! ```

mod config;
mod driver;
mod member;
mod stats;
mod swim;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod transport;
mod wire;

pub use config::{InvalidMembershipConfig, MAX_DATAGRAM_PACKET, MembershipConfig};
pub use driver::Membership;
pub use member::{
    InvalidMeta, LeaveReason, LocalNode, MAX_LABEL_LEN, Member, MembershipEvent, NodeLoad, NodeMeta,
};
pub use stats::{FAILED_SYNCS_METRIC, MembershipStats, PacketError, REJECTED_PACKETS_METRIC};
pub use swim::Swim;
pub use transport::{
    INBOUND_DROPPED_METRIC, Inbound, InboundReceiver, Peer, SyncError, SyncFuture, SyncRequest,
    Transmit, Transport, inbound,
};

#[cfg(test)]
mod tests;
