//! understudy's side: three nodes with registries in this process (one 2-worker tokio
//! runtime, real QUIC + mTLS on 127.0.0.1, default `RegistryConfig`), the Raft log in memory
//! or in redb files under a temporary directory.
//!
//! The cluster forms as an application's would: `n0` (no seeds) forms a one-node registry,
//! `n1` and `n2` join with `n0` as their seed, and the leader adds them as voters. A
//! measurement starts once the leader's status shows three voters and no change in flight,
//! and every node names the same leader.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::prelude::*;
use understudy::registry::{Consistent, Registry, RegistryConfig, RegistryStatus};

use super::load::{self, Writer};
use crate::bench::Metrics;

const CLUSTER: &str = "bench";
/// Forming a cluster, or one step of a measurement, that takes longer fails the run.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// What a registered actor takes.
#[derive(Debug, Clone, Serialize, Deserialize, RemoteMessage)]
pub struct Ping;

/// An actor to register (it never receives anything here).
#[derive(Actor)]
struct Holder;

impl Handler for Holder {
    type Msg = Ping;
    async fn handle(&mut self, _: &Ctx<Self>, _: Ping) -> Result<(), ActorError> {
        Ok(())
    }
}

/// Where the Raft log and the snapshots go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Store {
    Memory,
    /// redb files under a fresh directory in the system's temporary directory.
    Disk,
}

/// Three nodes with registries, formed and settled.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    pub(crate) registries: Vec<Registry>,
    /// The index of the node that leads.
    pub(crate) leader: usize,
    _dir: Option<tempfile::TempDir>,
}

impl Cluster {
    pub(crate) async fn start(store: Store) -> Cluster {
        Cluster::start_with(store, 3, Registry::new).await
    }

    /// `n` nodes, each with the registry `registry()` makes; settled on min(n, 5) voters
    /// (the default `max_voters`) and no standbys, so `n` is at most 5.
    pub(crate) async fn start_with(
        store: Store,
        n: usize,
        registry: impl Fn() -> Registry,
    ) -> Cluster {
        assert!((1..=5).contains(&n), "1 to 5 nodes: all of them voters");
        let ca = ClusterCa::ephemeral(CLUSTER);
        let dir = (store == Store::Disk).then(|| {
            tempfile::Builder::new()
                .prefix("understudy-bench-registry-")
                .tempdir()
                .expect("a data directory")
        });
        let mut nodes: Vec<Node> = Vec::new();
        let mut registries = Vec::new();
        for i in 0..n {
            let registry = registry();
            let mut b = Node::builder(CLUSTER, format!("n{i}"))
                .ephemeral_certs(&ca)
                .extension(registry.clone());
            if let Some(dir) = &dir {
                b.config_mut().data_dir = Some(dir.path().join(format!("n{i}")));
            }
            if let Some(first) = nodes.first() {
                b = b.seed(first.local_addr());
            }
            nodes.push(b.start().await.expect("node starts"));
            registries.push(registry);
        }
        for node in &nodes {
            node.wait_for_members(n - 1, LIMIT)
                .await
                .expect("full mesh");
        }
        let leader = settled(&registries, n, 0).await;
        let leader = nodes
            .iter()
            .position(|n| n.name().as_str() == leader)
            .expect("the leader is one of the nodes");
        Cluster {
            nodes,
            registries,
            leader,
            _dir: dir,
        }
    }

    /// The first node that does not lead.
    pub(crate) fn follower(&self) -> usize {
        (0..self.nodes.len())
            .find(|&i| i != self.leader)
            .expect("a follower")
    }

    pub(crate) fn names(&self, i: usize) -> Consistent {
        self.registries[i].consistent().expect("registry started")
    }

    /// `n` actors on node `i`.
    pub(crate) async fn holders(&self, i: usize, n: usize) -> Vec<ActorRef<Ping>> {
        let mut actors = Vec::with_capacity(n);
        for _ in 0..n {
            actors.push(self.nodes[i].spawn(Holder).await.expect("spawn"));
        }
        actors
    }
}

/// Waits until the registries agree on one leader whose configuration has `voters` voters
/// and `standbys` standbys, with no change in flight; returns the leader's node name.
async fn settled(registries: &[Registry], voters: usize, standbys: usize) -> String {
    let deadline = Instant::now() + LIMIT * 4;
    loop {
        let statuses: Vec<RegistryStatus> = registries.iter().map(Registry::status).collect();
        let leaders: Vec<&RegistryStatus> = statuses.iter().filter(|s| s.leader).collect();
        if let [leader] = leaders[..]
            && leader.voters.len() == voters
            && leader.standbys.len() == standbys
            && !leader.changing
            && let Some(name) = &leader.leader_name
            && statuses
                .iter()
                .all(|s| s.member && s.leader_name.as_ref() == Some(name))
        {
            return name.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the registry did not settle on {voters} voters and {standbys} standbys: {statuses:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One actor's registrations.
struct Registrar {
    names: Consistent,
    actor: ActorRef<Ping>,
}

impl Writer for Registrar {
    async fn register(&mut self, name: &str) -> Result<(), String> {
        self.names
            .register(name, &self.actor)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Registrations/s of `writers` concurrent writers on the leader's node, each registering
/// its own actor under fresh names for `run`.
pub(crate) async fn write(store: Store, writers: usize, run: Duration) -> Metrics {
    let c = Cluster::start(store).await;
    let names = c.names(c.leader);
    let writers: Vec<Registrar> = c
        .holders(c.leader, writers)
        .await
        .into_iter()
        .map(|actor| Registrar {
            names: names.clone(),
            actor,
        })
        .collect();
    load::throughput(writers, run, || 0).await
}

/// Latency of one writer's sequential registrations, on the leader's node and on a
/// follower's (whose writes go to the leader: one more hop).
pub(crate) async fn latency(store: Store, samples: usize) -> Metrics {
    let c = Cluster::start(store).await;
    let mut m = Metrics::new();
    for (at, node) in [("leader", c.leader), ("follower", c.follower())] {
        let mut writer = Registrar {
            names: c.names(node),
            actor: c.holders(node, 1).await.remove(0),
        };
        let lat = load::sequential(&mut writer, at, samples).await;
        let (p50, p99) = load::percentiles(lat);
        let (k50, k99) = match at {
            "leader" => ("leader_p50_ms", "leader_p99_ms"),
            _ => ("follower_p50_ms", "follower_p99_ms"),
        };
        m.push((k50, p50 * 1e3));
        m.push((k99, p99 * 1e3));
    }
    m
}

/// Lookups per timed batch (the clock's own cost, ~25 ns, spread over the batch).
const BATCH: u64 = 10_000;

/// `n` calls of a synchronous operation on this thread, timed in batches of [`BATCH`].
pub(crate) struct Batches {
    /// ns per call, one figure per batch.
    per_batch: Vec<f64>,
    span: crate::bench::Span,
    /// CPU time of the looping thread.
    thread_ns: u64,
}

impl Batches {
    /// A tenth of `n` calls of `call` to warm up, then `n` (at least a batch each) timed.
    pub(crate) fn after_warm_up(n: u64, mut call: impl FnMut()) -> Batches {
        Batches::of_batches(n, |k| (0..k).for_each(|_| call()))
    }

    /// As [`after_warm_up`](Self::after_warm_up), `batch(k)` making `k` calls.
    pub(crate) fn of_batches(n: u64, mut batch: impl FnMut(u64)) -> Batches {
        let mut run = |n: u64| {
            let mut per_batch = Vec::with_capacity((n / BATCH) as usize);
            let clock = crate::pg::LoopClock::start();
            for _ in 0..n / BATCH {
                let t0 = Instant::now();
                batch(BATCH);
                per_batch.push(t0.elapsed().as_nanos() as f64 / BATCH as f64);
            }
            let (span, thread_ns) = clock.stop();
            Batches {
                per_batch,
                span,
                thread_ns,
            }
        };
        run((n / 10).max(BATCH));
        run(n.max(BATCH))
    }

    fn calls(&self) -> f64 {
        (self.per_batch.len() as u64 * BATCH) as f64
    }

    /// The median over batches of ns per call.
    pub(crate) fn median_ns(&self) -> f64 {
        crate::cluster::median(&self.per_batch)
    }

    /// Calls per wall second.
    pub(crate) fn per_wall_s(&self) -> f64 {
        self.calls() / self.span.wall.as_secs_f64()
    }

    /// Calls per second of the looping thread's CPU.
    pub(crate) fn per_cpu_s(&self) -> f64 {
        self.calls() * 1e9 / self.thread_ns as f64
    }
}

/// `whereis` from a follower's local copy, of a name held by an actor of another node and
/// of one held by a local actor: `lookups` lookups of each in a tight loop on one thread, in
/// batches of [`BATCH`]; the median over batches of ns per lookup, lookups per wall second,
/// and lookups per second of the looping thread's CPU (which other threads competing for
/// the cores hardly move). Then `samples` sequential `whereis_linearizable` calls on the
/// follower (a read index from the leader each).
pub(crate) async fn lookup(store: Store, lookups: u64, samples: usize) -> Metrics {
    let c = Cluster::start(store).await;
    let at = c.follower();
    let elsewhere = (0..3).find(|&i| i != at).expect("another node");
    let remote = c.holders(elsewhere, 1).await.remove(0);
    let local = c.holders(at, 1).await.remove(0);
    c.names(elsewhere)
        .register("remote-holder", &remote)
        .await
        .expect("register");
    c.names(at)
        .register("local-holder", &local)
        .await
        .expect("register");
    let names = c.names(at);
    for name in ["remote-holder", "local-holder"] {
        names
            .whereis_linearizable::<Ping>(name)
            .await
            .expect("the name is in the local copy");
    }
    let mut m = Metrics::new();
    for (name, k_ns, k_rate, k_cpu) in [
        (
            "remote-holder",
            "remote_ns",
            "remote_per_s",
            "remote_per_cpu_s",
        ),
        ("local-holder", "local_ns", "local_per_s", "local_per_cpu_s"),
    ] {
        let lookup = || {
            black_box(names.whereis::<Ping>(black_box(name)).expect("whereis"));
        };
        let timed = Batches::after_warm_up(lookups, lookup);
        m.push((k_ns, timed.median_ns()));
        m.push((k_rate, timed.per_wall_s()));
        m.push((k_cpu, timed.per_cpu_s()));
    }
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples / 10 + samples {
        let t0 = Instant::now();
        black_box(
            names
                .whereis_linearizable::<Ping>("remote-holder")
                .await
                .expect("whereis_linearizable"),
        );
        if i >= samples / 10 {
            lat.push(t0.elapsed());
        }
    }
    let (p50, p99) = load::percentiles(lat);
    m.push(("lin_p50_us", p50 * 1e6));
    m.push(("lin_p99_us", p99 * 1e6));
    m
}

/// Crashes the leader (`crash()`, then `shutdown()` of its registry, on a task of its
/// own) and times, from the crash, until a survivor's `register` succeeds; also until the
/// survivor's status names a new leader.
pub(crate) async fn failover(store: Store) -> Metrics {
    let c = Cluster::start(store).await;
    let survivor = c.follower();
    let names = c.names(survivor);
    let actor = c.holders(survivor, 1).await.remove(0);
    names.register("before", &actor).await.expect("register");
    let old = c.nodes[c.leader].name().to_string();

    let t0 = Instant::now();
    c.nodes[c.leader].crash();
    let registry = c.registries[c.leader].clone();
    tokio::spawn(async move { registry.shutdown().await });
    let watched = c.registries[survivor].clone();
    let elected = tokio::spawn(async move {
        loop {
            let s = watched.status();
            if s.leader_name.is_some_and(|n| n != old) {
                return t0.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match names.register(&format!("after-{attempts}"), &actor).await {
            Ok(()) => break,
            Err(e) => assert!(t0.elapsed() < LIMIT, "no write within {LIMIT:?}: {e}"),
        }
    }
    load::failover_metrics(t0.elapsed(), elected, attempts).await
}

// ------------------------------------------------------------------------------------------
// Idle CPU of the leader: the leader's node in this process, the others in a second one.

/// CPU time of this whole process so far (every thread, exited ones included), in ns.
fn own_cpu_ns() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

const CA_CERT: &str = "UNDERSTUDY_BENCH_CA_CERT";
const CA_KEY: &str = "UNDERSTUDY_BENCH_CA_KEY";

/// The registries of the idle test: none (`--no-registry`), or the defaults with
/// `--idle-standbys` as `max_standbys`.
pub(crate) fn idle_config(o: &super::Opts) -> Option<RegistryConfig> {
    (!o.no_registry).then(|| {
        let mut config = RegistryConfig::default();
        if let Some(n) = o.idle_standbys {
            config.max_standbys = n;
        }
        config
    })
}

/// The leader's node alone in this process (`n0`: it forms the registry, so it leads), the
/// other `nodes - 1` in a child process seeded with it. Once the registry has settled
/// (`max_voters` voters, `max_standbys` standbys, as many as there are nodes) and `settle`
/// has passed, the CPU time of this process over `window`, per second. With no `config`,
/// the same cluster runs without the registry extension: the difference is the registry's
/// share.
pub(crate) async fn idle(
    nodes: usize,
    config: Option<RegistryConfig>,
    settle: Duration,
    window: Duration,
) -> Metrics {
    assert!(nodes >= 2, "--idle-nodes must be at least 2");
    let ca = ClusterCa::ephemeral(CLUSTER);
    let registry = config.clone().map(Registry::with_config);
    let mut b = Node::builder(CLUSTER, "n0").ephemeral_certs(&ca);
    if let Some(r) = &registry {
        b = b.extension(r.clone());
    }
    let node = b.start().await.expect("node starts");
    if let Some(r) = &registry {
        r.wait_ready(LIMIT).await.expect("a one-node registry");
    }
    let pem = ca.to_pem();
    let seed = node.local_addr().to_string();
    let count = (nodes - 1).to_string();
    let mut args = vec![
        "--registry-serve",
        "--nodes",
        count.as_str(),
        "--seed",
        seed.as_str(),
    ];
    let standbys = config.as_ref().map(|c| c.max_standbys.to_string());
    match &standbys {
        Some(n) => args.extend(["--idle-standbys", n.as_str()]),
        None => args.push("--no-registry"),
    }
    let others = tokio::task::block_in_place(|| {
        crate::cluster::remote::Peer::spawn(&args, &[(CA_CERT, pem.cert), (CA_KEY, pem.key)])
    });
    node.wait_for_members(nodes - 1, LIMIT * 4)
        .await
        .expect("every node joined");
    if let (Some(r), Some(c)) = (&registry, &config) {
        let voters = nodes.min(c.max_voters);
        let standbys = (nodes - voters).min(c.max_standbys);
        settled(std::slice::from_ref(r), voters, standbys).await;
    }
    tokio::time::sleep(settle).await;

    let (own0, others0, t0) = (
        own_cpu_ns(),
        crate::bench::process_cpu_ns(others.pid()),
        Instant::now(),
    );
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64();
    let own = own_cpu_ns() - own0;
    let rest = crate::bench::process_cpu_ns(others.pid()).saturating_sub(others0);
    let kept = registry.as_ref().is_none_or(|r| r.status().leader);
    drop(others);
    vec![
        ("leader_cpu_ms_per_s", own as f64 / 1e6 / secs),
        (
            "other_cpu_ms_per_s_per_node",
            rest as f64 / 1e6 / secs / (nodes - 1) as f64,
        ),
        ("leader_kept", f64::from(u8::from(kept))),
    ]
}

/// The other nodes of [`idle`], in their own process: `count` nodes `n1..` seeded with
/// `seed`, each with a registry of `config` if there is one; prints `READY` once each sees
/// all the others and `n0`, and runs until its stdin closes.
pub(crate) fn serve(count: usize, seed: std::net::SocketAddr, config: Option<RegistryConfig>) {
    crate::cluster::runtime().block_on(async move {
        let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
        let ca = ClusterCa::from_pem(&env(CA_CERT), &env(CA_KEY)).expect("CA from PEM");
        let mut nodes = Vec::with_capacity(count);
        for i in 1..=count {
            let mut b = Node::builder(CLUSTER, format!("n{i}"))
                .ephemeral_certs(&ca)
                .seed(seed);
            if let Some(c) = &config {
                b = b.extension(Registry::with_config(c.clone()));
            }
            nodes.push(b.start().await.expect("node starts"));
        }
        for node in &nodes {
            node.wait_for_members(count, LIMIT * 4)
                .await
                .expect("full membership");
        }
        crate::cluster::remote::ready_until_stdin_closes(&count.to_string()).await;
    });
    std::process::exit(0);
}
