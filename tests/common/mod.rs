//! Shared by the cluster integration tests: forming a cluster of real nodes on loopback.
#![cfg(feature = "cluster")]
#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::time::Duration;

pub(crate) mod actors;
pub(crate) mod registry;

use understudy::cluster::certs::ClusterCa;
use understudy::cluster::mesh::FaultPlan;
use understudy::cluster::node::{Node, NodeBuilder};

/// Starts `n` nodes `n0..` of cluster `test`, all seeded with `n0` (and routed through
/// `plan` if given), and waits until each sees and is connected to all the others.
pub(crate) async fn cluster(
    ca: &ClusterCa,
    n: usize,
    plan: Option<&FaultPlan>,
    wait: Duration,
) -> Vec<Node> {
    cluster_with(ca, n, plan, wait, |_, b| b).await
}

/// [`cluster`], with each builder passed through `extend(i, builder)` first (extensions).
pub(crate) async fn cluster_with(
    ca: &ClusterCa,
    n: usize,
    plan: Option<&FaultPlan>,
    wait: Duration,
    extend: impl Fn(usize, NodeBuilder) -> NodeBuilder,
) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let mut b = extend(
            i,
            Node::builder("test", format!("n{i}")).ephemeral_certs(ca),
        );
        if let Some(first) = nodes.first() {
            b = b.seed(first.local_addr());
        }
        if let Some(p) = plan {
            b = b.fault_plan(p.clone());
        }
        nodes.push(b.start().await.expect("node starts"));
    }
    // Seeds + SWIM + push-pull sync: everyone learns of everyone and connects.
    for node in &nodes {
        node.wait_for_members(n - 1, wait)
            .await
            .expect("full membership");
    }
    nodes
}
