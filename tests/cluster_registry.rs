//! The registry on real clusters (QUIC + TLS on loopback): formation, names that resolve on
//! every node, first-writer-wins, leader failover, and names released when their actor stops
//! or their node dies.
#![cfg(feature = "cluster")]

mod common;

use std::time::Duration;

use tokio::sync::mpsc;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::registry::{Registry, RegistryConfig, RegistryError};

use common::registry::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_node_answers_whereis_from_its_replica() {
    let ca = ClusterCa::ephemeral("test");
    let registries: Vec<Registry> = (0..4).map(|_| Registry::new()).collect();
    let nodes = common::cluster_with(&ca, 4, None, WAIT, |i, b| {
        let mut b = b.extension(registries[i].clone());
        // n3 may not vote: it is a client of the registry.
        b.config_mut().raft_eligible = i != 3;
        b
    })
    .await;
    let all: Vec<&Registry> = registries.iter().collect();
    let status = roles(&all[..3], 3, 0).await;
    assert!(!status.voters.contains(&"n3".to_owned()));
    assert_eq!(registries[3].status().raft_id, 0, "a client runs no Raft");
    registries[3]
        .wait_ready(WAIT)
        .await
        .expect("the client follows a member");

    // A write made elsewhere reaches the client's copy, and plain whereis answers from it.
    let (billing, mut jobs) = worker(&nodes[1]).await;
    let names1 = registries[1].consistent().expect("started");
    names1
        .register("billing", &billing)
        .await
        .expect("register");
    let client = registries[3].consistent().expect("started");
    until("the name on the client", || {
        client.owner("billing").is_some()
    })
    .await;
    client
        .whereis::<Work>("billing")
        .expect("whereis on the client")
        .cast(Work::Job(7))
        .expect("tell");
    assert_eq!(jobs.recv().await, Some(7));

    // A linearizable read on the client sees a write that just completed elsewhere.
    let (second, _) = worker(&nodes[2]).await;
    registries[2]
        .consistent()
        .expect("started")
        .register("second", &second)
        .await
        .expect("register");
    let found = client
        .whereis_linearizable::<Work>("second")
        .await
        .expect("a linearizable read on the client");
    assert_eq!(found.get_id().pid(), second.get_id().pid());

    // The client writes too (forwarded to the leader) and the members see it.
    let (mine, _) = worker(&nodes[3]).await;
    client
        .register("from-a-client", &mine)
        .await
        .expect("register from a client");
    let seen = registries[0]
        .consistent()
        .expect("started")
        .whereis_linearizable::<Work>("from-a-client")
        .await
        .expect("whereis on a member");
    assert_eq!(seen.get_id().pid(), mine.get_id().pid());
    let staleness = client.staleness();
    assert!(staleness.revision > 0);
    assert!(
        staleness
            .last_heard
            .is_some_and(|d| d < Duration::from_secs(5))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moves_off_the_leader_once_other_members_can_feed_it() {
    // n0 forms alone; n1 may not vote, so it is a client and can only follow n0, the
    // leader. Once n2 and n3 are voters, n1 must follow one of them: the leader feeds no
    // client while another member can, or its work grows with the cluster.
    let ca = ClusterCa::ephemeral("test");
    let registries: Vec<Registry> = (0..4).map(|_| Registry::new()).collect();
    let mut nodes: Vec<Node> = Vec::new();
    for (i, registry) in registries.iter().enumerate().take(2) {
        let mut b = builder(&ca, &format!("n{i}"), nodes.first(), registry);
        b.config_mut().raft_eligible = i != 1;
        nodes.push(b.start().await.expect("start"));
    }
    roles(&[&registries[0]], 1, 0).await;
    until("the client follows the only member, n0", || {
        registries[1].status().following.as_deref() == Some("n0")
            && registries[0].status().feeding == 1
    })
    .await;

    for (i, registry) in registries.iter().enumerate().skip(2) {
        let b = builder(&ca, &format!("n{i}"), nodes.first(), registry);
        nodes.push(b.start().await.expect("start"));
    }
    let members = [&registries[0], &registries[2], &registries[3]];
    let status = roles(&members, 3, 0).await;
    let leader = status.leader_name.clone().expect("a leader");
    until("the client follows a member that does not lead", || {
        let following = registries[1].status().following;
        following.is_some_and(|f| f != leader)
            && members
                .iter()
                .filter(|r| r.status().leader)
                .all(|r| r.status().feeding == 0)
    })
    .await;

    // Its copy still follows the log through the new member.
    let (billing, _) = worker(&nodes[2]).await;
    registries[2]
        .consistent()
        .expect("started")
        .register("billing", &billing)
        .await
        .expect("register");
    let client = registries[1].consistent().expect("started");
    until("the name on the client", || {
        client.owner("billing").is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_grow_to_five_and_shrink_back_as_nodes_come_and_go() {
    let ca = ClusterCa::ephemeral("test");
    let registries: Vec<Registry> = (0..5).map(|_| Registry::new()).collect();
    let mut nodes: Vec<Node> = Vec::new();
    for (i, registry) in registries.iter().enumerate().take(3) {
        let b = builder(&ca, &format!("n{i}"), nodes.first(), registry);
        nodes.push(b.start().await.expect("start"));
    }
    let first: Vec<&Registry> = registries.iter().take(3).collect();
    roles(&first, 3, 0).await;
    for (i, registry) in registries.iter().enumerate().skip(3) {
        let b = builder(&ca, &format!("n{i}"), nodes.first(), registry);
        nodes.push(b.start().await.expect("start"));
    }
    let all: Vec<&Registry> = registries.iter().collect();
    roles(&all, 5, 0).await;

    // Two voters leave (n3, n4, or whichever do not lead): back to three voters.
    let leaving: Vec<usize> = (1..5)
        .filter(|i| !registries[*i].status().leader)
        .take(2)
        .collect();
    for i in &leaving {
        // leave() has the registry hand over and stop first (Extension::leaving).
        nodes[*i].leave().await;
    }
    let staying: Vec<&Registry> = (0..5)
        .filter(|i| !leaving.contains(i))
        .map(|i| &registries[i])
        .collect();
    let status = roles(&staying, 3, 0).await;
    for i in &leaving {
        assert!(!status.voters.contains(&format!("n{i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_started_at_once_with_bootstrap_expect_three_form_one_registry() {
    let ca = ClusterCa::ephemeral("test");
    let config = RegistryConfig {
        bootstrap_expect: Some(3),
        ..RegistryConfig::default()
    };
    let registries: Vec<Registry> = (0..5)
        .map(|_| Registry::with_config(config.clone()))
        .collect();
    let _nodes = common::cluster_with(&ca, 5, None, WAIT, |i, b| {
        b.extension(registries[i].clone())
    })
    .await;
    let all: Vec<&Registry> = registries.iter().collect();
    let status = roles(&all, 5, 0).await;
    // One registry: every node follows the same leader and sees the same voters.
    until("every node to agree", || {
        all.iter().all(|r| {
            let s = r.status();
            s.member && s.leader_name == status.leader_name && s.voters.len() == 5
        })
    })
    .await;
    let leaders = all.iter().filter(|r| r.status().leader).count();
    assert_eq!(leaders, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_leaves_hands_over_and_writes_go_on() {
    let (nodes, registries) = registry_cluster(3, RegistryConfig::default()).await;
    let all: Vec<&Registry> = registries.iter().collect();
    let leader = settled(&all, 3).await;
    let old = nodes
        .iter()
        .position(|n| n.name().as_str() == leader)
        .expect("leader");
    registries[old].shutdown().await;
    // The leader handed over before it stopped (no election timeout to wait out).
    let others: Vec<&Registry> = (0..3)
        .filter(|i| *i != old)
        .map(|i| &registries[i])
        .collect();
    until("a new leader", || others.iter().any(|r| r.status().leader)).await;
    let (actor, _) = worker(&nodes[(old + 1) % 3]).await;
    registries[(old + 1) % 3]
        .consistent()
        .expect("started")
        .register("after-handover", &actor)
        .await
        .expect("a write after the handover");
}

/// Three nodes with their Raft stores under `dirs`, started in order (n0 first; the others
/// seeded with it).
async fn disk_cluster(ca: &ClusterCa, dirs: &[std::path::PathBuf]) -> (Vec<Node>, Vec<Registry>) {
    let registries: Vec<Registry> = dirs.iter().map(|_| Registry::new()).collect();
    let mut nodes: Vec<Node> = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut b = builder(ca, &format!("n{i}"), nodes.first(), &registries[i]);
        b.config_mut().data_dir = Some(dir.clone());
        nodes.push(b.start().await.expect("start"));
    }
    (nodes, registries)
}

async fn stop_all(nodes: Vec<Node>, registries: &[Registry]) {
    for (node, registry) in nodes.iter().zip(registries) {
        node.crash();
        registry.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_disk_keeps_the_names_and_the_raft_ids() {
    let ca = ClusterCa::ephemeral("test");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs: Vec<_> = (0..3).map(|i| tmp.path().join(format!("n{i}"))).collect();
    let (nodes, registries) = disk_cluster(&ca, &dirs).await;
    let all: Vec<&Registry> = registries.iter().collect();
    roles(&all, 3, 0).await;
    let ids: Vec<u64> = registries.iter().map(|r| r.status().raft_id).collect();
    let (actor, _) = worker(&nodes[1]).await;
    let owner = actor.get_id().pid();
    registries[1]
        .consistent()
        .expect("started")
        .register("durable", &actor)
        .await
        .expect("register");
    // The actor's node restarts too, so the leader would release its names once it sees the
    // new run; what is checked here is that the name survived the restart on disk.
    stop_all(nodes, &registries).await;

    let (_nodes, registries) = disk_cluster(&ca, &dirs).await;
    let all: Vec<&Registry> = registries.iter().collect();
    roles(&all, 3, 0).await;
    let again: Vec<u64> = registries.iter().map(|r| r.status().raft_id).collect();
    assert_eq!(again, ids, "each node rejoined as itself");
    let names = registries[0].consistent().expect("started");
    let seen = names
        .owner("durable")
        .expect("the name survived the restart");
    assert_eq!(seen.addr.pid, owner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_disk_rejoins_under_a_new_raft_id() {
    let ca = ClusterCa::ephemeral("test");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs: Vec<_> = (0..3).map(|i| tmp.path().join(format!("n{i}"))).collect();
    let (mut nodes, mut registries) = disk_cluster(&ca, &dirs).await;
    let all: Vec<&Registry> = registries.iter().collect();
    let leader = roles(&all, 3, 0).await.leader_name.expect("leader");
    let victim = (1..3)
        .find(|i| format!("n{i}") != leader)
        .expect("a follower");
    let old_id = registries[victim].status().raft_id;

    nodes[victim].crash();
    registries[victim].shutdown().await;
    std::fs::remove_dir_all(&dirs[victim]).expect("wipe the disk");
    let registry = Registry::new();
    let mut b = builder(&ca, &format!("n{victim}"), nodes.first(), &registry);
    b.config_mut().data_dir = Some(dirs[victim].clone());
    nodes[victim] = b.start().await.expect("restart");
    registries[victim] = registry;

    let new_id = registries[victim].status().raft_id;
    assert_ne!(new_id, old_id, "a wiped node never reuses its old Raft id");
    let all: Vec<&Registry> = registries.iter().collect();
    until("the node to vote again under its new id", || {
        all.iter()
            .map(|r| r.status())
            .any(|s| s.leader && !s.changing && s.voters.len() == 3 && s.standbys.is_empty())
            && registries[victim].status().member
    })
    .await;
    // Writes go on with the rejoined node.
    let (actor, _) = worker(&nodes[victim]).await;
    registries[victim]
        .consistent()
        .expect("started")
        .register("after-the-wipe", &actor)
        .await
        .expect("register");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_disk_stops_that_node_s_raft_and_the_others_go_on() {
    let ca = ClusterCa::ephemeral("test");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs: Vec<_> = (0..3).map(|i| tmp.path().join(format!("n{i}"))).collect();
    let (nodes, registries) = disk_cluster(&ca, &dirs).await;
    let all: Vec<&Registry> = registries.iter().collect();
    let leader = roles(&all, 3, 0).await.leader_name.expect("leader");
    let broken = (0..3).find(|i| format!("n{i}") == leader).expect("leader");
    assert!(registries[broken].break_disk());

    // The next write the broken leader must persist fails there: its Raft stops, with the
    // store's error in its status.
    let (actor, _) = worker(&nodes[(broken + 1) % 3]).await;
    let names = registries[(broken + 1) % 3].consistent().expect("started");
    names
        .register("after-the-disk-broke", &actor)
        .await
        .expect("the other two elect a leader and commit");
    until("the broken node to report its failure", || {
        registries[broken].status().failed.is_some()
    })
    .await;
    let status = registries[broken].status();
    assert!(
        !status.member,
        "a failed node no longer takes part: {status:?}"
    );
    // Its copy of the names still follows, as a client's does.
    let copy = registries[broken].consistent().expect("started");
    until("the broken node's copy to follow a member", || {
        copy.owner("after-the-disk-broke").is_some()
    })
    .await;
    // And it still writes, through the leader.
    let (mine, _) = worker(&nodes[broken]).await;
    copy.register("from-the-broken-node", &mine)
        .await
        .expect("a write forwarded from the broken node");
}

/// A peer that speaks the registry's channel with bytes of its own choosing.
struct Impostor {
    ctx: mpsc::UnboundedSender<(
        understudy::cluster::extension::ExtensionContext,
        understudy::cluster::extension::ExtensionInbox,
    )>,
}

impl understudy::cluster::extension::Extension for Impostor {
    fn name(&self) -> &'static str {
        understudy::registry::SERVICE
    }

    fn start(
        &self,
        ctx: understudy::cluster::extension::ExtensionContext,
    ) -> understudy::cluster::extension::Starting {
        let inbox = ctx.take_inbox().expect("inbox");
        let _ = self.ctx.send((ctx, inbox));
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_s_bad_bytes_and_request_floods_are_refused_and_the_node_goes_on() {
    use understudy::cluster::extension::{ExtensionError, ExtensionMessage};
    let ca = ClusterCa::ephemeral("test");
    let registry = Registry::new();
    let a = builder(&ca, "a", None, &registry).start().await.expect("a");
    registry.wait_ready(WAIT).await.expect("a forms alone");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let b = Node::builder("test", "b")
        .ephemeral_certs(&ca)
        .seed(a.local_addr())
        .extension(Impostor { ctx: tx })
        .start()
        .await
        .expect("b");
    b.wait_for_members(1, WAIT).await.expect("joined");
    let (ctx, mut inbox) = rx.recv().await.expect("the impostor's context");
    let to_a = a.name().clone();

    // Bytes that are no registry message: the notice is dropped, the request refused.
    ctx.notify(&to_a, vec![0xff; 64]).expect("notice sent");
    match ctx.request(&to_a, vec![0xff; 64], WAIT).await {
        Err(ExtensionError::Refused(why)) => assert!(why.contains("undecodable"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A flood of requests, bad and good, all at once: each is answered (or refused as busy),
    // none is left hanging, and the node keeps serving.
    let seeds = understudy::registry::fuzz::seeds();
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..4000 {
        let (_, body) = &seeds[i % seeds.len()];
        let body = body.clone();
        let ctx = ctx.clone();
        let to = to_a.clone();
        asks.spawn(async move { ctx.request(&to, body, WAIT).await });
    }
    let mut answered = 0;
    while let Some(done) = asks.join_next().await {
        match done.expect("an ask") {
            Ok(_) | Err(ExtensionError::Refused(_)) => answered += 1,
            Err(e) => panic!("a request was not answered: {e}"),
        }
    }
    assert_eq!(answered, 4000);
    // A subscription from the impostor gets the feed, like a client's.
    let subscribe = seeds
        .iter()
        .find(|(n, _)| n == "subscribe")
        .expect("a subscribe seed")
        .1
        .clone();
    ctx.request(&to_a, subscribe, WAIT)
        .await
        .expect("subscribed");
    let fed = tokio::time::timeout(WAIT, async {
        while let Some(message) = inbox.recv().await {
            if let ExtensionMessage::Notice { from, .. } = message
                && from == to_a
            {
                return true;
            }
        }
        false
    })
    .await
    .expect("a feed notice in time");
    assert!(fed);
    // The node is unharmed: it still registers and resolves names.
    let (actor, _) = worker(&a).await;
    let names = registry.consistent().expect("started");
    names
        .register("still-works", &actor)
        .await
        .expect("register");
    assert!(names.whereis::<Work>("still-works").is_ok());
    assert!(
        b.is_connected(a.runtime().node_id()),
        "the connection survived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_one_node_sees_names_come_and_go_on_others() {
    let (nodes, registries) = registry_cluster(3, RegistryConfig::default()).await;
    let all: Vec<&Registry> = registries.iter().collect();
    settled(&all, 3).await;
    let names0 = registries[0].consistent().expect("started");
    let (now, mut watch) = names0.watch("billing");
    assert!(now.is_none());
    let (under, mut jobs) = names0.watch_prefix("jobs/");
    assert!(under.is_empty());

    let (actor, _) = worker(&nodes[2]).await;
    let names2 = registries[2].consistent().expect("started");
    names2.register("billing", &actor).await.expect("register");
    names2.register("jobs/1", &actor).await.expect("register");
    names2.register("other", &actor).await.expect("register");
    let taken = tokio::time::timeout(WAIT, watch.recv())
        .await
        .expect("in time")
        .expect("a change");
    assert_eq!(taken.new.map(|o| o.addr.pid), Some(actor.get_id().pid()));
    let job = tokio::time::timeout(WAIT, jobs.recv())
        .await
        .expect("in time")
        .expect("a change");
    assert_eq!(job.name, "jobs/1");
    // The actor stops: its names go, and the watch says so, after the registration.
    actor.stop(None);
    let released = tokio::time::timeout(WAIT, watch.recv())
        .await
        .expect("in time")
        .expect("a change");
    assert!(released.new.is_none() && released.revision > taken.revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strong_registration_waits_for_every_live_node_and_names_a_laggard() {
    let ca = ClusterCa::ephemeral("test");
    let config = RegistryConfig {
        write_deadline: Duration::from_secs(60),
        ..RegistryConfig::default()
    };
    let registries: Vec<Registry> = (0..4)
        .map(|_| Registry::with_config(config.clone()))
        .collect();
    let nodes = common::cluster_with(&ca, 4, None, WAIT, |i, b| {
        let mut b = b.extension(registries[i].clone());
        // n3 is a client: its copy follows a member's feed.
        b.config_mut().raft_eligible = i != 3;
        b
    })
    .await;
    let members: Vec<&Registry> = registries.iter().take(3).collect();
    roles(&members, 3, 0).await;
    registries[3]
        .wait_ready(WAIT)
        .await
        .expect("the client follows");
    let strong = registries[0].strong().expect("started");

    // Every copy has the name the moment the call returns.
    let (first, _) = worker(&nodes[0]).await;
    strong
        .register("s1", &first)
        .await
        .expect("strong register");
    for r in &registries {
        assert!(r.consistent().expect("started").owner("s1").is_some());
    }

    // n3 lags: the call waits for it, and returns once it has caught up.
    registries[3].stall_replica(true);
    let (second, _) = worker(&nodes[0]).await;
    let waiting = {
        let strong = strong.clone();
        tokio::spawn(async move { strong.register("s2", &second).await })
    };
    let leader_copy = registries[0].consistent().expect("started");
    until("s2 committed", || leader_copy.owner("s2").is_some()).await;
    assert!(
        !waiting.is_finished(),
        "a strong registration returned before a live node had it"
    );
    registries[3].stall_replica(false);
    waiting
        .await
        .expect("task")
        .expect("acknowledged once n3 caught up");
    assert!(
        registries[3]
            .consistent()
            .expect("started")
            .owner("s2")
            .is_some()
    );

    // Past the deadline the laggard is named, and the registration is withdrawn.
    registries[3].stall_replica(true);
    let (third, _) = worker(&nodes[0]).await;
    match strong
        .clone()
        .deadline(Duration::from_secs(1))
        .register("s3", &third)
        .await
    {
        Err(RegistryError::NotAcked { missing, .. }) => assert_eq!(missing, ["n3"]),
        other => panic!("expected NotAcked naming n3, got {other:?}"),
    }
    until("s3 withdrawn", || leader_copy.owner("s3").is_none()).await;
    registries[3].stall_replica(false);
}
