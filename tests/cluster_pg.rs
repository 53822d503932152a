//! Process groups on real clusters (QUIC + TLS on loopback): convergence of concurrent joins,
//! members that stop, nodes that die, partitions that heal, and monitors under churn.
#![cfg(feature = "cluster")]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::extension::{Extension, ExtensionContext, Starting};
use understudy::cluster::mesh::FaultPlan;
use understudy::cluster::node::Node;
use understudy::pg::core::MAX_JOINS;
use understudy::pg::wire::{Envelope, PeerMessage, SyncedMember};
use understudy::pg::{MONITOR_BACKLOG, Pg, PgError, PgEvent, Scope, Subscription};
use understudy::prelude::*;
use understudy::{ActorAddr, NodeId, tell};

const WAIT: Duration = Duration::from_secs(20);

/// What a group member receives.
#[derive(Debug, Clone, Serialize, Deserialize, RemoteMessage)]
enum Work {
    Job(u64),
}

/// Forwards every job to the test.
#[derive(Actor)]
struct Worker {
    seen: Option<mpsc::UnboundedSender<u64>>,
}

impl Handler for Worker {
    type Msg = Work;
    async fn handle(&mut self, _: &Ctx<Self>, message: Work) -> Result<(), ActorError> {
        let Work::Job(n) = message;
        if let Some(seen) = &self.seen {
            let _ = seen.send(n);
        }
        Ok(())
    }
}

/// Another message type, for the type checks.
#[derive(Debug, Clone, Serialize, Deserialize, RemoteMessage)]
struct Other;

#[derive(Actor)]
struct OtherActor;

impl Handler for OtherActor {
    type Msg = Other;
    async fn handle(&mut self, _: &Ctx<Self>, _: Other) -> Result<(), ActorError> {
        Ok(())
    }
}

/// `n` nodes running pg (anti-entropy every `period`), fully connected.
async fn pg_cluster(n: usize, plan: Option<&FaultPlan>, period: Duration) -> (Vec<Node>, Vec<Pg>) {
    let ca = ClusterCa::ephemeral("test");
    let pgs: Vec<Pg> = (0..n).map(|_| Pg::with_anti_entropy(period)).collect();
    let nodes = common::cluster_with(&ca, n, plan, WAIT, |i, b| b.extension(pgs[i].clone())).await;
    (nodes, pgs)
}

async fn worker(node: &Node) -> ActorRef<Work> {
    node.spawn(Worker { seen: None }).await.expect("spawn")
}

/// The members of `group` as addresses (sorted, duplicates kept), as `node` sees them.
fn view(scope: &Scope, group: &str) -> Vec<ActorAddr> {
    let mut out: Vec<ActorAddr> = scope.members(group).iter().map(|m| m.addr()).collect();
    out.sort();
    out
}

/// Waits until every scope's view of `group` equals `want` (sorted addresses).
async fn converge(scopes: &[Scope], group: &str, want: &[ActorAddr]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let views: Vec<Vec<ActorAddr>> = scopes.iter().map(|s| view(s, group)).collect();
        if views.iter().all(|v| v == want) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("no convergence on {group:?}: want {want:?}, views {views:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn addr_of<M: ractor::Message>(node: &Node, actor: &ActorRef<M>) -> ActorAddr {
    ActorAddr {
        node: node.node_id(),
        pid: actor.get_id().pid(),
    }
}

fn default_scopes(pgs: &[Pg]) -> Vec<Scope> {
    pgs.iter()
        .map(|p| p.default_scope().expect("started"))
        .collect()
}

async fn next(sub: &mut Subscription) -> PgEvent {
    tokio::time::timeout(WAIT, sub.recv())
        .await
        .expect("an event in time")
        .expect("subscription open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_on_three_nodes_converge_and_broadcast_reaches_every_member() {
    let (nodes, pgs) = pg_cluster(3, None, Duration::from_secs(1)).await;
    let scopes = default_scopes(&pgs);
    let (tx, mut seen) = mpsc::unbounded_channel();
    let mut want = Vec::new();
    for (node, scope) in nodes.iter().zip(&scopes) {
        for _ in 0..2 {
            let w = node
                .spawn(Worker {
                    seen: Some(tx.clone()),
                })
                .await
                .expect("spawn");
            scope.join("workers", &w).expect("join");
            want.push(addr_of(node, &w));
        }
    }
    want.sort();
    converge(&scopes, "workers", &want).await;
    for scope in &scopes {
        assert_eq!(scope.get_local_members::<Work>("workers").unwrap().len(), 2);
        assert_eq!(scope.which_groups(), vec!["workers".to_string()]);
    }
    assert_eq!(
        scopes[1].broadcast("workers", Work::Job(7)).await.unwrap(),
        6
    );
    for _ in 0..6 {
        let n = tokio::time::timeout(WAIT, seen.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 7);
    }
    assert_eq!(
        scopes[2].broadcast_local("workers", Work::Job(8)).unwrap(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_joins_not_joined_and_type_mismatch_are_errors_not_panics() {
    let (nodes, pgs) = pg_cluster(2, None, Duration::from_secs(1)).await;
    let scopes = default_scopes(&pgs);
    let w = worker(&nodes[0]).await;
    scopes[0].join("g", &w).unwrap();
    scopes[0].join("g", &w).unwrap();
    let me = addr_of(&nodes[0], &w);
    converge(&scopes, "g", &[me, me]).await;
    scopes[0].leave("g", &w).unwrap();
    converge(&scopes, "g", &[me]).await;
    scopes[0].leave("g", &w).unwrap();
    converge(&scopes, "g", &[]).await;
    assert_eq!(
        scopes[0].leave("g", &w),
        Err(PgError::NotJoined { group: "g".into() })
    );

    // One message type per group.
    scopes[0].join("g", &w).unwrap();
    let other = nodes[0].spawn(OtherActor).await.unwrap();
    assert!(matches!(
        scopes[0].join("g", &other),
        Err(PgError::TypeMismatch { .. })
    ));
    assert!(matches!(
        scopes[0].get_members::<Other>("g").await,
        Err(PgError::TypeMismatch { .. })
    ));
    let (members, sub) = scopes[0].monitor("g");
    assert!(matches!(
        members[0].typed::<Other>().await,
        Err(PgError::MemberType { .. })
    ));
    assert!(members[0].typed::<Work>().await.is_ok());
    assert_eq!(scopes[0].monitor_count(), 1);
    sub.demonitor();
    assert_eq!(
        scopes[0].monitor_count(),
        0,
        "demonitor removes the monitor"
    );

    // Only local actors join here.
    converge(&scopes, "g", &[me]).await;
    let remote = scopes[1].get_members::<Work>("g").await.unwrap().remove(0);
    assert!(matches!(
        scopes[1].join("g", &remote),
        Err(PgError::NotLocal { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_leaves_everywhere_with_events() {
    let (nodes, pgs) = pg_cluster(3, None, Duration::from_secs(1)).await;
    let scopes = default_scopes(&pgs);
    let (_, mut on2) = scopes[2].monitor("a");
    let w = worker(&nodes[0]).await;
    scopes[0].join("a", &w).unwrap();
    scopes[0].join("b", &w).unwrap();
    let me = addr_of(&nodes[0], &w);
    converge(&scopes, "a", &[me]).await;
    converge(&scopes, "b", &[me]).await;
    assert!(matches!(next(&mut on2).await, PgEvent::Join { .. }));
    w.stop(None);
    converge(&scopes, "a", &[]).await;
    converge(&scopes, "b", &[]).await;
    match next(&mut on2).await {
        PgEvent::Leave { group, members } => {
            assert_eq!(group, "a");
            assert_eq!(members.len(), 1);
        }
        other => panic!("expected a leave, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_takes_its_members_out_everywhere() {
    let (nodes, pgs) = pg_cluster(5, None, Duration::from_secs(1)).await;
    let scopes = default_scopes(&pgs);
    let mut want = Vec::new();
    for (node, scope) in nodes.iter().zip(&scopes) {
        let w = worker(node).await;
        scope.join("all", &w).unwrap();
        want.push(addr_of(node, &w));
    }
    want.sort();
    converge(&scopes, "all", &want).await;
    let (snapshot, mut events) = scopes[1].monitor_scope();
    assert_eq!(snapshot["all"].len(), 5);
    nodes[4].crash();
    let dead: NodeId = nodes[4].node_id();
    want.retain(|a| a.node != dead);
    converge(&scopes[..4], "all", &want).await;
    match next(&mut events).await {
        PgEvent::Leave { group, members } => {
            assert_eq!(group, "all");
            assert_eq!(members.len(), 1);
            assert_eq!(members[0].addr().node, dead);
        }
        other => panic!("expected a leave, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_diverges_and_heals_to_one_view() {
    let plan = FaultPlan::new(11);
    let (nodes, pgs) = pg_cluster(5, Some(&plan), Duration::from_millis(500)).await;
    let scopes = default_scopes(&pgs);
    // Members on every node before the cut.
    let mut want = Vec::new();
    for (node, scope) in nodes.iter().zip(&scopes) {
        let w = worker(node).await;
        scope.join("p", &w).unwrap();
        want.push(addr_of(node, &w));
    }
    want.sort();
    converge(&scopes, "p", &want).await;

    let left: Vec<_> = nodes[..2].iter().map(|n| n.local_addr()).collect();
    let right: Vec<_> = nodes[2..].iter().map(|n| n.local_addr()).collect();
    plan.split(&left, &right);
    // Each side declares the other down: the other side's members leave there.
    let side = |want: &[ActorAddr], range: std::ops::Range<usize>| -> Vec<ActorAddr> {
        let ids: Vec<NodeId> = nodes[range].iter().map(|n| n.node_id()).collect();
        want.iter()
            .copied()
            .filter(|a| ids.contains(&a.node))
            .collect()
    };
    converge(&scopes[..2], "p", &side(&want, 0..2)).await;
    converge(&scopes[2..], "p", &side(&want, 2..5)).await;
    // Each side keeps working while cut off.
    for (node, scope) in nodes.iter().zip(&scopes) {
        let w = worker(node).await;
        scope.join("p", &w).unwrap();
        want.push(addr_of(node, &w));
    }
    want.sort();
    let mut left_view: Vec<ActorAddr> = side(&want, 0..2);
    left_view.sort();
    converge(&scopes[..2], "p", &left_view).await;

    plan.heal_all();
    let healed = tokio::time::Instant::now();
    for node in &nodes {
        node.wait_for_members(4, WAIT).await.expect("healed");
    }
    let reconnected = healed.elapsed();
    converge(&scopes, "p", &want).await;
    // Information only (never asserted): how long after the heal every view was whole.
    eprintln!(
        "pg views converged {:?} after the heal ({reconnected:?} to reconnect; anti-entropy period 500 ms)",
        healed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_created_during_churn_see_a_snapshot_plus_exactly_the_later_changes() {
    let (nodes, pgs) = pg_cluster(3, None, Duration::from_secs(1)).await;
    let scopes = default_scopes(&pgs);
    // Churn on every node: joins and leaves of the same group.
    let mut churners = Vec::new();
    for (node, scope) in nodes.iter().zip(&scopes) {
        let node = node.clone();
        let scope = scope.clone();
        churners.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..40 {
                let w = worker(&node).await;
                scope.join("churn", &w).unwrap();
                mine.push(w);
                if i % 3 == 2 {
                    let gone = mine.remove(0);
                    scope.leave("churn", &gone).unwrap();
                }
                tokio::task::yield_now().await;
            }
            mine.iter()
                .map(|w| addr_of(&node, w))
                .collect::<Vec<ActorAddr>>()
        }));
    }
    // Monitors taken mid-churn, on every node.
    let mut monitors = Vec::new();
    for scope in &scopes {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (snapshot, sub) = scope.monitor("churn");
        monitors.push((snapshot, sub));
    }
    let mut want = Vec::new();
    for c in churners {
        want.extend(c.await.unwrap());
    }
    want.sort();
    converge(&scopes, "churn", &want).await;
    // Replaying each monitor's events on its snapshot gives exactly the final view.
    for (i, (snapshot, mut sub)) in monitors.into_iter().enumerate() {
        let mut counts: BTreeMap<ActorAddr, i64> = BTreeMap::new();
        for m in &snapshot {
            *counts.entry(m.addr()).or_default() += 1;
        }
        while let Some(event) = sub.try_recv().expect("monitor alive") {
            let (sign, members) = match &event {
                PgEvent::Join { members, .. } => (1, members),
                PgEvent::Leave { members, .. } => (-1, members),
            };
            for m in members {
                let a = m.addr();
                let c = counts.entry(a).or_default();
                *c += sign;
                assert!(
                    *c >= 0 && *c <= 1,
                    "node {i}: {a} counted {c}: a duplicate or a gap"
                );
            }
        }
        let got: Vec<ActorAddr> = counts
            .into_iter()
            .filter(|(_, c)| *c > 0)
            .map(|(a, _)| a)
            .collect();
        assert_eq!(got, want, "node {i}: snapshot + events != final view");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_independent_and_a_late_scope_gets_the_current_members() {
    let (nodes, pgs) = pg_cluster(3, None, Duration::from_secs(1)).await;
    let defaults = default_scopes(&pgs);
    // `chat` runs on n0 and n1 only, for now.
    let chat: Vec<Scope> = pgs[..2].iter().map(|p| p.scope("chat").unwrap()).collect();
    let w0 = worker(&nodes[0]).await;
    chat[0].join("room", &w0).unwrap();
    let me = addr_of(&nodes[0], &w0);
    converge(&chat, "room", &[me]).await;
    // Not in the default scope, anywhere.
    for scope in &defaults {
        assert!(scope.members("room").is_empty());
    }
    // n2 starts `chat` later: it gets the members the others have, and sends its own.
    let w2 = worker(&nodes[2]).await;
    let late = pgs[2].scope("chat").unwrap();
    late.join("room", &w2).unwrap();
    let mut want = vec![me, addr_of(&nodes[2], &w2)];
    want.sort();
    let all = vec![chat[0].clone(), chat[1].clone(), late];
    converge(&all, "room", &want).await;
    assert_eq!(
        pgs[2].scopes(),
        vec!["chat".to_string(), "default".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demonitor_stops_delivery_and_a_pg_runs_on_one_node_only() {
    let (nodes, pgs) = pg_cluster(2, None, Duration::from_secs(1)).await;
    let scopes = default_scopes(&pgs);
    let (_, mut kept) = scopes[1].monitor("g");
    let (_, dropped) = scopes[1].monitor("g");
    assert_eq!(scopes[1].monitor_count(), 2);
    let w = worker(&nodes[0]).await;
    scopes[0].join("g", &w).unwrap();
    assert!(matches!(next(&mut kept).await, PgEvent::Join { .. }));
    // `dropped` has the same event queued; demonitor drops it with the monitor.
    dropped.demonitor();
    assert_eq!(scopes[1].monitor_count(), 1);
    scopes[0].leave("g", &w).unwrap();
    assert!(matches!(next(&mut kept).await, PgEvent::Leave { .. }));

    // One `Pg` value is one node's service: a second node refuses it, with a clear error.
    let ca = ClusterCa::ephemeral("other");
    let refused = Node::builder("other", "x")
        .ephemeral_certs(&ca)
        .extension(pgs[0].clone())
        .start()
        .await;
    let Err(error) = refused else {
        panic!("a second node started with the same Pg");
    };
    let cause = std::error::Error::source(&error)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(cause.contains("one Pg per node"), "{error}: {cause}");
    // And a Pg that was never started says so.
    assert_eq!(Pg::new().default_scope().err(), Some(PgError::NotStarted));
}

/// A node's `pg` channel in the hands of the test: it sends whatever notices the test makes
/// (a peer that does not run pg's code) and ignores what it receives.
#[derive(Clone, Default)]
struct Forger {
    ctx: Arc<Mutex<Option<ExtensionContext>>>,
}

impl Extension for Forger {
    fn name(&self) -> &'static str {
        understudy::pg::SERVICE
    }

    fn start(&self, ctx: ExtensionContext) -> Starting {
        let slot = self.ctx.clone();
        Box::pin(async move {
            let mut inbox = ctx.take_inbox().ok_or("inbox taken")?;
            tokio::spawn(async move { while inbox.recv().await.is_some() {} });
            *slot.lock().unwrap() = Some(ctx);
            Ok(())
        })
    }
}

impl Forger {
    /// Sends `message` for the default scope to `to`.
    fn send(&self, to: &Node, message: PeerMessage) {
        let body = Envelope {
            scope: understudy::pg::DEFAULT_SCOPE.to_owned(),
            message,
        }
        .encode();
        let ctx = self.ctx.lock().unwrap().clone().expect("forger started");
        ctx.notify(to.name(), body).expect("notice sent");
    }
}

/// Tasks alive on this test's runtime: every actor (a proxy too) runs as one.
fn tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits until `done()` holds, failing with `what` after [`WAIT`].
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A peer's notice is checked whole before anything is made of it, and remote members cost
/// no actor until a ref to them is asked for. Node `n1` is not a pg node but the test's
/// forger; its 1,000 actors exist, so a proxy made for one would live on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers_members_make_no_actor_until_a_ref_is_asked_for() {
    const N: u64 = 1_000;
    let ca = ClusterCa::ephemeral("test");
    let pg = Pg::new();
    let forger = Forger::default();
    let nodes = common::cluster_with(&ca, 2, None, WAIT, |i, b| {
        if i == 0 {
            b.extension(pg.clone())
        } else {
            b.extension(forger.clone())
        }
    })
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let scope = pg.default_scope().unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let mut pids = Vec::new();
    let mut actors = Vec::new();
    for _ in 0..N {
        let w = b
            .spawn(Worker {
                seen: Some(tx.clone()),
            })
            .await
            .unwrap();
        b.export(&w);
        pids.push(w.get_id().pid());
        actors.push(w);
    }
    let sync = |groups: Vec<(String, Vec<SyncedMember>)>| PeerMessage::Sync {
        version: 1,
        groups,
        reply: false,
    };
    let members = |count: u32| -> Vec<SyncedMember> {
        pids.iter().map(|pid| (*pid, Work::TAG, count)).collect()
    };
    let before = tasks();

    // Over the limit: every pid once, and one of them MAX_JOINS + 1 times in all.
    let mut over = members(1);
    over.push((pids[0], Work::TAG, MAX_JOINS));
    forger.send(a, sync(vec![("g".into(), over)]));
    until("the over-limit sync is refused", || scope.rejected() == 1).await;
    assert!(scope.members("g").is_empty());
    let made = tasks().saturating_sub(before);
    assert!(made < 100, "a refused notice made {made} tasks");

    // Within the limit: 1,000 remote members, stored, no actor made for them.
    forger.send(a, sync(vec![("g".into(), members(1))]));
    until("the sync is applied", || {
        scope.members("g").len() == N as usize
    })
    .await;
    assert_eq!(scope.rejected(), 1);
    let made = tasks().saturating_sub(before);
    assert!(made < 100, "1,000 remote members made {made} tasks");

    // A broadcast goes by address: every member gets it, and no proxy per member is made.
    assert_eq!(
        scope.broadcast("g", Work::Job(1)).await.unwrap(),
        N as usize
    );
    for _ in 0..N {
        let got = tokio::time::timeout(WAIT, seen.recv()).await.unwrap();
        assert_eq!(got, Some(1));
    }
    let made = tasks().saturating_sub(before);
    assert!(
        made < 100,
        "a broadcast to 1,000 remote members made {made} tasks"
    );

    // Refs are made when asked for (one proxy each), and kept for the next lookup.
    let refs = scope.get_members::<Work>("g").await.unwrap();
    assert_eq!(refs.len(), N as usize);
    let with_refs = tasks();
    assert!(
        with_refs.saturating_sub(before) >= N as usize,
        "refs to 1,000 remote members made only {} tasks",
        with_refs - before
    );
    for r in &refs {
        tell(r, Work::Job(2)).unwrap();
    }
    for _ in 0..N {
        let got = tokio::time::timeout(WAIT, seen.recv()).await.unwrap();
        assert_eq!(got, Some(2));
    }
    let again = scope.get_members::<Work>("g").await.unwrap();
    assert_eq!(again.len(), N as usize);
    let more = tasks().saturating_sub(with_refs);
    assert!(more < 100, "a second lookup made {more} tasks");
    let member = scope.members("g").remove(0);
    assert!(member.typed::<Work>().await.is_ok());
    drop(actors);
}

/// A monitor whose subscriber does not read while a peer changes a group as fast as it can:
/// its queue stops at [`MONITOR_BACKLOG`] member occurrences (about 4 MiB), then the
/// subscriber reads what was queued and `MonitorOverflow`, and the monitor is gone. A
/// subscriber that reads (the peer waits for it to come within half a backlog) keeps its monitor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_that_does_not_read_is_bounded_under_a_peers_flood() {
    const BATCH: usize = 1_000;
    let (nodes, pgs) = pg_cluster(2, None, Duration::from_secs(1)).await;
    let scopes = default_scopes(&pgs);
    let (_, mut idle) = scopes[0].monitor("flood");
    let (_, mut reader) = scopes[0].monitor("flood");
    assert_eq!(scopes[0].monitor_count(), 2);
    let read = Arc::new(AtomicUsize::new(0));
    let counted = read.clone();
    let reading = tokio::spawn(async move {
        while let Ok(event) = reader.recv().await {
            counted.fetch_add(event.members().len(), Ordering::Relaxed);
        }
    });
    let mut actors = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        actors.push(worker(&nodes[1]).await);
    }
    // The peer joins and leaves its members until the reader has seen the group change
    // three backlogs' worth; the idle subscriber never reads meanwhile. The peer waits for
    // the reader to come within half a backlog before each batch, so the reader keeps up
    // however the two are scheduled (on a loaded machine the reader's task may not run for
    // a while, and the bound is on what is queued, not on how fast a reader is).
    let target = 3 * MONITOR_BACKLOG;
    let mut produced: usize = 0;
    let mut peak = 0;
    while read.load(Ordering::Relaxed) < target {
        common::actors::eventually("the reader comes within half a backlog", || {
            produced.saturating_sub(read.load(Ordering::Relaxed)) <= MONITOR_BACKLOG / 2
        })
        .await;
        scopes[1].join_many("flood", &actors).unwrap();
        scopes[1].leave_many("flood", &actors).unwrap();
        produced += 2 * BATCH;
        peak = peak.max(idle.backlog());
        assert!(
            peak <= MONITOR_BACKLOG,
            "an unread monitor holds {peak} members"
        );
        tokio::task::yield_now().await;
    }
    assert!(idle.backlog() <= MONITOR_BACKLOG);
    // What was queued is read, then the overflow, and the monitor is gone.
    let mut drained = 0;
    let end = loop {
        match tokio::time::timeout(WAIT, idle.recv())
            .await
            .expect("in time")
        {
            Ok(event) => drained += event.members().len(),
            Err(e) => break e,
        }
    };
    assert_eq!(
        end,
        PgError::MonitorOverflow {
            backlog: MONITOR_BACKLOG
        }
    );
    assert!(drained <= MONITOR_BACKLOG, "{drained} members queued");
    assert_eq!(idle.backlog(), 0);
    assert!(idle.try_recv().is_err(), "the overflow is final");
    assert_eq!(
        scopes[0].monitor_count(),
        1,
        "the overflowed monitor is gone"
    );
    reading.abort();
}
