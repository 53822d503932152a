//! Membership over real QUIC, many nodes in one process (one tokio runtime, 2 workers):
//! convergence after the last join, and failure detection of a silent crash, both with the
//! default configuration.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use understudy::NodeId;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::membership::{LeaveReason, MembershipEvent};
use understudy::cluster::node::Node;

use crate::bench::Metrics;

const CLUSTER: &str = "bench";
/// A run that has not converged (or detected) by then fails.
const LIMIT: Duration = Duration::from_secs(60);

/// Starts `n` nodes, each seeded to the first, one after another. `before_last` is called
/// just before the last node's `start()`; `started` after every start.
async fn start_nodes(
    ca: &ClusterCa,
    n: usize,
    mut before_last: impl FnMut(),
    mut started: impl FnMut(usize, &Node),
) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let mut b = Node::builder(CLUSTER, format!("n{i}")).ephemeral_certs(ca);
        if let Some(first) = nodes.first() {
            b = b.seed(first.local_addr());
        }
        if i == n - 1 {
            before_last();
        }
        let node = b.start().await.expect("node starts");
        started(i, &node);
        nodes.push(node);
    }
    nodes
}

/// Follows `node`'s membership events from a snapshot on, and records the first instant
/// it sees `want` members.
fn track_full_view(node: &Node, want: usize, slot: Arc<Mutex<Option<Instant>>>) {
    let (snapshot, mut rx) = node.subscribe_with_snapshot();
    let node = node.clone();
    tokio::spawn(async move {
        let mut seen: HashSet<NodeId> = snapshot.iter().map(|m| m.node_id()).collect();
        loop {
            if seen.len() >= want {
                *slot.lock().unwrap() = Some(Instant::now());
                return;
            }
            match rx.recv().await {
                Ok(MembershipEvent::NodeJoined(m)) => {
                    seen.insert(m.node_id());
                }
                Ok(MembershipEvent::NodeLeft { member, .. }) => {
                    seen.remove(&member.node_id());
                }
                Ok(MembershipEvent::NodeUpdated(_)) => {}
                Err(RecvError::Lagged(_)) => {
                    seen = node.members().iter().map(|m| m.node_id()).collect();
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// `n` nodes seeded to the first; the time from just before the last node's `start()` until
/// every node's membership view holds all `n - 1` others (from its events: `NodeJoined`
/// minus `NodeLeft`), and until every node is also connected to all of them (full mesh).
pub async fn converge(n: usize) -> Metrics {
    assert!(n >= 2, "--nodes must be at least 2");
    let ca = ClusterCa::ephemeral(CLUSTER);
    let slots: Vec<Arc<Mutex<Option<Instant>>>> =
        (0..n).map(|_| Arc::new(Mutex::new(None))).collect();
    let t_first = Instant::now();
    let mut t_last = t_first;
    let mut clock = None;
    let nodes = start_nodes(
        &ca,
        n,
        || {
            t_last = Instant::now();
            clock = Some(crate::bench::Stopwatch::start());
        },
        |i, node| track_full_view(node, n - 1, slots[i].clone()),
    )
    .await;
    let t_started = Instant::now();

    let deadline = Instant::now() + LIMIT;
    let mut timeline = Vec::new();
    let verbose = std::env::var_os("UNDERSTUDY_BENCH_VERBOSE").is_some();
    let converged = loop {
        let times: Option<Vec<Instant>> = slots.iter().map(|s| *s.lock().unwrap()).collect();
        if let Some(times) = times {
            break times.into_iter().max().expect("n >= 2");
        }
        if verbose && timeline.len() < (t_last.elapsed().as_millis() / 100) as usize {
            let views: usize = nodes.iter().map(|n| n.members().len()).sum();
            let links: usize = nodes.iter().map(|n| n.connected().len()).sum();
            let done = slots.iter().filter(|s| s.lock().unwrap().is_some()).count();
            timeline.push(format!(
                "{:.1}s: converged {done}/{n}, member views {views}/{}, links {links}",
                t_last.elapsed().as_secs_f64(),
                n * (n - 1)
            ));
        }
        if Instant::now() > deadline {
            let have: Vec<usize> = nodes.iter().map(|n| n.members().len()).collect();
            panic!("{n} nodes did not converge within {LIMIT:?}: members per node {have:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let span = clock.expect("last node started").stop();
    for line in &timeline {
        eprintln!("{line}");
    }
    // Full mesh: every node also has a live connection to every member.
    for node in &nodes {
        node.wait_for_members(n - 1, LIMIT)
            .await
            .expect("full mesh");
    }
    let meshed = Instant::now();
    let secs = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64();
    let m = vec![
        ("converge_s", secs(t_last, converged)),
        ("mesh_s", secs(t_last, meshed)),
        ("start_all_s", secs(t_first, t_started)),
        // CPU seconds of all threads until convergence: ~2x the wall time means CPU-bound.
        ("converge_cpu_s", span.cpu_ns as f64 / 1e9),
        (
            "runq_wait_pct",
            100.0 * span.wait_ns as f64 / span.wall.as_nanos() as f64,
        ),
    ];
    for node in &nodes {
        node.crash();
    }
    m
}

/// `n - 1` nodes form a cluster (converged and fully meshed, then 1 s to settle); then the
/// `n`-th node joins, seeded to the first. The time from just before its `start()` until every
/// node's view holds all `n - 1` others, and until every node is connected to all of them:
/// convergence after one join into a steady cluster, rather than the formation of a whole
/// cluster at once (`converge`).
pub async fn join(n: usize) -> Metrics {
    assert!(n >= 2, "--nodes must be at least 2");
    let ca = ClusterCa::ephemeral(CLUSTER);
    let mut nodes = start_nodes(&ca, n - 1, || {}, |_, _| {}).await;
    for node in &nodes {
        node.wait_for_members(n - 2, LIMIT)
            .await
            .expect("full mesh");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let slots: Vec<Arc<Mutex<Option<Instant>>>> =
        (0..n).map(|_| Arc::new(Mutex::new(None))).collect();
    for (i, node) in nodes.iter().enumerate() {
        track_full_view(node, n - 1, slots[i].clone());
    }
    let clock = crate::bench::Stopwatch::start();
    let t0 = Instant::now();
    let joiner = Node::builder(CLUSTER, format!("n{}", n - 1))
        .ephemeral_certs(&ca)
        .seed(nodes[0].local_addr())
        .start()
        .await
        .expect("joiner starts");
    track_full_view(&joiner, n - 1, slots[n - 1].clone());
    nodes.push(joiner);
    let deadline = Instant::now() + LIMIT;
    let converged = loop {
        let times: Option<Vec<Instant>> = slots.iter().map(|s| *s.lock().unwrap()).collect();
        if let Some(times) = times {
            break times.into_iter().max().expect("n >= 2");
        }
        assert!(
            Instant::now() < deadline,
            "the join did not converge within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let span = clock.stop();
    for node in &nodes {
        node.wait_for_members(n - 1, LIMIT)
            .await
            .expect("full mesh");
    }
    let meshed = Instant::now();
    let secs = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64();
    vec![
        ("join_converge_s", secs(t0, converged)),
        ("join_mesh_s", secs(t0, meshed)),
        ("join_cpu_s", span.cpu_ns as f64 / 1e9),
    ]
}

/// A cluster of `n` nodes; once fully meshed and settled, the last one crashes silently.
/// The time until every other node has reported it `NodeLeft { reason: Failed }` (max) and
/// until the first one has (min); any other node reported gone meanwhile is counted.
pub async fn detect(n: usize) -> Metrics {
    assert!(n >= 2, "--nodes must be at least 2");
    let ca = ClusterCa::ephemeral(CLUSTER);
    let nodes = start_nodes(&ca, n, || {}, |_, _| {}).await;
    for node in &nodes {
        node.wait_for_members(n - 1, LIMIT)
            .await
            .expect("full mesh");
    }
    // Let the join gossip die down: suspicion of the victim should start from a quiet,
    // steady cluster, as in production.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let victim = nodes[n - 1].clone();
    let victim_id = victim.name().clone();
    let false_alarms = Arc::new(Mutex::new(0u32));
    let mut waiters = Vec::new();
    let t0 = Instant::now();
    for node in &nodes[..n - 1] {
        let mut rx = node.subscribe();
        let victim_id = victim_id.clone();
        let false_alarms = false_alarms.clone();
        waiters.push(tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(MembershipEvent::NodeLeft { member, reason }) => {
                        if member.name() == &victim_id {
                            assert_eq!(reason, LeaveReason::Failed, "a crash must be Failed");
                            return Instant::now();
                        }
                        *false_alarms.lock().unwrap() += 1;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => panic!("events closed"),
                }
            }
        }));
    }
    victim.crash();
    let mut times = Vec::new();
    for w in waiters {
        let at = tokio::time::timeout(LIMIT, w)
            .await
            .expect("failure detected in time")
            .expect("waiter");
        times.push(at.saturating_duration_since(t0).as_secs_f64());
    }
    let max = times.iter().copied().fold(0.0, f64::max);
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let false_alarms = *false_alarms.lock().unwrap();
    for node in &nodes[..n - 1] {
        node.crash();
    }
    vec![
        ("detect_all_s", max),
        ("detect_first_s", min),
        ("false_failures", false_alarms as f64),
    ]
}
