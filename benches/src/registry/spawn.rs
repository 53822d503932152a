//! `Registry::spawn_named` (issue #11): what a placed name costs to start, to look up once
//! it exists, and how long its actors take to run again elsewhere when their node crashes.
//!
//! - **calls** (the `latency` test's 3 voters, every node with the kind `worker`):
//!   sequential `spawn_named` of new names with `Placement::Hash` (so about two starts in
//!   three are on another node), from the leader's node and from a follower's, each beside
//!   what a user would otherwise write on the calling node: `node.spawn(actor)` and
//!   `consistent.register(name, &actor)`. Then `spawn_named` of a name that exists, on a
//!   follower (the holder on another node), in timed batches beside `whereis` of the same
//!   name: each call must complete without waiting (`now_or_never`), as a lookup does.
//! - **failover** (5 voters): 100 names placed on one follower
//!   (`Placement::PreferNodes`), which is then crashed (`node.crash()`, and its registry's
//!   `shutdown()` on a task, as `ours::failover` does); the time until a surviving
//!   follower's copy shows every name held by an actor on another node, and until each of
//!   those actors has answered an ask (resolved with `whereis` from that copy). Also: when
//!   SWIM on the leader's node, which re-places the names, reported the node gone.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use understudy::cluster::membership::MembershipEvent;
use understudy::cluster::node::Node;
use understudy::prelude::*;
use understudy::registry::{Consistent, Placement, Registry, Scope};

use super::load::{self, Writer};
use super::ours::{Batches, Cluster, LIMIT, Store};
use super::{Bound, Row, Test};
use crate::bench::Metrics;

/// The kind every node can start.
const KIND: &str = "worker";
/// The failover measurement's cluster size, and how the driver tells its jobs apart.
pub(crate) const FAILOVER_NODES: usize = 5;
/// Names placed on the node that crashes.
const PLACED: usize = 100;
/// How long one ask of a restarted actor may take before it is tried again.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// A placed actor: answers with the name it was started for.
#[derive(Actor)]
pub struct Worker {
    name: String,
}

#[messages(remote)]
impl Worker {
    #[message]
    fn whoami(&self) -> String {
        self.name.clone()
    }
}

/// A registry whose kind `worker` counts its starts in `starts` (all nodes share it).
fn registry(starts: &Arc<AtomicU64>) -> Registry {
    let starts = starts.clone();
    Registry::new().kind(KIND, move |name: String| {
        starts.fetch_add(1, Ordering::Relaxed);
        Ok::<_, String>(Worker { name })
    })
}

/// `spawn_named` of fresh names (the load module's writer: one call per name).
struct Spawner(Registry);

impl Writer for Spawner {
    async fn register(&mut self, name: &str) -> Result<(), String> {
        let arg = name.to_owned();
        self.0
            .spawn_named::<WorkerMsg, _>(name, Scope::Consistent, Placement::Hash, KIND, &arg)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The baseline: an actor spawned on the calling node, then registered.
struct SpawnThenRegister {
    node: Node,
    names: Consistent,
}

impl Writer for SpawnThenRegister {
    async fn register(&mut self, name: &str) -> Result<(), String> {
        let worker = Worker {
            name: name.to_owned(),
        };
        let actor = self.node.spawn(worker).await.map_err(|e| e.to_string())?;
        self.names
            .register(name, &actor)
            .await
            .map_err(|e| e.to_string())
    }
}

/// New names from the leader's node and a follower's (each beside the baseline), then an
/// existing name beside `whereis`. `calls`: timed calls of each in the second part.
pub(crate) async fn calls(store: Store, samples: usize, calls: u64) -> Metrics {
    let starts = Arc::default();
    let c = Cluster::start_with(store, 3, || registry(&starts)).await;
    let mut m = Metrics::new();
    let mut placed = 0usize;
    let mut elsewhere = 0usize;
    for (at, node, keys) in [
        (
            "leader",
            c.leader,
            [
                "spawn_leader_p50_ms",
                "spawn_leader_p99_ms",
                "plain_leader_p50_ms",
                "plain_leader_p99_ms",
            ],
        ),
        (
            "follower",
            c.follower(),
            [
                "spawn_follower_p50_ms",
                "spawn_follower_p99_ms",
                "plain_follower_p50_ms",
                "plain_follower_p99_ms",
            ],
        ),
    ] {
        let prefix = format!("spawn-{at}");
        let lat =
            load::sequential(&mut Spawner(c.registries[node].clone()), &prefix, samples).await;
        let names = c.names(node);
        let here = c.nodes[node].runtime().node_id();
        for i in 0..lat.len() + samples / 10 {
            let owner = names.owner(&format!("{prefix}-{i}")).expect("placed");
            placed += 1;
            elsewhere += usize::from(owner.node() != here);
        }
        let (p50, p99) = load::percentiles(lat);
        m.push((keys[0], p50 * 1e3));
        m.push((keys[1], p99 * 1e3));
        let mut plain = SpawnThenRegister {
            node: c.nodes[node].clone(),
            names,
        };
        let (p50, p99) = load::percentiles(load::sequential(&mut plain, at, samples).await);
        m.push((keys[2], p50 * 1e3));
        m.push((keys[3], p99 * 1e3));
    }
    m.push(("elsewhere_pct", 100.0 * elsewhere as f64 / placed as f64));
    m.push((
        "starts_per_name",
        starts.load(Ordering::Relaxed) as f64 / placed as f64,
    ));
    m.extend(existing(&c, calls).await);
    m
}

/// `spawn_named` of a name held on another node, from a follower's node, beside `whereis`.
async fn existing(c: &Cluster, calls: u64) -> Metrics {
    let at = c.follower();
    let holder = (0..c.nodes.len()).find(|&i| i != at).expect("another node");
    let registry = c.registries[at].clone();
    let (name, arg) = ("existing", "existing".to_owned());
    let on_holder = Placement::Node(c.nodes[holder].name().to_string());
    let actor = registry
        .spawn_named::<WorkerMsg, _>(name, Scope::Consistent, on_holder, KIND, &arg)
        .await
        .expect("spawn_named");
    assert!(!actor.get_id().is_local(), "held on another node");
    let names = c.names(at);
    let whereis = Batches::after_warm_up(calls, || {
        black_box(
            names
                .whereis::<WorkerMsg>(black_box(name))
                .expect("whereis"),
        );
    });
    // Awaited in async code, as a caller would; each batch must complete without waiting
    // for anything (the answer comes from the local copy, as `whereis`'s does).
    let spawn = Batches::of_batches(calls, |k| {
        let batch = async {
            for _ in 0..k {
                let found = registry
                    .spawn_named::<WorkerMsg, _>(
                        black_box(name),
                        Scope::Consistent,
                        Placement::Hash,
                        KIND,
                        &arg,
                    )
                    .await;
                black_box(found.expect("spawn_named of an existing name"));
            }
        };
        batch
            .now_or_never()
            .expect("an existing name answers at once");
    });
    // What a call builds before it looks: its state machine (every path's, the slow ones'
    // included), unpolled.
    let call =
        registry.spawn_named::<WorkerMsg, _>(name, Scope::Consistent, Placement::Hash, KIND, &arg);
    let future_bytes = std::mem::size_of_val(&call) as f64;
    drop(call);
    vec![
        ("existing_ns", spawn.median_ns()),
        ("existing_whereis_ns", whereis.median_ns()),
        (
            "existing_over_whereis",
            spawn.median_ns() / whereis.median_ns(),
        ),
        ("existing_per_cpu_s", spawn.per_cpu_s()),
        ("future_bytes", future_bytes),
    ]
}

/// The node to crash: `n3` unless it leads, else the first follower.
fn victim(c: &Cluster) -> usize {
    let n3 = c.nodes.iter().position(|n| n.name().as_str() == "n3");
    n3.filter(|&i| i != c.leader)
        .unwrap_or_else(|| c.follower())
}

/// Crashes a follower holding [`PLACED`] placed names and times their return elsewhere.
pub(crate) async fn failover(store: Store) -> Metrics {
    let starts = Arc::default();
    let c = Cluster::start_with(store, FAILOVER_NODES, || registry(&starts)).await;
    let victim = victim(&c);
    let watcher = (0..c.nodes.len())
        .find(|&i| i != c.leader && i != victim)
        .expect("a follower that survives");
    let gone = c.nodes[victim].runtime().node_id();
    let gone_name = c.nodes[victim].name().to_string();
    let prefer = Placement::PreferNodes(vec![gone_name.clone()]);
    let names: Vec<String> = (0..PLACED).map(|i| format!("placed-{i}")).collect();
    for name in &names {
        c.registries[watcher]
            .spawn_named::<WorkerMsg, _>(name, Scope::Consistent, prefer.clone(), KIND, name)
            .await
            .expect("spawn_named");
    }
    let copy = c.names(watcher);
    for name in &names {
        let owner = copy.owner(name).expect("placed");
        assert_eq!(owner.node(), gone, "{name} runs on {gone_name}");
    }
    let mut events = c.nodes[c.leader].subscribe();

    let t0 = Instant::now();
    c.nodes[victim].crash();
    let registry = c.registries[victim].clone();
    tokio::spawn(async move { registry.shutdown().await });
    let detected = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(MembershipEvent::NodeLeft { member, .. })
                    if member.name().as_str() == gone_name =>
                {
                    return t0.elapsed();
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("membership events: {e}"),
            }
        }
    });
    let mut answered = vec![false; names.len()];
    let (mut held_at, mut failed_asks) = (None, 0u32);
    loop {
        let moved: Vec<bool> = names
            .iter()
            .map(|name| copy.owner(name).is_some_and(|o| o.node() != gone))
            .collect();
        if held_at.is_none() && moved.iter().all(|m| *m) {
            held_at = Some(t0.elapsed());
        }
        for (i, name) in names.iter().enumerate() {
            if !moved[i] || answered[i] {
                continue;
            }
            let actor = copy.whereis::<WorkerMsg>(name).expect("whereis");
            match actor.whoami().timeout(ASK_TIMEOUT).await {
                Ok(reply) => {
                    assert_eq!(&reply, name, "the name's actor answers");
                    answered[i] = true;
                }
                Err(_) => failed_asks += 1,
            }
        }
        if answered.iter().all(|a| *a) {
            break;
        }
        let left = answered.iter().filter(|a| !**a).count();
        assert!(
            t0.elapsed() < LIMIT,
            "{left} of {PLACED} names did not answer within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let answered_at = t0.elapsed();
    let detected = tokio::time::timeout(LIMIT, detected)
        .await
        .expect("SWIM reported the crash")
        .expect("membership task");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let held_at = held_at.unwrap_or(answered_at);
    vec![
        ("failover_answered_ms", ms(answered_at)),
        ("failover_held_ms", ms(held_at)),
        ("failover_detected_ms", ms(detected)),
        ("failover_replaced_ms", ms(held_at.saturating_sub(detected))),
        ("failover_failed_asks", f64::from(failed_asks)),
        (
            "failover_restarts_per_name",
            starts.load(Ordering::Relaxed) as f64 / PLACED as f64 - 1.0,
        ),
    ]
}

/// The spawn test's rows: the calls on 3 nodes, the failover on [`FAILOVER_NODES`].
pub(super) fn rows() -> Vec<Row> {
    use Bound::AtMost;
    let both = |b: Bound| vec![("understudy-mem", b), ("understudy-disk", b)];
    let row = |size, metric, label: &str, higher_is_better, targets| Row {
        test: Test::Spawn,
        size,
        metric,
        label: label.to_owned(),
        higher_is_better,
        targets,
    };
    let f = FAILOVER_NODES;
    vec![
        row(
            3,
            "spawn_leader_p50_ms",
            "spawn_named, new name (Hash), from the leader's node, p50 (ms)",
            false,
            both(AtMost(3.0)),
        ),
        row(
            3,
            "spawn_leader_p99_ms",
            "spawn_named, new name (Hash), from the leader's node, p99 (ms)",
            false,
            vec![],
        ),
        row(
            3,
            "plain_leader_p50_ms",
            "baseline: node.spawn + register on the leader's node, p50 (ms)",
            false,
            vec![],
        ),
        row(
            3,
            "plain_leader_p99_ms",
            "baseline: node.spawn + register on the leader's node, p99 (ms)",
            false,
            vec![],
        ),
        row(
            3,
            "spawn_follower_p50_ms",
            "spawn_named, new name (Hash), from a follower's node, p50 (ms)",
            false,
            both(AtMost(3.0)),
        ),
        row(
            3,
            "spawn_follower_p99_ms",
            "spawn_named, new name (Hash), from a follower's node, p99 (ms)",
            false,
            vec![],
        ),
        row(
            3,
            "plain_follower_p50_ms",
            "baseline: node.spawn + register on a follower's node, p50 (ms)",
            false,
            vec![],
        ),
        row(
            3,
            "plain_follower_p99_ms",
            "baseline: node.spawn + register on a follower's node, p99 (ms)",
            false,
            vec![],
        ),
        row(
            3,
            "elsewhere_pct",
            "spawn_named, new names started on another node than the caller's (%)",
            false,
            vec![],
        ),
        row(
            3,
            "starts_per_name",
            "spawn_named, new names: actors started per name",
            false,
            vec![],
        ),
        row(
            3,
            "existing_ns",
            "spawn_named of an existing name (holder on another node), median (ns)",
            false,
            both(AtMost(100.0)),
        ),
        row(
            3,
            "existing_whereis_ns",
            "whereis of the same name, same run, median (ns)",
            false,
            vec![],
        ),
        row(
            3,
            "existing_over_whereis",
            "spawn_named of an existing name / whereis",
            false,
            vec![],
        ),
        row(
            3,
            "existing_per_cpu_s",
            "spawn_named of an existing name, calls per CPU-second of the looping thread",
            true,
            vec![],
        ),
        row(
            3,
            "future_bytes",
            "spawn_named's future (the state a call builds before it looks), bytes",
            false,
            vec![],
        ),
        row(
            f,
            "failover_answered_ms",
            "node with 100 placed names crashed → all held elsewhere and answering (ms)",
            false,
            both(AtMost(3000.0)),
        ),
        row(
            f,
            "failover_held_ms",
            "node with 100 placed names crashed → a survivor's copy holds all elsewhere (ms)",
            false,
            vec![],
        ),
        row(
            f,
            "failover_detected_ms",
            "node with 100 placed names crashed → SWIM on the leader's node reports it (ms)",
            false,
            vec![],
        ),
        row(
            f,
            "failover_replaced_ms",
            "placed names' failover: from SWIM's report on the leader's node to all held (ms)",
            false,
            vec![],
        ),
        row(
            f,
            "failover_failed_asks",
            "placed names' failover: asks that failed (timed out) before all answered",
            false,
            vec![],
        ),
        row(
            f,
            "failover_restarts_per_name",
            "placed names' failover: actors started again per name",
            false,
            vec![],
        ),
    ]
}
