//! Process-group benchmarks (`understudy::pg`): how fast a join becomes visible across a
//! cluster, broadcast throughput to a group spread over nodes, `get_members` lookups side by
//! side with `ractor::pg`, and what a group costs in memory per node.
//!
//! ```text
//! cargo run --release -- --pg                     # full run, tables on stdout
//! cargo run --release -- --pg --quick             # smoke run
//! cargo run --release -- --pg-test join           # one measurement in this process
//! cargo run --release -- --pg-test lookup --framework ractor --members 100
//! cargo run --release -- --pg-test memory --gnodes 10 --gmembers 100000
//! ```
//!
//! As for the other benchmarks, the driver never measures in its own process: each
//! (test, framework, size, run) is a child process, runs are interleaved with the framework
//! order rotated, and the tables show the median and the best run. The clusters are many
//! nodes in one process on one 2-worker tokio runtime, real QUIC + mTLS on 127.0.0.1,
//! ephemeral certificates, default configuration (pg anti-entropy every 1 s).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::pg::{Pg, PgEvent, Scope, Subscription};
use understudy::prelude::*;

use crate::bench::{Metrics, Stopwatch};
use crate::cluster::{best, fmt_num, latency_metrics, median, runtime};

const CLUSTER: &str = "bench";
/// Forming a cluster, or one step of a measurement, that takes longer fails the run.
const LIMIT: Duration = Duration::from_secs(20);
/// The group every measurement uses.
const GROUP: &str = "bench";

/// Frameworks of the lookup test, in table order.
const FRAMEWORKS: [&str; 2] = ["understudy", "ractor"];

const USAGE: &str = "\
understudy-benches --pg: process groups (understudy::pg), and lookups vs ractor::pg

USAGE:
  understudy-benches --pg [OPTIONS]                driver: one child process per measurement
  understudy-benches --pg-test T [--framework F] [--members N] [OPTIONS]
                                                   one measurement in this process

OPTIONS:
  --test T,..         join | broadcast | lookup | memory           [all four]
  --framework F,..    understudy | ractor (lookup and memory; join and broadcast are
                      understudy's)
  --quick             small sizes, 3 runs
  --runs N            runs per cell                                [5; quick 3]
  --nodes N           cluster size of the join test                [5]
  --samples N         joins (and leaves) timed per join run        [500; quick 100]
  --broadcasts N      broadcasts per broadcast run                 [20000; quick 2000]
  --bmembers N        group size of the broadcast test             [100]
  --members N,..      group sizes of the lookup test               [10,100]
  --refs N            refs handed out per lookup run (lookups x members) [50000000; quick 5000000]
  --gnodes N          nodes of the memory test                     [10]
  --gmembers N        group size of the memory test, spread evenly [100000; quick 10000]
  -h, --help          this text
";

// ------------------------------------------------------------------------------------------
// The group member.

/// What a member receives.
#[derive(Debug, Clone, Serialize, Deserialize, RemoteMessage)]
pub struct Tick(u64);

/// A group member: counts what it receives in a counter shared by every member of the
/// process (all nodes run in this one process).
#[derive(Actor)]
struct Member {
    delivered: Arc<AtomicU64>,
}

impl Handler for Member {
    type Msg = Tick;
    async fn handle(&mut self, _: &Ctx<Self>, message: Tick) -> Result<(), ActorError> {
        black_box(message.0);
        self.delivered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// `n` nodes `n0..`, each running pg (default anti-entropy), all seeded to the first, fully
/// connected; and their default scopes.
async fn pg_cluster(n: usize) -> (Vec<Node>, Vec<Scope>) {
    let ca = ClusterCa::ephemeral(CLUSTER);
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    let mut pgs = Vec::with_capacity(n);
    for i in 0..n {
        let pg = Pg::new();
        let mut b = Node::builder(CLUSTER, format!("n{i}"))
            .ephemeral_certs(&ca)
            .extension(pg.clone());
        if let Some(first) = nodes.first() {
            b = b.seed(first.local_addr());
        }
        nodes.push(b.start().await.expect("node starts"));
        pgs.push(pg);
    }
    for node in &nodes {
        node.wait_for_members(n - 1, LIMIT)
            .await
            .expect("full mesh");
    }
    let scopes = pgs
        .iter()
        .map(|p| p.default_scope().expect("pg started"))
        .collect();
    (nodes, scopes)
}

/// A node `name` of a cluster of its own, running pg, and its default scope.
async fn lone_node(name: &str) -> (Node, Scope) {
    let pg = Pg::new();
    let node = Node::builder(CLUSTER, name)
        .ephemeral_certs(&ClusterCa::ephemeral(CLUSTER))
        .extension(pg.clone())
        .start()
        .await
        .expect("node starts");
    (node, pg.default_scope().expect("pg started"))
}

/// `n` group members on `node`, counting into `delivered`.
async fn spawn_members(node: &Node, n: usize, delivered: &Arc<AtomicU64>) -> Vec<ActorRef<Tick>> {
    let mut actors = Vec::with_capacity(n);
    for _ in 0..n {
        actors.push(
            node.spawn(Member {
                delivered: delivered.clone(),
            })
            .await
            .expect("spawn"),
        );
    }
    actors
}

/// `n` raw ractor actors (ractor::pg's members), as cells.
async fn ractor_cells(n: usize) -> Vec<ractor::ActorCell> {
    let mut cells = Vec::with_capacity(n);
    for _ in 0..n {
        let (actor, _) = ractor::Actor::spawn(None, crate::fw::ractor::Counter, ())
            .await
            .expect("spawn");
        cells.push(actor.get_cell());
    }
    cells
}

/// Waits until every scope sees `want` members of [`GROUP`].
async fn converge(scopes: &[Scope], want: usize) {
    converge_within(scopes, want, LIMIT).await;
}

/// [`converge`], failing the run after `limit`.
async fn converge_within(scopes: &[Scope], want: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while scopes.iter().any(|s| s.members(GROUP).len() != want) {
        let views: Vec<usize> = scopes.iter().map(|s| s.members(GROUP).len()).collect();
        assert!(
            Instant::now() < deadline,
            "pg views did not converge to {want} members within {limit:?}: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The next event of `sub`, which must be a `Join` (`join == true`) or a `Leave`.
async fn expect_event(sub: &mut Subscription, join: bool) {
    let event = tokio::time::timeout(LIMIT, sub.recv())
        .await
        .expect("a pg event in time")
        .expect("subscription open");
    match (join, &event) {
        (true, PgEvent::Join { .. }) | (false, PgEvent::Leave { .. }) => {}
        _ => panic!("unexpected pg event {event:?} (wanted a join: {join})"),
    }
}

// ------------------------------------------------------------------------------------------
// join: one join visible cluster-wide.

/// Joins done before the measured ones (first connections, proxies, allocator warm-up).
const JOIN_WARMUP: usize = 50;

/// A cluster of `n` nodes; every other node monitors [`GROUP`]. Each sample: node 0 spawns
/// a fresh actor (off the clock) and joins it to the group; timed from just before `join`
/// until every monitor has received the `Join` event. Then it leaves, timed the same way
/// until every monitor has the `Leave`, and the actor is stopped (off the clock). The group
/// thus alternates between 0 and 1 member.
async fn join(n: usize, samples: usize) -> Metrics {
    assert!(n >= 2, "--nodes must be at least 2");
    let (nodes, scopes) = pg_cluster(n).await;
    let mut subs: Vec<Subscription> = scopes[1..]
        .iter()
        .map(|s| {
            let (members, sub) = s.monitor(GROUP);
            assert!(members.is_empty());
            sub
        })
        .collect();
    let delivered = Arc::new(AtomicU64::new(0));
    let mut joins = Vec::with_capacity(samples);
    let mut leaves = Vec::with_capacity(samples);
    let mut clock = None;
    for i in 0..JOIN_WARMUP + samples {
        if i == JOIN_WARMUP {
            clock = Some(Stopwatch::start());
        }
        let actor = nodes[0]
            .spawn(Member {
                delivered: delivered.clone(),
            })
            .await
            .expect("spawn");

        let t0 = Instant::now();
        scopes[0].join(GROUP, &actor).expect("join");
        for sub in &mut subs {
            expect_event(sub, true).await;
        }
        let joined = t0.elapsed();

        let t1 = Instant::now();
        scopes[0].leave(GROUP, &actor).expect("leave");
        for sub in &mut subs {
            expect_event(sub, false).await;
        }
        let left = t1.elapsed();

        actor.stop(None);
        if i >= JOIN_WARMUP {
            joins.push(joined);
            leaves.push(left);
        }
    }
    let span = clock.expect("at least one sample").stop();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let max_join = joins.iter().map(ms).fold(0.0, f64::max);
    let mut m: Metrics = latency_metrics(joins)
        .into_iter()
        .map(|(k, v)| match k {
            "mean_us" => ("join_mean_ms", v / 1e3),
            "p50_us" => ("join_p50_ms", v / 1e3),
            _ => ("join_p99_ms", v / 1e3),
        })
        .collect();
    m.push(("join_max_ms", max_join));
    m.extend(
        latency_metrics(leaves)
            .into_iter()
            .filter_map(|(k, v)| match k {
                "p50_us" => Some(("leave_p50_ms", v / 1e3)),
                "p99_us" => Some(("leave_p99_ms", v / 1e3)),
                _ => None,
            }),
    );
    // CPU of the whole process (all n nodes) per sample (one join and one leave).
    m.push((
        "cpu_us_per_sample",
        span.cpu_ns as f64 / 1e3 / samples as f64,
    ));
    m.push((
        "runq_wait_pct",
        100.0 * span.wait_ns as f64 / span.wall.as_nanos() as f64,
    ));
    m
}

// ------------------------------------------------------------------------------------------
// broadcast: one node broadcasts to a group spread over three nodes.

/// Three nodes; `members` actors join [`GROUP`], spread evenly (34/33/33 for 100), each on
/// its own node. Once every node sees them all, node 0 calls `broadcast` `n` times in a row;
/// the clock stops when every member has handled every message it was handed.
async fn broadcast(members: usize, n: u64) -> Metrics {
    let (nodes, scopes) = pg_cluster(3).await;
    let delivered = Arc::new(AtomicU64::new(0));
    let mut keep = Vec::new();
    for (i, (node, scope)) in nodes.iter().zip(&scopes).enumerate() {
        let here = members / 3 + usize::from(i < members % 3);
        let actors = spawn_members(node, here, &delivered).await;
        scope.join_many(GROUP, &actors).expect("join");
        keep.push(actors);
    }
    converge(&scopes, members).await;
    broadcast_run(&scopes[0], &delivered, members, (n / 10).max(1)).await;
    broadcast_run(&scopes[0], &delivered, members, n).await
}

async fn broadcast_run(scope: &Scope, delivered: &AtomicU64, members: usize, n: u64) -> Metrics {
    let before = delivered.load(Ordering::Relaxed);
    let clock = Stopwatch::start();
    let t0 = Instant::now();
    let mut handed = 0u64;
    let mut refused = 0u64;
    for i in 0..n {
        let sent = scope.broadcast(GROUP, Tick(i)).await.expect("broadcast") as u64;
        handed += sent;
        if sent < members as u64 {
            // A remote send refused (lane buffer full): let the writers drain.
            refused += members as u64 - sent;
            tokio::task::yield_now().await;
        }
    }
    let calls = t0.elapsed();
    let deadline = Instant::now() + LIMIT;
    while delivered.load(Ordering::Relaxed) - before < handed {
        assert!(
            Instant::now() < deadline,
            "broadcasts not delivered within {LIMIT:?}: {} of {handed}",
            delivered.load(Ordering::Relaxed) - before
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let span = clock.stop();
    assert_eq!(
        delivered.load(Ordering::Relaxed) - before,
        handed,
        "no member may receive more than it was handed"
    );
    let secs = span.wall.as_secs_f64();
    vec![
        ("broadcasts_per_s", n as f64 / secs),
        ("deliveries_per_s", handed as f64 / secs),
        ("calls_per_s", n as f64 / calls.as_secs_f64()),
        ("cpu_ns_per_delivery", span.cpu_ns as f64 / handed as f64),
        ("refused", refused as f64),
        (
            "runq_wait_pct",
            100.0 * span.wait_ns as f64 / span.wall.as_nanos() as f64,
        ),
    ]
}

// ------------------------------------------------------------------------------------------
// lookup: get_members, understudy::pg vs ractor::pg.

/// A group of `members` local actors; `refs / members` lookups of its members in a tight
/// single-threaded loop (after a tenth as many for warm-up), each result `black_box`ed
/// and dropped. understudy: a node running pg (no peers), `scope.get_members::<Tick>`;
/// ractor: the global `ractor::pg`, `ractor::pg::get_members`. Same group name.
async fn lookup(fw: &str, members: usize, refs: u64) -> Metrics {
    let n = (refs / members as u64).max(1);
    let group: String = GROUP.to_owned();
    match fw {
        "understudy" => {
            let (node, scope) = lone_node("n0").await;
            let actors = spawn_members(&node, members, &Arc::default()).await;
            scope.join_many(&group, &actors).expect("join");
            let got = scope.get_members::<Tick>(&group).await.expect("lookup");
            assert_eq!(got.len(), members);
            drop(got);
            // One future that awaits every lookup, as an async caller does; none waits, so
            // one poll runs the whole loop on this thread.
            let run = |n: u64| {
                let clock = LoopClock::start();
                ready(async {
                    for _ in 0..n {
                        black_box(
                            scope
                                .get_members::<Tick>(black_box(&group))
                                .await
                                .expect("lookup"),
                        );
                    }
                });
                clock.stop()
            };
            run((n / 10).max(1));
            let span = run(n);
            lookup_metrics(span, n)
        }
        "ractor" => {
            let cells = ractor_cells(members).await;
            ractor::pg::join(group.clone(), cells);
            assert_eq!(ractor::pg::get_members(&group).len(), members);
            let run = |n: u64| {
                let clock = LoopClock::start();
                for _ in 0..n {
                    black_box(ractor::pg::get_members(black_box(&group)));
                }
                clock.stop()
            };
            run((n / 10).max(1));
            let span = run(n);
            lookup_metrics(span, n)
        }
        other => panic!("unknown lookup framework {other:?} (one of {FRAMEWORKS:?})"),
    }
}

/// The output of a future that needs no waiting (lookups of local members), polled once on
/// this thread, so a lookup loop stays synchronous; a panic if it would wait.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("a lookup of local members waited"),
    }
}

/// CPU time of the calling thread so far, in ns (the first field of
/// /proc/thread-self/schedstat): what a synchronous loop costs, whatever else runs.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Wall clock, the process's CPU and waiting (a [`Stopwatch`]) and this thread's CPU, over a
/// synchronous loop (no `.await` inside, so it stays on this thread).
pub(crate) struct LoopClock {
    watch: Stopwatch,
    thread0: u64,
}

impl LoopClock {
    pub(crate) fn start() -> Self {
        let thread0 = thread_cpu_ns();
        LoopClock {
            watch: Stopwatch::start(),
            thread0,
        }
    }

    pub(crate) fn stop(self) -> (crate::bench::Span, u64) {
        let span = self.watch.stop();
        (span, thread_cpu_ns().saturating_sub(self.thread0))
    }
}

/// Lookups per second of wall time, and per second of the looping thread's CPU time (load
/// on the machine stretches the first, hardly the second).
fn lookup_metrics((span, thread_ns): (crate::bench::Span, u64), n: u64) -> Metrics {
    vec![
        ("lookups_per_s", n as f64 / span.wall.as_secs_f64()),
        ("lookups_per_cpu_s", n as f64 * 1e9 / thread_ns as f64),
        ("ns_per_lookup", thread_ns as f64 / n as f64),
        (
            "runq_wait_pct",
            100.0 * span.wait_ns as f64 / span.wall.as_nanos() as f64,
        ),
    ]
}

// ------------------------------------------------------------------------------------------
// memory: what a group costs per node.

/// How long a memory run may take to converge (a group of 100,000 on 10 nodes is 900,000
/// remote memberships to apply in one process).
const MEMORY_LIMIT: Duration = Duration::from_secs(600);

/// Resident memory per node of one group of `members` actors spread evenly over `nodes`
/// nodes (release build, RSS of the whole process, in which every node runs).
///
/// understudy: first the cost of a *local* member, on a lone node: spawn `members / nodes`
/// actors, then `join_many` them (RSS before and after the join). Then a cluster of `nodes`:
/// every node spawns its share; RSS; every node joins its share in one `join_many`; wait until
/// every node sees all `members`; RSS again. The growth divided by `nodes` is the memory per
/// node of the group: its own members (local) and everyone else's (remote, as this node
/// stores them); taking the local cost out and dividing by the remote members a node holds
/// gives the cost of a remote member. The actors themselves are spawned before the baselines
/// and not counted.
///
/// ractor: `ractor::pg` keeps local refs only (a remote member in ractor_cluster is a proxy
/// actor, i.e. a spawned actor: see the `memory` row of the local benchmarks), so its row is
/// the cost of a local member: `members` actors spawned, RSS, one `ractor::pg::join`, RSS.
async fn memory(fw: &str, nodes: usize, members: usize) -> Metrics {
    assert!(nodes >= 2, "--gnodes must be at least 2");
    let share = members / nodes;
    assert!(share >= 1, "--gmembers must be at least --gnodes");
    let members = share * nodes;
    let delivered = Arc::new(AtomicU64::new(0));
    match fw {
        "understudy" => {
            // A local member, on a node of its own.
            let (solo, scope) = lone_node("solo").await;
            let actors = spawn_members(&solo, share, &delivered).await;
            settle().await;
            let before = crate::bench::rss_bytes();
            scope.join_many(GROUP, &actors).expect("join");
            settle().await;
            let local = crate::bench::rss_bytes().saturating_sub(before) as f64 / share as f64;

            // The group on a cluster.
            let (nodes, scopes) = pg_cluster(nodes).await;
            let mut shares = Vec::with_capacity(nodes.len());
            for node in &nodes {
                shares.push(spawn_members(node, share, &delivered).await);
            }
            settle().await;
            let before = crate::bench::rss_bytes();
            let t0 = Instant::now();
            for (scope, actors) in scopes.iter().zip(&shares) {
                scope.join_many(GROUP, actors).expect("join");
            }
            converge_within(&scopes, members, MEMORY_LIMIT).await;
            let converged = t0.elapsed();
            settle().await;
            let grown = crate::bench::rss_bytes().saturating_sub(before) as f64;
            let per_node = grown / nodes.len() as f64;
            let remote = (per_node - local * share as f64) / (members - share) as f64;
            vec![
                ("bytes_per_node", per_node),
                ("bytes_per_member", per_node / members as f64),
                ("bytes_per_local_member", local),
                ("bytes_per_remote_member", remote),
                ("converge_ms", converged.as_secs_f64() * 1e3),
            ]
        }
        "ractor" => {
            let cells = ractor_cells(members).await;
            settle().await;
            let before = crate::bench::rss_bytes();
            ractor::pg::join(GROUP.to_owned(), cells);
            assert_eq!(ractor::pg::get_members(&GROUP.to_owned()).len(), members);
            settle().await;
            let local = crate::bench::rss_bytes().saturating_sub(before) as f64 / members as f64;
            vec![("bytes_per_local_member", local)]
        }
        other => panic!("unknown memory framework {other:?} (one of {FRAMEWORKS:?})"),
    }
}

/// Lets background work (proxies starting, notices in flight) finish before reading RSS.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

// ------------------------------------------------------------------------------------------
// Options, driver and tables.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Test {
    Join,
    Broadcast,
    Lookup,
    Memory,
}

impl Test {
    const ALL: [Test; 4] = [Test::Join, Test::Broadcast, Test::Lookup, Test::Memory];
    fn name(self) -> &'static str {
        match self {
            Test::Join => "join",
            Test::Broadcast => "broadcast",
            Test::Lookup => "lookup",
            Test::Memory => "memory",
        }
    }
    fn parse(s: &str) -> Option<Test> {
        Test::ALL.into_iter().find(|t| t.name() == s)
    }
}

struct Opts {
    tests: Vec<Test>,
    frameworks: Vec<String>,
    runs: usize,
    nodes: usize,
    samples: usize,
    broadcasts: u64,
    bmembers: usize,
    members: Vec<usize>,
    refs: u64,
    gnodes: usize,
    gmembers: usize,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Opts {
        tests: Test::ALL.to_vec(),
        frameworks: FRAMEWORKS.iter().map(|s| s.to_string()).collect(),
        runs: if quick { 3 } else { 5 },
        nodes: 5,
        samples: if quick { 100 } else { 500 },
        broadcasts: if quick { 2_000 } else { 20_000 },
        bmembers: 100,
        members: vec![10, 100],
        refs: if quick { 5_000_000 } else { 50_000_000 },
        gnodes: 10,
        gmembers: if quick { 10_000 } else { 100_000 },
    };
    let list = crate::bench::positive_list;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--pg" | "--quick" => {}
            "--pg-test" | "--test" | "--tests" => {
                o.tests = value()?
                    .split(',')
                    .map(|t| Test::parse(t).ok_or(format!("unknown pg test {t:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--framework" | "--frameworks" => {
                o.frameworks = crate::bench::framework_list(&value()?, &FRAMEWORKS)?;
            }
            "--runs" => o.runs = list(&value()?)?[0],
            "--nodes" => o.nodes = list(&value()?)?[0],
            "--samples" => o.samples = list(&value()?)?[0],
            "--broadcasts" => o.broadcasts = list(&value()?)?[0] as u64,
            "--bmembers" => o.bmembers = list(&value()?)?[0],
            "--members" => o.members = list(&value()?)?,
            "--refs" => o.refs = list(&value()?)?[0] as u64,
            "--gnodes" => o.gnodes = list(&value()?)?[0],
            "--gmembers" => o.gmembers = list(&value()?)?[0],
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// Entry point for every `--pg*` invocation.
pub fn main(args: &[String]) -> ExitCode {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => return crate::bench::usage_exit(&e, USAGE),
    };
    if args.iter().any(|a| a == "--pg-test") {
        let (test, fw) = (opts.tests[0], opts.frameworks[0].clone());
        let o = &opts;
        let (nodes, samples, broadcasts, bmembers, members, refs) = (
            o.nodes,
            o.samples,
            o.broadcasts,
            o.bmembers,
            o.members[0],
            o.refs,
        );
        let (gnodes, gmembers) = (o.gnodes, o.gmembers);
        let fw2 = fw.clone();
        let m = runtime().block_on(async move {
            tokio::spawn(async move {
                match test {
                    Test::Join => join(nodes, samples).await,
                    Test::Broadcast => broadcast(bmembers, broadcasts).await,
                    Test::Lookup => lookup(&fw2, members, refs).await,
                    Test::Memory => memory(&fw2, gnodes, gmembers).await,
                }
            })
            .await
            .expect("measurement task")
        });
        let fields: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("RESULT {fw} {} {}", test.name(), fields.join(" "));
        // The nodes and their tasks need no orderly shutdown.
        std::process::exit(0);
    }
    driver(&opts)
}

/// A cell of the results: (test, framework, size or 0, metric).
type Key = (&'static str, String, usize, String);
type Results = BTreeMap<Key, Vec<f64>>;

fn driver(o: &Opts) -> ExitCode {
    let exe = std::env::current_exe().expect("current_exe");
    eprintln!(
        "understudy-benches --pg: {} run(s) each; join: {} nodes, {} samples; broadcast: {} x {} members; lookup: members {:?}, {} refs; memory: {} members on {} nodes",
        o.runs,
        o.nodes,
        o.samples,
        o.broadcasts,
        o.bmembers,
        o.members,
        o.refs,
        o.gmembers,
        o.gnodes
    );
    let mut results = Results::new();
    for run in 0..o.runs {
        for &test in &o.tests {
            // (framework, size) per child process.
            let jobs: Vec<(String, usize)> = match test {
                Test::Join | Test::Broadcast => vec![("understudy".into(), 0)],
                Test::Lookup | Test::Memory => {
                    let n = o.frameworks.len();
                    let sizes = if test == Test::Lookup {
                        o.members.clone()
                    } else {
                        vec![0]
                    };
                    sizes
                        .into_iter()
                        .flat_map(|m| (0..n).map(move |i| (o.frameworks[(i + run) % n].clone(), m)))
                        .collect()
                }
            };
            for (fw, size) in jobs {
                eprint!(
                    "run {}/{} {:<9} {:<10} {:>3} ",
                    run + 1,
                    o.runs,
                    test.name(),
                    fw,
                    if size > 0 {
                        size.to_string()
                    } else {
                        String::new()
                    }
                );
                let mut cmd = Command::new(&exe);
                cmd.args(["--pg-test", test.name(), "--framework", &fw])
                    .args(["--nodes", &o.nodes.to_string()])
                    .args(["--samples", &o.samples.to_string()])
                    .args(["--broadcasts", &o.broadcasts.to_string()])
                    .args(["--bmembers", &o.bmembers.to_string()])
                    .args(["--refs", &o.refs.to_string()])
                    .args(["--gnodes", &o.gnodes.to_string()])
                    .args(["--gmembers", &o.gmembers.to_string()]);
                if size > 0 {
                    cmd.args(["--members", &size.to_string()]);
                }
                let Some(fields) = crate::bench::run_measurement(&mut cmd) else {
                    return ExitCode::FAILURE;
                };
                for (k, v) in fields {
                    results
                        .entry((test.name(), fw.clone(), size, k))
                        .or_default()
                        .push(v);
                }
            }
        }
    }
    print_tables(o, &results);
    ExitCode::SUCCESS
}

#[derive(Clone, Copy)]
enum Target {
    Info,
    /// understudy's value at most this.
    AtMost(f64),
    /// understudy's value at least ractor's (lookups: "no slower than ractor::pg").
    NotSlowerThanRactor,
}

struct Row {
    test: Test,
    size: usize,
    metric: &'static str,
    label: String,
    higher_is_better: bool,
    target: Target,
}

fn rows(o: &Opts) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut r = |test, size, metric, label: String, hib, target| {
        if o.tests.contains(&test) {
            rows.push(Row {
                test,
                size,
                metric,
                label,
                higher_is_better: hib,
                target,
            })
        }
    };
    use Target::*;
    let n = o.nodes;
    let on_all = format!("visible on all {n} nodes");
    r(
        Test::Join,
        0,
        "join_p50_ms",
        format!("join {on_all}, p50 (ms)"),
        false,
        Info,
    );
    r(
        Test::Join,
        0,
        "join_p99_ms",
        format!("join {on_all}, p99 (ms)"),
        false,
        AtMost(50.0),
    );
    r(
        Test::Join,
        0,
        "join_max_ms",
        format!("join {on_all}, max (ms)"),
        false,
        Info,
    );
    r(
        Test::Join,
        0,
        "join_mean_ms",
        format!("join {on_all}, mean (ms)"),
        false,
        Info,
    );
    r(
        Test::Join,
        0,
        "leave_p50_ms",
        format!("leave {on_all}, p50 (ms)"),
        false,
        Info,
    );
    r(
        Test::Join,
        0,
        "leave_p99_ms",
        format!("leave {on_all}, p99 (ms)"),
        false,
        Info,
    );
    r(
        Test::Join,
        0,
        "cpu_us_per_sample",
        format!("CPU per sample (spawn, join, leave, stop), all {n} nodes (µs)"),
        false,
        Info,
    );
    let m = o.bmembers;
    r(
        Test::Broadcast,
        0,
        "broadcasts_per_s",
        format!("broadcast to {m} members on 3 nodes (broadcasts/s)"),
        true,
        Info,
    );
    r(
        Test::Broadcast,
        0,
        "deliveries_per_s",
        format!("broadcast to {m} members on 3 nodes (deliveries/s)"),
        true,
        Info,
    );
    r(
        Test::Broadcast,
        0,
        "calls_per_s",
        "broadcast calls alone, sender side (calls/s)".into(),
        true,
        Info,
    );
    r(
        Test::Broadcast,
        0,
        "cpu_ns_per_delivery",
        "broadcast, CPU per delivery, all 3 nodes (ns)".into(),
        false,
        Info,
    );
    r(
        Test::Broadcast,
        0,
        "refused",
        "broadcast, remote sends refused `Overloaded`".into(),
        false,
        Info,
    );
    for &size in &o.members {
        r(
            Test::Lookup,
            size,
            "lookups_per_s",
            format!("get_members, {size} members (lookups/s)"),
            true,
            NotSlowerThanRactor,
        );
    }
    for &size in &o.members {
        r(
            Test::Lookup,
            size,
            "lookups_per_cpu_s",
            format!("get_members, {size} members (lookups per CPU-second of the loop)"),
            true,
            NotSlowerThanRactor,
        );
    }
    for &size in &o.members {
        r(
            Test::Lookup,
            size,
            "ns_per_lookup",
            format!("get_members, {size} members, CPU per lookup (ns)"),
            false,
            Info,
        );
    }
    let (gm, gn) = (o.gmembers, o.gnodes);
    r(
        Test::Memory,
        0,
        "bytes_per_remote_member",
        "pg memory per remote member (bytes)".into(),
        false,
        AtMost(300.0),
    );
    r(
        Test::Memory,
        0,
        "bytes_per_local_member",
        "pg memory per local member (bytes)".into(),
        false,
        Info,
    );
    r(
        Test::Memory,
        0,
        "bytes_per_node",
        format!("pg memory per node, {gm} members on {gn} nodes (bytes)"),
        false,
        Info,
    );
    r(
        Test::Memory,
        0,
        "converge_ms",
        format!("{gm} members on {gn} nodes: joins until all visible everywhere (ms)"),
        false,
        Info,
    );
    rows
}

fn print_tables(o: &Opts, results: &Results) {
    let rows = rows(o);
    let fws = &o.frameworks;
    let get = |row: &Row, fw: &str| {
        results.get(&(
            row.test.name(),
            fw.to_owned(),
            row.size,
            row.metric.to_owned(),
        ))
    };
    let header = |fws: &[String]| {
        fws.iter()
            .map(|f| {
                if f == "ractor" {
                    "ractor::pg".to_owned()
                } else {
                    f.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let has_both = fws.iter().any(|f| f == "understudy") && fws.iter().any(|f| f == "ractor");
    for (title, pick) in [
        (
            "Median",
            &(|v: &[f64], _: &Row| median(v)) as &dyn Fn(&[f64], &Row) -> f64,
        ),
        ("Best", &|v: &[f64], r: &Row| best(v, r.higher_is_better)),
    ] {
        println!("\n### {title} of {} runs\n", o.runs);
        println!(
            "| measurement | {} | understudy/ractor | target | result |\n|---|{}---:|---|---|",
            header(fws),
            "---:|".repeat(fws.len())
        );
        for row in &rows {
            let mut line = format!("| {} |", row.label);
            for fw in fws {
                let cell = get(row, fw).map_or("–".into(), |v| fmt_num(pick(v, row)));
                line.push_str(&format!(" {cell} |"));
            }
            let ours = get(row, "understudy").map(|v| pick(v, row));
            let theirs = get(row, "ractor").map(|v| pick(v, row));
            match (has_both, ours, theirs) {
                (true, Some(u), Some(r)) => line.push_str(&format!(" {:.2} |", u / r)),
                _ => line.push_str(" – |"),
            }
            let (target, ok) = match row.target {
                Target::Info => ("(info)".to_owned(), None),
                Target::AtMost(t) => (format!("≤ {}", fmt_num(t)), ours.map(|u| u <= t)),
                Target::NotSlowerThanRactor => (
                    "≥ ractor::pg".to_owned(),
                    ours.zip(theirs).map(|(u, r)| u >= r),
                ),
            };
            let verdict = match ok {
                None if matches!(row.target, Target::Info) => String::new(),
                None => "–".into(),
                Some(true) => "✅".into(),
                Some(false) => "❌ miss".into(),
            };
            line.push_str(&format!(" {target} | {verdict} |"));
            println!("{line}");
        }
    }

    println!("\n### Spread (min – max over {} runs)\n", o.runs);
    println!(
        "| measurement | {} |\n|---|{}",
        header(fws),
        "---:|".repeat(fws.len())
    );
    for row in &rows {
        let mut line = format!("| {} |", row.label);
        for fw in fws {
            let cell = get(row, fw).map_or("–".into(), |v| {
                format!("{} – {}", fmt_num(best(v, false)), fmt_num(best(v, true)))
            });
            line.push_str(&format!(" {cell} |"));
        }
        println!("{line}");
    }

    println!(
        "\n### Interference: runnable-but-waiting thread time of the measuring process, % of wall \
         time (median)\n"
    );
    println!(
        "| test | size | {} |\n|---|---:|{}",
        header(fws),
        "---:|".repeat(fws.len())
    );
    for &test in &o.tests {
        let sizes = if test == Test::Lookup {
            o.members.clone()
        } else {
            vec![0]
        };
        for size in sizes {
            let mut line = format!(
                "| {} | {} |",
                test.name(),
                if size > 0 {
                    size.to_string()
                } else {
                    "–".into()
                }
            );
            for fw in fws {
                match results.get(&(test.name(), fw.clone(), size, "runq_wait_pct".to_owned())) {
                    Some(v) => line.push_str(&format!(" {:.1} |", median(v))),
                    None => line.push_str(" – |"),
                }
            }
            println!("{line}");
        }
    }
}
