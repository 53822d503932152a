//! Model-based property tests of the pure pg scope core (`understudy_pg::core::ScopeCore`).
//!
//! The core is deterministic and has no I/O, so a whole cluster of scope instances can be
//! simulated in one thread: every node owns a `ScopeCore`, the `Output`s it emits become
//! messages in per-(sender, receiver) queues, and a random schedule interleaves local
//! changes (counted joins, leaves, member deaths), peer failures and recoveries, anti-entropy
//! ticks, monitors, and message deliveries. The truth is a trivial model: per node, per
//! group, pid → join count, updated exactly as Erlang's `pg` does.
//!
//! What is checked, and why:
//! - **Local answers are immediate**: after every step, each node's local groups, local
//!   members (as multisets), `has_local` and `groups_of` equal the model, and `leave` fails
//!   with `NotJoined` exactly when none of the given actors is a member. A node is the
//!   authority for its own members, so it must never have to wait for the network.
//! - **Convergence**: after the random phase the network is healed and anti-entropy runs
//!   until quiescent; then every node's merged view equals the union of all nodes' local
//!   memberships, and every node's `view_digest` of a peer equals that peer's `digest`.
//!   When no message was lost or reordered, the deltas and syncs alone (no tick) must
//!   already converge: anti-entropy is for repair, not for the normal path.
//! - **Views are faithful at every step**: whatever a node holds of a peer is exactly the
//!   peer's membership at the version the node is synced to (the test records each node's
//!   membership per version), and nothing while not synced. This catches a delta applied
//!   across a gap or twice, which the end state alone would hide (anti-entropy repairs it).
//! - **Monitors**: for every monitor, created at any point, the snapshot plus the events it
//!   received equals that node's view (of the watched group) after every step; replaying the
//!   events never removes a member that is not there; after `demonitor` nothing more
//!   arrives. This is the "atomic snapshot + ordered events" contract subscriptions rely on.
//! - **Hostile or reordered input is safe**: the network may deliver each pair's messages in
//!   order (the mesh's ordered control stream), drop messages (an unresolvable notice is
//!   dropped by the driver), or reorder them within a pair; and a separate property feeds
//!   arbitrary well-formed `PeerMessage`s from arbitrary peers into a core. The core must not
//!   panic, must refuse (and count) a `Sync` with a count above `MAX_JOINS` without changing
//!   anything, must never let a peer touch its own members, and a correct `Sync` from a peer
//!   afterwards must replace whatever it had.
//!
//! Two defects this test found are pinned by regression tests at the end.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use understudy_actor::{ActorAddr, NodeId, Tag};
use understudy_pg::core::{Change, CoreError, Entry, EventSink, MAX_JOINS, Output, ScopeCore};
use understudy_pg::wire::PeerMessage;

// ---- shared helpers ---------------------------------------------------------------------

/// The events a monitor received, shared between the core (which owns the sink) and the test.
type Log = Rc<RefCell<Vec<Change<ActorAddr>>>>;

/// A sink that records every change. The handle type is the address itself.
#[derive(Clone, Default)]
struct TestSink(Log);

impl EventSink<ActorAddr> for TestSink {
    fn deliver(&self, change: Change<ActorAddr>) {
        self.0.borrow_mut().push(change);
    }
}

type Core = ScopeCore<ActorAddr, TestSink>;

/// A multiset of members.
type Multiset = BTreeMap<ActorAddr, u32>;
/// A membership: group → multiset of members (no empty groups, no zero counts).
type View = BTreeMap<String, Multiset>;
/// A node's local authority: group → pid → join count (no empty groups, no zero counts).
type Local = BTreeMap<String, BTreeMap<u64, u32>>;

/// The message type of every member in the cluster simulation.
const TAG: Tag = Tag(0x5eed);
/// The groups of the cluster simulation.
const GROUPS: [&str; 3] = ["a", "b", "c"];
/// Local pids per node in the cluster simulation: 1..=PIDS.
const PIDS: u64 = 4;

/// Node `i` (0-based index) of a simulation.
fn node(i: usize) -> NodeId {
    NodeId::new(i as u64 + 1).expect("non-zero")
}

/// The message type of a pid in the fuzz property: a real actor never changes type.
fn tag_of(pid: u64) -> Tag {
    Tag(pid % 3 + 1)
}

fn resolve(addr: ActorAddr, _: Tag) -> ActorAddr {
    addr
}

/// The merged view of a core, checking that every entry is well-formed.
fn view_of(core: &Core, tag: &dyn Fn(ActorAddr) -> Tag) -> Result<View, TestCaseError> {
    let mut out = View::new();
    let groups = core.groups();
    prop_assert!(
        groups.windows(2).all(|w| w[0] < w[1]),
        "groups() not sorted and unique: {:?}",
        groups
    );
    for g in groups {
        let members = core.members(&g);
        prop_assert!(
            !members.is_empty(),
            "groups() lists the empty group {:?}",
            g
        );
        let set = out.entry(g.clone()).or_default();
        for e in members {
            prop_assert_eq!(e.handle, e.addr, "handle is not the resolved member");
            prop_assert_eq!(e.tag, tag(e.addr), "wrong tag for {}", e.addr);
            *set.entry(e.addr).or_default() += 1;
        }
    }
    Ok(out)
}

/// `local` of node `me` as a view.
fn local_as_view(me: NodeId, local: &Local) -> View {
    local
        .iter()
        .map(|(g, pids)| {
            let set = pids
                .iter()
                .map(|(pid, n)| {
                    (
                        ActorAddr {
                            node: me,
                            pid: *pid,
                        },
                        *n,
                    )
                })
                .collect();
            (g.clone(), set)
        })
        .collect()
}

/// Adds `from` into `into`.
fn merge(into: &mut View, from: View) {
    for (g, set) in from {
        let target = into.entry(g).or_default();
        for (addr, n) in set {
            *target.entry(addr).or_default() += n;
        }
    }
}

/// Only the members of `view` on `peer`.
fn restrict(view: &View, peer: NodeId) -> View {
    view.iter()
        .filter_map(|(g, set)| {
            let set: Multiset = set
                .iter()
                .filter(|(a, _)| a.node == peer)
                .map(|(a, n)| (*a, *n))
                .collect();
            (!set.is_empty()).then(|| (g.clone(), set))
        })
        .collect()
}

/// Checks the local answers of `core` against the local authority `local`.
fn check_local(
    core: &Core,
    local: &Local,
    groups: &[String],
    pids: &[u64],
) -> Result<(), TestCaseError> {
    let me = core.me();
    let want: Vec<String> = local.keys().cloned().collect();
    prop_assert_eq!(core.local_groups(), want, "local_groups of {}", me);
    for g in groups {
        let mut got = Multiset::new();
        for e in core.local_members(g) {
            prop_assert_eq!(e.addr.node, me);
            *got.entry(e.addr).or_default() += 1;
        }
        let want = local_as_view(me, local).remove(g).unwrap_or_default();
        prop_assert_eq!(&got, &want, "local members of {:?} on {}", g, me);
        prop_assert_eq!(
            core.has_local(g),
            !want.is_empty(),
            "has_local({:?}) on {}",
            g,
            me
        );
    }
    for pid in pids {
        let want: Vec<String> = local
            .iter()
            .filter(|(_, m)| m.contains_key(pid))
            .map(|(g, _)| g.clone())
            .collect();
        prop_assert_eq!(core.groups_of(*pid), want, "groups_of({}) on {}", pid, me);
    }
    Ok(())
}

/// Applies a local join to the model.
fn model_join(local: &mut Local, group: &str, pids: &[u64]) {
    if pids.is_empty() {
        return;
    }
    let set = local.entry(group.to_owned()).or_default();
    for pid in pids {
        *set.entry(*pid).or_default() += 1;
    }
}

/// Applies a local leave to the model; whether it is `Ok` (some pid was a member).
fn model_leave(local: &mut Local, group: &str, pids: &[u64]) -> bool {
    let Some(set) = local.get_mut(group) else {
        return false;
    };
    let mut any = false;
    for pid in pids {
        if let Some(n) = set.get_mut(pid) {
            any = true;
            *n -= 1;
            if *n == 0 {
                set.remove(pid);
            }
        }
    }
    if set.is_empty() {
        local.remove(group);
    }
    any
}

/// Applies a member's death to the model.
fn model_down(local: &mut Local, pid: u64) {
    for set in local.values_mut() {
        set.remove(&pid);
    }
    local.retain(|_, set| !set.is_empty());
}

/// The expected result of a leave, given whether the model accepted it.
fn expected_leave(group: &str, ok: bool) -> Result<(), CoreError> {
    if ok {
        Ok(())
    } else {
        Err(CoreError::NotJoined {
            group: group.to_owned(),
        })
    }
}

/// One monitor as the test follows it: its snapshot with every event replayed so far.
struct Mon {
    node: usize,
    id: u64,
    group: Option<String>,
    log: Log,
    /// Snapshot + events up to `seen`.
    state: View,
    seen: usize,
    /// The log's length when the monitor was removed.
    removed_at: Option<usize>,
}

impl Mon {
    fn new(node: usize, id: u64, group: Option<String>, log: Log, snapshot: View) -> Mon {
        Mon {
            node,
            id,
            group,
            log,
            state: snapshot,
            seen: 0,
            removed_at: None,
        }
    }

    /// Replays the events not yet seen.
    fn catch_up(&mut self, tag: &dyn Fn(ActorAddr) -> Tag) -> Result<(), TestCaseError> {
        let log = self.log.borrow();
        if let Some(at) = self.removed_at {
            prop_assert_eq!(
                log.len(),
                at,
                "monitor {} got events after demonitor",
                self.id
            );
        }
        for change in &log[self.seen..] {
            if let Some(g) = &self.group {
                prop_assert_eq!(
                    change.group(),
                    g.as_str(),
                    "group monitor got another group"
                );
            }
            match change {
                Change::Join { group, members } => {
                    prop_assert!(!members.is_empty(), "empty Join event");
                    let set = self.state.entry(group.clone()).or_default();
                    for e in members {
                        prop_assert_eq!(e.handle, e.addr);
                        prop_assert_eq!(e.tag, tag(e.addr));
                        *set.entry(e.addr).or_default() += 1;
                    }
                }
                Change::Leave { group, members } => {
                    prop_assert!(!members.is_empty(), "empty Leave event");
                    let Some(set) = self.state.get_mut(group) else {
                        return Err(TestCaseError::fail(format!(
                            "monitor {}: Leave from {group:?}, which it has no members of",
                            self.id
                        )));
                    };
                    for e in members {
                        let Some(n) = set.get_mut(&e.addr) else {
                            return Err(TestCaseError::fail(format!(
                                "monitor {}: {} left {group:?} more often than it joined",
                                self.id, e.addr
                            )));
                        };
                        *n -= 1;
                        if *n == 0 {
                            set.remove(&e.addr);
                        }
                    }
                    if set.is_empty() {
                        self.state.remove(group);
                    }
                }
            }
        }
        self.seen = log.len();
        Ok(())
    }

    /// Catches up and compares with the node's current view.
    fn check(&mut self, view: &View, tag: &dyn Fn(ActorAddr) -> Tag) -> Result<(), TestCaseError> {
        self.catch_up(tag)?;
        if self.removed_at.is_some() {
            return Ok(());
        }
        let want: View = match &self.group {
            None => view.clone(),
            Some(g) => view
                .get(g)
                .map(|set| (g.clone(), set.clone()))
                .into_iter()
                .collect(),
        };
        prop_assert_eq!(
            &self.state,
            &want,
            "monitor {} on node {}: snapshot + events != view",
            self.id,
            self.node
        );
        Ok(())
    }
}

fn snapshot_of(entries: &[Entry<ActorAddr>]) -> Multiset {
    let mut set = Multiset::new();
    for e in entries {
        *set.entry(e.addr).or_default() += 1;
    }
    set
}

// ---- the cluster simulation -------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Local actors of `node` join a group (a pid listed twice joins twice).
    Join {
        node: usize,
        group: usize,
        pids: Vec<u64>,
    },
    /// Local actors of `node` leave a group once each.
    Leave {
        node: usize,
        group: usize,
        pids: Vec<u64>,
    },
    /// A local actor of `node` stops.
    MemberDown {
        node: usize,
        pid: u64,
    },
    /// A join listing an actor of another node: refused, nothing changes.
    JoinForeign {
        node: usize,
        group: usize,
        pid: u64,
        other: usize,
    },
    /// The connection between two nodes drops: both see the other go down.
    LinkDown {
        a: usize,
        b: usize,
    },
    /// A node fails as seen by the others: every other node sees it go down (it sees
    /// nothing and goes on sending into the void).
    NodeFail {
        node: usize,
    },
    /// A node comes back: `peer_up` both ways with every node that had it down.
    Recover {
        node: usize,
    },
    /// Both ends of a pair are told the other is up (again, perhaps).
    LinkUp {
        a: usize,
        b: usize,
    },
    /// An anti-entropy round on a node.
    Tick {
        node: usize,
    },
    MonitorScope {
        node: usize,
    },
    MonitorGroup {
        node: usize,
        group: usize,
    },
    /// Removes the `pick`th monitor created so far (again, perhaps).
    Demonitor {
        pick: usize,
    },
    /// Delivers up to `count` messages, in order, from the `pick`th non-empty queue.
    Deliver {
        pick: usize,
        count: usize,
    },
    /// Delivers any message of a queue (only in reordering runs; else the first).
    DeliverAny {
        pick: usize,
        index: usize,
    },
    /// Loses any message of a queue (only in lossy runs).
    Lose {
        pick: usize,
        index: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let n = || 0usize..4;
    let g = || 0usize..GROUPS.len();
    let pids = || prop::collection::vec(1u64..=PIDS, 0..=3);
    prop_oneof![
        8 => (n(), g(), pids()).prop_map(|(node, group, pids)| Op::Join { node, group, pids }),
        5 => (n(), g(), pids()).prop_map(|(node, group, pids)| Op::Leave { node, group, pids }),
        2 => (n(), 1u64..=PIDS).prop_map(|(node, pid)| Op::MemberDown { node, pid }),
        1 => (n(), g(), 1u64..=PIDS, 0usize..3)
            .prop_map(|(node, group, pid, other)| Op::JoinForeign { node, group, pid, other }),
        1 => (n(), 0usize..3).prop_map(|(a, b)| Op::LinkDown { a, b }),
        1 => n().prop_map(|node| Op::NodeFail { node }),
        2 => n().prop_map(|node| Op::Recover { node }),
        1 => (n(), 0usize..3).prop_map(|(a, b)| Op::LinkUp { a, b }),
        2 => n().prop_map(|node| Op::Tick { node }),
        1 => n().prop_map(|node| Op::MonitorScope { node }),
        1 => (n(), g()).prop_map(|(node, group)| Op::MonitorGroup { node, group }),
        1 => any::<usize>().prop_map(|pick| Op::Demonitor { pick }),
        14 => (any::<usize>(), 1usize..=4).prop_map(|(pick, count)| Op::Deliver { pick, count }),
        3 => (any::<usize>(), any::<usize>())
            .prop_map(|(pick, index)| Op::DeliverAny { pick, index }),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(pick, index)| Op::Lose { pick, index }),
    ]
}

#[derive(Clone, Debug)]
struct Scenario {
    nodes: usize,
    /// Whether the nodes start connected (else they start alone and `Recover`/`LinkUp`
    /// and the final heal connect them).
    connected: bool,
    /// Messages may be lost.
    lossy: bool,
    /// Messages of one pair may be delivered out of order.
    reorder: bool,
    ops: Vec<Op>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        2usize..=4,
        prop::bool::weighted(0.8),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(op(), 0..80),
    )
        .prop_map(|(nodes, connected, lossy, reorder, ops)| Scenario {
            nodes,
            connected,
            lossy,
            reorder,
            ops,
        })
}

struct Sim {
    n: usize,
    lossy: bool,
    reorder: bool,
    cores: Vec<Core>,
    /// The model: each node's local authority.
    truth: Vec<Local>,
    /// `up[a][b]`: `a` has been told `b` is up (and not down since).
    up: Vec<Vec<bool>>,
    /// Messages in flight, per (from, to), oldest first.
    queues: BTreeMap<(usize, usize), VecDeque<PeerMessage>>,
    monitors: Vec<Mon>,
    /// Messages other than digests sent (a repair under way, or a change).
    non_digests: usize,
    groups: Vec<String>,
    pids: Vec<u64>,
    /// Per node, version → its local membership at that version and, when known, the
    /// hash its digest carried.
    history: Vec<BTreeMap<u64, (Past, Option<u64>)>>,
}

/// A node's local membership at one of its versions.
#[derive(Clone, Debug)]
enum Past {
    Exact(Local),
    /// Part-way through a `member_down`, which takes one version per group the member was
    /// in: `pid` has left `done` of its groups in `before` (in an order the model leaves open).
    MidDown {
        before: Local,
        pid: u64,
        done: usize,
    },
}

impl Past {
    /// Whether `held`, a peer's view of `node`, is this membership.
    fn matches(&self, node: NodeId, held: &View) -> bool {
        match self {
            Past::Exact(local) => *held == local_as_view(node, local),
            Past::MidDown { before, pid, done } => {
                let full = local_as_view(node, before);
                let mut after = before.clone();
                model_down(&mut after, *pid);
                let after = local_as_view(node, &after);
                let groups: BTreeSet<&String> = full.keys().chain(held.keys()).collect();
                let mut left = 0;
                for g in groups {
                    let h = held.get(g);
                    if h == full.get(g) {
                        continue;
                    }
                    if h != after.get(g) {
                        return false;
                    }
                    left += 1;
                }
                left == *done
            }
        }
    }
}

/// The `k`th node other than `i` (of `n`), counting on from `i`.
fn another(i: usize, k: usize, n: usize) -> usize {
    (i + 1 + k % (n - 1)) % n
}

fn no_tag(_: ActorAddr) -> Tag {
    TAG
}

impl Sim {
    fn new(s: &Scenario) -> Result<Sim, TestCaseError> {
        let n = s.nodes;
        let mut sim = Sim {
            n,
            lossy: s.lossy,
            reorder: s.reorder,
            cores: (0..n).map(|i| Core::new(node(i))).collect(),
            truth: vec![Local::new(); n],
            up: vec![vec![false; n]; n],
            queues: BTreeMap::new(),
            monitors: Vec::new(),
            non_digests: 0,
            groups: GROUPS.iter().map(|g| (*g).to_owned()).collect(),
            pids: (1..=PIDS).collect(),
            history: vec![BTreeMap::new(); n],
        };
        if s.connected {
            for a in 0..n {
                for b in 0..n {
                    if a != b {
                        sim.up[a][b] = true;
                        sim.cores[a].peer_up(node(b));
                    }
                }
            }
            sim.route()?;
        }
        Ok(sim)
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.up[a][b] && self.up[b][a]
    }

    /// Takes every core's outputs into the queues; what goes to a node that is not
    /// connected to the sender is lost with the connection.
    fn route(&mut self) -> Result<(), TestCaseError> {
        for from in 0..self.n {
            for output in self.cores[from].take_outputs() {
                let Output::Send { to, message } = output;
                prop_assert!(!to.is_empty(), "a Send to nobody");
                prop_assert!(to.windows(2).all(|w| w[0] < w[1]), "duplicate receivers");
                if !matches!(message, PeerMessage::Digest { .. }) {
                    self.non_digests += 1;
                }
                for t in to {
                    let t = (t.get() - 1) as usize;
                    prop_assert!(t < self.n && t != from, "node {} sent to {}", from, t);
                    if self.connected(from, t) {
                        self.queues
                            .entry((from, t))
                            .or_default()
                            .push_back(message.clone());
                    }
                }
            }
        }
        Ok(())
    }

    fn peer_down(&mut self, a: usize, b: usize) {
        self.cores[a].peer_down(node(b));
        self.up[a][b] = false;
        // The connection is gone, and what was in flight on it.
        self.queues.remove(&(a, b));
        self.queues.remove(&(b, a));
    }

    fn peer_up(&mut self, a: usize, b: usize) {
        self.up[a][b] = true;
        self.cores[a].peer_up(node(b));
    }

    fn nonempty_queue(&self, pick: usize) -> Option<(usize, usize)> {
        let keys: Vec<(usize, usize)> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| *k)
            .collect();
        (!keys.is_empty()).then(|| keys[pick % keys.len()])
    }

    fn deliver(&mut self, (from, to): (usize, usize), index: usize) -> Result<(), TestCaseError> {
        let Some(message) = self
            .queues
            .get_mut(&(from, to))
            .and_then(|q| q.remove(index))
        else {
            return Ok(());
        };
        self.cores[to].receive(node(from), message, &mut resolve);
        self.route()
    }

    /// Delivers everything in flight, in order per pair (round-robin over the pairs).
    fn deliver_all(&mut self) -> Result<(), TestCaseError> {
        let mut budget = 100_000;
        while let Some(key) = self.nonempty_queue(budget) {
            budget -= 1;
            prop_assert!(budget > 0, "messages never stop flowing");
            self.deliver(key, 0)?;
        }
        Ok(())
    }

    /// Records node `i`'s local membership at `version`; a version, once taken, never
    /// names another membership (every local change bumps the version).
    fn record(&mut self, i: usize, version: u64, hash: Option<u64>) -> Result<(), TestCaseError> {
        let latest = self.history[i].keys().next_back().copied();
        match self.history[i].get_mut(&version) {
            Some((Past::MidDown { .. }, _)) => {
                return Err(TestCaseError::fail(format!(
                    "node {i}'s version {version} is past already"
                )));
            }
            Some((Past::Exact(local), known)) => {
                prop_assert_eq!(
                    &*local,
                    &self.truth[i],
                    "node {} changed at version {}",
                    i,
                    version
                );
                prop_assert_eq!(latest, Some(version), "node {}'s version went back", i);
                if let (Some(h), Some(k)) = (hash, *known) {
                    prop_assert_eq!(h, k, "node {}'s hash changed at version {}", i, version);
                }
                *known = known.or(hash);
            }
            None => {
                prop_assert!(latest < Some(version), "node {}'s version went back", i);
                let past = Past::Exact(self.truth[i].clone());
                self.history[i].insert(version, (past, hash));
            }
        }
        Ok(())
    }

    /// Checks the local answers, the views of peers and every monitor of every node.
    fn check_step(&mut self) -> Result<(), TestCaseError> {
        for i in 0..self.n {
            check_local(&self.cores[i], &self.truth[i], &self.groups, &self.pids)?;
            let (version, hash) = self.cores[i].digest();
            self.record(i, version, Some(hash))?;
        }
        let views = self
            .cores
            .iter()
            .map(|c| view_of(c, &no_tag))
            .collect::<Result<Vec<View>, TestCaseError>>()?;
        self.check_faithful(&views)?;
        self.check_monitors(&views)
    }

    /// What a node holds of a peer is always a membership the peer really had: exactly
    /// its membership at the version the node's view of it is at (deltas applied in
    /// order, no gap, no duplicate; any Sync, even a stale one, taken whole), and nothing
    /// while not synced with it.
    fn check_faithful(&self, views: &[View]) -> Result<(), TestCaseError> {
        for (i, view) in views.iter().enumerate() {
            for j in (0..self.n).filter(|j| *j != i) {
                let held = restrict(view, node(j));
                match self.cores[i].view_digest(node(j)) {
                    None => prop_assert!(
                        held.is_empty(),
                        "node {} holds members of {} without a sync: {:?}",
                        i,
                        j,
                        held
                    ),
                    Some((version, hash)) => {
                        let Some((past, known)) = self.history[j].get(&version) else {
                            return Err(TestCaseError::fail(format!(
                                "node {i}'s view of {j} is at version {version}, which {j} never had"
                            )));
                        };
                        prop_assert!(
                            past.matches(node(j), &held),
                            "node {}'s view of {} is not {}'s membership at version {}: {:?} vs {:?}",
                            i,
                            j,
                            j,
                            version,
                            held,
                            past
                        );
                        if let Some(k) = known {
                            prop_assert_eq!(hash, *k, "node {}'s hash of {} at {}", i, j, version);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn check_monitors(&mut self, views: &[View]) -> Result<(), TestCaseError> {
        for m in &mut self.monitors {
            m.check(&views[m.node], &no_tag)?;
        }
        for (i, core) in self.cores.iter().enumerate() {
            let active = self
                .monitors
                .iter()
                .filter(|m| m.node == i && m.removed_at.is_none())
                .count();
            prop_assert_eq!(core.monitor_count(), active, "monitor_count of node {}", i);
        }
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let n = self.n;
        match op.clone() {
            Op::Join {
                node: i,
                group,
                pids,
            } => {
                let i = i % n;
                let g = GROUPS[group];
                let me = node(i);
                let entries = pids
                    .iter()
                    .map(|pid| {
                        let addr = ActorAddr {
                            node: me,
                            pid: *pid,
                        };
                        Entry {
                            addr,
                            tag: TAG,
                            handle: addr,
                        }
                    })
                    .collect();
                prop_assert_eq!(self.cores[i].join(g, entries), Ok(()));
                model_join(&mut self.truth[i], g, &pids);
            }
            Op::Leave {
                node: i,
                group,
                pids,
            } => {
                let i = i % n;
                let g = GROUPS[group];
                let ok = model_leave(&mut self.truth[i], g, &pids);
                prop_assert_eq!(self.cores[i].leave(g, &pids), expected_leave(g, ok));
            }
            Op::MemberDown { node: i, pid } => {
                let i = i % n;
                // One change (and version) per group the member was in: a peer may stop
                // at any of the versions in between (the last one is recorded as usual).
                let version = self.cores[i].digest().0;
                self.cores[i].member_down(pid);
                let before = self.truth[i].clone();
                let groups = before.values().filter(|set| set.contains_key(&pid)).count();
                for done in 1..groups {
                    let past = Past::MidDown {
                        before: before.clone(),
                        pid,
                        done,
                    };
                    self.history[i].insert(version + done as u64, (past, None));
                }
                model_down(&mut self.truth[i], pid);
            }
            Op::JoinForeign {
                node: i,
                group,
                pid,
                other,
            } => {
                let i = i % n;
                let foreign = ActorAddr {
                    node: node(another(i, other, n)),
                    pid,
                };
                let own = ActorAddr { node: node(i), pid };
                let entries = vec![
                    Entry {
                        addr: own,
                        tag: TAG,
                        handle: own,
                    },
                    Entry {
                        addr: foreign,
                        tag: TAG,
                        handle: foreign,
                    },
                ];
                let before = self.cores[i].digest();
                prop_assert_eq!(
                    self.cores[i].join(GROUPS[group], entries),
                    Err(CoreError::NotLocal(foreign))
                );
                prop_assert_eq!(self.cores[i].digest(), before);
            }
            Op::LinkDown { a, b } => {
                let a = a % n;
                let b = another(a, b, n);
                self.peer_down(a, b);
                self.peer_down(b, a);
            }
            Op::NodeFail { node: x } => {
                let x = x % n;
                for y in (0..n).filter(|y| *y != x) {
                    self.peer_down(y, x);
                }
            }
            Op::Recover { node: x } => {
                let x = x % n;
                for y in (0..n).filter(|y| *y != x) {
                    if !self.up[y][x] || !self.up[x][y] {
                        self.peer_up(y, x);
                        self.peer_up(x, y);
                    }
                }
            }
            Op::LinkUp { a, b } => {
                let a = a % n;
                let b = another(a, b, n);
                self.peer_up(a, b);
                self.peer_up(b, a);
            }
            Op::Tick { node: i } => self.cores[i % n].tick(),
            Op::MonitorScope { node: i } => {
                let i = i % n;
                let sink = TestSink::default();
                let log = sink.0.clone();
                let (id, snapshot) = self.cores[i].monitor_scope(sink);
                let mut state = View::new();
                for (g, entries) in snapshot {
                    prop_assert!(!entries.is_empty(), "empty group {:?} in a snapshot", g);
                    state.insert(g, snapshot_of(&entries));
                }
                prop_assert!(self.monitors.iter().all(|m| m.node != i || m.id != id));
                self.monitors.push(Mon::new(i, id, None, log, state));
            }
            Op::MonitorGroup { node: i, group } => {
                let i = i % n;
                let g = GROUPS[group];
                let sink = TestSink::default();
                let log = sink.0.clone();
                let (id, snapshot) = self.cores[i].monitor_group(g, sink);
                let state: View = if snapshot.is_empty() {
                    View::new()
                } else {
                    [(g.to_owned(), snapshot_of(&snapshot))]
                        .into_iter()
                        .collect()
                };
                prop_assert!(self.monitors.iter().all(|m| m.node != i || m.id != id));
                self.monitors
                    .push(Mon::new(i, id, Some(g.to_owned()), log, state));
            }
            Op::Demonitor { pick } => {
                if !self.monitors.is_empty() {
                    let k = pick % self.monitors.len();
                    // Everything delivered so far must still add up.
                    let view = view_of(&self.cores[self.monitors[k].node], &no_tag)?;
                    self.monitors[k].check(&view, &no_tag)?;
                    let m = &mut self.monitors[k];
                    let sink = self.cores[m.node].demonitor(m.id);
                    match m.removed_at {
                        None => {
                            let sink = sink.ok_or_else(|| TestCaseError::fail("monitor lost"))?;
                            prop_assert!(Rc::ptr_eq(&sink.0, &m.log), "another monitor's sink");
                            m.removed_at = Some(m.log.borrow().len());
                        }
                        Some(_) => prop_assert!(sink.is_none(), "removed twice"),
                    }
                }
            }
            Op::Deliver { pick, count } => {
                if let Some(key) = self.nonempty_queue(pick) {
                    for _ in 0..count {
                        self.deliver(key, 0)?;
                    }
                }
            }
            Op::DeliverAny { pick, index } => {
                if let Some(key) = self.nonempty_queue(pick) {
                    let index = if self.reorder {
                        index % self.queues[&key].len()
                    } else {
                        0
                    };
                    self.deliver(key, index)?;
                }
            }
            Op::Lose { pick, index } => {
                if self.lossy
                    && let Some(key) = self.nonempty_queue(pick)
                    && let Some(q) = self.queues.get_mut(&key)
                {
                    let index = index % q.len();
                    q.remove(index);
                }
            }
        }
        self.route()?;
        self.check_step()
    }

    /// Every node's local membership, merged: what every view must converge to.
    fn truth_view(&self) -> View {
        let mut all = View::new();
        for (i, local) in self.truth.iter().enumerate() {
            merge(&mut all, local_as_view(node(i), local));
        }
        all
    }

    fn check_converged(&self, when: &str) -> Result<(), TestCaseError> {
        let truth = self.truth_view();
        for (i, core) in self.cores.iter().enumerate() {
            let view = view_of(core, &no_tag)?;
            prop_assert_eq!(&view, &truth, "{}: view of node {} != truth", when, i);
            for (j, peer) in self.cores.iter().enumerate() {
                if i != j {
                    prop_assert_eq!(
                        core.view_digest(node(j)),
                        Some(peer.digest()),
                        "{}: node {}'s digest of node {}",
                        when,
                        i,
                        j
                    );
                }
            }
        }
        Ok(())
    }

    /// Heals every connection, then runs anti-entropy rounds until nothing but digests
    /// flows, and checks the end state.
    fn heal_and_check(&mut self) -> Result<(), TestCaseError> {
        for a in 0..self.n {
            for b in 0..self.n {
                if a != b && !self.up[a][b] {
                    self.peer_up(a, b);
                }
            }
        }
        self.route()?;
        self.deliver_all()?;
        self.check_step()?;
        if !self.lossy && !self.reorder {
            // Nothing was lost or reordered: deltas and syncs converge without repair.
            self.check_converged("lossless, before any final tick")?;
        }
        let mut quiet = false;
        for _ in 0..20 {
            self.non_digests = 0;
            for core in &mut self.cores {
                core.tick();
            }
            self.route()?;
            self.deliver_all()?;
            self.check_step()?;
            if self.non_digests == 0 {
                quiet = true;
                break;
            }
        }
        prop_assert!(quiet, "anti-entropy did not settle in 20 rounds");
        self.check_converged("after anti-entropy")?;
        Ok(())
    }
}

fn run(s: &Scenario) -> Result<(), TestCaseError> {
    let mut sim = Sim::new(s)?;
    sim.check_step()?;
    for op in &s.ops {
        sim.step(op)?;
    }
    sim.heal_and_check()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Several nodes, random local changes, failures, monitors and deliveries: local answers
    /// are always right, monitors always add up, and after healing everything converges.
    #[test]
    fn cluster_converges_to_the_model(s in scenario()) {
        run(&s)?;
    }
}

// ---- arbitrary messages into one core ---------------------------------------------------

/// What happens to the core under test (node 1) in the fuzz property.
#[derive(Clone, Debug)]
enum Input {
    /// A message from node `from` (1 is the core itself: must be ignored).
    Message {
        from: u64,
        message: PeerMessage,
    },
    Up(u64),
    Down(u64),
    Tick,
    Join {
        group: String,
        pids: Vec<u64>,
    },
    Leave {
        group: String,
        pids: Vec<u64>,
    },
    MemberDown(u64),
}

fn fuzz_group() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned),
        1 => "[a-d]{0,3}",
    ]
}

/// Versions near each other (to hit the in-order, gap and stale paths), or anything.
fn fuzz_version() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..8, 1 => any::<u64>(), 1 => Just(u64::MAX)]
}

/// Join counts: small ones (0 included), and ones a node must refuse ([`MAX_JOINS`] bounds
/// what a Sync can make it allocate).
fn fuzz_count() -> impl Strategy<Value = u32> {
    prop_oneof![20 => 0u32..4, 1 => Just(MAX_JOINS + 1), 1 => Just(u32::MAX)]
}

/// Whether the core must refuse a message (it lists a count above [`MAX_JOINS`]).
fn too_many(message: &PeerMessage) -> bool {
    match message {
        PeerMessage::Sync { groups, .. } => groups
            .iter()
            .any(|(_, members)| members.iter().any(|(_, _, n)| *n > MAX_JOINS)),
        _ => false,
    }
}

fn fuzz_message() -> impl Strategy<Value = PeerMessage> {
    let pid = || 0u64..6;
    prop_oneof![
        (
            fuzz_version(),
            prop::collection::vec(
                (
                    fuzz_group(),
                    prop::collection::vec((pid(), fuzz_count()), 0..4)
                ),
                0..4
            ),
            any::<bool>(),
        )
            .prop_map(|(version, groups, reply)| PeerMessage::Sync {
                version,
                groups: groups
                    .into_iter()
                    .map(|(g, ms)| (g, ms.into_iter().map(|(p, n)| (p, tag_of(p), n)).collect()))
                    .collect(),
                reply,
            }),
        (
            fuzz_version(),
            fuzz_group(),
            prop::collection::vec(pid(), 0..4)
        )
            .prop_map(|(version, group, pids)| PeerMessage::Join {
                version,
                group,
                members: pids.into_iter().map(|p| (p, tag_of(p))).collect(),
            }),
        (
            fuzz_version(),
            fuzz_group(),
            prop::collection::vec(pid(), 0..4)
        )
            .prop_map(|(version, group, members)| PeerMessage::Leave {
                version,
                group,
                members
            }),
        (fuzz_version(), prop_oneof![Just(0u64), any::<u64>()])
            .prop_map(|(version, hash)| PeerMessage::Digest { version, hash }),
    ]
}

fn fuzz_input() -> impl Strategy<Value = Input> {
    let local_pids = || prop::collection::vec(1u64..=PIDS, 0..=3);
    prop_oneof![
        10 => (1u64..=4, fuzz_message()).prop_map(|(from, message)| Input::Message { from, message }),
        1 => (2u64..=4).prop_map(Input::Up),
        1 => (2u64..=4).prop_map(Input::Down),
        1 => Just(Input::Tick),
        2 => (fuzz_group(), local_pids()).prop_map(|(group, pids)| Input::Join { group, pids }),
        1 => (fuzz_group(), local_pids()).prop_map(|(group, pids)| Input::Leave { group, pids }),
        1 => (1u64..=PIDS).prop_map(Input::MemberDown),
    ]
}

/// A Sync as a real node sends it: distinct groups, each with distinct pids joined at
/// least once, every pid with its one message type.
fn correct_sync() -> impl Strategy<Value = (u64, BTreeMap<String, BTreeMap<u64, u32>>, bool)> {
    (
        any::<u64>(),
        prop::collection::btree_map(
            fuzz_group(),
            prop::collection::btree_map(0u64..6, 1u32..4, 1..4),
            0..4,
        ),
        any::<bool>(),
    )
}

fn sync_message(version: u64, groups: &Local, reply: bool) -> PeerMessage {
    PeerMessage::Sync {
        version,
        groups: groups
            .iter()
            .map(|(g, ms)| {
                (
                    g.clone(),
                    ms.iter().map(|(p, n)| (*p, tag_of(*p), *n)).collect(),
                )
            })
            .collect(),
        reply,
    }
}

fn fuzz_tag(addr: ActorAddr) -> Tag {
    tag_of(addr.pid)
}

fn fuzz(inputs: &[Input], syncs: &[(u64, Local, bool)]) -> Result<(), TestCaseError> {
    let me = node(0);
    let mut core = Core::new(me);
    let mut local = Local::new();
    let sink = TestSink::default();
    let (id, snapshot) = core.monitor_scope(sink.clone());
    prop_assert!(snapshot.is_empty());
    let mut mon = Mon::new(0, id, None, sink.0, View::new());

    for input in inputs {
        match input.clone() {
            Input::Message { from, message } => {
                let from = NodeId::new(from).expect("non-zero");
                let refuse = from != me && too_many(&message);
                let before = (view_of(&core, &fuzz_tag)?, core.view_digest(from));
                let rejected = core.rejected();
                core.receive(from, message, &mut resolve);
                if refuse {
                    // Refused whole: nothing changes, nothing is asked.
                    prop_assert_eq!(core.rejected(), rejected + 1);
                    prop_assert_eq!(&view_of(&core, &fuzz_tag)?, &before.0);
                    prop_assert_eq!(core.view_digest(from), before.1);
                    prop_assert_eq!(core.take_outputs(), vec![]);
                } else {
                    prop_assert_eq!(core.rejected(), rejected, "refused a valid message");
                }
            }
            Input::Up(p) => core.peer_up(NodeId::new(p).expect("non-zero")),
            Input::Down(p) => core.peer_down(NodeId::new(p).expect("non-zero")),
            Input::Tick => core.tick(),
            Input::Join { group, pids } => {
                let entries: Vec<Entry<ActorAddr>> = pids
                    .iter()
                    .map(|pid| {
                        let addr = ActorAddr {
                            node: me,
                            pid: *pid,
                        };
                        Entry {
                            addr,
                            tag: tag_of(*pid),
                            handle: addr,
                        }
                    })
                    .collect();
                // Remote members may hold other types: then the join is refused.
                let clash = entries.first().and_then(|first| {
                    entries
                        .iter()
                        .map(|e| e.tag)
                        .chain(core.members(&group).iter().map(|e| e.tag))
                        .find(|t| *t != first.tag)
                });
                match core.join(&group, entries) {
                    Ok(()) => {
                        prop_assert!(clash.is_none(), "joined despite a type clash");
                        model_join(&mut local, &group, &pids);
                    }
                    Err(CoreError::TypeMismatch {
                        group: g,
                        wanted,
                        found,
                    }) => {
                        prop_assert_eq!(g, group);
                        prop_assert_eq!(Some(wanted), pids.first().map(|p| tag_of(*p)));
                        prop_assert!(found != wanted);
                        prop_assert!(clash.is_some(), "a type clash that is not there");
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("join: {e}"))),
                }
            }
            Input::Leave { group, pids } => {
                let ok = model_leave(&mut local, &group, &pids);
                prop_assert_eq!(core.leave(&group, &pids), expected_leave(&group, ok));
            }
            Input::MemberDown(pid) => {
                core.member_down(pid);
                model_down(&mut local, pid);
            }
        }
        // Whatever the peers say, this node's own members are its own.
        let groups: Vec<String> = core.groups();
        check_local(&core, &local, &groups, &(1..=PIDS).collect::<Vec<u64>>())?;
        let view = view_of(&core, &fuzz_tag)?;
        prop_assert_eq!(restrict(&view, me), local_as_view(me, &local));
        mon.check(&view, &fuzz_tag)?;
        for output in core.take_outputs() {
            let Output::Send { to, .. } = output;
            prop_assert!(
                !to.is_empty() && !to.contains(&me),
                "bad receivers {:?}",
                to
            );
        }
    }

    // A correct Sync from each peer replaces whatever the core had of it.
    for (k, (version, groups, reply)) in syncs.iter().enumerate() {
        let peer = node(k + 1);
        core.receive(peer, sync_message(*version, groups, *reply), &mut resolve);
        let view = view_of(&core, &fuzz_tag)?;
        prop_assert_eq!(
            restrict(&view, peer),
            local_as_view(peer, groups),
            "view of {}",
            peer
        );
        prop_assert_eq!(restrict(&view, me), local_as_view(me, &local));
        prop_assert_eq!(core.view_digest(peer).map(|d| d.0), Some(*version));
        mon.check(&view, &fuzz_tag)?;
        let outputs = core.take_outputs();
        if *reply {
            let want = Output::Send {
                to: vec![peer],
                message: sync_message(core.digest().0, &local, false),
            };
            prop_assert_eq!(outputs, vec![want], "the reply to a Sync");
        } else {
            prop_assert!(outputs.is_empty(), "answered a Sync that asked for nothing");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary well-formed messages from arbitrary peers never panic the core, never touch
    /// its local members, keep its monitors consistent, and a correct Sync repairs it.
    #[test]
    fn arbitrary_messages_are_safe(
        inputs in prop::collection::vec(fuzz_input(), 0..60),
        syncs in prop::collection::vec(correct_sync(), 3),
    ) {
        fuzz(&inputs, &syncs)?;
    }
}

// ---- edge cases and known defects -------------------------------------------------------

/// Erlang's counted leave: listing a pid twice leaves twice, a non-member in the list is
/// ignored, and only an all-non-member list is `NotJoined`.
#[test]
fn counted_leave_semantics() {
    let me = node(0);
    let mut core = Core::new(me);
    let addr = |pid| ActorAddr { node: me, pid };
    let entry = |pid| Entry {
        addr: addr(pid),
        tag: TAG,
        handle: addr(pid),
    };
    core.join("g", vec![entry(1), entry(1), entry(2)]).unwrap();
    assert_eq!(
        core.leave("g", &[3]),
        Err(CoreError::NotJoined { group: "g".into() })
    );
    assert_eq!(
        core.leave("h", &[1]),
        Err(CoreError::NotJoined { group: "h".into() })
    );
    assert_eq!(core.leave("g", &[1, 3, 1, 1]), Ok(()));
    assert_eq!(
        core.local_members("g").map(|e| e.addr).collect::<Vec<_>>(),
        vec![addr(2)]
    );
    assert_eq!(
        core.leave("g", &[]),
        Err(CoreError::NotJoined { group: "g".into() })
    );
    core.member_down(2);
    assert!(core.groups().is_empty() && core.local_groups().is_empty());
}

/// Regression (found by this test): `accept_delta` computed `view.version + 1` unchecked, so
/// a peer's `Sync` at version `u64::MAX` followed by any delta panicked in debug builds (and
/// applied a stale delta in release).
#[test]
fn delta_after_a_sync_at_the_last_version() {
    let mut core = Core::new(node(0));
    let peer = node(1);
    let sync = PeerMessage::Sync {
        version: u64::MAX,
        groups: vec![],
        reply: false,
    };
    core.receive(peer, sync, &mut resolve);
    let join = PeerMessage::Join {
        version: 0,
        group: "g".into(),
        members: vec![(1, TAG)],
    };
    core.receive(peer, join, &mut resolve);
    assert!(
        core.members("g").is_empty(),
        "a delta older than the sync was applied"
    );
    assert_eq!(core.view_digest(peer).map(|d| d.0), Some(u64::MAX));
}

/// Regression (found by this test): a `Sync` listing a pid with the same count but another
/// type tag kept the old entry in the view while the peer record took the new tag, a
/// mismatch anti-entropy could not see. Now the member leaves and rejoins with the new tag.
#[test]
fn sync_replaces_a_members_tag() {
    let mut core = Core::new(node(0));
    let peer = node(1);
    let sync = |version, tag| PeerMessage::Sync {
        version,
        groups: vec![("g".into(), vec![(7, tag, 1)])],
        reply: false,
    };
    core.receive(peer, sync(1, Tag(1)), &mut resolve);
    core.receive(peer, sync(2, Tag(2)), &mut resolve);
    let tags: Vec<Tag> = core.members("g").iter().map(|e| e.tag).collect();
    assert_eq!(tags, vec![Tag(2)]);
}

/// The driver caches the refs it makes on demand with `set_handles`: handles change, and
/// nothing else does (no member, no event, no message, same digests).
#[test]
fn set_handles_changes_handles_only() {
    let me = node(0);
    let peer = node(1);
    let mut core = Core::new(me);
    core.join(
        "g",
        vec![Entry {
            addr: ActorAddr { node: me, pid: 1 },
            tag: TAG,
            handle: ActorAddr { node: me, pid: 1 },
        }],
    )
    .unwrap();
    let sync = PeerMessage::Sync {
        version: 1,
        groups: vec![("g".into(), vec![(7, TAG, 2), (8, TAG, 1)])],
        reply: false,
    };
    core.receive(peer, sync, &mut resolve);
    let log = Log::default();
    core.monitor_scope(TestSink(log.clone()));
    core.take_outputs();
    let digests = (core.digest(), core.view_digest(peer));
    let addrs = |core: &Core| {
        let mut a: Vec<ActorAddr> = core.members("g").iter().map(|e| e.addr).collect();
        a.sort();
        a
    };
    let before = addrs(&core);
    // A made-up handle for the peer's pid 7 (both occurrences), none for the others.
    let made = ActorAddr {
        node: peer,
        pid: 99,
    };
    core.set_handles("g", |e| (e.addr.pid == 7).then_some(made));
    core.set_handles("nonexistent", |_| Some(made));
    assert_eq!(addrs(&core), before);
    for e in core.members("g") {
        let want = if e.addr.pid == 7 { made } else { e.addr };
        assert_eq!(e.handle, want, "handle of {}", e.addr);
    }
    assert!(log.borrow().is_empty(), "set_handles notified a monitor");
    assert!(core.take_outputs().is_empty(), "set_handles sent a message");
    assert_eq!((core.digest(), core.view_digest(peer)), digests);
    assert!(core.groups() == vec!["g".to_string()]);
}
