//! The registry on real clusters (QUIC + TLS on loopback): formation, names that resolve on
//! every node, first-writer-wins, leader failover, and names released when their actor stops
//! or their node dies.
#![cfg(feature = "cluster")]

mod common;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::prelude::*;
use understudy::registry::{Registry, RegistryConfig, RegistryError};

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize, RemoteMessage)]
enum Work {
    Job(u64),
}

/// Forwards every job to the test.
#[derive(Actor)]
struct Worker {
    seen: mpsc::UnboundedSender<u64>,
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
struct Other;

async fn worker(node: &Node) -> (ActorRef<Work>, mpsc::UnboundedReceiver<u64>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let actor = node.spawn(Worker { seen: tx }).await.expect("spawn");
    (actor, rx)
}

/// `n` nodes, each running a registry with `config` (n0 has no seeds, so by default it forms
/// alone and the others are added).
async fn registry_cluster(n: usize, config: RegistryConfig) -> (Vec<Node>, Vec<Registry>) {
    let ca = ClusterCa::ephemeral("test");
    let registries: Vec<Registry> = (0..n)
        .map(|_| Registry::with_config(config.clone()))
        .collect();
    let nodes = common::cluster_with(&ca, n, None, WAIT, |i, b| {
        b.extension(registries[i].clone())
    })
    .await;
    (nodes, registries)
}

/// Waits until `check` holds, or fails the test with `what`.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
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
async fn settled(registries: &[&Registry], voters: usize) -> String {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_and_a_name_resolves_on_every_node() {
    let (nodes, registries) = registry_cluster(3, RegistryConfig::default()).await;
    let all: Vec<&Registry> = registries.iter().collect();
    settled(&all, 3).await;

    let (billing, mut jobs) = worker(&nodes[1]).await;
    let names1 = registries[1].consistent().expect("started");
    names1
        .register("billing", &billing)
        .await
        .expect("register");
    // Registering again is success (idempotent).
    names1
        .register("billing", &billing)
        .await
        .expect("register twice");

    for (i, registry) in registries.iter().enumerate() {
        let names = registry.consistent().expect("started");
        let found = names
            .whereis_linearizable::<Work>("billing")
            .await
            .expect("whereis");
        found.cast(Work::Job(i as u64)).expect("tell");
    }
    let mut got: Vec<u64> = Vec::new();
    for _ in 0..3 {
        got.push(
            tokio::time::timeout(WAIT, jobs.recv())
                .await
                .expect("a job")
                .expect("open"),
        );
    }
    got.sort();
    assert_eq!(got, vec![0, 1, 2]);

    // First writer wins: another node's actor gets the current holder back.
    let (rival, _) = worker(&nodes[2]).await;
    let names2 = registries[2].consistent().expect("started");
    match names2.register("billing", &rival).await {
        Err(RegistryError::AlreadyRegistered { name, owner }) => {
            assert_eq!(name, "billing");
            assert_eq!(owner.pid, billing.get_id().pid());
        }
        other => panic!("expected AlreadyRegistered, got {other:?}"),
    }
    // The wrong type is an error, not a panic or a wrong ref.
    assert!(matches!(
        names2.whereis_linearizable::<Other>("billing").await,
        Err(RegistryError::TypeMismatch { .. })
    ));
    // A bad name says what is wrong.
    assert!(matches!(
        names2.register("", &rival).await,
        Err(RegistryError::InvalidName { .. })
    ));

    // Unregistered from another node than the holder's; then the rival may take it.
    names2.unregister("billing").await.expect("unregister");
    assert!(matches!(
        names2.unregister("billing").await,
        Err(RegistryError::NotRegistered { .. })
    ));
    names2
        .register("billing", &rival)
        .await
        .expect("the name is free again");
    let found = registries[0]
        .consistent()
        .expect("started")
        .whereis_linearizable::<Work>("billing")
        .await
        .expect("whereis");
    assert_eq!(found.get_id().pid(), rival.get_id().pid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_and_writes_resume() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (nodes, registries) = registry_cluster(3, RegistryConfig::default()).await;
    let all: Vec<&Registry> = registries.iter().collect();
    let leader = settled(&all, 3).await;
    let dead = nodes
        .iter()
        .position(|n| n.name().as_str() == leader)
        .expect("leader node");
    nodes[dead].crash();
    registries[dead].shutdown().await;

    let alive: Vec<usize> = (0..3).filter(|i| *i != dead).collect();
    let survivor = alive[0];
    let (actor, _) = worker(&nodes[survivor]).await;
    let names = registries[survivor].consistent().expect("started");
    if let Err(e) = names.register("after-failover", &actor).await {
        for r in &registries {
            eprintln!("{:?}", r.status());
        }
        panic!("a write after the leader died: {e}");
    }
    let other = registries[alive[1]].consistent().expect("started");
    let found = other
        .whereis_linearizable::<Work>("after-failover")
        .await
        .expect("whereis on the other survivor");
    assert_eq!(found.get_id().pid(), actor.get_id().pid());
    let new_leader = registries[survivor].status().leader_name.expect("a leader");
    assert_ne!(new_leader, leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_released_when_their_actor_stops_or_their_node_dies() {
    let (nodes, registries) = registry_cluster(3, RegistryConfig::default()).await;
    let all: Vec<&Registry> = registries.iter().collect();
    let leader = settled(&all, 3).await;
    let names0 = registries[0].consistent().expect("started");

    // An actor that stops loses its names.
    let (short, _) = worker(&nodes[1]).await;
    let names1 = registries[1].consistent().expect("started");
    names1
        .register("short-lived", &short)
        .await
        .expect("register");
    names1
        .register("short-lived-2", &short)
        .await
        .expect("register");
    short.stop(None);
    until("the stopped actor's names to go", || {
        names0.owner("short-lived").is_none() && names0.owner("short-lived-2").is_none()
    })
    .await;

    // A node that dies loses its names (crash a follower, so the leader stays).
    let victim = (0..3)
        .find(|i| nodes[*i].name().as_str() != leader && *i != 0)
        .expect("a follower");
    let (held, _) = worker(&nodes[victim]).await;
    let names_v = registries[victim].consistent().expect("started");
    names_v
        .register("on-a-doomed-node", &held)
        .await
        .expect("register");
    until("the name to show on n0", || {
        names0.owner("on-a-doomed-node").is_some()
    })
    .await;
    nodes[victim].crash();
    registries[victim].shutdown().await;
    until("the dead node's name to go", || {
        names0.owner("on-a-doomed-node").is_none()
    })
    .await;
}
