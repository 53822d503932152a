//! [`Swim`]: the membership state machine, free of I/O, clocks and ambient randomness.
//!
//! It owns foca, foca's accumulating runtime, a timer heap and the event view. Every input
//! takes `now` ([`handle_packet`](Swim::handle_packet), [`handle_timeout`](Swim::handle_timeout),
//! [`handle_sync_request`](Swim::handle_sync_request), [`leave`](Swim::leave), …); outputs are
//! polled ([`poll_transmit`](Swim::poll_transmit), [`poll_sync`](Swim::poll_sync),
//! [`poll_event`](Swim::poll_event), [`poll_timeout`](Swim::poll_timeout)). The only
//! randomness is a seeded RNG. Given the same seed and the same inputs at the same instants,
//! it produces the same outputs — which is what the simulation and property tests rely on.

mod lifecycle;
mod timer;
mod view;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use foca::{AccumulatingRuntime, Codec, Foca, Header, OwnedNotification, PostcardCodec};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use understudy_actor::NodeId;

use super::config::{InvalidMembershipConfig, MembershipConfig};
use super::member::{LocalNode, Member, MembershipEvent, NodeLoad};
use super::stats::{
    FAILED_SYNCS_METRIC, MembershipStats, PacketError, REJECTED_PACKETS_METRIC, classify,
    wire_refusal,
};
use super::transport::{Peer, SyncError, SyncRequest, Transmit};
use super::wire::{
    LoadHandler, NodeRecord, SharedBook, SwimCodec, SwimId, SyncPayload, WireError, peek_header,
};
use crate::identity::{ClusterName, Incarnation};
use timer::{Scheduled, Tick};
use view::Known;

type SwimFoca = Foca<SwimId, SwimCodec, SmallRng, LoadHandler>;

/// The SWIM membership state machine of one node.
///
/// It owns foca, foca's accumulating runtime, a timer heap and the event view, and does no
/// I/O: every input takes `now`, outputs are polled, and the only randomness is the seeded RNG
/// given to [`new`](Swim::new). The same seed and the same inputs at the same instants give
/// the same outputs. A driver loops: feed inputs ([`handle_packet`](Swim::handle_packet),
/// [`handle_sync_request`](Swim::handle_sync_request), [`handle_timeout`](Swim::handle_timeout)
/// when [`poll_timeout`](Swim::poll_timeout) is due…), then hand on
/// [`poll_transmit`](Swim::poll_transmit) packets, run [`poll_sync`](Swim::poll_sync)
/// requests, and publish [`poll_event`](Swim::poll_event) events. [`Membership`](super::Membership)
/// is that driver on tokio.
///
/// ```
/// use std::time::{Duration, Instant};
/// use understudy_cluster::identity::{ClusterName, Incarnation, NodeIdentity, NodeName};
/// use understudy_cluster::membership::{LocalNode, MembershipConfig, MembershipEvent, Swim};
///
/// let cluster = ClusterName::new("demo")?;
/// let node = |name: &str, port: u16| -> Result<LocalNode, Box<dyn std::error::Error>> {
///     let id = NodeIdentity::new(cluster.clone(), NodeName::new(name)?, Incarnation::new(1));
///     Ok(LocalNode::new(id, format!("127.0.0.1:{port}").parse()?))
/// };
/// let config = MembershipConfig::default();
/// let start = Instant::now();
/// let a_local = node("a", 7001)?;
/// let mut a = Swim::new(a_local.clone(), &config, vec![], 1, start)?;
/// let mut b = Swim::new(node("b", 7002)?, &config, vec![a_local.addr], 2, start)?;
///
/// // Drive both by hand: deliver every packet at once, fire timers as they come due.
/// fn pump(from: &mut Swim, to: &mut Swim, now: Instant) {
///     while let Some(t) = from.poll_transmit() {
///         let _ = to.handle_packet(now, from.local().node_id(), &t.packet);
///     }
/// }
/// let mut now = start;
/// while a.members().count() == 0 || b.members().count() == 0 {
///     pump(&mut a, &mut b, now);
///     pump(&mut b, &mut a, now);
///     now += Duration::from_millis(10);
///     a.handle_timeout(now);
///     b.handle_timeout(now);
/// }
/// assert!(matches!(b.poll_event(), Some(MembershipEvent::NodeJoined(m)) if m.name().as_str() == "a"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Swim {
    foca: SwimFoca,
    rt: AccumulatingRuntime<SwimId>,
    rng: SmallRng,
    config: MembershipConfig,
    cluster: ClusterName,
    own_id: NodeId,
    initial: NodeRecord,
    seeds: Vec<SocketAddr>,
    timers: BinaryHeap<Reverse<Scheduled>>,
    timer_seq: u64,
    announce_token: u64,
    seed_backoff: Duration,
    sync_token: u64,
    next_sync_id: u64,
    pending_syncs: BTreeMap<u64, Peer>,
    /// The sync that follows our first contact.
    join_sync: Option<u64>,
    connected: bool,
    left: bool,
    /// Declared down (foca is undead) and not rejoined yet.
    defunct: bool,
    rejoin_token: u64,
    rejoin_backoff: Duration,
    last_defunct: Option<Instant>,
    /// The peer whose packet is being handled (a first contact syncs with it).
    contact: Option<Peer>,
    known: BTreeMap<NodeId, Known>,
    book: SharedBook,
    own_load: Option<NodeLoad>,
    load_version: u64,
    /// When this node last sent its load to every member (fan-outs are at most one per
    /// `gossip_interval`: each costs a packet per member).
    last_load_fanout: Option<Instant>,
    /// A load change waits for the next fan-out slot.
    load_fanout_pending: bool,
    max_transmissions: u8,
    transmits: VecDeque<(Peer, Bytes)>,
    syncs: VecDeque<SyncRequest>,
    events: VecDeque<MembershipEvent>,
    stats: MembershipStats,
}

impl std::fmt::Debug for Swim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swim")
            .field("local", &self.local_record())
            .field("connected", &self.connected)
            .field("left", &self.left)
            .field("members", &self.known.len())
            .finish_non_exhaustive()
    }
}

impl Swim {
    /// A node that will join through `seeds` (addresses of other nodes' meshes; its own
    /// address is skipped, so every node can share one seed list). `rng_seed` makes it
    /// deterministic; use a different seed per node.
    pub fn new(
        local: LocalNode,
        config: &MembershipConfig,
        seeds: Vec<SocketAddr>,
        rng_seed: u64,
        now: Instant,
    ) -> Result<Swim, InvalidMembershipConfig> {
        config.validate()?;
        local
            .meta
            .validate()
            .map_err(|e| InvalidMembershipConfig(e.to_string()))?;
        if &local.meta.name != local.identity.name() {
            return Err(InvalidMembershipConfig(format!(
                "meta.name {} is not the node's name {}",
                local.meta.name,
                local.identity.name()
            )));
        }
        let record = NodeRecord {
            node_id: local.identity.node_id(),
            addr: local.addr,
            incarnation: local.identity.incarnation(),
            generation: 0,
            leaving: false,
            meta: local.meta.clone(),
        };
        check_identity_size(&record, config.max_packet_size)?;
        let book = SharedBook::default();
        let foca = Foca::with_custom_broadcast(
            SwimId::Node(record.clone()),
            config.foca(1),
            SmallRng::seed_from_u64(rng_seed),
            SwimCodec::new(local.identity.cluster().clone()),
            LoadHandler(book.clone()),
        );
        let mut seeds: Vec<SocketAddr> = seeds.into_iter().filter(|s| *s != local.addr).collect();
        seeds.sort();
        seeds.dedup();
        let mut swim = Swim {
            foca,
            rt: AccumulatingRuntime::new(),
            rng: SmallRng::seed_from_u64(rng_seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15),
            config: config.clone(),
            cluster: local.identity.cluster().clone(),
            own_id: record.node_id,
            initial: record,
            seeds,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            announce_token: 0,
            seed_backoff: config.seed_retry_initial,
            sync_token: 0,
            next_sync_id: 0,
            pending_syncs: BTreeMap::new(),
            join_sync: None,
            connected: false,
            left: false,
            defunct: false,
            rejoin_token: 0,
            rejoin_backoff: Duration::ZERO,
            last_defunct: None,
            contact: None,
            known: BTreeMap::new(),
            book,
            own_load: None,
            load_version: 0,
            last_load_fanout: None,
            load_fanout_pending: false,
            max_transmissions: config.max_transmissions(1).get(),
            transmits: VecDeque::new(),
            syncs: VecDeque::new(),
            events: VecDeque::new(),
            stats: MembershipStats::default(),
        };
        swim.schedule(now, Tick::Announce(0));
        swim.schedule(now + config.sync_interval, Tick::Sync(0));
        swim.schedule(now + config.load_refresh, Tick::LoadRefresh);
        Ok(swim)
    }

    // ---------------------------------------------------------------------------------------
    // Inputs

    /// Handles a SWIM packet that the transport received from the verified peer `from`.
    ///
    /// The packet's header must name `from` as its sender (and that identity's name must
    /// derive to `from`), or it is refused: a member cannot speak for another. Refusals are
    /// counted and logged; see [`PacketError`] for what a refused packet may already have
    /// changed.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        from: NodeId,
        packet: &[u8],
    ) -> Result<(), PacketError> {
        if self.left {
            return Ok(());
        }
        self.stats.packets_received += 1;
        let result = self.check_and_handle(now, from, packet);
        if let Err(error) = &result {
            self.count_rejection(from, error);
        }
        result
    }

    fn check_and_handle(
        &mut self,
        now: Instant,
        from: NodeId,
        packet: &[u8],
    ) -> Result<(), PacketError> {
        let max = self.config.max_packet_size;
        if packet.len() > max {
            return Err(PacketError::TooLarge {
                len: packet.len(),
                max,
            });
        }
        let (header, used) = peek_header(packet, &self.cluster).map_err(wire_refusal)?;
        let src = header
            .src
            .node()
            .ok_or_else(|| PacketError::Malformed("placeholder sender".into()))?;
        // `peek_header` checked that the id is the name's, so the name is `from`'s too.
        if src.node_id != from {
            return Err(PacketError::IdentityMismatch {
                verified: from,
                claimed: format!("{} (id {})", src.meta.name, src.node_id),
            });
        }
        let contact = peer_of(&header.src);
        // An Announce to a seed placeholder is for whoever the transport delivered it to:
        // address it to our identity so foca accepts it (foca alone would only match a
        // placeholder by `Identity::addr`, and ours is the node id).
        let rewritten;
        let data = if matches!(header.dst, SwimId::Seed(_)) {
            let header = Header {
                dst: self.foca.identity().clone(),
                ..header
            };
            let mut buf = Vec::with_capacity(packet.len() + 128);
            PostcardCodec
                .encode_header(&header, &mut buf)
                .map_err(|e| PacketError::Malformed(e.to_string()))?;
            buf.extend_from_slice(&packet[used..]);
            rewritten = buf;
            &rewritten[..]
        } else {
            packet
        };
        self.contact = Some(contact);
        let result = self.foca.handle_data(data, &mut self.rt);
        self.drain(now);
        self.contact = None;
        result.map_err(classify)
    }

    fn count_rejection(&mut self, from: NodeId, error: &PacketError) {
        let reason = match error {
            PacketError::IdentityMismatch { .. } => {
                self.stats.rejected_identity += 1;
                tracing::warn!(peer = %from, %error, "refused SWIM packet");
                "identity"
            }
            PacketError::ForeignRecord { .. } => {
                self.stats.rejected_records += 1;
                tracing::warn!(peer = %from, %error, "refused SWIM packet");
                "forged"
            }
            PacketError::TooLarge { .. } | PacketError::Malformed(_) => {
                self.stats.rejected_malformed += 1;
                tracing::debug!(peer = %from, %error, "refused SWIM packet");
                "malformed"
            }
            PacketError::Protocol(_) => {
                self.stats.protocol_errors += 1;
                tracing::debug!(peer = %from, %error, "SWIM protocol error");
                "protocol"
            }
        };
        metrics::counter!(REJECTED_PACKETS_METRIC, "reason" => reason).increment(1);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse(top)) = self.timers.peek() {
            if top.at > now {
                break;
            }
            let Some(Reverse(entry)) = self.timers.pop() else {
                break;
            };
            match entry.tick {
                Tick::Foca(timer) => {
                    if let Err(error) = self.foca.handle_timer(timer, &mut self.rt) {
                        tracing::debug!(%error, "SWIM timer");
                    }
                    self.drain(now);
                }
                Tick::Announce(token) => self.on_announce(now, token),
                Tick::Sync(token) => self.on_sync_tick(now, token),
                Tick::Rejoin(token) => self.rejoin(now, token),
                Tick::LoadRefresh => {
                    if self.connected && self.own_load.is_some() {
                        self.fan_out_load(now);
                    }
                    self.schedule(now + self.config.load_refresh, Tick::LoadRefresh);
                }
                Tick::LoadFanout => {
                    if self.load_fanout_pending {
                        self.fan_out_load(now);
                    }
                }
            }
        }
    }

    /// Answers the verified peer `from`'s push-pull sync: applies its state, returns ours.
    pub fn handle_sync_request(
        &mut self,
        now: Instant,
        from: NodeId,
        request: &[u8],
    ) -> Result<Bytes, SyncError> {
        if self.left {
            return Err(SyncError::Refused("this node has left".into()));
        }
        match self.decode_sync(request) {
            Ok(payload) => {
                // What the requester knows may be news to the cluster (it is, at least, news
                // that the requester exists): gossip it.
                self.apply_state(now, payload, Some(from), true);
                self.stats.syncs_served += 1;
                Ok(self.encode_state())
            }
            Err(error) => {
                self.stats.syncs_refused += 1;
                metrics::counter!(FAILED_SYNCS_METRIC, "side" => "served").increment(1);
                tracing::debug!(peer = %from, %error, "refused membership sync");
                Err(SyncError::Refused(error.to_string()))
            }
        }
    }

    /// Gives back the outcome of the [`SyncRequest`] `id` (see [`poll_sync`](Self::poll_sync)).
    pub fn handle_sync_response(
        &mut self,
        now: Instant,
        id: u64,
        response: Result<&[u8], SyncError>,
    ) {
        let Some(peer) = self.pending_syncs.remove(&id) else {
            return;
        };
        if self.left {
            return;
        }
        let outcome = response.and_then(|bytes| {
            self.decode_sync(bytes)
                .map_err(|e| SyncError::Refused(e.to_string()))
        });
        match outcome {
            Ok(payload) => {
                // The responder gossips what it knows itself; repeating its whole view would
                // only crowd real news out of our packets.
                self.apply_state(now, payload, peer.node_id(), false);
                self.stats.syncs_completed += 1;
                if self.join_sync == Some(id) {
                    // Tell a few members we exist, beside the seed that let us in, so the
                    // news spreads from several points at once.
                    self.join_sync = None;
                    if let Err(error) = self.foca.gossip(&mut self.rt) {
                        tracing::debug!(%error, "gossip after join");
                    }
                    self.drain(now);
                }
            }
            Err(error) => {
                self.stats.syncs_failed += 1;
                metrics::counter!(FAILED_SYNCS_METRIC, "side" => "started").increment(1);
                tracing::debug!(%peer, %error, "membership sync failed; retrying soon");
                // Try another member soon instead of waiting a whole sync interval.
                self.sync_token += 1;
                let retry = (self.config.seed_retry_initial * 4).min(self.config.sync_interval);
                self.schedule(now + retry, Tick::Sync(self.sync_token));
            }
        }
    }

    /// Announces this node to more seeds (e.g. seeds resolved later).
    pub fn announce(&mut self, now: Instant, seeds: &[SocketAddr]) {
        if self.left {
            return;
        }
        let own = self.local_record().addr;
        for seed in seeds.iter().filter(|s| **s != own) {
            if !self.seeds.contains(seed) {
                self.seeds.push(*seed);
            }
            self.stats.announces += 1;
            if let Err(error) = self.foca.announce(SwimId::Seed(*seed), &mut self.rt) {
                tracing::debug!(%error, "announce");
            }
        }
        self.drain(now);
    }

    /// Publishes this node's load: sent to every member at once (or, if the last change went
    /// out less than `gossip_interval` ago, then), to each new member as it joins, and again
    /// every `load_refresh`. Members accept a node's load only from that node.
    pub fn set_load(&mut self, now: Instant, load: NodeLoad) {
        if self.left {
            return;
        }
        self.own_load = Some(load);
        self.load_version += 1;
        self.request_load_fanout(now);
    }

    /// Leaves the cluster gracefully: peers report this node
    /// [`LeaveReason::Left`](super::LeaveReason::Left).
    ///
    /// The node switches to an identity marked *leaving* and declares that identity down,
    /// then gossips it to a few members. Every peer that learns of the Down learns it from
    /// that identity, so "left" and "failed" cannot be confused, whatever order packets
    /// arrive in (a peer that only hears of the leaving identity and then loses the node still
    /// reports Left). After this the state machine ignores every input.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.left = true;
        let leaving = NodeRecord {
            leaving: true,
            ..self.local_record()
        };
        if let Err(error) = self
            .foca
            .change_identity(SwimId::Node(leaving), &mut self.rt)
        {
            tracing::debug!(%error, "leave: change identity");
        }
        if let Err(error) = self.foca.leave_cluster(&mut self.rt) {
            tracing::debug!(%error, "leave");
        }
        // Two more rounds to more members, so the news survives some loss.
        for _ in 0..2 {
            if let Err(error) = self.foca.gossip(&mut self.rt) {
                tracing::debug!(%error, "leave: gossip");
            }
        }
        self.drain(now);
        self.timers.clear();
        self.pending_syncs.clear();
        self.syncs.clear();
        self.connected = false;
    }

    /// A member said goodbye on a reliable channel (the mesh's control stream), as run
    /// `incarnation`: it is recorded as having left (peers of this node then report
    /// [`LeaveReason::Left`](super::LeaveReason::Left)), exactly as if its own leave gossip
    /// had arrived, and the news is gossiped on. Who said it must be authenticated by the
    /// caller; a goodbye for another run than the member's current one is ignored.
    pub fn member_leaving(&mut self, now: Instant, node: NodeId, incarnation: Incarnation) {
        if self.left || node == self.own_id {
            return;
        }
        let current = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() != foca::State::Down)
            .filter_map(|m| m.id().node())
            .find(|r| r.node_id == node)
            .cloned();
        let Some(record) = current.filter(|r| r.incarnation == incarnation && !r.leaving) else {
            return;
        };
        let leaving = SwimId::Node(NodeRecord {
            leaving: true,
            ..record
        });
        let update = foca::Member::new(leaving, 0, foca::State::Down);
        if let Err(error) = self
            .foca
            .apply_many(std::iter::once(update), true, &mut self.rt)
        {
            tracing::debug!(%error, "recording a goodbye");
        }
        self.drain(now);
    }

    // ---------------------------------------------------------------------------------------
    // Outputs and queries

    /// The next SWIM packet to hand to the transport.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let (to, packet) = self.transmits.pop_front()?;
        // Asked now, after the call that queued the packet has brought the view up to date
        // (foca writes to a new member before it tells us of it).
        let to_member = match &to {
            Peer::Node {
                node_id,
                incarnation,
                ..
            } => self
                .known
                .get(node_id)
                .is_some_and(|k| k.record.incarnation == *incarnation),
            Peer::Seed(_) => false,
        };
        Some(Transmit {
            to,
            packet,
            to_member,
        })
    }

    /// The next push-pull sync to run (see [`handle_sync_response`](Self::handle_sync_response)).
    pub fn poll_sync(&mut self) -> Option<SyncRequest> {
        self.syncs.pop_front()
    }

    /// The next membership event.
    pub fn poll_event(&mut self) -> Option<MembershipEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse(entry)| entry.at)
    }

    /// The live members (never this node), consistent with the events polled so far plus the
    /// ones still queued.
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.known.values().map(|k| k.record.to_member(k.load))
    }

    /// One live member.
    pub fn member(&self, node_id: NodeId) -> Option<Member> {
        self.known.get(&node_id).map(|k| k.record.to_member(k.load))
    }

    /// This node as it announces itself.
    pub fn local(&self) -> Member {
        self.local_record().to_member(self.own_load)
    }

    /// Whether some live member knows this node (foca is active).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether [`leave`](Self::leave) was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Counters.
    pub fn stats(&self) -> MembershipStats {
        let mut stats = self.stats;
        let book = self.book.lock();
        stats.broadcasts_rejected = book.undecodable;
        stats.loads_refused = book.refused;
        stats
    }

    // ---------------------------------------------------------------------------------------
    // Internals

    /// Decodes a peer's sync payload (see [`SyncPayload::decode`]), counting a foreign record.
    fn decode_sync(&mut self, bytes: &[u8]) -> Result<SyncPayload, WireError> {
        let decoded = SyncPayload::decode(bytes, &self.cluster, self.config.max_sync_members);
        if let Err(WireError::ForeignId { .. }) = &decoded {
            self.stats.rejected_records += 1;
        }
        decoded
    }

    fn local_record(&self) -> NodeRecord {
        // Our identity is always a node; `initial` only makes this total.
        self.foca.identity().node().unwrap_or(&self.initial).clone()
    }

    fn schedule(&mut self, at: Instant, tick: Tick) {
        self.timer_seq += 1;
        self.timers.push(Reverse(Scheduled {
            at,
            seq: self.timer_seq,
            tick,
        }));
    }

    /// Moves everything foca produced into our queues, reacting to its notifications (which
    /// may call foca again), until foca's runtime is empty.
    fn drain(&mut self, now: Instant) {
        loop {
            while let Some((to, packet)) = self.rt.to_send() {
                self.stats.packets_sent += 1;
                self.transmits.push_back((peer_of(&to), packet));
            }
            while let Some((after, timer)) = self.rt.to_schedule() {
                self.schedule(now + after, Tick::Foca(timer));
            }
            let mut touched = Vec::new();
            while let Some(notification) = self.rt.to_notify() {
                match notification {
                    OwnedNotification::MemberUp(id) | OwnedNotification::MemberDown(id) => {
                        touched.extend(id.node_id());
                    }
                    OwnedNotification::Rename(old, new) => {
                        touched.extend(old.node_id());
                        touched.extend(new.node_id());
                    }
                    OwnedNotification::Active => self.on_active(),
                    OwnedNotification::Idle => {
                        tracing::info!("no live members left; announcing to seeds");
                        self.connected = false;
                        self.restart_announces(now);
                    }
                    // Our identities never renew themselves inside foca, so no Rejoin.
                    OwnedNotification::Rejoin(_) => {}
                    OwnedNotification::Defunct => {
                        self.connected = false;
                        self.on_defunct(now);
                    }
                }
            }
            touched.sort();
            touched.dedup();
            for node in touched {
                self.reconcile(node);
            }
            self.surface_loads();
            self.adjust_transmissions();
            if self.rt.backlog() == 0 {
                break;
            }
        }
    }
}

fn peer_of(id: &SwimId) -> Peer {
    match id {
        SwimId::Seed(addr) => Peer::Seed(*addr),
        SwimId::Node(r) => Peer::Node {
            node_id: r.node_id,
            name: r.meta.name.clone(),
            addr: r.addr,
            incarnation: r.incarnation,
        },
    }
}

/// `delay` ± 25 %.
fn jitter(rng: &mut SmallRng, delay: Duration) -> Duration {
    let factor = rng.random_range(0.75..1.25);
    delay.mul_f64(factor)
}

/// Refuses identities so large that a header (two of them, three in a `PingReq`) would leave
/// no room for updates.
fn check_identity_size(
    record: &NodeRecord,
    max_packet: usize,
) -> Result<(), InvalidMembershipConfig> {
    let len = postcard::to_stdvec(&SwimId::Node(record.clone()))
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if len.saturating_mul(3) > max_packet / 2 {
        return Err(InvalidMembershipConfig(format!(
            "this node's SWIM identity is {len} bytes; with max_packet_size {max_packet} it must \
             be at most {} (shorten role/failure_domain)",
            max_packet / 6
        )));
    }
    Ok(())
}
