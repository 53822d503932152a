//! Membership benchmark: convergence and failure-detection time with the default config.
//!
//! ```text
//! cargo run --release -p understudy-cluster --example membership_bench -- [--sizes 10,30,50] [--runs 3] [--join-gap-ms 20]
//!     [--probe-ms N] [--rtt-ms N] [--suspect-ms N] [--gossip-ms N]   (override the defaults)
//! ```
//!
//! For each cluster size n, `runs` times:
//! - **convergence**: n nodes start one after another, `join-gap` apart, all with the same two
//!   seeds; measured from the start of the last node until every node's view holds all n − 1
//!   others (each node's view is tracked from its event stream, so measuring costs nothing);
//! - **failure detection**: then one non-seed node is killed (its task stopped, its address
//!   unreachable: no leave); measured until every other node has reported it `Failed`.
//!
//! The network is a [`Harness`]: today the in-memory transport (real time, real tokio
//! scheduling, no sockets); the QUIC mesh plugs in the same way. Timings are wall-clock on
//! whatever machine runs it; this is a benchmark, not a test.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use understudy_cluster::NodeId;
use understudy_cluster::membership::testing::{MemNetwork, local_node};
use understudy_cluster::membership::{LeaveReason, Membership, MembershipConfig, MembershipEvent};

/// A network to run membership on.
trait Harness {
    /// What the table calls it.
    fn name(&self) -> &'static str;
    /// The mesh address of node `i`.
    fn addr(&self, i: usize) -> SocketAddr;
    /// Starts node `i`.
    fn start(&mut self, i: usize, seeds: Vec<SocketAddr>) -> Membership;
    /// Makes node `i` unreachable (after its task was stopped).
    fn cut(&mut self, i: usize);
}

/// The in-memory transport.
struct InMemory {
    net: MemNetwork,
    config: MembershipConfig,
    /// Different per run, so each run draws different SWIM randomness (it seeds the nodes'
    /// RNGs through their incarnation).
    incarnation: u64,
}

impl Harness for InMemory {
    fn name(&self) -> &'static str {
        "in-memory"
    }

    fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port(i)))
    }

    fn start(&mut self, i: usize, seeds: Vec<SocketAddr>) -> Membership {
        let local = local_node("bench", &format!("node-{i}"), port(i), self.incarnation)
            .expect("valid name");
        self.net
            .start(local, self.config.clone(), seeds)
            .expect("valid config")
    }

    fn cut(&mut self, i: usize) {
        self.net.detach(self.addr(i));
    }
}

fn port(i: usize) -> u16 {
    20_000 + u16::try_from(i).expect("fewer than 45k nodes")
}

/// Reports the instant `membership` first sees `want` members.
fn watch_full_view(membership: &Membership, want: usize, done: mpsc::UnboundedSender<Instant>) {
    let (snapshot, mut rx) = membership.subscribe_with_snapshot();
    let mut view: BTreeSet<NodeId> = snapshot.iter().map(|m| m.node_id()).collect();
    tokio::spawn(async move {
        loop {
            if view.len() >= want {
                let _ = done.send(Instant::now());
                return;
            }
            match rx.recv().await {
                Ok(MembershipEvent::NodeJoined(m)) => {
                    view.insert(m.node_id());
                }
                Ok(MembershipEvent::NodeLeft { member, .. }) => {
                    view.remove(&member.node_id());
                }
                Ok(MembershipEvent::NodeUpdated(_)) => {}
                Err(_) => return,
            }
        }
    });
}

/// Reports the instant `membership` reports `victim` failed.
fn watch_failure(membership: &Membership, victim: NodeId, done: mpsc::UnboundedSender<Instant>) {
    let mut rx = membership.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = rx.recv().await {
            if let MembershipEvent::NodeLeft { member, reason } = event
                && member.node_id() == victim
            {
                if reason == LeaveReason::Failed {
                    let _ = done.send(Instant::now());
                }
                return;
            }
        }
    });
}

struct Run {
    convergence: Duration,
    detection_first: Duration,
    detection_all: Duration,
}

async fn run_once(harness: &mut impl Harness, n: usize, join_gap: Duration) -> Option<Run> {
    let seeds = vec![harness.addr(0), harness.addr(1)];
    let (view_tx, mut view_rx) = mpsc::unbounded_channel();
    let mut nodes = Vec::with_capacity(n);
    let mut last_join = Instant::now();
    for i in 0..n {
        if i > 0 {
            tokio::time::sleep(join_gap).await;
        }
        last_join = Instant::now();
        let node = harness.start(i, seeds.clone());
        watch_full_view(&node, n - 1, view_tx.clone());
        nodes.push(node);
    }
    let mut converged_at = last_join;
    for _ in 0..n {
        let at = tokio::time::timeout(Duration::from_secs(60), view_rx.recv())
            .await
            .ok()??;
        converged_at = converged_at.max(at);
    }
    // Let the cluster settle (pending gossip, syncs) before the kill.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let victim = n / 2;
    let victim_id = nodes[victim].local().node_id();
    let (fail_tx, mut fail_rx) = mpsc::unbounded_channel();
    for (i, node) in nodes.iter().enumerate() {
        if i != victim {
            watch_failure(node, victim_id, fail_tx.clone());
        }
    }
    let killed_at = Instant::now();
    nodes[victim].stop().await;
    harness.cut(victim);
    let mut first = None;
    let mut last = killed_at;
    for _ in 0..n - 1 {
        let at = tokio::time::timeout(Duration::from_secs(60), fail_rx.recv())
            .await
            .ok()??;
        first.get_or_insert(at);
        last = last.max(at);
    }
    for node in &nodes {
        node.stop().await;
    }
    Some(Run {
        convergence: converged_at - last_join,
        detection_first: first.unwrap_or(last) - killed_at,
        detection_all: last - killed_at,
    })
}

fn arg<T: std::str::FromStr>(args: &[String], flag: &str) -> Option<T> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1)?.parse().ok()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = arg::<String>(&args, "--sizes")
        .unwrap_or_else(|| "10,30,50".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|n| *n >= 3)
        .collect();
    let runs: usize = arg(&args, "--runs").unwrap_or(3).max(1);
    let join_gap = Duration::from_millis(arg(&args, "--join-gap-ms").unwrap_or(20));
    // Overrides, to explore other settings; the recorded numbers use the defaults.
    let mut config = MembershipConfig::default();
    let millis = |flag| arg::<u64>(&args, flag).map(Duration::from_millis);
    config.probe_period = millis("--probe-ms").unwrap_or(config.probe_period);
    config.probe_rtt = millis("--rtt-ms").unwrap_or(config.probe_rtt);
    config.suspect_to_down = millis("--suspect-ms").unwrap_or(config.suspect_to_down);
    config.gossip_interval = millis("--gossip-ms").unwrap_or(config.gossip_interval);
    if let Err(error) = config.validate() {
        eprintln!("{error}");
        std::process::exit(2);
    }
    println!(
        "membership bench: config (probe {:?}, rtt {:?}, suspect→down {:?}, gossip {:?}), \
         joins {join_gap:?} apart, {runs} runs per size",
        config.probe_period, config.probe_rtt, config.suspect_to_down, config.gossip_interval
    );
    println!();
    println!(
        "| transport | nodes | convergence after last join (median / max) | failure detected by all (median / max) | by the first (median) |"
    );
    println!("|---|---|---|---|---|");
    for (k, n) in sizes.iter().copied().enumerate() {
        let mut conv = Vec::new();
        let mut all = Vec::new();
        let mut first = Vec::new();
        let mut name = "";
        for r in 0..runs {
            let mut harness = InMemory {
                net: MemNetwork::new((k * 100 + r) as u64),
                config: config.clone(),
                incarnation: 1_000_000 * (k as u64 + 1) + r as u64,
            };
            name = harness.name();
            match run_once(&mut harness, n, join_gap).await {
                Some(run) => {
                    conv.push(run.convergence);
                    all.push(run.detection_all);
                    first.push(run.detection_first);
                }
                None => println!("| {name} | {n} | run {r} did not finish within 60 s | | |"),
            }
        }
        if conv.is_empty() {
            continue;
        }
        let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
        println!(
            "| {name} | {n} | {} / {} | {} / {} | {} |",
            ms(median(conv.clone())),
            ms(max(&conv)),
            ms(median(all.clone())),
            ms(max(&all)),
            ms(median(first)),
        );
    }
}
