//! Shared by the registry's cluster tests: a worker actor, clusters with a registry on every
//! node, and waits for the roles the reconciler settles on.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::prelude::*;
use understudy::registry::{Registry, RegistryConfig, RegistryStatus};

pub(crate) const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize, RemoteMessage)]
pub(crate) enum Work {
    Job(u64),
}

/// Forwards every job to the test.
#[derive(Actor)]
pub(crate) struct Worker {
    pub(crate) seen: mpsc::UnboundedSender<u64>,
}

impl Handler for Worker {
    type Msg = Work;
    async fn handle(&mut self, _: &Ctx<Self>, message: Work) -> Result<(), ActorError> {
        let Work::Job(n) = message;
        let _ = self.seen.send(n);
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, RemoteMessage)]
pub(crate) struct Other;

pub(crate) async fn worker(node: &Node) -> (ActorRef<Work>, mpsc::UnboundedReceiver<u64>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let actor = node.spawn(Worker { seen: tx }).await.expect("spawn");
    (actor, rx)
}

/// `n` nodes, each running a registry with `config` (n0 has no seeds, so by default it forms
/// alone and the others are added).
pub(crate) async fn registry_cluster(
    n: usize,
    config: RegistryConfig,
) -> (Vec<Node>, Vec<Registry>) {
    let ca = ClusterCa::ephemeral("test");
    let registries: Vec<Registry> = (0..n)
        .map(|_| Registry::with_config(config.clone()))
        .collect();
    let nodes = super::cluster_with(&ca, n, None, WAIT, |i, b| {
        b.extension(registries[i].clone())
    })
    .await;
    (nodes, registries)
}

/// Waits until `check` holds, or fails the test with `what`.
pub(crate) async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every live registry agrees on `voters` voters and one leader.
pub(crate) async fn settled(registries: &[&Registry], voters: usize) -> String {
    let mut leader = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    until(&format!("{voters} voters and one leader"), || {
        if tokio::time::Instant::now() + Duration::from_millis(50) > deadline {
            for r in registries {
                eprintln!("{:?}", r.status());
            }
        }
        let statuses: Vec<_> = registries.iter().map(|r| r.status()).collect();
        let leaders: Vec<_> = statuses.iter().filter(|s| s.leader).collect();
        if leaders.len() != 1 || leaders[0].voters.len() != voters || leaders[0].changing {
            return false;
        }
        leader = leaders[0].leader_name.clone().unwrap_or_default();
        statuses
            .iter()
            .all(|s| s.member && s.leader_name.as_deref() == Some(leader.as_str()))
    })
    .await;
    leader
}

/// A builder for node `name` of cluster `test`, seeded with `seed` if given.
pub(crate) fn builder(
    ca: &ClusterCa,
    name: &str,
    seed: Option<&Node>,
    registry: &Registry,
) -> understudy::cluster::node::NodeBuilder {
    let mut b = Node::builder("test", name)
        .ephemeral_certs(ca)
        .extension(registry.clone());
    if let Some(seed) = seed {
        b = b.seed(seed.local_addr());
    }
    b
}

/// Waits until the leader among `registries` reports `voters` voters and `standbys`
/// standbys with no change in flight; returns its status.
pub(crate) async fn roles(
    registries: &[&Registry],
    voters: usize,
    standbys: usize,
) -> RegistryStatus {
    let mut found = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    until(&format!("{voters} voters and {standbys} standbys"), || {
        if tokio::time::Instant::now() + Duration::from_millis(50) > deadline {
            for r in registries.iter().filter(|r| r.status().leader) {
                eprintln!("leader: {:?}", r.status());
            }
        }
        found = registries.iter().map(|r| r.status()).find(|s| {
            s.leader && !s.changing && s.voters.len() == voters && s.standbys.len() == standbys
        });
        found.is_some()
    })
    .await;
    found.expect("found")
}
