//! Membership clusters in one process: the tokio driver over the in-memory transport, in
//! paused (virtual) time, so every test is deterministic and takes milliseconds of real time.
//! Conditions are awaited with a deadline (virtual); nothing sleeps and then asserts.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::broadcast;
use understudy_cluster::membership::testing::{MemNetwork, local_node};
use understudy_cluster::membership::{
    LeaveReason, Member, Membership, MembershipConfig, MembershipEvent, NodeLoad, Swim,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLUSTER: &str = "test";

fn port(i: usize) -> u16 {
    9000 + u16::try_from(i).expect("small")
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port(i)))
}

fn name(i: usize) -> String {
    format!("node-{i}")
}

/// Starts node `i` (incarnation `inc`) on `net`, with nodes 0 and 1 as seeds.
fn start(net: &MemNetwork, i: usize, inc: u64) -> Membership {
    let local = local_node(CLUSTER, &name(i), port(i), inc).expect("valid name");
    net.start(local, MembershipConfig::default(), vec![addr(0), addr(1)])
        .expect("valid config")
}

fn names(members: &[Member]) -> BTreeSet<String> {
    members.iter().map(|m| m.name().to_string()).collect()
}

/// Polls `cond` every 10 ms of virtual time until it holds, or fails after `limit`.
async fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether every node in `nodes` sees exactly the others.
fn converged(nodes: &[&Membership]) -> bool {
    let all: BTreeSet<String> = nodes.iter().map(|n| n.local().name().to_string()).collect();
    nodes.iter().all(|n| {
        let mut expected = all.clone();
        expected.remove(n.local().name().as_str());
        names(&n.members()) == expected
    })
}

/// Receives events until one matches, with a virtual deadline.
async fn next_matching(
    rx: &mut broadcast::Receiver<MembershipEvent>,
    limit: Duration,
    mut pred: impl FnMut(&MembershipEvent) -> bool,
) -> MembershipEvent {
    let found = tokio::time::timeout(limit, async {
        loop {
            match rx.recv().await {
                Ok(event) if pred(&event) => return event,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    })
    .await;
    found.expect("expected event did not arrive in time")
}

fn is_left(event: &MembershipEvent, who: &str) -> Option<LeaveReason> {
    match event {
        MembershipEvent::NodeLeft { member, reason } if member.name().as_str() == who => {
            Some(*reason)
        }
        _ => None,
    }
}

async fn cluster(net: &MemNetwork, n: usize) -> Vec<Membership> {
    let nodes: Vec<Membership> = (0..n).map(|i| start(net, i, 1)).collect();
    let refs: Vec<&Membership> = nodes.iter().collect();
    wait_for(Duration::from_secs(10), "convergence", || converged(&refs)).await;
    nodes
}

fn paused<F: Future<Output = TestResult>>(test: impl FnOnce() -> F) -> TestResult {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?
        .block_on(test())
}

#[test]
fn three_nodes_join() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(1);
        let a = start(&net, 0, 1);
        let (snapshot, mut events) = a.subscribe_with_snapshot();
        assert!(snapshot.is_empty());
        let b = start(&net, 1, 1);
        let c = start(&net, 2, 1);
        wait_for(Duration::from_secs(5), "3 nodes", || {
            converged(&[&a, &b, &c])
        })
        .await;
        let mut joined = BTreeSet::new();
        while joined.len() < 2 {
            if let MembershipEvent::NodeJoined(m) =
                next_matching(&mut events, Duration::from_secs(1), |_| true).await
            {
                joined.insert(m.name().to_string());
            }
        }
        assert_eq!(joined, BTreeSet::from([name(1), name(2)]));
        for node in [&a, &b, &c] {
            assert!(node.is_connected());
            assert!(node.stats().syncs_completed + node.stats().syncs_served >= 1);
        }
        // Static metadata arrives with the member.
        let seen_b = a.member(b.local().node_id()).expect("b is a member");
        assert_eq!(seen_b.addr(), addr(1));
        assert_eq!(seen_b.incarnation().get(), 1);
        Ok(())
    })
}

#[test]
fn graceful_leave_is_left_on_every_other_node() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(2);
        let nodes = cluster(&net, 5).await;
        let mut watchers: Vec<_> = [0, 1, 2, 4].iter().map(|i| nodes[*i].subscribe()).collect();
        nodes[3].leave().await;
        assert!(!nodes[3].is_running());
        for rx in &mut watchers {
            let event = next_matching(rx, Duration::from_secs(5), |e| {
                is_left(e, &name(3)).is_some()
            })
            .await;
            assert_eq!(is_left(&event, &name(3)), Some(LeaveReason::Left));
        }
        Ok(())
    })
}

#[test]
fn a_crashed_node_is_failed_on_every_other_node() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(3);
        let nodes = cluster(&net, 5).await;
        let mut watchers: Vec<_> = [0, 1, 3, 4].iter().map(|i| nodes[*i].subscribe()).collect();
        // Stop the driver without leaving: a crash, as far as peers can tell.
        nodes[2].stop().await;
        for rx in &mut watchers {
            let event = next_matching(rx, Duration::from_secs(30), |e| {
                is_left(e, &name(2)).is_some()
            })
            .await;
            assert_eq!(is_left(&event, &name(2)), Some(LeaveReason::Failed));
        }
        Ok(())
    })
}

#[test]
fn partition_fails_both_sides_then_heals() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(4);
        let nodes = cluster(&net, 5).await;
        let (left, right) = ([0, 1, 2], [3, 4]);
        let mut watch_left = nodes[0].subscribe();
        let mut watch_right = nodes[4].subscribe();
        net.partition(&left.map(addr), &right.map(addr));
        let side = |idx: &[usize]| idx.iter().map(|i| &nodes[*i]).collect::<Vec<_>>();
        wait_for(Duration::from_secs(30), "both sides to split", || {
            converged(&side(&left)) && converged(&side(&right))
        })
        .await;
        let event = next_matching(&mut watch_left, Duration::from_secs(1), |e| {
            is_left(e, &name(4)).is_some()
        })
        .await;
        assert_eq!(is_left(&event, &name(4)), Some(LeaveReason::Failed));
        let event = next_matching(&mut watch_right, Duration::from_secs(1), |e| {
            is_left(e, &name(0)).is_some()
        })
        .await;
        assert_eq!(is_left(&event, &name(0)), Some(LeaveReason::Failed));

        net.heal();
        let all: Vec<&Membership> = nodes.iter().collect();
        wait_for(Duration::from_secs(60), "the healed cluster", || {
            converged(&all)
        })
        .await;
        next_matching(
            &mut watch_left,
            Duration::from_secs(1),
            |e| matches!(e, MembershipEvent::NodeJoined(m) if m.name().as_str() == name(4)),
        )
        .await;
        Ok(())
    })
}

#[test]
fn an_isolated_seed_keeps_trying_and_rejoins() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(5);
        let nodes = cluster(&net, 3).await;
        net.partition(&[addr(0)], &[addr(1), addr(2)]);
        wait_for(Duration::from_secs(30), "node 0 isolated", || {
            nodes[0].members().is_empty() && !nodes[0].is_connected()
        })
        .await;
        let before = nodes[0].stats().announces;
        wait_for(Duration::from_secs(30), "more announces", || {
            nodes[0].stats().announces >= before + 3
        })
        .await;
        net.heal();
        let all: Vec<&Membership> = nodes.iter().collect();
        wait_for(Duration::from_secs(60), "rejoin", || converged(&all)).await;
        Ok(())
    })
}

#[test]
fn a_restarted_node_replaces_its_old_incarnation() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(6);
        let mut nodes = cluster(&net, 3).await;
        let mut watch = nodes[0].subscribe();
        nodes[2].stop().await;
        nodes[2] = start(&net, 2, 2);
        wait_for(Duration::from_secs(10), "the new incarnation", || {
            [0, 1].iter().all(|i| {
                nodes[*i]
                    .members()
                    .iter()
                    .any(|m| m.name().as_str() == name(2) && m.incarnation().get() == 2)
            })
        })
        .await;
        let left = next_matching(&mut watch, Duration::from_secs(1), |e| {
            is_left(e, &name(2)).is_some()
        })
        .await;
        assert_eq!(left.member().incarnation().get(), 1);
        assert_eq!(is_left(&left, &name(2)), Some(LeaveReason::Restarted));
        let joined = next_matching(&mut watch, Duration::from_secs(1), |e| {
            matches!(e, MembershipEvent::NodeJoined(_))
        })
        .await;
        assert_eq!(joined.member().incarnation().get(), 2);
        let all: Vec<&Membership> = nodes.iter().collect();
        wait_for(Duration::from_secs(10), "convergence", || converged(&all)).await;
        Ok(())
    })
}

#[test]
fn thirty_five_nodes_converge() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(7);
        let mut nodes = Vec::new();
        for i in 0..35 {
            nodes.push(start(&net, i, 1));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all: Vec<&Membership> = nodes.iter().collect();
        wait_for(Duration::from_secs(10), "35 nodes", || converged(&all)).await;
        Ok(())
    })
}

#[test]
fn twenty_percent_loss_still_converges() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(8);
        net.set_loss(0.2);
        net.set_latency(Duration::from_millis(1));
        let mut nodes = Vec::new();
        for i in 0..10 {
            nodes.push(start(&net, i, 1));
        }
        let all: Vec<&Membership> = nodes.iter().collect();
        wait_for(Duration::from_secs(30), "10 nodes at 20% loss", || {
            converged(&all)
        })
        .await;
        assert!(net.stats().lost > 0);
        Ok(())
    })
}

/// A genuine SWIM packet from `name(i)` (an announce to the seeds), made by a state machine
/// that is not running anywhere.
fn packet_from(i: usize) -> Bytes {
    let local = local_node(CLUSTER, &name(i), port(i), 1).expect("valid");
    let now = std::time::Instant::now();
    let mut swim =
        Swim::new(local, &MembershipConfig::default(), vec![addr(0)], 1, now).expect("valid");
    swim.handle_timeout(now);
    swim.poll_transmit().expect("an announce").packet
}

#[test]
fn packets_claiming_another_identity_are_rejected_and_counted() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(9);
        let nodes = cluster(&net, 3).await;
        let forged = packet_from(7);
        // The transport verified node-1, but the packet says node-7.
        let verified = nodes[1].local().node_id();
        assert!(net.inject(addr(0), verified, forged.clone()));
        wait_for(Duration::from_secs(1), "the rejection", || {
            nodes[0].stats().rejected_identity == 1
        })
        .await;
        assert!(
            nodes[0]
                .members()
                .iter()
                .all(|m| m.name().as_str() != name(7))
        );
        // The same packet from the node it names is fine.
        let real = local_node(CLUSTER, &name(7), port(7), 1)?
            .identity
            .node_id();
        assert!(net.inject(addr(0), real, forged));
        wait_for(Duration::from_secs(1), "node-7 announced", || {
            nodes[0].member(real).is_some()
        })
        .await;
        assert_eq!(nodes[0].stats().rejected_identity, 1);
        Ok(())
    })
}

#[test]
fn garbage_is_counted_and_the_node_keeps_serving() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(10);
        let nodes = cluster(&net, 3).await;
        let mut rng = SmallRng::seed_from_u64(10);
        let from = nodes[1].local().node_id();
        let real = packet_from(1);
        for round in 0..500 {
            let packet: Vec<u8> = match round % 3 {
                // Random bytes of any size, including oversize.
                0 => (0..rng.random_range(0..2000))
                    .map(|_| rng.random())
                    .collect(),
                // A real packet, cut short.
                1 => real[..rng.random_range(0..real.len())].to_vec(),
                // A real packet with flipped bytes.
                _ => {
                    let mut p = real.to_vec();
                    for _ in 0..3 {
                        let i = rng.random_range(0..p.len());
                        p[i] ^= rng.random_range(1..=255u8);
                    }
                    p
                }
            };
            net.inject(addr(0), from, Bytes::from(packet));
            if round % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        wait_for(Duration::from_secs(1), "the garbage to be handled", || {
            let s = nodes[0].stats();
            s.rejected_malformed + s.rejected_identity + s.protocol_errors >= 300
        })
        .await;
        // Still serving: node-0 and node-2 keep each other. (Node-1's own entry may suffer:
        // a mutated packet that still decodes is node-1, verified, lying about itself.)
        tokio::time::sleep(Duration::from_secs(5)).await;
        let id0 = nodes[0].local().node_id();
        let id2 = nodes[2].local().node_id();
        assert!(nodes[0].member(id2).is_some() && nodes[2].member(id0).is_some());
        assert!(nodes[0].is_running());
        Ok(())
    })
}

#[test]
fn snapshot_plus_events_track_the_view() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(11);
        let a = start(&net, 0, 1);
        let mut others = vec![start(&net, 1, 1), start(&net, 2, 1)];
        wait_for(Duration::from_secs(5), "first members", || {
            a.members().len() == 2
        })
        .await;
        let (mut view, mut rx) = a.subscribe_with_snapshot();
        for i in 3..8 {
            others.push(start(&net, i, 1));
        }
        others[1].leave().await;
        others[3].stop().await;
        wait_for(Duration::from_secs(30), "settled", || {
            a.members().len() == 5
        })
        .await;
        while let Ok(event) = rx.try_recv() {
            match event {
                MembershipEvent::NodeJoined(m) | MembershipEvent::NodeUpdated(m) => {
                    view.retain(|x| x.node_id() != m.node_id());
                    view.push(m);
                }
                MembershipEvent::NodeLeft { member, .. } => {
                    view.retain(|x| x.node_id() != member.node_id());
                }
            }
        }
        assert_eq!(names(&view), names(&a.members()));
        Ok(())
    })
}

#[test]
fn load_updates_reach_every_node() -> TestResult {
    paused(|| async {
        let net = MemNetwork::new(12);
        let nodes = cluster(&net, 4).await;
        let mut watch = nodes[3].subscribe();
        let load = NodeLoad {
            actors: 42,
            score: 700,
        };
        nodes[0].set_load(load);
        let event = next_matching(&mut watch, Duration::from_secs(5), |e| {
            matches!(e, MembershipEvent::NodeUpdated(_))
        })
        .await;
        assert_eq!(event.member().name().as_str(), name(0));
        assert_eq!(event.member().load(), Some(load));
        let id = nodes[0].local().node_id();
        wait_for(Duration::from_secs(5), "everyone has the load", || {
            nodes[1..]
                .iter()
                .all(|n| n.member(id).and_then(|m| m.load()) == Some(load))
        })
        .await;
        assert_eq!(nodes[0].local().load(), Some(load));
        Ok(())
    })
}
