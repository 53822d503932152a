//! Tests of the pure core: a deterministic simulation of several [`Swim`]s on a virtual clock
//! and an in-test network (loss, partitions, crashes, restarts), plus decoding of hostile
//! bytes. The tokio driver and the in-memory transport are tested in `cluster/tests/`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use understudy_actor::NodeId;

use super::testing::local_node;
use super::*;
use crate::identity::Incarnation;

mod hostile;

const CLUSTER: &str = "sim";

fn port(i: usize) -> u16 {
    7000 + u16::try_from(i).expect("small")
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port(i)))
}

fn name(i: usize) -> String {
    format!("n{i}")
}

/// One simulated node: its state machine and every event it emitted.
struct SimNode {
    swim: Swim,
    events: Vec<MembershipEvent>,
}

/// A packet in flight.
struct InFlight {
    at: Instant,
    from: NodeId,
    from_addr: SocketAddr,
    to: Peer,
    packet: Bytes,
}

/// N state machines, a virtual clock and a network with latency, loss and partitions.
struct Sim {
    seed: u64,
    now: Instant,
    nodes: BTreeMap<usize, SimNode>,
    config: MembershipConfig,
    flight: VecDeque<InFlight>,
    rng: SmallRng,
    loss: f64,
    latency: Duration,
    blocked: BTreeSet<(SocketAddr, SocketAddr)>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Sim {
            seed,
            now: Instant::now(),
            nodes: BTreeMap::new(),
            config: MembershipConfig::default(),
            flight: VecDeque::new(),
            rng: SmallRng::seed_from_u64(seed),
            loss: 0.0,
            latency: Duration::from_millis(1),
            blocked: BTreeSet::new(),
        }
    }

    /// Starts node `i` (incarnation `inc`) with node 0 as its seed.
    fn spawn(&mut self, i: usize, inc: u64) {
        let local = local_node(CLUSTER, &name(i), port(i), inc).expect("valid");
        // Different per node, per run of the node, and per simulation seed.
        let rng_seed = self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((i as u64) << 32 | inc);
        let swim = Swim::new(local, &self.config, vec![addr(0)], rng_seed, self.now)
            .expect("valid config");
        self.nodes.insert(
            i,
            SimNode {
                swim,
                events: Vec::new(),
            },
        );
    }

    fn crash(&mut self, i: usize) {
        self.nodes.remove(&i);
    }

    fn partition(&mut self, a: &[usize], b: &[usize]) {
        for x in a {
            for y in b {
                self.blocked.insert((addr(*x), addr(*y)));
                self.blocked.insert((addr(*y), addr(*x)));
            }
        }
    }

    fn node_at(&self, to: &Peer) -> Option<usize> {
        self.nodes
            .iter()
            .find(|(i, n)| {
                addr(**i) == to.addr()
                    && to.node_id().is_none_or(|id| id == n.swim.local().node_id())
            })
            .map(|(i, _)| *i)
    }

    /// Collects every node's outputs until none has any: packets into flight, syncs run at
    /// once (a reliable stream, unless partitioned), events into the node's log.
    fn collect(&mut self) {
        while self.collect_pass() {}
    }

    /// One pass over the nodes; says whether anything was collected.
    fn collect_pass(&mut self) -> bool {
        let mut any = false;
        let ids: Vec<usize> = self.nodes.keys().copied().collect();
        for i in ids {
            while let Some(node) = self.nodes.get_mut(&i) {
                let from = node.swim.local().node_id();
                let mut progressed = false;
                while let Some(t) = node.swim.poll_transmit() {
                    progressed = true;
                    any = true;
                    self.flight.push_back(InFlight {
                        at: self.now + self.latency,
                        from,
                        from_addr: addr(i),
                        to: t.to,
                        packet: t.packet,
                    });
                }
                while let Some(e) = node.swim.poll_event() {
                    any = true;
                    node.events.push(e);
                }
                let Some(sync) = node.swim.poll_sync() else {
                    if progressed {
                        continue;
                    }
                    break;
                };
                let target = self
                    .node_at(&sync.to)
                    .filter(|j| !self.blocked.contains(&(addr(i), addr(*j))));
                let response = match target.and_then(|j| self.nodes.get_mut(&j)) {
                    Some(peer) => peer.swim.handle_sync_request(self.now, from, &sync.payload),
                    None => Err(SyncError::Unreachable("sim".into())),
                };
                if let Some(node) = self.nodes.get_mut(&i) {
                    node.swim.handle_sync_response(
                        self.now,
                        sync.id,
                        response.as_deref().map_err(Clone::clone),
                    );
                }
                any = true;
            }
        }
        any
    }

    /// Advances the clock by `dt` in 10 ms steps, delivering packets and firing timers.
    fn run(&mut self, dt: Duration) {
        let end = self.now + dt;
        while self.now < end {
            self.now += Duration::from_millis(10);
            self.collect();
            let now = self.now;
            let mut later = VecDeque::new();
            while let Some(p) = self.flight.pop_front() {
                if p.at > now {
                    later.push_back(p);
                    continue;
                }
                if self.blocked.contains(&(p.from_addr, p.to.addr()))
                    || (self.loss > 0.0 && self.rng.random_bool(self.loss))
                {
                    continue;
                }
                if let Some(j) = self.node_at(&p.to)
                    && let Some(node) = self.nodes.get_mut(&j)
                {
                    let _ = node.swim.handle_packet(now, p.from, &p.packet);
                }
            }
            self.flight = later;
            for node in self.nodes.values_mut() {
                node.swim.handle_timeout(now);
            }
            self.collect();
        }
    }

    /// Runs until `done` holds, for at most `limit`; returns the virtual time it took.
    fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.run(Duration::from_millis(10));
        }
        done(self).then(|| self.now - start)
    }

    fn names_seen_by(&self, i: usize) -> BTreeSet<String> {
        self.nodes[&i]
            .swim
            .members()
            .map(|m| m.name().to_string())
            .collect()
    }

    fn all_see_each_other(&self) -> bool {
        self.nodes.keys().all(|i| {
            let expected: BTreeSet<String> = self
                .nodes
                .keys()
                .filter(|j| *j != i)
                .map(|j| name(*j))
                .collect();
            self.names_seen_by(*i) == expected
        })
    }

    fn left_reason(&self, observer: usize, who: usize) -> Option<LeaveReason> {
        self.nodes[&observer]
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                MembershipEvent::NodeLeft { member, reason }
                    if member.name().as_str() == name(who) =>
                {
                    Some(*reason)
                }
                _ => None,
            })
    }
}

fn cluster(n: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(seed);
    for i in 0..n {
        sim.spawn(i, 1);
    }
    let took = sim.run_until(Duration::from_secs(10), Sim::all_see_each_other);
    assert!(took.is_some(), "{n} nodes did not converge");
    sim
}

#[test]
fn three_nodes_join_through_a_seed() {
    let sim = cluster(3, 1);
    for i in 0..3 {
        let joined: Vec<_> = sim.nodes[&i]
            .events
            .iter()
            .filter(|e| matches!(e, MembershipEvent::NodeJoined(_)))
            .collect();
        assert_eq!(joined.len(), 2, "node {i}: {:?}", sim.nodes[&i].events);
        assert!(sim.nodes[&i].swim.is_connected());
    }
}

#[test]
fn graceful_leave_is_reported_as_left() {
    let mut sim = cluster(4, 2);
    let now = sim.now;
    sim.nodes.get_mut(&2).expect("node").swim.leave(now);
    sim.collect();
    let left = sim.run_until(Duration::from_secs(10), |s| {
        [0, 1, 3].iter().all(|i| s.left_reason(*i, 2).is_some())
    });
    assert!(left.is_some());
    for i in [0, 1, 3] {
        assert_eq!(
            sim.left_reason(i, 2),
            Some(LeaveReason::Left),
            "seen by {i}"
        );
    }
    // And it stays out: nothing rejoins it.
    sim.run(Duration::from_secs(5));
    for i in [0, 1, 3] {
        assert!(!sim.names_seen_by(i).contains("n2"));
    }
}

#[test]
fn a_goodbye_on_a_reliable_channel_is_reported_as_left_when_every_datagram_is_lost() {
    let mut sim = cluster(4, 12);
    let id = |sim: &Sim, i: usize| sim.nodes[&i].swim.local().node_id();
    let (leaver, other) = (id(&sim, 2), id(&sim, 3));
    // n2 says goodbye over each connection and goes: not one of its datagrams arrives.
    sim.crash(2);
    let now = sim.now;
    for i in [0, 1, 3] {
        let swim = &mut sim.nodes.get_mut(&i).expect("node").swim;
        swim.member_leaving(now, leaver, Incarnation::new(1));
        // A goodbye for another run, or for a node that did not say it, changes nothing.
        swim.member_leaving(now, other, Incarnation::new(7));
    }
    sim.collect();
    let left = sim.run_until(Duration::from_secs(10), |s| {
        [0, 1, 3].iter().all(|i| s.left_reason(*i, 2).is_some())
    });
    assert!(left.is_some());
    for i in [0, 1, 3] {
        assert_eq!(
            sim.left_reason(i, 2),
            Some(LeaveReason::Left),
            "seen by {i}"
        );
    }
    for i in [0, 1] {
        assert!(
            sim.names_seen_by(i).contains("n3"),
            "n3 is still a member at {i}"
        );
    }
}

#[test]
fn crash_is_reported_as_failed() {
    let mut sim = cluster(5, 3);
    sim.crash(3);
    let detected = sim.run_until(Duration::from_secs(30), |s| {
        [0, 1, 2, 4].iter().all(|i| s.left_reason(*i, 3).is_some())
    });
    assert!(detected.is_some());
    for i in [0, 1, 2, 4] {
        assert_eq!(sim.left_reason(i, 3), Some(LeaveReason::Failed));
    }
}

#[test]
fn packets_to_a_failed_node_are_marked_as_not_to_a_member() {
    let mut sim = cluster(4, 13);
    sim.crash(3);
    let detected = sim.run_until(Duration::from_secs(30), |s| {
        [0, 1, 2].iter().all(|i| s.left_reason(*i, 3).is_some())
    });
    assert!(detected.is_some());
    // Run n0 alone for a few announce-to-down rounds and look at what it writes.
    let (mut to_gone, mut to_members) = (0, 0);
    let mut now = sim.now;
    let n0 = &mut sim.nodes.get_mut(&0).expect("node").swim;
    while now < sim.now + sim.config.announce_down_interval * 3 {
        now += Duration::from_millis(100);
        n0.handle_timeout(now);
        while let Some(t) = n0.poll_transmit() {
            let member = n0.members().any(|m| Some(m.node_id()) == t.to.node_id());
            assert_eq!(t.to_member, member, "{t:?}");
            if t.to.addr() == addr(3) {
                to_gone += 1;
            } else if member {
                to_members += 1;
            }
        }
    }
    assert!(to_gone > 0, "n0 announces to the failed n3");
    assert!(to_members > 0, "and probes its members");
}

#[test]
fn restart_with_a_new_incarnation_replaces_the_old_run() {
    let mut sim = cluster(3, 4);
    sim.crash(2);
    sim.spawn(2, 2);
    let done = sim.run_until(Duration::from_secs(10), |s| {
        [0, 1].iter().all(|i| {
            s.nodes[i]
                .swim
                .members()
                .any(|m| m.name().as_str() == "n2" && m.incarnation().get() == 2)
        })
    });
    assert!(done.is_some());
    for i in [0, 1] {
        let events = &sim.nodes[&i].events;
        let about_n2: Vec<_> = events
            .iter()
            .filter(|e| e.member().name().as_str() == "n2")
            .map(|e| match e {
                MembershipEvent::NodeJoined(m) => format!("joined {}", m.incarnation()),
                MembershipEvent::NodeUpdated(m) => format!("updated {}", m.incarnation()),
                MembershipEvent::NodeLeft { member, reason } => {
                    format!("left {} {reason}", member.incarnation())
                }
            })
            .collect();
        assert_eq!(
            about_n2,
            ["joined 1", "left 1 restarted", "joined 2"],
            "seen by {i}"
        );
    }
    sim.run(Duration::from_secs(5));
    assert!(sim.all_see_each_other());
}

#[test]
fn partition_fails_both_sides_then_heals() {
    let mut sim = cluster(4, 5);
    sim.partition(&[0, 1], &[2, 3]);
    let split = sim.run_until(Duration::from_secs(20), |s| {
        s.names_seen_by(0) == BTreeSet::from(["n1".to_string()])
            && s.names_seen_by(3) == BTreeSet::from(["n2".to_string()])
    });
    assert!(split.is_some(), "both sides see the other fail");
    assert_eq!(sim.left_reason(0, 3), Some(LeaveReason::Failed));
    assert_eq!(sim.left_reason(3, 0), Some(LeaveReason::Failed));
    sim.blocked.clear();
    let healed = sim.run_until(Duration::from_secs(60), Sim::all_see_each_other);
    assert!(
        healed.is_some(),
        "healed: {:?}",
        (0..4).map(|i| sim.names_seen_by(i)).collect::<Vec<_>>()
    );
}

#[test]
fn an_isolated_node_keeps_announcing_until_it_is_back() {
    let mut sim = cluster(3, 6);
    // Node 0 is the only seed; cut it off from everyone.
    sim.partition(&[0], &[1, 2]);
    let alone = sim.run_until(Duration::from_secs(20), |s| s.names_seen_by(0).is_empty());
    assert!(alone.is_some());
    let announces = sim.nodes[&0].swim.stats().announces;
    sim.run(Duration::from_secs(20));
    assert!(sim.nodes[&0].swim.stats().announces > announces + 3);
    sim.blocked.clear();
    assert!(
        sim.run_until(Duration::from_secs(60), Sim::all_see_each_other)
            .is_some()
    );
}

#[test]
fn thirty_nodes_converge_and_stay_converged_under_loss() {
    let mut sim = Sim::new(7);
    sim.loss = 0.2;
    for i in 0..30 {
        sim.spawn(i, 1);
        sim.run(Duration::from_millis(20));
    }
    assert!(
        sim.run_until(Duration::from_secs(30), Sim::all_see_each_other)
            .is_some()
    );
}

#[test]
fn loads_travel_and_are_reported_as_updates() {
    let mut sim = cluster(3, 8);
    let now = sim.now;
    let load = NodeLoad {
        actors: 12,
        score: 345,
    };
    sim.nodes
        .get_mut(&1)
        .expect("node")
        .swim
        .set_load(now, load);
    let seen = sim.run_until(Duration::from_secs(5), |s| {
        [0, 2].iter().all(|i| {
            s.nodes[i]
                .events
                .iter()
                .any(|e| matches!(e, MembershipEvent::NodeUpdated(m) if m.load() == Some(load)))
        })
    });
    assert!(seen.is_some());
    assert_eq!(sim.nodes[&1].swim.local().load(), Some(load));
    // A late joiner gets it through the sync.
    sim.spawn(3, 1);
    let late = sim.run_until(Duration::from_secs(5), |s| {
        s.nodes[&3]
            .swim
            .members()
            .any(|m| m.name().as_str() == "n1" && m.load() == Some(load))
    });
    assert!(late.is_some());
}

#[test]
fn load_changes_go_to_each_member_at_most_once_per_gossip_interval() {
    let mut sim = cluster(4, 12);
    let now = sim.now;
    let n1 = &mut sim.nodes.get_mut(&1).expect("node").swim;
    while n1.poll_transmit().is_some() {}
    for score in 0..10 {
        n1.set_load(now, NodeLoad { actors: 1, score });
    }
    // One report per member now; the rest wait for the next slot and are coalesced.
    let mut sent = 0;
    while n1.poll_transmit().is_some() {
        sent += 1;
    }
    assert_eq!(sent, 3);
    let last = NodeLoad {
        actors: 1,
        score: 9,
    };
    let seen = sim.run_until(Duration::from_secs(2), |s| {
        [0, 2, 3].iter().all(|i| {
            s.nodes[i]
                .swim
                .members()
                .any(|m| m.name().as_str() == "n1" && m.load() == Some(last))
        })
    });
    assert!(seen.is_some());
}

#[test]
fn packets_must_come_from_the_identity_they_claim() {
    let mut sim = cluster(3, 9);
    let now = sim.now;
    // A real packet from n1, delivered to n0 as if the transport had verified n2.
    let packet = {
        let n1 = &mut sim.nodes.get_mut(&1).expect("node").swim;
        n1.set_load(now, NodeLoad::default());
        n1.poll_transmit().expect("a broadcast").packet
    };
    let n2 = sim.nodes[&2].swim.local().node_id();
    let n0 = &mut sim.nodes.get_mut(&0).expect("node").swim;
    let before = n0.stats();
    let err = n0.handle_packet(now, n2, &packet).expect_err("spoofed");
    assert!(matches!(err, PacketError::IdentityMismatch { .. }), "{err}");
    assert_eq!(n0.stats().rejected_identity, before.rejected_identity + 1);
    // A packet from ourselves is refused too.
    let own = n0.local().node_id();
    assert!(n0.handle_packet(now, own, &packet).is_err());
}

#[test]
fn own_address_in_the_seed_list_is_skipped() {
    let mut sim = Sim::new(10);
    sim.spawn(0, 1);
    sim.run(Duration::from_secs(3));
    let n0 = &sim.nodes[&0].swim;
    assert_eq!(n0.stats().announces, 0);
    assert_eq!(n0.stats().packets_sent, 0);
    assert!(!n0.is_connected());
}

#[test]
fn oversized_metadata_is_refused() {
    let mut local = local_node(CLUSTER, "big", 7000, 1).expect("valid");
    local.meta.role = Some("r".repeat(MAX_LABEL_LEN + 1));
    let config = MembershipConfig::default();
    assert!(Swim::new(local.clone(), &config, vec![], 0, Instant::now()).is_err());
    local.meta.role = Some("r".repeat(MAX_LABEL_LEN));
    local.meta.failure_domain = Some("f".repeat(MAX_LABEL_LEN));
    let small = MembershipConfig {
        max_packet_size: 512,
        ..config.clone()
    };
    // Fits the default packet, not the smallest one.
    assert!(Swim::new(local.clone(), &config, vec![], 0, Instant::now()).is_ok());
    assert!(Swim::new(local, &small, vec![], 0, Instant::now()).is_err());
}

/// `cases` cases from a fixed seed, so CI runs the same cases every time (set
/// `PROPTEST_RNG_SEED` to explore others, and `PROPTEST_CASES` for more).
fn seeded(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let rng_seed = match default.rng_seed {
        proptest::test_runner::RngSeed::Random => proptest::test_runner::RngSeed::Fixed(0x5717),
        chosen => chosen,
    };
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        default.cases
    } else {
        cases
    };
    ProptestConfig {
        cases,
        rng_seed,
        ..default
    }
}

fn lone_node() -> Swim {
    let local = local_node(CLUSTER, "target", 7000, 1).expect("valid");
    Swim::new(
        local,
        &MembershipConfig::default(),
        vec![addr(1)],
        1,
        Instant::now(),
    )
    .expect("ok")
}

proptest! {
    #![proptest_config(seeded(256))]

    /// Any bytes, from any verified peer, into every decoder: errors, never panics.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1400), from in 1u64..) {
        let mut swim = lone_node();
        let now = Instant::now();
        let from = NodeId::new(from).expect("non-zero");
        let _ = swim.handle_packet(now, from, &bytes);
        let _ = swim.handle_sync_request(now, from, &bytes);
        swim.handle_timeout(now + Duration::from_secs(1));
        let id = swim.poll_sync().map(|s| s.id).unwrap_or(0);
        swim.handle_sync_response(now, id, Ok(&bytes));
        prop_assert!(swim.members().count() <= 1);
    }

    /// Real packets with bytes flipped or cut: errors, never panics.
    #[test]
    fn mutated_packets_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut sim = cluster_for_mutation();
        let now = sim.now;
        let n1 = sim.nodes[&1].swim.local().node_id();
        let mut packets = Vec::new();
        {
            let swim = &mut sim.nodes.get_mut(&1).expect("node").swim;
            swim.set_load(now, NodeLoad::default());
            swim.handle_timeout(now + Duration::from_secs(2));
            while let Some(t) = swim.poll_transmit() {
                packets.push(t.packet.to_vec());
            }
        }
        let target = &mut sim.nodes.get_mut(&0).expect("node").swim;
        for mut packet in packets {
            for (at, byte) in &flips {
                if !packet.is_empty() {
                    let i = at % packet.len();
                    packet[i] ^= byte;
                }
            }
            let _ = target.handle_packet(now, n1, &packet);
            let len = packet.len();
            let _ = target.handle_packet(now, n1, &packet[..cut % (len + 1)]);
        }
    }
}

fn cluster_for_mutation() -> Sim {
    cluster(3, 11)
}

/// One step of a random schedule.
#[derive(Clone, Debug)]
enum Op {
    Run(u16),
    Crash(usize),
    Restart(usize),
    Leave(usize),
    Partition(usize, usize),
    Heal,
    Loss(u8),
    Load(usize, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (10u16..3000).prop_map(Op::Run),
        1 => (0usize..5).prop_map(Op::Crash),
        1 => (0usize..5).prop_map(Op::Restart),
        1 => (0usize..5).prop_map(Op::Leave),
        1 => (0usize..5, 0usize..5).prop_map(|(a, b)| Op::Partition(a, b)),
        1 => Just(Op::Heal),
        1 => (0u8..40).prop_map(Op::Loss),
        1 => (0usize..5, any::<u32>()).prop_map(|(i, s)| Op::Load(i, s)),
    ]
}

/// Checks one node's event log against the grammar, and its member list against the log.
fn check_events(node: &SimNode) -> Result<(), TestCaseError> {
    let own = node.swim.local().node_id();
    let mut view: BTreeMap<NodeId, Member> = BTreeMap::new();
    for event in &node.events {
        let m = event.member();
        prop_assert_ne!(m.node_id(), own, "an event about ourselves");
        match event {
            MembershipEvent::NodeJoined(m) => {
                prop_assert!(!view.contains_key(&m.node_id()), "joined twice: {:?}", m);
                view.insert(m.node_id(), m.clone());
            }
            MembershipEvent::NodeUpdated(m) => {
                let known = view.get(&m.node_id());
                prop_assert!(
                    known.is_some_and(|k| k.incarnation() == m.incarnation()),
                    "update of a non-member: {:?}",
                    m
                );
                view.insert(m.node_id(), m.clone());
            }
            MembershipEvent::NodeLeft { member, .. } => {
                let known = view.remove(&member.node_id());
                prop_assert_eq!(known.as_ref(), Some(member), "left without joining");
            }
        }
    }
    let members: BTreeMap<NodeId, Member> = node.swim.members().map(|m| (m.node_id(), m)).collect();
    prop_assert_eq!(members, view);
    Ok(())
}

proptest! {
    #![proptest_config(seeded(48))]

    /// Random schedules of time, crashes, restarts, leaves, partitions, loss and loads over
    /// five nodes: every node's events follow the grammar and match its member list, and once
    /// the network is healed and lossless, the survivors converge.
    #[test]
    fn random_schedules_keep_the_view_consistent(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..25)) {
        let mut sim = Sim::new(seed);
        let mut incarnations = [1u64; 5];
        for i in 0..5 {
            sim.spawn(i, 1);
        }
        for op in ops {
            match op {
                Op::Run(ms) => sim.run(Duration::from_millis(u64::from(ms))),
                Op::Crash(i) => sim.crash(i),
                Op::Restart(i) => {
                    sim.crash(i);
                    incarnations[i] += 1;
                    sim.spawn(i, incarnations[i]);
                }
                Op::Leave(i) => {
                    let now = sim.now;
                    if let Some(n) = sim.nodes.get_mut(&i) {
                        n.swim.leave(now);
                    }
                }
                Op::Partition(a, b) if a != b => sim.partition(&[a], &[b]),
                Op::Partition(..) => {}
                Op::Heal => sim.blocked.clear(),
                Op::Loss(pct) => sim.loss = f64::from(pct) / 100.0,
                Op::Load(i, score) => {
                    let now = sim.now;
                    if let Some(n) = sim.nodes.get_mut(&i) {
                        n.swim.set_load(now, NodeLoad { actors: 1, score });
                    }
                }
            }
            for node in sim.nodes.values() {
                check_events(node)?;
            }
        }
        // Heal everything; nodes that left are gone for good, the rest must converge (with
        // the seed, node 0, back if it is gone: restarted nodes only know the seed).
        sim.blocked.clear();
        sim.loss = 0.0;
        let left: Vec<usize> = sim.nodes.iter().filter(|(_, n)| n.swim.has_left()).map(|(i, _)| *i).collect();
        for i in left {
            sim.crash(i);
        }
        if !sim.nodes.contains_key(&0) {
            incarnations[0] += 1;
            sim.spawn(0, incarnations[0]);
        }
        let converged = sim.run_until(Duration::from_secs(120), Sim::all_see_each_other);
        prop_assert!(converged.is_some(), "not converged: {:?}", sim.nodes.keys().map(|i| (i, sim.names_seen_by(*i))).collect::<Vec<_>>());
        for node in sim.nodes.values() {
            check_events(node)?;
        }
    }
}

#[test]
fn settings_that_would_overflow_the_clock_are_refused() {
    let huge = Duration::from_secs(u64::MAX / 4);
    for set in [
        |c: &mut MembershipConfig, d| c.probe_period = d,
        |c: &mut MembershipConfig, d| c.sync_interval = d,
        |c: &mut MembershipConfig, d| c.load_refresh = d,
        |c: &mut MembershipConfig, d| c.remove_down_after = d,
        |c: &mut MembershipConfig, d| c.seed_retry_max = d,
    ] {
        let mut c = MembershipConfig::default();
        set(&mut c, huge);
        assert!(c.validate().is_err(), "{c:?}");
    }
}
