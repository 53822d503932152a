//! An in-memory network for membership tests, simulations and benchmarks: no sockets, no TLS,
//! seeded packet loss, partitions and latency.
//!
//! Each node [`attach`](MemNetwork::attach)es at its mesh address and gets a [`MemTransport`].
//! A packet to a [`Peer::Node`] only arrives if the node attached at that address has that
//! node id (as TLS would refuse a certificate for another name), and arrives *from* the
//! sender's node id — the "verified identity" real transports get from certificates. Packets
//! go into the receiver's inbound queue, so delivery is asynchronous; with a latency set, each
//! one is delivered by its own timer task. Syncs are reliable (a stream) unless partitioned.
//!
//! Everything uses tokio's clock, so `#[tokio::test(start_paused = true)]` runs clusters in
//! virtual time: a minute of SWIM in milliseconds.
//!
//! ```
//! use understudy_cluster::membership::testing::{MemNetwork, local_node};
//! use understudy_cluster::membership::MembershipConfig;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = MemNetwork::new(42);
//! let seed = local_node("demo", "a", 7000, 1)?;
//! let seeds = vec![seed.addr];
//! let a = net.start(seed, MembershipConfig::default(), seeds.clone())?;
//! let b = net.start(local_node("demo", "b", 7001, 1)?, MembershipConfig::default(), seeds)?;
//! while a.members().is_empty() || b.members().is_empty() {
//!     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! }
//! net.partition(&[a.local().addr()], &[b.local().addr()]);
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use understudy_actor::NodeId;

use super::config::{InvalidMembershipConfig, MembershipConfig};
use super::driver::Membership;
use super::member::LocalNode;
use super::transport::{Inbound, Peer, SyncError, SyncFuture, Transport, inbound};
use crate::identity::{ClusterName, Incarnation, InvalidName, NodeIdentity, NodeName};

/// A [`LocalNode`] for tests: `name` in `cluster`, at `127.0.0.1:port` (never bound: the
/// in-memory network only uses it as a key), in run `incarnation`.
pub fn local_node(
    cluster: &str,
    name: &str,
    port: u16,
    incarnation: u64,
) -> Result<LocalNode, InvalidName> {
    let identity = NodeIdentity::new(
        ClusterName::new(cluster)?,
        NodeName::new(name)?,
        Incarnation::new(incarnation),
    );
    Ok(LocalNode::new(
        identity,
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    ))
}

/// What happened to the packets on a [`MemNetwork`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetStats {
    /// Packets put in a receiver's queue.
    pub delivered: u64,
    /// Packets dropped by the configured loss.
    pub lost: u64,
    /// Packets dropped by a partition.
    pub blocked: u64,
    /// Packets to an address with no node, or with another node than the one expected.
    pub unroutable: u64,
}

#[derive(Debug)]
struct Endpoint {
    node_id: NodeId,
    inbound: Inbound,
}

#[derive(Debug)]
struct NetState {
    nodes: HashMap<SocketAddr, Endpoint>,
    rng: SmallRng,
    loss: f64,
    link_loss: HashMap<(SocketAddr, SocketAddr), f64>,
    blocked: HashSet<(SocketAddr, SocketAddr)>,
    latency: Duration,
    stats: NetStats,
}

/// An in-memory network of membership nodes (see the [module docs](self)). Cheap to clone.
#[derive(Clone, Debug)]
pub struct MemNetwork {
    state: Arc<Mutex<NetState>>,
}

impl MemNetwork {
    /// An empty, lossless network; `seed` drives the loss decisions.
    pub fn new(seed: u64) -> MemNetwork {
        MemNetwork {
            state: Arc::new(Mutex::new(NetState {
                nodes: HashMap::new(),
                rng: SmallRng::seed_from_u64(seed),
                loss: 0.0,
                link_loss: HashMap::new(),
                blocked: HashSet::new(),
                latency: Duration::ZERO,
                stats: NetStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches `local` at its address (replacing whatever was there: a restart), delivering
    /// to `inbound`; returns its transport.
    pub fn attach(&self, local: &LocalNode, inbound: Inbound) -> MemTransport {
        let node_id = local.identity.node_id();
        self.lock()
            .nodes
            .insert(local.addr, Endpoint { node_id, inbound });
        MemTransport {
            net: self.clone(),
            addr: local.addr,
            node_id,
        }
    }

    /// Starts a membership for `local` on this network (inbound queue, transport, task).
    pub fn start(
        &self,
        local: LocalNode,
        config: MembershipConfig,
        seeds: Vec<SocketAddr>,
    ) -> Result<Membership, InvalidMembershipConfig> {
        let (inbound, receiver) = inbound(config.inbound_queue);
        let transport = self.attach(&local, inbound);
        Membership::start(local, config, seeds, Arc::new(transport), receiver)
    }

    /// Detaches whatever node is at `addr`: it no longer receives anything.
    pub fn detach(&self, addr: SocketAddr) {
        self.lock().nodes.remove(&addr);
    }

    /// Drops this share (0.0–1.0) of all packets.
    pub fn set_loss(&self, loss: f64) {
        self.lock().loss = loss.clamp(0.0, 1.0);
    }

    /// Drops this share of the packets from `from` to `to` (instead of the global loss).
    pub fn set_link_loss(&self, from: SocketAddr, to: SocketAddr, loss: f64) {
        self.lock()
            .link_loss
            .insert((from, to), loss.clamp(0.0, 1.0));
    }

    /// Delays every packet and sync by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Cuts every link between a node of `a` and a node of `b`, both ways.
    pub fn partition(&self, a: &[SocketAddr], b: &[SocketAddr]) {
        let mut state = self.lock();
        for x in a {
            for y in b {
                state.blocked.insert((*x, *y));
                state.blocked.insert((*y, *x));
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&self) {
        self.lock().blocked.clear();
    }

    /// Delivers raw bytes to the node at `to` as if the transport had verified they came from
    /// `from` (for tests of what membership does with forged or garbage packets).
    pub fn inject(&self, to: SocketAddr, from: NodeId, packet: Bytes) -> bool {
        let inbound = self.lock().nodes.get(&to).map(|e| e.inbound.clone());
        inbound.is_some_and(|inbound| inbound.deliver(from, packet))
    }

    /// Packet counters.
    pub fn stats(&self) -> NetStats {
        self.lock().stats
    }

    /// The receiver of a packet from `from` to `to`, unless the network drops it.
    fn route(
        &self,
        from: SocketAddr,
        to: &Peer,
        lossy: bool,
    ) -> Result<(Inbound, Duration), String> {
        let mut state = self.lock();
        let target = to.addr();
        let inbound = match state.nodes.get(&target) {
            Some(endpoint) if to.node_id().is_none_or(|id| id == endpoint.node_id) => {
                endpoint.inbound.clone()
            }
            _ => {
                state.stats.unroutable += 1;
                return Err(format!("no such node at {target}"));
            }
        };
        if state.blocked.contains(&(from, target)) {
            state.stats.blocked += 1;
            return Err(format!("{from} and {target} are partitioned"));
        }
        if lossy {
            let loss = state
                .link_loss
                .get(&(from, target))
                .copied()
                .unwrap_or(state.loss);
            if loss > 0.0 && state.rng.random_bool(loss) {
                state.stats.lost += 1;
                return Err("lost".into());
            }
        }
        state.stats.delivered += 1;
        Ok((inbound, state.latency))
    }
}

/// One node's [`Transport`] on a [`MemNetwork`].
#[derive(Clone, Debug)]
pub struct MemTransport {
    net: MemNetwork,
    addr: SocketAddr,
    node_id: NodeId,
}

impl Transport for MemTransport {
    fn send(&self, to: &Peer, packet: Bytes) {
        let Ok((inbound, latency)) = self.net.route(self.addr, to, true) else {
            return;
        };
        if latency.is_zero() {
            inbound.deliver(self.node_id, packet);
        } else {
            let from = self.node_id;
            tokio::spawn(async move {
                tokio::time::sleep(latency).await;
                inbound.deliver(from, packet);
            });
        }
    }

    fn sync(&self, to: &Peer, request: Bytes) -> SyncFuture {
        let route = self.net.route(self.addr, to, false);
        let from = self.node_id;
        Box::pin(async move {
            let (inbound, latency) = route.map_err(SyncError::Unreachable)?;
            tokio::time::sleep(latency).await;
            let response = inbound.sync(from, request).await?;
            tokio::time::sleep(latency).await;
            Ok(response)
        })
    }
}
