//! Churn on a real cluster (QUIC + mTLS on loopback): 20 nodes come and go — they join, leave
//! or crash, and crashed ones come back as new runs — and afterwards every survivor's mesh
//! keeps connections to (redials) exactly its live members: no node that left or failed is
//! redialed for ever. Its own test binary, so this CPU-heavy test never competes with the
//! failure detectors of the other cluster tests (see `cluster_scale.rs`).
#![cfg(feature = "cluster")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use understudy::cluster::certs::ClusterCa;
use understudy::cluster::identity::{Incarnation, NodeName};
use understudy::cluster::node::{Node, NodeBuilder};

const WAIT: Duration = Duration::from_secs(60);
/// How often a node announces itself to members it considers down (so that the two sides of
/// a healed partition find each other). That traffic goes to nodes that are gone; short here
/// so that the stable window below spans many rounds of it.
const ANNOUNCE_DOWN: Duration = Duration::from_millis(500);

fn builder(ca: &ClusterCa, i: usize, incarnation: u64, seed: Option<SocketAddr>) -> NodeBuilder {
    let mut b = Node::builder("test", format!("n{i}"))
        .ephemeral_certs(ca)
        .incarnation(Incarnation::new(incarnation));
    if let Some(seed) = seed {
        b = b.seed(seed);
    }
    let membership = &mut b.config_mut().membership;
    membership.announce_down_interval = ANNOUNCE_DOWN;
    if i % 4 == 1 {
        // Some nodes can hold only one membership event per subscriber, so that what follows
        // the membership for the mesh falls behind and misses events.
        membership.event_buffer = 1;
    }
    b
}

async fn start(builder: NodeBuilder) -> Node {
    builder.start().await.expect("node starts")
}

/// Whether every survivor sees exactly the other survivors as members, and its mesh wants
/// exactly those; otherwise what is off.
fn settled(survivors: &BTreeMap<usize, Node>) -> Result<(), String> {
    let all: BTreeSet<NodeName> = survivors.values().map(|n| n.name().clone()).collect();
    for node in survivors.values() {
        let mut expected = all.clone();
        expected.remove(node.name());
        let live: BTreeSet<NodeName> = node.members().iter().map(|m| m.name().clone()).collect();
        if live != expected {
            return Err(format!(
                "{} has members {live:?}, expected {expected:?}",
                node.name()
            ));
        }
        let wanted: BTreeSet<NodeName> = node.mesh().wanted().into_iter().collect();
        if wanted != live {
            return Err(format!(
                "{} redials {wanted:?}, but its members are {live:?}",
                node.name()
            ));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_churn_each_survivor_redials_exactly_its_live_members() {
    let ca = ClusterCa::ephemeral("test");
    let mut nodes: BTreeMap<usize, Node> = BTreeMap::new();
    let seed = start(builder(&ca, 0, 1, None)).await;
    let seed_addr = seed.local_addr();
    nodes.insert(0, seed);
    for i in 1..10 {
        nodes.insert(i, start(builder(&ca, i, 1, Some(seed_addr))).await);
    }
    for node in nodes.values() {
        node.wait_for_members(9, WAIT).await.expect("ten nodes");
    }

    // Round one: n5..n9 go (the odd ones leave, the even ones crash), ten new nodes join,
    // and the crashed n6 and n8 come back as new runs.
    let mut leaving = Vec::new();
    let mut go = |nodes: &mut BTreeMap<usize, Node>, i: usize| {
        let node = nodes.remove(&i).expect("running");
        if i % 2 == 1 {
            leaving.push(tokio::spawn(async move { node.leave().await }));
        } else {
            node.crash();
        }
    };
    for i in 5..10 {
        go(&mut nodes, i);
    }
    for i in 10..20 {
        nodes.insert(i, start(builder(&ca, i, 1, Some(seed_addr))).await);
    }
    for i in [6, 8] {
        nodes.insert(i, start(builder(&ca, i, 2, Some(seed_addr))).await);
    }
    // Round two: n15..n19 go too.
    for i in 15..20 {
        go(&mut nodes, i);
    }
    for left in leaving {
        left.await.expect("leave");
    }
    assert_eq!(nodes.len(), 12, "n0..n4, n6, n8, n10..n14");

    // Failure detection takes a few seconds; then the redial sets must match the views...
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Err(off) = settled(&nodes) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled within {WAIT:?}: {off}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and stay matched while the survivors keep announcing to the departed: a window of
    // many announce rounds, checked throughout (not a wait for anything).
    let window = tokio::time::Instant::now() + ANNOUNCE_DOWN * 6;
    while tokio::time::Instant::now() < window {
        if let Err(off) = settled(&nodes) {
            panic!("after settling: {off}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
