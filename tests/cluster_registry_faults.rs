//! The registry under faults, on real clusters (QUIC + TLS on loopback, partitions from the
//! mesh's `FaultPlan`, silent crashes):
//! - a node cut off from the majority cannot write (`NoQuorum` within the write deadline) but
//!   still reads its own copy, while the majority keeps writing; after the heal every copy
//!   converges and the node writes again;
//! - an isolated leader is replaced, its own writes and linearizable reads fail instead of
//!   answering from a stale term, and what it appended alone never shows up;
//! - five voters survive the loss of one (and, once reconfigured, of another);
//! - histories of concurrent register / unregister / linearizable whereis calls from several
//!   nodes, across leader crashes and partitions, are linearizable (checked with stateright's
//!   `LinearizabilityTester`, one register per name).
#![cfg(feature = "cluster")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use tokio::time::Instant;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::membership::MembershipEvent;
use understudy::cluster::mesh::FaultPlan;
use understudy::cluster::node::Node;
use understudy::prelude::*;
use understudy::registry::{Consistent, Registry, RegistryConfig, RegistryError};

use common::registry::{WAIT, Work, settled, until, worker};

/// The write deadline of these tests: short, so that a minority's writes fail fast (it must
/// stay at least `election_timeout_max`, 500 ms by default).
const WRITE_DEADLINE: Duration = Duration::from_secs(2);

/// How far past the write deadline a `NoQuorum` may come: one scheduling delay on a busy
/// machine, never another attempt.
const DEADLINE_SLACK: Duration = Duration::from_secs(1);

fn config() -> RegistryConfig {
    RegistryConfig {
        write_deadline: WRITE_DEADLINE,
        ..RegistryConfig::default()
    }
}

/// Logs to the test's output, filtered by `RUST_LOG` (e.g.
/// `RUST_LOG=openraft=info,understudy_registry=debug`).
fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Nodes `n0..` with a registry each, all routed through one fault plan.
struct Cluster {
    plan: FaultPlan,
    nodes: Vec<Node>,
    registries: Vec<Registry>,
}

impl Cluster {
    /// `n` nodes with the default failure detection (a silent node is declared failed in
    /// about 2 s).
    async fn start(n: usize, seed: u64) -> Cluster {
        Cluster::start_with(n, seed, None).await
    }

    /// `n` nodes; with `suspicion`, a node unheard of is suspected that long before it is
    /// declared failed.
    async fn start_with(n: usize, seed: u64, suspicion: Option<Duration>) -> Cluster {
        let ca = ClusterCa::ephemeral("test");
        let plan = FaultPlan::new(seed);
        let registries: Vec<Registry> = (0..n).map(|_| Registry::with_config(config())).collect();
        let nodes = common::cluster_with(&ca, n, Some(&plan), WAIT, |i, mut b| {
            if let Some(suspicion) = suspicion {
                b.config_mut().membership.suspect_to_down = suspicion;
            }
            b.extension(registries[i].clone())
        })
        .await;
        Cluster {
            plan,
            nodes,
            registries,
        }
    }

    fn names(&self, i: usize) -> Consistent {
        self.registries[i].consistent().expect("started")
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].local_addr()
    }

    fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name().as_str() == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// A fresh actor on node `i`, to hold names.
    async fn holder(&self, i: usize) -> ActorRef<Work> {
        worker(&self.nodes[i]).await.0
    }

    /// Registers `{prefix}-{i}` from each node `i` of `from` (held by a fresh actor there),
    /// failing the test with `when` if a write fails; returns the names.
    async fn register_each(&self, from: &[usize], prefix: &str, when: &str) -> Vec<String> {
        let mut names = Vec::new();
        for &i in from {
            let actor = self.holder(i).await;
            let name = format!("{prefix}-{i}");
            self.names(i)
                .register(&name, &actor)
                .await
                .unwrap_or_else(|e| panic!("a write on n{i} {when}: {e}"));
            names.push(name);
        }
        names
    }

    /// Kills node `i` silently (no goodbye to its peers) and stops its Raft.
    async fn crash(&self, i: usize) {
        self.nodes[i].crash();
        self.registries[i].shutdown().await;
    }

    /// Cuts node `i` off from every other node.
    fn isolate(&self, i: usize) {
        self.plan.isolate(self.addr(i));
    }

    /// Heals every cut and waits until the `live` nodes see each other again.
    async fn heal(&self, live: &[usize]) {
        self.plan.heal_all();
        for &i in live {
            self.nodes[i]
                .wait_for_members(live.len() - 1, WAIT)
                .await
                .expect("the cluster heals");
        }
    }

    /// Waits until the `live` registries agree on one leader with `voters` voters and no
    /// change in flight; returns the leader's index.
    async fn settled(&self, live: &[usize], voters: usize) -> usize {
        let registries: Vec<&Registry> = live.iter().map(|&i| &self.registries[i]).collect();
        self.index_of(&settled(&registries, voters).await)
    }

    /// Heals every cut and waits until all nodes are back under one leader with three
    /// voters; then node `cut` (back from the cut) registers `written-after-the-heal` for
    /// `actor`, and every copy must converge to that name and the `kept` ones (`what`, for
    /// the failure). Returns the leader's index.
    async fn heal_then_converge(
        &self,
        cut: usize,
        actor: &ActorRef<Work>,
        kept: &[&str],
        what: &str,
    ) -> usize {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.heal(&all).await;
        let leader = self.settled(&all, 3).await;
        self.names(cut)
            .register("written-after-the-heal", actor)
            .await
            .unwrap_or_else(|e| panic!("n{cut} writes again after the heal: {e}"));
        let mut want: Vec<String> = kept.iter().map(|s| (*s).to_owned()).collect();
        want.push("written-after-the-heal".to_owned());
        want.sort();
        self.converged(&all, &want, what).await;
        leader
    }

    /// Waits until every `live` node's copy holds exactly `want`, in order (`what`, for the
    /// failure).
    async fn converged(&self, live: &[usize], want: &[String], what: &str) {
        let copies: Vec<Consistent> = live.iter().map(|&i| self.names(i)).collect();
        let deadline = Instant::now() + WAIT;
        loop {
            let views: Vec<Vec<String>> = copies.iter().map(Consistent::names).collect();
            if views.iter().all(|v| *v == want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the copies did not converge to {want:?} ({what}): {views:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `result` is the `NoQuorum` of a call that waited the write deadline, no less and not much
/// more.
fn assert_no_quorum<T: std::fmt::Debug>(what: &str, result: Result<T, RegistryError>) {
    match result {
        Err(RegistryError::NoQuorum { waited }) => assert!(
            waited >= WRITE_DEADLINE && waited <= WRITE_DEADLINE + DEADLINE_SLACK,
            "{what}: NoQuorum after {waited:?}, for a write deadline of {WRITE_DEADLINE:?}"
        ),
        other => panic!("{what}: expected NoQuorum, got {other:?}"),
    }
}

/// The holder of `name` in node `copy`'s own copy, by pid: a local actor resolves, a remote
/// one behind a cut is `Unreachable` (with its address), never `NotRegistered`.
fn local_holder(copy: &Consistent, name: &str) -> Option<u64> {
    match copy.whereis::<Work>(name) {
        Ok(found) => Some(found.get_id().pid()),
        Err(RegistryError::Unreachable { owner, .. }) => Some(owner.pid),
        Err(RegistryError::NotRegistered { .. }) => None,
        Err(e) => panic!("whereis {name:?}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_reads_its_copy_cannot_write_and_catches_up_after_the_heal() {
    trace();
    let c = Cluster::start(3, 1).await;
    let all = [0, 1, 2];
    let leader = c.settled(&all, 3).await;
    let cut = *all.iter().find(|&&i| i != leader).expect("a follower");
    let majority: Vec<usize> = all.iter().copied().filter(|&i| i != cut).collect();
    let on_cut = c.names(cut);

    // One name held on the node to be cut off, one held in the majority.
    let mine = c.holder(cut).await;
    on_cut
        .register("held-by-the-cut-node", &mine)
        .await
        .expect("register on the follower");
    let theirs = c.holder(leader).await;
    c.names(leader)
        .register("held-by-the-majority", &theirs)
        .await
        .expect("register on the leader");
    until("both names in the follower's copy", || {
        on_cut.owner("held-by-the-cut-node").is_some()
            && on_cut.owner("held-by-the-majority").is_some()
    })
    .await;

    c.isolate(cut);

    // A write on the cut-off node fails once the write deadline has passed.
    assert_no_quorum(
        "a write in the minority",
        on_cut.register("written-in-the-minority", &mine).await,
    );
    // Its reads still answer from its own copy.
    assert_eq!(
        local_holder(&on_cut, "held-by-the-cut-node"),
        Some(mine.get_id().pid())
    );
    assert_eq!(
        local_holder(&on_cut, "held-by-the-majority"),
        Some(theirs.get_id().pid())
    );

    // The majority keeps writing.
    let written = c
        .register_each(&majority, "written-by-the-majority", "in the majority")
        .await;
    // The majority declares the cut-off node failed and releases its names; the cut-off
    // node's copy still has them (it hears of nothing).
    until("the majority to release the cut-off node's name", || {
        majority
            .iter()
            .all(|&i| c.names(i).owner("held-by-the-cut-node").is_none())
    })
    .await;
    assert!(on_cut.owner("held-by-the-cut-node").is_some());
    assert!(on_cut.owner(&written[0]).is_none());
    // A linearizable read in the minority fails rather than answer from a stale copy.
    assert_no_quorum(
        "a linearizable read in the minority",
        on_cut.whereis_linearizable::<Work>(&written[0]).await,
    );

    let mut kept: Vec<&str> = written.iter().map(String::as_str).collect();
    kept.push("held-by-the-majority");
    c.heal_then_converge(
        cut,
        &mine,
        &kept,
        "every name of the majority survives the heal; the cut-off node's was released",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_is_replaced_and_its_lone_writes_never_commit() {
    trace();
    let c = Cluster::start(3, 2).await;
    let all = [0, 1, 2];
    let old = c.settled(&all, 3).await;
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != old).collect();
    let on_old = c.names(old);

    let before = c.holder(rest[0]).await;
    c.names(rest[0])
        .register("before", &before)
        .await
        .expect("register before the cut");
    until("the name in the leader's copy", || {
        on_old.owner("before").is_some()
    })
    .await;

    c.isolate(old);

    // The other two elect one of them.
    until("a new leader in the majority", || {
        rest.iter().any(|&i| c.registries[i].status().leader)
    })
    .await;
    let written = c.register_each(&rest, "after", "in the majority").await;

    // The old leader, alone, can neither write nor read linearizably; its copy still
    // answers.
    let lone = c.holder(old).await;
    assert_no_quorum(
        "a write on the isolated leader",
        on_old.register("written-by-the-lone-leader", &lone).await,
    );
    assert_no_quorum(
        "a linearizable read on the isolated leader",
        on_old.whereis_linearizable::<Work>(&written[0]).await,
    );
    assert_eq!(local_holder(&on_old, "before"), Some(before.get_id().pid()));
    assert!(on_old.owner(&written[0]).is_none());

    // What the old leader appended alone was never committed: it is nowhere.
    let mut kept: Vec<&str> = written.iter().map(String::as_str).collect();
    kept.push("before");
    let new = c
        .heal_then_converge(
            old,
            &lone,
            &kept,
            "the majority's names survive the heal; the lone leader's write is nowhere",
        )
        .await;
    eprintln!("leader n{old} isolated, n{new} leads after the heal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_voters_survive_a_lost_voter_and_then_another() {
    trace();
    let c = Cluster::start(5, 3).await;
    let all: Vec<usize> = (0..5).collect();
    let leader = c.settled(&all, 5).await;
    let status = c.registries[leader].status();
    assert_eq!(status.voters.len(), 5, "{status:?}");
    assert!(!status.changing);

    // Kill a follower voter: four of five still make a quorum, at once, on every survivor.
    let victim = *all.iter().find(|&&i| i != leader).expect("a follower");
    c.crash(victim).await;
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    let written = c
        .register_each(&survivors, "one-down", "with one voter down")
        .await;
    for &i in &survivors {
        for name in &written {
            let found = c.names(i).whereis_linearizable::<Work>(name).await;
            assert!(found.is_ok(), "n{i} reads {name}: {found:?}");
        }
    }

    // Four live nodes: the registry settles on three voters (and a standby). Losing the
    // leader then still leaves a quorum.
    let leader = c.settled(&survivors, 3).await;
    c.crash(leader).await;
    let rest: Vec<usize> = survivors.iter().copied().filter(|&i| i != leader).collect();
    c.register_each(&rest, "two-down", "with two nodes down")
        .await;
    c.settled(&rest, 3).await;
}

// ----- Linearizability -------------------------------------------------------------------

/// One name as a register holding its holder's pid.
#[derive(Clone, Debug, Default)]
struct Name(Option<u64>);

#[derive(Clone, Debug)]
enum Op {
    Register(u64),
    Unregister,
    Whereis,
}

#[derive(Clone, Debug, PartialEq)]
enum Ret {
    Registered,
    /// `AlreadyRegistered`, with the holder.
    HeldBy(u64),
    Unregistered,
    NotRegistered,
    Found(Option<u64>),
}

impl SequentialSpec for Name {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match (op, self.0) {
            (Op::Register(actor), None) => {
                self.0 = Some(*actor);
                Ret::Registered
            }
            (Op::Register(actor), Some(holder)) if holder == *actor => Ret::Registered,
            (Op::Register(_), Some(holder)) => Ret::HeldBy(holder),
            (Op::Unregister, Some(_)) => {
                self.0 = None;
                Ret::Unregistered
            }
            (Op::Unregister, None) => Ret::NotRegistered,
            (Op::Whereis, holder) => Ret::Found(holder),
        }
    }
}

/// What goes wrong in a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The leader dies silently.
    CrashLeader,
    /// The leader is cut off, then healed.
    IsolateLeader(Heal),
    /// A follower is cut off, then healed.
    IsolateFollower(Heal),
}

/// When a partition heals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Heal {
    /// Once the majority has finished a few operations without the cut-off node: the
    /// cut-off node's calls are still retrying, and go through after the heal.
    Soon,
    /// Once two thirds of the operations have finished: the cut-off node's calls have
    /// waited out the write deadline.
    Late,
}

/// The names the clients of a round share (few, so that they contend).
const NAMES: [&str; 3] = ["a", "b", "c"];

/// Clients per node.
const CLIENTS: usize = 2;

/// Operations per round, about ten per name: the tester's search is exhaustive, so a
/// history that fails the check takes time exponential in its concurrent operations (about
/// 0.1 s at this size, unoptimised).
const BUDGET: usize = 30;

/// A small seeded generator (xorshift64*): each round's choices follow from its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() >> 33) as usize % n
    }
}

/// One line of a round's log.
#[derive(Debug)]
enum Event {
    /// A client thread invoked `op` on `name`.
    Invoke {
        name: &'static str,
        thread: u64,
        node: usize,
        op: Op,
    },
    /// The thread's operation returned (`None`: its outcome is unknown).
    Return {
        name: &'static str,
        thread: u64,
        node: usize,
        ret: Option<Ret>,
    },
    /// The test injected a fault or healed one.
    Fault(String),
}

/// What the clients of a round share: the log of their operations, and the operations they
/// may start.
struct Histories {
    /// Every invocation, return and fault, in the order they happened, with the time since
    /// the round began.
    log: Mutex<Vec<(Duration, Event)>>,
    epoch: Instant,
    next_thread: AtomicU64,
    /// Tickets taken: a client takes one per operation.
    tickets: AtomicUsize,
    /// Tickets below this may start (the round opens the rest after a heal).
    open: tokio::sync::watch::Sender<usize>,
    finished: AtomicUsize,
    /// Operations finished on each node.
    finished_on: Vec<AtomicUsize>,
    unknown: AtomicUsize,
    /// Operations that took longer than an election timeout: caught in the fault.
    slow: AtomicUsize,
    /// Nodes that are dead: their clients stop.
    dead: Vec<AtomicBool>,
}

impl Histories {
    fn new(nodes: usize, open: usize) -> Histories {
        Histories {
            log: Mutex::new(Vec::new()),
            epoch: Instant::now(),
            next_thread: AtomicU64::new(0),
            tickets: AtomicUsize::new(0),
            open: tokio::sync::watch::Sender::new(open),
            finished: AtomicUsize::new(0),
            finished_on: (0..nodes).map(|_| AtomicUsize::new(0)).collect(),
            unknown: AtomicUsize::new(0),
            slow: AtomicUsize::new(0),
            dead: (0..nodes).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    fn thread(&self) -> u64 {
        self.next_thread.fetch_add(1, Ordering::Relaxed)
    }

    fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }

    fn finished_besides(&self, node: usize) -> usize {
        self.finished_on
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != node)
            .map(|(_, n)| n.load(Ordering::SeqCst))
            .sum()
    }

    /// Appends `event` to the log: the log's order is the real-time order the tester needs
    /// (an invocation logged after a return started after it).
    fn log(&self, event: Event) {
        let at = self.epoch.elapsed();
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((at, event));
    }

    /// `name`'s history, replayed into a tester. A read whose outcome is unknown is left
    /// out (it changed nothing, and an operation left in flight multiplies the orders the
    /// tester tries); a write whose outcome is unknown stays in flight for good: it may have
    /// taken effect at any point after its invocation, or never.
    fn tester(&self, name: &str) -> LinearizabilityTester<u64, Name> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        // The log positions of the reads whose outcome is unknown.
        let mut pending: BTreeMap<u64, usize> = BTreeMap::new();
        let mut unknown_reads: BTreeSet<usize> = BTreeSet::new();
        for (at, (_, event)) in log.iter().enumerate() {
            match event {
                Event::Invoke {
                    thread,
                    op: Op::Whereis,
                    ..
                } => {
                    pending.insert(*thread, at);
                }
                Event::Return {
                    thread, ret: None, ..
                } => unknown_reads.extend(pending.remove(thread)),
                Event::Return { thread, .. } => {
                    pending.remove(thread);
                }
                _ => {}
            }
        }
        let mut tester = LinearizabilityTester::new(Name::default());
        for (at, (_, event)) in log.iter().enumerate() {
            let recorded = match event {
                Event::Invoke {
                    name: n,
                    thread,
                    op,
                    ..
                } if *n == name && !unknown_reads.contains(&at) => {
                    tester.on_invoke(*thread, op.clone()).map(drop)
                }
                Event::Return {
                    name: n,
                    thread,
                    ret: Some(ret),
                    ..
                } if *n == name => tester.on_return(*thread, ret.clone()).map(drop),
                _ => Ok(()),
            };
            recorded.unwrap_or_else(|e| panic!("an invalid history for {name:?}: {e}"));
        }
        tester
    }

    /// The log of `name`'s operations and the faults, one line each.
    fn log_of(&self, name: &str) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .filter_map(|(at, e)| {
                let line = match e {
                    Event::Invoke {
                        name: n,
                        thread,
                        node,
                        op,
                    } if *n == name => format!("n{node} t{thread} invoke {op:?}"),
                    Event::Return {
                        name: n,
                        thread,
                        node,
                        ret,
                    } if *n == name => format!("n{node} t{thread} return {ret:?}"),
                    Event::Fault(what) => what.clone(),
                    _ => return None,
                };
                Some(format!("{:>6}ms {line}", at.as_millis()))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs `op` on `name` through `copy`: its return, or `None` if its outcome is unknown (the
/// write deadline passed, or the node was killed under it: `killed`).
async fn run(
    copy: &Consistent,
    name: &str,
    op: &Op,
    actor: &ActorRef<Work>,
    killed: &AtomicBool,
) -> Option<Ret> {
    let result = match op {
        Op::Register(_) => copy.register(name, actor).await.map(|()| Ret::Registered),
        Op::Unregister => copy.unregister(name).await.map(|()| Ret::Unregistered),
        Op::Whereis => copy
            .whereis_linearizable::<Work>(name)
            .await
            .map(|found| Ret::Found(Some(found.get_id().pid()))),
    };
    match result {
        Ok(ret) => Some(ret),
        Err(RegistryError::AlreadyRegistered { owner, .. }) => Some(Ret::HeldBy(owner.pid)),
        Err(RegistryError::NotRegistered { .. }) => Some(match op {
            Op::Whereis => Ret::Found(None),
            _ => Ret::NotRegistered,
        }),
        // The holder's node is unreachable from here: the read still names it.
        Err(RegistryError::Unreachable { owner, .. }) => Some(Ret::Found(Some(owner.pid))),
        Err(
            RegistryError::NoQuorum { .. } | RegistryError::NotReady(_) | RegistryError::Stopped,
        ) => None,
        // A write in flight when its node's Raft was shut down ends as a store failure.
        Err(RegistryError::Storage { .. }) if killed.load(Ordering::SeqCst) => None,
        Err(e) => panic!("{op:?} {name:?}: an unexpected error: {e}"),
    }
}

/// One client: operations one at a time on random names until the round's budget is spent.
async fn client(
    histories: Arc<Histories>,
    node: usize,
    copy: Consistent,
    actor: ActorRef<Work>,
    mut rng: Rng,
) {
    let pid = actor.get_id().pid();
    let mut thread = histories.thread();
    let mut open = histories.open.subscribe();
    loop {
        let ticket = histories.tickets.fetch_add(1, Ordering::SeqCst);
        if ticket >= BUDGET {
            return;
        }
        if open.wait_for(|open| ticket < *open).await.is_err() {
            return;
        }
        if histories.dead[node].load(Ordering::SeqCst) {
            return;
        }
        let name = NAMES[rng.below(NAMES.len())];
        let op = match rng.below(100) {
            r if r < 40 => Op::Register(pid),
            r if r < 65 => Op::Unregister,
            _ => Op::Whereis,
        };
        histories.log(Event::Invoke {
            name,
            thread,
            node,
            op: op.clone(),
        });
        let began = Instant::now();
        let ret = run(&copy, name, &op, &actor, &histories.dead[node]).await;
        let unknown = ret.is_none();
        histories.log(Event::Return {
            name,
            thread,
            node,
            ret,
        });
        if unknown {
            // The op stays in flight for good: go on as a new thread.
            histories.unknown.fetch_add(1, Ordering::Relaxed);
            thread = histories.thread();
        }
        if began.elapsed() > config().election_timeout_min {
            histories.slow.fetch_add(1, Ordering::Relaxed);
        }
        histories.finished_on[node].fetch_add(1, Ordering::SeqCst);
        histories.finished.fetch_add(1, Ordering::SeqCst);
    }
}

/// Failure detection in these rounds: slower than any round lasts. The registry releases
/// the names of a node declared failed, which is no client's operation and would fall
/// outside the model; a partition healed before detection, and a crash whose detection
/// comes after the round, exercise Raft alone (elections, lost leaders, truncated logs).
const SUSPICION: Duration = Duration::from_secs(20);

/// One round: a fresh 3-node cluster, [`CLIENTS`] clients per node, `fault` a sixth of the
/// way into the operations. After a partition heals, the last third of the operations runs.
async fn round(seed: u64, fault: Fault) {
    let c = Cluster::start_with(3, seed, Some(SUSPICION)).await;
    let all = [0, 1, 2];
    let leader = c.settled(&all, 3).await;
    let mut rng = Rng::new(seed);
    let target = match fault {
        Fault::CrashLeader | Fault::IsolateLeader(_) => leader,
        Fault::IsolateFollower(_) => {
            let followers: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
            followers[rng.below(followers.len())]
        }
    };
    let first = match fault {
        Fault::CrashLeader => BUDGET,
        Fault::IsolateLeader(_) | Fault::IsolateFollower(_) => BUDGET * 2 / 3,
    };
    let histories = Arc::new(Histories::new(all.len(), first));
    let mut events: Vec<_> = c.nodes.iter().map(Node::subscribe).collect();
    let mut clients = Vec::new();
    let mut actors = Vec::new();
    for &i in &all {
        for _ in 0..CLIENTS {
            let actor = c.holder(i).await;
            actors.push(actor.clone());
            clients.push(tokio::spawn(client(
                histories.clone(),
                i,
                c.names(i),
                actor,
                Rng::new(rng.next()),
            )));
        }
    }

    until("a sixth of the operations", || {
        histories.finished() >= BUDGET / 6
    })
    .await;
    match fault {
        Fault::CrashLeader => {
            histories.dead[target].store(true, Ordering::SeqCst);
            histories.log(Event::Fault(format!("crash n{target}")));
            c.crash(target).await;
        }
        Fault::IsolateLeader(heal) | Fault::IsolateFollower(heal) => {
            let before = histories.finished_besides(target);
            histories.log(Event::Fault(format!("isolate n{target}")));
            c.isolate(target);
            match heal {
                Heal::Soon => {
                    // A few operations complete in the majority, unless the open tickets run
                    // out first (the cut node's clients may hold the last ones, waiting for
                    // their deadline; more open only after the heal).
                    until("a few operations in the majority", || {
                        histories.finished_besides(target) >= before + 4
                            || histories.tickets.load(Ordering::SeqCst) >= *histories.open.borrow()
                    })
                    .await
                }
                Heal::Late => {
                    until("two thirds of the operations", || {
                        histories.finished() >= first
                    })
                    .await
                }
            }
            histories.log(Event::Fault("heal".to_owned()));
            c.heal(&all).await;
            histories.log(Event::Fault("healed".to_owned()));
            histories.open.send_replace(BUDGET);
        }
    }
    for handle in clients {
        tokio::time::timeout(WAIT, handle)
            .await
            .expect("the clients finish")
            .expect("a client panicked");
    }

    // No node was declared failed (the premise of the model: see `SUSPICION`).
    for rx in &mut events {
        while let Ok(event) = rx.try_recv() {
            assert!(
                !matches!(event, MembershipEvent::NodeLeft { .. }),
                "seed {seed}: a node was declared failed during the round: {event:?}"
            );
        }
    }
    let operations = histories.finished();
    let unknown = histories.unknown.load(Ordering::SeqCst);
    let slow = histories.slow.load(Ordering::SeqCst);
    let checking = Instant::now();
    for name in NAMES {
        if !histories.tester(name).is_consistent() {
            let actors: Vec<String> = actors
                .iter()
                .zip(all.iter().flat_map(|i| [*i; CLIENTS]))
                .map(|(a, i)| format!("{} on n{i}", a.get_id().pid()))
                .collect();
            panic!(
                "seed {seed} ({fault:?} of n{target}): the history of {name:?} is not linearizable.\n\
                 actors: {actors:?}\nlog (t: client thread):\n{}",
                histories.log_of(name)
            );
        }
    }
    let checking = checking.elapsed();
    for actor in actors {
        actor.stop(None);
    }
    eprintln!(
        "seed {seed} {fault:?} of n{target}: {operations} operations, {slow} caught in the fault, {unknown} of unknown outcome; checked in {checking:?}"
    );
}

/// Runs the rounds one after the other (each on its own cluster).
async fn rounds(faults: &[(u64, Fault)]) {
    trace();
    for &(seed, fault) in faults {
        let started = Instant::now();
        round(seed, fault).await;
        eprintln!("seed {seed}: {:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_are_linearizable_across_leader_crashes() {
    rounds(&[
        (11, Fault::CrashLeader),
        (12, Fault::CrashLeader),
        (13, Fault::CrashLeader),
        (14, Fault::CrashLeader),
        (15, Fault::CrashLeader),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_are_linearizable_across_partitions() {
    rounds(&[
        (21, Fault::IsolateLeader(Heal::Late)),
        (22, Fault::IsolateFollower(Heal::Soon)),
        (23, Fault::IsolateLeader(Heal::Soon)),
        (24, Fault::IsolateFollower(Heal::Late)),
        (25, Fault::IsolateLeader(Heal::Late)),
    ])
    .await;
}

/// The model and the tester reject what the rounds look for (so a round can fail): a
/// completed register that a later read does not see, an unregister that answers "nobody
/// held it" after its own retry freed the name, and a register whose outcome was unknown
/// taking effect twice.
#[test]
fn the_checker_rejects_lost_misreported_and_repeated_writes() {
    let history = |steps: &[(u64, Op, Option<Ret>)]| {
        let mut tester = LinearizabilityTester::new(Name::default());
        for (thread, op, ret) in steps {
            tester.on_invoke(*thread, op.clone()).expect("valid");
            if let Some(ret) = ret {
                tester.on_return(*thread, ret.clone()).expect("valid");
            }
        }
        tester.is_consistent()
    };
    // Sequential, and right.
    assert!(history(&[
        (0, Op::Register(1), Some(Ret::Registered)),
        (1, Op::Register(2), Some(Ret::HeldBy(1))),
        (1, Op::Unregister, Some(Ret::Unregistered)),
        (0, Op::Whereis, Some(Ret::Found(None))),
    ]));
    // A lost write.
    assert!(!history(&[
        (0, Op::Register(1), Some(Ret::Registered)),
        (1, Op::Whereis, Some(Ret::Found(None))),
    ]));
    // An unregister that freed the name but answered NotRegistered.
    assert!(!history(&[
        (0, Op::Register(1), Some(Ret::Registered)),
        (1, Op::Unregister, Some(Ret::NotRegistered)),
        (2, Op::Register(2), Some(Ret::Registered)),
    ]));
    // A register of unknown outcome (never returned) may take effect once, late...
    assert!(history(&[
        (0, Op::Register(1), None),
        (1, Op::Whereis, Some(Ret::Found(None))),
        (1, Op::Register(2), Some(Ret::HeldBy(1))),
    ]));
    // ...but not twice: once before an unregister, and again after it.
    assert!(!history(&[
        (0, Op::Register(1), None),
        (1, Op::Unregister, Some(Ret::Unregistered)),
        (1, Op::Whereis, Some(Ret::Found(None))),
        (1, Op::Register(2), Some(Ret::HeldBy(1))),
    ]));
}

/// An actor that can hold Eventual names: it reports the revocation of any of them.
#[derive(Actor)]
struct Claimant {
    revoked: tokio::sync::mpsc::UnboundedSender<understudy::registry::NameRevoked>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, RemoteMessage)]
enum ClaimantMsg {
    /// Its name went to another actor.
    Revoked(understudy::registry::NameRevoked),
    /// Nothing to do.
    Poke,
}

impl From<understudy::registry::NameRevoked> for ClaimantMsg {
    fn from(revoked: understudy::registry::NameRevoked) -> Self {
        ClaimantMsg::Revoked(revoked)
    }
}

impl Handler for Claimant {
    type Msg = ClaimantMsg;
    async fn handle(&mut self, _: &Ctx<Self>, message: ClaimantMsg) -> Result<(), ActorError> {
        match message {
            ClaimantMsg::Revoked(revoked) => {
                let _ = self.revoked.send(revoked);
            }
            ClaimantMsg::Poke => {}
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eventual_name_taken_on_both_sides_of_a_partition_has_one_winner_after_the_heal() {
    let c = Cluster::start(4, 11).await;
    let eventual = |i: usize| c.registries[i].eventual().expect("started");
    // Both sides take the same name while they cannot hear each other; each side's view
    // has it, the other's claim unseen.
    c.plan
        .split(&[c.addr(0), c.addr(1)], &[c.addr(2), c.addr(3)]);
    let (tx_a, mut revoked_a) = tokio::sync::mpsc::unbounded_channel();
    let (tx_b, mut revoked_b) = tokio::sync::mpsc::unbounded_channel();
    let a = c.nodes[0]
        .spawn(Claimant { revoked: tx_a })
        .await
        .expect("spawn");
    let b = c.nodes[2]
        .spawn(Claimant { revoked: tx_b })
        .await
        .expect("spawn");
    eventual(0).register("e", &a).expect("side A registers");
    eventual(2)
        .register("e", &b)
        .expect("side B registers, in a minority of one side");
    until("each side sees its own holder", || {
        eventual(1).owner("e").map(|o| o.addr.node) == Some(c.nodes[0].runtime().node_id())
            && eventual(3).owner("e").map(|o| o.addr.node) == Some(c.nodes[2].runtime().node_id())
    })
    .await;

    c.heal(&[0, 1, 2, 3]).await;
    until("one holder of e on every node", || {
        let first = eventual(0).owner("e");
        first.is_some() && (1..4).all(|i| eventual(i).owner("e") == first)
    })
    .await;
    let winner = eventual(0).owner("e").expect("held").addr;
    let (loser, revoked) = if winner.node == c.nodes[0].runtime().node_id() {
        (b.clone(), &mut revoked_b)
    } else {
        (a.clone(), &mut revoked_a)
    };
    let notice = tokio::time::timeout(WAIT, revoked.recv())
        .await
        .expect("the loser is told in time")
        .expect("a notice");
    assert_eq!(notice.name, "e");
    assert_eq!(notice.winner, winner);
    // The loser keeps running (it is local to its node: the ref shows its status).
    understudy::tell(&loser, ClaimantMsg::Poke).expect("the loser takes messages");
    assert_eq!(loser.get_status(), ractor::ActorStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_in_several_scopes_resolves_consistent_then_eventual_then_local() {
    let c = Cluster::start(3, 12).await;
    let claimant = |i: usize| {
        let (tx, _) = tokio::sync::mpsc::unbounded_channel();
        c.nodes[i].spawn(Claimant { revoked: tx })
    };
    // Pids count per node: spawn a few more on n2 so its holder's pid differs from n1's.
    for _ in 0..3 {
        claimant(2).await.expect("spawn");
    }
    let (local, eventual_holder, consistent_holder) = (
        claimant(0).await.expect("spawn"),
        claimant(1).await.expect("spawn"),
        claimant(2).await.expect("spawn"),
    );
    assert_ne!(
        eventual_holder.get_id().pid(),
        consistent_holder.get_id().pid()
    );
    let _local_name = c.nodes[0]
        .runtime()
        .register("x", local.get_cell())
        .expect("a free local name");
    c.registries[1]
        .eventual()
        .expect("started")
        .register("x", &eventual_holder)
        .expect("eventual");
    c.names(2)
        .register("x", &consistent_holder)
        .await
        .expect("consistent");
    // (whether n0 resolves it to a local actor, its pid)
    let pid_on_n0 = |r: &Registry| {
        r.whereis::<ClaimantMsg>("x")
            .map(|a| (a.get_id().is_local(), a.get_id().pid()))
            .unwrap_or((false, 0))
    };
    until("n0 resolves x to the Consistent holder", || {
        pid_on_n0(&c.registries[0]) == (false, consistent_holder.get_id().pid())
    })
    .await;
    c.names(2).unregister("x").await.expect("unregister");
    until("then to the Eventual one", || {
        pid_on_n0(&c.registries[0]) == (false, eventual_holder.get_id().pid())
    })
    .await;
    c.registries[1]
        .eventual()
        .expect("started")
        .unregister("x")
        .expect("unregister");
    until("then to n0's Local one", || {
        pid_on_n0(&c.registries[0]) == (true, local.get_id().pid())
    })
    .await;
}
