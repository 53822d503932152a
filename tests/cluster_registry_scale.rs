//! The registry's heavier cluster tests, in their own binary so they do not share the
//! machine with the others: twenty nodes over three failure domains, and a late node that
//! catches up from a snapshot in parts.
#![cfg(feature = "cluster")]

mod common;

use std::time::Duration;

use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::registry::{Registry, RegistryConfig};

use common::registry::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_keep_five_voters_and_four_standbys_over_three_domains() {
    let ca = ClusterCa::ephemeral("test");
    let n = 20;
    let registries: Vec<Registry> = (0..n).map(|_| Registry::new()).collect();
    let domain = |i: usize| format!("zone-{}", i % 3);
    let nodes = common::cluster_with(&ca, n, None, Duration::from_secs(60), |i, b| {
        let mut b = b.extension(registries[i].clone());
        b.config_mut().failure_domain = Some(domain(i));
        b
    })
    .await;
    let all: Vec<&Registry> = registries.iter().collect();
    let status = roles(&all, 5, 4).await;
    let index = |name: &str| name[1..].parse::<usize>().expect("nN");
    let mut per_domain = [0usize; 3];
    for v in &status.voters {
        per_domain[index(v) % 3] += 1;
    }
    per_domain.sort();
    assert_eq!(
        per_domain,
        [1, 2, 2],
        "voters spread over the three domains"
    );

    // A voter dies: a standby takes its seat and the voter count is restored.
    let victim_name = status
        .voters
        .iter()
        .find(|v| Some(*v) != status.leader_name.as_ref())
        .expect("a follower voter")
        .clone();
    let victim = index(&victim_name);
    let standbys_before = status.standbys.clone();
    nodes[victim].crash();
    registries[victim].shutdown().await;
    let alive: Vec<&Registry> = (0..n)
        .filter(|i| *i != victim)
        .map(|i| &registries[i])
        .collect();
    let mut after = None;
    until("a standby promoted in the dead voter's place", || {
        after = alive.iter().map(|r| r.status()).find(|s| {
            s.leader
                && !s.changing
                && s.voters.len() == 5
                && !s.voters.contains(&victim_name)
                && s.standbys.len() == 4
        });
        after.is_some()
    })
    .await;
    let after = after.expect("found");
    let promoted: Vec<&String> = after
        .voters
        .iter()
        .filter(|v| !status.voters.contains(v))
        .collect();
    assert_eq!(promoted.len(), 1);
    assert!(
        standbys_before.contains(promoted[0]),
        "the new voter was a standby: {promoted:?} not in {standbys_before:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_catches_up_from_a_snapshot_sent_in_parts() {
    let config = RegistryConfig {
        max_voters: 3,
        snapshot_every: 256,
        ..RegistryConfig::default()
    };
    let ca = ClusterCa::ephemeral("test");
    let registries: Vec<Registry> = (0..3)
        .map(|_| Registry::with_config(config.clone()))
        .collect();
    let nodes = common::cluster_with(&ca, 3, None, WAIT, |i, b| {
        b.extension(registries[i].clone())
    })
    .await;
    let all: Vec<&Registry> = registries.iter().collect();
    settled(&all, 3).await;
    // Enough names, long enough, that the snapshot needs more than one 1 MiB part, and
    // enough entries that the log the late node would need is purged.
    let (actor, _) = worker(&nodes[1]).await;
    let names = registries[1].consistent().expect("started");
    let total = 6000;
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..64 {
        let names = names.clone();
        let actor = actor.clone();
        writers.spawn(async move {
            for i in (w..total).step_by(64) {
                let name = format!("{i:06}-{}", "x".repeat(200));
                names.register(&name, &actor).await.expect("register");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("a writer");
    }
    let late = Registry::with_config(config);
    let _late_node = Node::builder("test", "late")
        .ephemeral_certs(&ca)
        .seed(nodes[0].local_addr())
        .extension(late.clone())
        .start()
        .await
        .expect("start");
    until("the late node to stand by with every name", || {
        let status = late.status();
        status.member && late.consistent().map(|c| c.names().len()).unwrap_or(0) == total
    })
    .await;
}
