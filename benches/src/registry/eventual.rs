//! The Eventual scope (issue #11): how long a registration takes to be visible on every node
//! of a 10-node cluster, beside a Consistent registration's on the same cluster.
//!
//! Ten nodes in this process (one 2-worker runtime, QUIC + mTLS), fully connected, the
//! registry's defaults (so 5 voters, 4 standbys and one client for the Consistent names).
//! Each sample registers a fresh name from node `i % 10` with an actor of that node, and the
//! clock runs until every node's copy names that actor: an Eventual registration returns at
//! once and reaches the others by gossip (one delta per peer); a Consistent one returns
//! after its Raft commit and reaches the others by replication and the client's feed. The
//! copies are polled, yielding between polls, so the poller shares the two cores with the
//! ten nodes.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::prelude::*;
use understudy::registry::{NameRevoked, Registry};

use super::load;
use super::{Bound, Row, Test};
use crate::bench::Metrics;

/// The cluster's size.
pub(crate) const NODES: usize = 10;

const CLUSTER: &str = "registry-bench-eventual";

/// What a holder of an Eventual name takes: the notice of a lost name, if it ever loses one.
#[derive(Debug, Clone, Serialize, Deserialize, RemoteMessage)]
enum HolderMsg {
    Revoked(NameRevoked),
}

impl From<NameRevoked> for HolderMsg {
    fn from(revoked: NameRevoked) -> Self {
        HolderMsg::Revoked(revoked)
    }
}

#[derive(Actor)]
struct Holder;

impl Handler for Holder {
    type Msg = HolderMsg;
    async fn handle(&mut self, _: &Ctx<Self>, _: HolderMsg) -> Result<(), ActorError> {
        Ok(())
    }
}

/// Waits until every registry's copy names `name` (through `held`), returning how long.
async fn visible(registries: &[Registry], held: impl Fn(&Registry) -> bool) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    while !registries.iter().all(&held) {
        assert!(
            Instant::now() < deadline,
            "a registration never reached every node"
        );
        tokio::task::yield_now().await;
    }
    started.elapsed()
}

/// `samples` registrations in each scope (after a tenth as many of warm-up).
pub(crate) async fn visibility(samples: usize) -> Metrics {
    let ca = ClusterCa::ephemeral(CLUSTER);
    let mut nodes: Vec<Node> = Vec::new();
    let mut registries: Vec<Registry> = Vec::new();
    for i in 0..NODES {
        let registry = Registry::new();
        let mut b = Node::builder(CLUSTER, format!("n{i}"))
            .ephemeral_certs(&ca)
            .extension(registry.clone());
        if let Some(first) = nodes.first() {
            b = b.seed(first.local_addr());
        }
        nodes.push(b.start().await.expect("a node starts"));
        registries.push(registry);
    }
    for node in &nodes {
        node.wait_for_members(NODES - 1, Duration::from_secs(60))
            .await
            .expect("the cluster forms");
    }
    for r in &registries {
        r.wait_ready(Duration::from_secs(60))
            .await
            .expect("the registry forms");
    }
    let warmup = (samples / 10).max(5);
    let mut eventual = Vec::new();
    let mut consistent = Vec::new();
    for i in 0..warmup + samples {
        let at = i % NODES;
        let actor = nodes[at].spawn(Holder).await.expect("spawn");

        let name = format!("ev-{i}");
        registries[at]
            .eventual()
            .expect("started")
            .register(&name, &actor)
            .expect("an eventual registration");
        let took = visible(&registries, |r| {
            r.eventual().expect("started").owner(&name).is_some()
        })
        .await;
        if i >= warmup {
            eventual.push(took);
        }

        let name = format!("co-{i}");
        let started = Instant::now();
        registries[at]
            .consistent()
            .expect("started")
            .register(&name, &actor)
            .await
            .expect("a consistent registration");
        let took = started.elapsed()
            + visible(&registries, |r| {
                r.consistent().expect("started").owner(&name).is_some()
            })
            .await;
        if i >= warmup {
            consistent.push(took);
        }
    }
    let (e50, e99) = load::percentiles(eventual);
    let (c50, c99) = load::percentiles(consistent);
    vec![
        ("eventual_visible_p50_ms", e50 * 1e3),
        ("eventual_visible_p99_ms", e99 * 1e3),
        ("consistent_visible_p50_ms", c50 * 1e3),
        ("consistent_visible_p99_ms", c99 * 1e3),
    ]
}

/// The eventual test's rows.
pub(super) fn rows() -> Vec<Row> {
    let row = |metric, label: &str, targets| Row {
        test: Test::Eventual,
        size: 0,
        metric,
        label: label.to_owned(),
        higher_is_better: false,
        targets,
    };
    vec![
        row(
            "eventual_visible_p50_ms",
            "Eventual registration visible on all of 10 nodes, p50 (ms)",
            vec![],
        ),
        row(
            "eventual_visible_p99_ms",
            "Eventual registration visible on all of 10 nodes, p99 (ms)",
            vec![("understudy-mem", Bound::AtMost(50.0))],
        ),
        row(
            "consistent_visible_p50_ms",
            "Consistent registration (call included) visible on all of 10 nodes, p50 (ms)",
            vec![],
        ),
        row(
            "consistent_visible_p99_ms",
            "Consistent registration (call included) visible on all of 10 nodes, p99 (ms)",
            vec![],
        ),
    ]
}
