//! Process groups: `pg::wire::Envelope::decode` (the notices pg instances exchange on the
//! `pg` extension channel) and `pg::core::ScopeCore::receive`, the pure state machine the
//! driver applies them to, checked step by step against a small model.
//!
//! The subject is one scope on node [`ME`], whose local members are `workers`: pid 1 (joined
//! twice) and pid 2, and `solo`: pid 3; it has a monitor of the whole scope and monitors of
//! `workers` and of `g`. The peers are [`P`] and [`Q`].
//!
//! Input: a mode byte, then up to [`MAX_RECORDS`] records `sel: u8, len: u16 LE, bytes` (a
//! length past the end takes the rest), each record's bytes one notice (an `Envelope`).
//! - mode bit 0: warm: `P` (version 5) and `Q` (version 3) have sent a `Sync` before;
//! - mode bit 1: `P` and `Q` came up (`peer_up`) before;
//! - sel bit 0: the notice is from `Q`, else from `P`; bit 1: from `ME` itself (ignored);
//! - sel bit 2: `peer_up(sender)` before the notice; bit 3: `tick()` after it; bit 4:
//!   `peer_down(sender)` after it.
//!
//! The envelope's scope name is not looked at (the driver routes by it).
//!
//! Checks: decoding never panics, and a decoded envelope survives a canonical round trip.
//! Every step (notice, tick, peer up or down) does exactly what the model says: the view of
//! each peer (members per group, pid and tag, version, synced), the outputs (`Sync` answers
//! and requests carrying this node's own membership, digests, each to the right peers), and
//! the rejections (a `Sync` or `Join` that would put an actor in a group more than
//! `MAX_JOINS` times or a node over `MAX_MEMBERSHIPS`, or a `Join` that retypes a member). After every step: every listed group has a member, the local members
//! are exactly the local authority's, handles are what `resolve` made, and each monitor's
//! snapshot plus its events is the current view. Finally a correct `Sync` from the last
//! sender replaces its view, a digest of that view asks for nothing, a delta after it
//! applies, a tick digests to every peer, and both peers going down leaves only the locals.
//!
//! Work is bounded: a notice that would bring the member occurrences fed in one input above
//! [`BUDGET`] is decoded and round-tripped but not fed (the core's caps allow far more than a
//! fuzz input should build), except a `Sync` the core must reject, which is fed unless it
//! claims more than 8 × `MAX_JOINS` in all and no single entry of it is over the cap.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use understudy::pg::core::{
    Change, Entry, EventSink, MAX_JOINS, MAX_MEMBERSHIPS, Output, ScopeCore,
};
use understudy::pg::wire::{Envelope, PeerMessage, SyncedMember};
use understudy::{ActorAddr, NodeId, Tag};

/// The node under test.
pub const ME: NodeId = node(1);
/// A peer.
pub const P: NodeId = node(2);
/// Another peer.
pub const Q: NodeId = node(3);

/// Records (notices) read from one input at most.
pub const MAX_RECORDS: usize = 32;
/// Member occurrences the notices of one input may add in all (see the module docs).
pub const BUDGET: u64 = 4096;
/// The largest over-cap `Sync` fed (in member occurrences): even a core that wrongly
/// accepted it would stay fast.
const OVER_CAP_LIMIT: u64 = 8 * MAX_JOINS as u64;

/// The message type of the `workers` members.
const WORKER: Tag = Tag::of("fuzz.Worker");
/// Another message type.
const OTHER: Tag = Tag::of("fuzz.Other");

/// This node's members, as `join` calls: group → (pid, tag) per join.
const LOCAL_JOINS: [(&str, &[(u64, Tag)]); 2] = [
    ("workers", &[(1, WORKER), (1, WORKER), (2, WORKER)]),
    ("solo", &[(3, OTHER)]),
];

const fn node(raw: u64) -> NodeId {
    match NodeId::new(raw) {
        Some(id) => id,
        None => panic!("node ids are non-zero"),
    }
}

/// A member's handle: what `resolve` was given.
type Handle = (ActorAddr, Tag);
/// group → pid → (tag, count), as a peer's authority has it.
type Groups = BTreeMap<String, BTreeMap<u64, (Tag, u32)>>;
/// group → (pid, tag) → occurrences: the view of one node's members.
type Counts = BTreeMap<String, BTreeMap<(u64, Tag), u32>>;
/// group → member → occurrences.
type Multiset = BTreeMap<String, BTreeMap<Handle, usize>>;
type Core = ScopeCore<Handle, Recorder>;

/// A monitor's sink: records every change.
#[derive(Clone, Default)]
struct Recorder(Rc<RefCell<Vec<Change<Handle>>>>);

impl EventSink<Handle> for Recorder {
    fn deliver(&self, change: Change<Handle>) {
        self.0.borrow_mut().push(change);
    }
}

/// A monitor: what it watches, its events, and its snapshot with the events applied.
struct Monitor {
    group: Option<String>,
    sink: Recorder,
    seen: Multiset,
}

/// What the core should know about a peer.
#[derive(Clone, Debug, Default)]
struct PeerModel {
    synced: bool,
    asked: bool,
    version: u64,
    groups: Groups,
}

/// A core, and the model it is checked against.
struct Harness {
    core: Core,
    peers: BTreeMap<NodeId, PeerModel>,
    rejected: u64,
    /// Member occurrences fed so far (against [`BUDGET`]).
    fed: u64,
    monitors: Vec<Monitor>,
    /// This node's version and hash: no peer message may change them.
    local_digest: (u64, u64),
}

/// What a delta does, given the sender's version.
enum Delta {
    Apply,
    Stale,
    AskSync,
}

/// The `pg_notices` target.
pub fn pg_notices(data: &[u8]) -> bool {
    let Some((&mode, mut rest)) = data.split_first() else {
        return false;
    };
    let mut h = Harness::new(mode & 1 != 0, mode & 2 != 0);
    let mut decoded = false;
    let mut last_peer = P;
    for _ in 0..MAX_RECORDS {
        let [sel, l0, l1, tail @ ..] = rest else {
            break;
        };
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        rest = after;
        let Ok(envelope) = Envelope::decode(bytes) else {
            continue;
        };
        decoded = true;
        round_trip(&envelope);
        let from = match (sel & 2 != 0, sel & 1 != 0) {
            (true, _) => ME,
            (false, true) => Q,
            (false, false) => P,
        };
        if from != ME {
            last_peer = from;
        }
        if sel & 4 != 0 {
            h.peer_up(from);
        }
        h.receive(from, envelope.message, true);
        if sel & 8 != 0 {
            h.tick();
        }
        if sel & 16 != 0 {
            h.peer_down(from);
        }
    }
    h.finish(last_peer);
    decoded
}

/// Decode, re-encode, decode: the same value, and the re-encoding is a fixed point.
fn round_trip(envelope: &Envelope) {
    let bytes = envelope.encode();
    let again = Envelope::decode(&bytes)
        .unwrap_or_else(|e| panic!("a re-encoded notice does not decode: {e}: {envelope:?}"));
    assert_eq!(&again, envelope, "a notice changed in a round trip");
    assert_eq!(
        again.encode(),
        bytes,
        "the canonical encoding is not a fixed point"
    );
}

impl Harness {
    fn new(warm: bool, up: bool) -> Harness {
        let mut core = Core::new(ME);
        for (group, joins) in LOCAL_JOINS {
            let entries = joins
                .iter()
                .map(|&(pid, tag)| entry(ActorAddr { node: ME, pid }, tag))
                .collect();
            core.join(group, entries).expect("a valid local join");
        }
        let local_digest = core.digest();
        let mut monitors = Vec::new();
        let sink = Recorder::default();
        let (_, snapshot) = core.monitor_scope(sink.clone());
        monitors.push(Monitor {
            group: None,
            sink,
            seen: snapshot
                .into_iter()
                .map(|(g, members)| (g, multiset(&members)))
                .collect(),
        });
        for group in ["workers", "g"] {
            let sink = Recorder::default();
            let (_, snapshot) = core.monitor_group(group, sink.clone());
            let mut seen = Multiset::new();
            if !snapshot.is_empty() {
                seen.insert(group.to_owned(), multiset(&snapshot));
            }
            monitors.push(Monitor {
                group: Some(group.to_owned()),
                sink,
                seen,
            });
        }
        let mut h = Harness {
            core,
            peers: BTreeMap::new(),
            rejected: 0,
            fed: 0,
            monitors,
            local_digest,
        };
        h.check();
        if up {
            h.peer_up(P);
            h.peer_up(Q);
        }
        if warm {
            h.receive(P, warm_sync_p(), false);
            h.receive(Q, warm_sync_q(), false);
        }
        h
    }

    /// Feeds a notice from `from` (within the budget if `budgeted`) and checks the step.
    fn receive(&mut self, from: NodeId, message: PeerMessage, budgeted: bool) {
        let (adds, over_cap) = self.cost(from, &message);
        if from != ME && over_cap {
            if adds > OVER_CAP_LIMIT && !blatantly_over_cap(&message) {
                return;
            }
        } else if budgeted {
            if self.fed.saturating_add(adds) > BUDGET {
                return;
            }
            self.fed += adds;
        }
        let expected = self.expect_receive(from, &message, over_cap);
        let wrong = Cell::new(None);
        self.core.receive(from, message, &mut |addr, tag| {
            if addr.node != from {
                wrong.set(Some(addr));
            }
            (addr, tag)
        });
        if let Some(addr) = wrong.get() {
            panic!("a notice from {from} resolved {addr}, another node's member");
        }
        self.expect_outputs(expected);
        self.check();
    }

    fn peer_up(&mut self, peer: NodeId) {
        self.core.peer_up(peer);
        let mut expected = Vec::new();
        if peer != ME {
            self.peers.entry(peer).or_default().asked = true;
            expected.push(send(peer, self.local_sync(true)));
        }
        self.expect_outputs(expected);
        self.check();
    }

    fn peer_down(&mut self, peer: NodeId) {
        self.core.peer_down(peer);
        self.peers.remove(&peer);
        self.expect_outputs(Vec::new());
        self.check();
    }

    fn tick(&mut self) {
        self.core.tick();
        let mut expected = Vec::new();
        if !self.peers.is_empty() {
            for p in self.peers.values_mut() {
                p.asked = false;
            }
            let (version, hash) = self.local_digest;
            expected.push(Output::Send {
                to: self.peers.keys().copied().collect(),
                message: PeerMessage::Digest { version, hash },
            });
        }
        self.expect_outputs(expected);
        self.check();
    }

    /// How many member occurrences `message` would add, and whether it would put an actor in
    /// a group more than `MAX_JOINS` times (so the core must reject it).
    fn cost(&self, from: NodeId, message: &PeerMessage) -> (u64, bool) {
        match message {
            PeerMessage::Sync { groups, .. } => {
                let adds = groups
                    .iter()
                    .flat_map(|(_, members)| members)
                    .fold(0u64, |sum, m| sum.saturating_add(u64::from(m.2)));
                let over = merge_sync(groups)
                    .values()
                    .flat_map(|members| members.values())
                    .any(|&(_, count)| count > u64::from(MAX_JOINS))
                    || adds > MAX_MEMBERSHIPS;
                (adds, over)
            }
            PeerMessage::Join { group, members, .. } => {
                let peer = self.peers.get(&from);
                let existing = peer.and_then(|p| p.groups.get(group));
                let total: u64 = peer.map_or(0, |p| {
                    p.groups
                        .values()
                        .flat_map(|m| m.values())
                        .map(|s| u64::from(s.1))
                        .sum()
                });
                let mut adding: BTreeMap<u64, u64> = BTreeMap::new();
                let mut tags: BTreeMap<u64, Tag> = BTreeMap::new();
                // A pid keeps one message type: another tag (in the message or against the
                // record) is refused, as are counts over the caps.
                let mut retyped = false;
                for (pid, tag) in members {
                    *adding.entry(*pid).or_default() += 1;
                    let first = existing.and_then(|m| m.get(pid)).map_or(*tag, |s| s.0);
                    retyped |= *tags.entry(*pid).or_insert(first) != *tag;
                }
                let over = retyped
                    || total + members.len() as u64 > MAX_MEMBERSHIPS
                    || adding.iter().any(|(pid, n)| {
                        let before = existing.and_then(|g| g.get(pid)).map_or(0, |s| s.1);
                        u64::from(before) + n > u64::from(MAX_JOINS)
                    });
                (members.len() as u64, over)
            }
            PeerMessage::Leave { .. } | PeerMessage::Digest { .. } => (0, false),
        }
    }

    /// Updates the model for a notice; returns the outputs the core must produce.
    fn expect_receive(&mut self, from: NodeId, message: &PeerMessage, over: bool) -> Vec<Output> {
        if from == ME {
            return Vec::new();
        }
        if over {
            self.rejected += 1;
            return Vec::new();
        }
        match message {
            PeerMessage::Sync {
                version,
                groups,
                reply,
            } => {
                let peer = self.peers.entry(from).or_default();
                peer.synced = true;
                peer.asked = false;
                peer.version = *version;
                peer.groups = merge_sync(groups)
                    .into_iter()
                    .map(|(g, members)| {
                        let members = members
                            .into_iter()
                            .map(|(pid, (tag, n))| (pid, (tag, n as u32)))
                            .collect();
                        (g, members)
                    })
                    .collect();
                if *reply {
                    vec![send(from, self.local_sync(false))]
                } else {
                    Vec::new()
                }
            }
            PeerMessage::Join {
                version,
                group,
                members,
            } => match self.delta(from, *version) {
                Delta::Apply => {
                    let peer = self.peers.entry(from).or_default();
                    let slots = peer.groups.entry(group.clone()).or_default();
                    for (pid, tag) in members {
                        slots.entry(*pid).or_insert((*tag, 0)).1 += 1;
                    }
                    Vec::new()
                }
                Delta::Stale => Vec::new(),
                Delta::AskSync => self.ask_sync(from),
            },
            PeerMessage::Leave {
                version,
                group,
                members,
            } => match self.delta(from, *version) {
                Delta::Apply => {
                    let peer = self.peers.entry(from).or_default();
                    if let Some(slots) = peer.groups.get_mut(group) {
                        for pid in members {
                            if let Some(slot) = slots.get_mut(pid) {
                                slot.1 -= 1;
                                if slot.1 == 0 {
                                    slots.remove(pid);
                                }
                            }
                        }
                        if slots.is_empty() {
                            peer.groups.remove(group);
                        }
                    }
                    Vec::new()
                }
                Delta::Stale => Vec::new(),
                Delta::AskSync => self.ask_sync(from),
            },
            PeerMessage::Digest { version, hash } => {
                // The hash is the core's own business; its version and presence are checked
                // in `check`, and `finish` checks it against a fresh core's.
                if self.core.view_digest(from) == Some((*version, *hash)) {
                    Vec::new()
                } else {
                    self.ask_sync(from)
                }
            }
        }
    }

    fn delta(&mut self, from: NodeId, version: u64) -> Delta {
        let peer = self.peers.entry(from).or_default();
        if peer.synced && peer.version.checked_add(1) == Some(version) {
            peer.version = version;
            Delta::Apply
        } else if peer.synced && version <= peer.version {
            Delta::Stale
        } else {
            Delta::AskSync
        }
    }

    /// A `Sync` request to `from`, unless one is outstanding.
    fn ask_sync(&mut self, from: NodeId) -> Vec<Output> {
        let peer = self.peers.entry(from).or_default();
        if peer.asked {
            return Vec::new();
        }
        peer.asked = true;
        vec![send(from, self.local_sync(true))]
    }

    /// This node's `Sync`: its whole (fixed) local membership.
    fn local_sync(&self, reply: bool) -> PeerMessage {
        PeerMessage::Sync {
            version: self.local_digest.0,
            groups: local_sync_groups(),
            reply,
        }
    }

    fn expect_outputs(&mut self, expected: Vec<Output>) {
        let outputs = self.core.take_outputs();
        assert_eq!(outputs, expected, "the core's outputs are not the model's");
        for Output::Send { message, .. } in outputs {
            round_trip(&Envelope {
                scope: "default".into(),
                message,
            });
        }
    }

    /// Every invariant of the current state.
    fn check(&mut self) {
        assert_eq!(
            self.core.rejected(),
            self.rejected,
            "the core's rejections are not the model's (a Sync or Join over MAX_JOINS must be \
             rejected; anything else accepted)"
        );
        let view = view_of(&self.core);
        for group in self.core.groups() {
            assert!(
                !self.core.members(&group).is_empty(),
                "group {group:?} is listed with no members"
            );
        }
        // The local authority: no peer message can change it.
        let local = split(&view, ME);
        assert_eq!(local, local_view(), "the local members changed");
        assert_eq!(self.core.digest(), self.local_digest);
        assert_eq!(self.core.local_groups(), ["solo", "workers"]);
        for (group, _) in LOCAL_JOINS {
            assert!(self.core.has_local(group));
            let locals = self.core.local_members(group).count();
            assert_eq!(locals, local[group].values().sum::<usize>());
        }
        // Each peer's view, as the model has it.
        let mut accounted = local.values().map(|m| m.values().sum::<usize>()).sum();
        for peer in [P, Q] {
            let got = split(&view, peer);
            accounted += got
                .values()
                .map(|m| m.values().sum::<usize>())
                .sum::<usize>();
            let model = self.peers.get(&peer);
            let want = model.map(|p| counts(&p.groups)).unwrap_or_default();
            assert_eq!(
                counts_of(&got),
                want,
                "the view of {peer} is not the model's"
            );
            assert_eq!(
                self.core.view_digest(peer).map(|d| d.0),
                model.filter(|p| p.synced).map(|p| p.version),
                "the synced version of {peer} is not the model's"
            );
        }
        let total: usize = view.values().map(|m| m.values().sum::<usize>()).sum();
        assert_eq!(total, accounted, "the view holds members of unknown nodes");
        // Monitors: snapshot + events = the view.
        assert_eq!(self.core.monitor_count(), self.monitors.len());
        for m in &mut self.monitors {
            let events = std::mem::take(&mut *m.sink.0.borrow_mut());
            for change in events {
                apply_change(m, change);
            }
            let want: Multiset = view
                .iter()
                .filter(|(g, _)| m.group.as_ref().is_none_or(|w| w == *g))
                .map(|(g, members)| (g.clone(), members.clone()))
                .collect();
            assert_eq!(
                m.seen, want,
                "monitor {:?}: snapshot + events is not the view",
                m.group
            );
        }
    }

    /// The end of every input: a correct `Sync` from `peer` replaces its view, a digest of
    /// that view asks for nothing, the next delta applies, a tick digests to every peer, and
    /// the peers going down leaves only the local members.
    fn finish(mut self, peer: NodeId) {
        let groups = vec![
            (
                "workers".to_string(),
                vec![(10, WORKER, 1), (20, WORKER, 3)],
            ),
            ("g".to_string(), vec![(12, OTHER, 2), (12, OTHER, 1)]),
            ("empty".to_string(), vec![]),
            ("new".to_string(), vec![(30, OTHER, 1), (31, OTHER, 0)]),
        ];
        let sync = PeerMessage::Sync {
            version: 1000,
            groups: groups.clone(),
            reply: true,
        };
        self.receive(peer, sync, false);
        let want: Counts = [
            ("g", vec![((12, OTHER), 3)]),
            ("new", vec![((30, OTHER), 1)]),
            ("workers", vec![((10, WORKER), 1), ((20, WORKER), 3)]),
        ]
        .into_iter()
        .map(|(g, m)| (g.to_owned(), m.into_iter().collect()))
        .collect();
        assert_eq!(
            counts_of(&split(&view_of(&self.core), peer)),
            want,
            "a correct Sync did not replace the view of {peer}"
        );
        let digest = self.core.view_digest(peer).expect("synced");
        assert_eq!(digest.0, 1000);
        // The digest depends on the membership only: a fresh core agrees.
        let mut fresh = Core::new(ME);
        let sync = PeerMessage::Sync {
            version: 1000,
            groups,
            reply: false,
        };
        fresh.receive(peer, sync, &mut |addr, tag| (addr, tag));
        assert_eq!(fresh.view_digest(peer), Some(digest));
        let (version, hash) = digest;
        self.receive(peer, PeerMessage::Digest { version, hash }, false);
        let join = PeerMessage::Join {
            version: 1001,
            group: "g".into(),
            members: vec![(13, OTHER), (12, OTHER)],
        };
        self.receive(peer, join, false);
        assert_eq!(self.core.view_digest(peer).map(|d| d.0), Some(1001));
        self.tick();
        self.peer_down(P);
        self.peer_down(Q);
        assert_eq!(view_of(&self.core), local_view());
        self.tick();
    }
}

/// Whether one member entry of a `Sync` alone is over the cap: any core rejects that
/// without building it, so it is fed however much it claims.
fn blatantly_over_cap(message: &PeerMessage) -> bool {
    match message {
        PeerMessage::Sync { groups, .. } => groups
            .iter()
            .flat_map(|(_, members)| members)
            .any(|m| m.2 > MAX_JOINS),
        _ => false,
    }
}

/// A monitor's event applied to what it has seen.
fn apply_change(m: &mut Monitor, change: Change<Handle>) {
    if let Some(watched) = &m.group {
        assert_eq!(change.group(), watched, "a group monitor saw another group");
    }
    match change {
        Change::Join { group, members } => {
            assert!(!members.is_empty(), "an empty join event");
            let seen = m.seen.entry(group).or_default();
            for e in members {
                *seen.entry(handle_of(&e)).or_default() += 1;
            }
        }
        Change::Leave { group, members } => {
            assert!(!members.is_empty(), "an empty leave event");
            let seen = m
                .seen
                .get_mut(&group)
                .unwrap_or_else(|| panic!("a leave from {group:?}, which the monitor saw empty"));
            for e in members {
                let handle = handle_of(&e);
                let n = seen
                    .get_mut(&handle)
                    .unwrap_or_else(|| panic!("a leave of {handle:?}, which never joined"));
                *n -= 1;
                if *n == 0 {
                    seen.remove(&handle);
                }
            }
            if seen.is_empty() {
                m.seen.remove(&group);
            }
        }
    }
}

/// A member's handle, checked: it is what `resolve` (or the local join) made for it.
fn handle_of(e: &Entry<Handle>) -> Handle {
    assert_eq!(e.handle, (e.addr, e.tag), "a handle for another member");
    e.handle
}

fn entry(addr: ActorAddr, tag: Tag) -> Entry<Handle> {
    Entry {
        addr,
        tag,
        handle: (addr, tag),
    }
}

fn multiset(members: &[Entry<Handle>]) -> BTreeMap<Handle, usize> {
    let mut out = BTreeMap::new();
    for e in members {
        *out.entry(handle_of(e)).or_default() += 1;
    }
    out
}

/// The core's merged view.
fn view_of(core: &Core) -> Multiset {
    core.groups()
        .into_iter()
        .map(|g| {
            let members = multiset(core.members(&g));
            (g, members)
        })
        .collect()
}

/// The part of a view on `node`.
fn split(view: &Multiset, node: NodeId) -> Multiset {
    view.iter()
        .filter_map(|(g, members)| {
            let mine: BTreeMap<Handle, usize> = members
                .iter()
                .filter(|((addr, _), _)| addr.node == node)
                .map(|(h, n)| (*h, *n))
                .collect();
            (!mine.is_empty()).then(|| (g.clone(), mine))
        })
        .collect()
}

/// A view of one node's members, by pid and tag.
fn counts_of(view: &Multiset) -> Counts {
    view.iter()
        .map(|(g, members)| {
            let mut pids: BTreeMap<(u64, Tag), u32> = BTreeMap::new();
            for ((addr, tag), n) in members {
                *pids.entry((addr.pid, *tag)).or_default() += *n as u32;
            }
            (g.clone(), pids)
        })
        .collect()
}

/// A peer's groups as its members must appear in the view (empty groups are none).
fn counts(groups: &Groups) -> Counts {
    groups
        .iter()
        .filter(|(_, members)| !members.is_empty())
        .map(|(g, members)| {
            let pids = members
                .iter()
                .map(|(pid, (tag, n))| ((*pid, *tag), *n))
                .collect();
            (g.clone(), pids)
        })
        .collect()
}

/// A `Sync`'s content as its receiver must take it: repeated groups and pids merged (the
/// first tag of a pid kept), zero counts and empty groups dropped.
fn merge_sync(
    groups: &[(String, Vec<SyncedMember>)],
) -> BTreeMap<String, BTreeMap<u64, (Tag, u64)>> {
    let mut out: BTreeMap<String, BTreeMap<u64, (Tag, u64)>> = BTreeMap::new();
    for (group, members) in groups {
        for &(pid, tag, n) in members {
            if n > 0 {
                let slots = out.entry(group.clone()).or_default();
                slots.entry(pid).or_insert((tag, 0)).1 += u64::from(n);
            }
        }
    }
    out
}

/// The local members as a view.
fn local_view() -> Multiset {
    let mut out = Multiset::new();
    for (group, joins) in LOCAL_JOINS {
        let members = out.entry(group.to_owned()).or_default();
        for &(pid, tag) in joins {
            *members
                .entry((ActorAddr { node: ME, pid }, tag))
                .or_default() += 1;
        }
    }
    out
}

/// The local members as a `Sync` lists them: sorted by group, then pid.
fn local_sync_groups() -> Vec<(String, Vec<SyncedMember>)> {
    let mut groups: BTreeMap<&str, BTreeMap<u64, (Tag, u32)>> = BTreeMap::new();
    for (group, joins) in LOCAL_JOINS {
        for &(pid, tag) in joins {
            groups
                .entry(group)
                .or_default()
                .entry(pid)
                .or_insert((tag, 0))
                .1 += 1;
        }
    }
    groups
        .into_iter()
        .map(|(g, m)| {
            let members = m.into_iter().map(|(pid, (tag, n))| (pid, tag, n)).collect();
            (g.to_owned(), members)
        })
        .collect()
}

fn send(to: NodeId, message: PeerMessage) -> Output {
    Output::Send {
        to: vec![to],
        message,
    }
}

/// What `P` told us in a warm start.
fn warm_sync_p() -> PeerMessage {
    PeerMessage::Sync {
        version: 5,
        groups: vec![
            ("workers".into(), vec![(10, WORKER, 2), (11, WORKER, 1)]),
            ("g".into(), vec![(12, OTHER, 1)]),
        ],
        reply: false,
    }
}

/// What `Q` told us in a warm start (its pid 10 is another actor than `P`'s).
fn warm_sync_q() -> PeerMessage {
    PeerMessage::Sync {
        version: 3,
        groups: vec![("workers".into(), vec![(10, WORKER, 1)])],
        reply: false,
    }
}

// ---- seeds ----

/// Mode bits (see the module docs).
const WARM: u8 = 1;
const UP: u8 = 2;
/// Record selector bits.
const FROM_Q: u8 = 1;
const FROM_ME: u8 = 2;
const PEER_UP: u8 = 4;
const TICK: u8 = 8;
const PEER_DOWN: u8 = 16;

/// An input: the mode byte, then each record with its length.
fn input(mode: u8, records: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![mode];
    for (sel, bytes) in records {
        out.push(*sel);
        let len = u16::try_from(bytes.len()).expect("a short notice");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

fn notice(message: PeerMessage) -> Vec<u8> {
    Envelope {
        scope: "default".into(),
        message,
    }
    .encode()
}

fn sync(version: u64, groups: &[(&str, &[SyncedMember])], reply: bool) -> Vec<u8> {
    notice(PeerMessage::Sync {
        version,
        groups: groups
            .iter()
            .map(|(g, m)| (g.to_string(), m.to_vec()))
            .collect(),
        reply,
    })
}

fn join(version: u64, group: &str, members: &[(u64, Tag)]) -> Vec<u8> {
    notice(PeerMessage::Join {
        version,
        group: group.into(),
        members: members.to_vec(),
    })
}

fn leave(version: u64, group: &str, members: &[u64]) -> Vec<u8> {
    notice(PeerMessage::Leave {
        version,
        group: group.into(),
        members: members.to_vec(),
    })
}

fn digest(version: u64, hash: u64) -> Vec<u8> {
    notice(PeerMessage::Digest { version, hash })
}

/// The digest of `P`'s view after a warm start.
fn warm_digest_p() -> (u64, u64) {
    let mut core = Core::new(ME);
    core.receive(P, warm_sync_p(), &mut |addr, tag| (addr, tag));
    core.view_digest(P).expect("synced")
}

/// Seeds of the `pg_notices` target: each kind of notice, cold and warm, conversations of
/// both peers, and near misses (bad encodings, over-cap counts, empty groups).
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let w = WORKER;
    let o = OTHER;
    let (wv, wh) = warm_digest_p();
    let mut out: Vec<(String, Vec<u8>)> = vec![
        // Each kind, alone.
        (
            "sync-reply-cold".into(),
            input(0, &[(0, sync(1, &[("workers", &[(10, w, 1)])], true))]),
        ),
        (
            "sync-no-reply-warm".into(),
            input(
                WARM,
                &[(0, sync(9, &[("g", &[(12, o, 2), (14, o, 1)])], false))],
            ),
        ),
        (
            "sync-from-q-up".into(),
            input(UP, &[(FROM_Q, sync(1, &[("solo", &[(3, o, 1)])], true))]),
        ),
        (
            "sync-empty".into(),
            input(WARM, &[(0, sync(6, &[], false))]),
        ),
        (
            "join-next-warm".into(),
            input(WARM, &[(0, join(6, "workers", &[(13, w), (10, w)]))]),
        ),
        (
            "join-cold".into(),
            input(0, &[(0, join(1, "workers", &[(13, w)]))]),
        ),
        (
            "join-cold-up".into(),
            input(UP, &[(0, join(1, "workers", &[(13, w)]))]),
        ),
        (
            "join-gap-warm".into(),
            input(WARM, &[(0, join(9, "g", &[(13, o)]))]),
        ),
        (
            "join-stale-warm".into(),
            input(WARM, &[(0, join(5, "g", &[(13, o)]))]),
        ),
        (
            "join-empty-warm".into(),
            input(WARM, &[(0, join(6, "x", &[]))]),
        ),
        (
            "leave-next-warm".into(),
            input(WARM, &[(0, leave(6, "workers", &[10, 11, 99]))]),
        ),
        (
            "leave-unknown-group-warm".into(),
            input(WARM, &[(0, leave(6, "nope", &[10]))]),
        ),
        (
            "leave-cold".into(),
            input(0, &[(FROM_Q, leave(1, "workers", &[10]))]),
        ),
        (
            "digest-match-warm".into(),
            input(WARM, &[(0, digest(wv, wh))]),
        ),
        (
            "digest-mismatch-warm".into(),
            input(WARM, &[(0, digest(wv, wh ^ 1))]),
        ),
        ("digest-cold".into(), input(0, &[(FROM_Q, digest(0, 0))])),
        // Conversations.
        (
            "conversation".into(),
            input(
                UP,
                &[
                    (0, sync(1, &[("workers", &[(10, w, 1)])], true)),
                    (0, join(2, "workers", &[(10, w), (11, w)])),
                    (FROM_Q, join(1, "g", &[(5, o)])),
                    (FROM_Q, sync(4, &[("g", &[(5, o, 1)])], false)),
                    (FROM_Q | TICK, join(5, "g", &[(5, o), (6, o)])),
                    (0, leave(3, "workers", &[10, 10])),
                    (FROM_Q, leave(6, "g", &[5])),
                    (TICK, digest(3, 0)),
                    (0, digest(3, 0)),
                ],
            ),
        ),
        (
            "two-peers-same-pid".into(),
            input(
                WARM,
                &[
                    (0, join(6, "workers", &[(10, w)])),
                    (FROM_Q, join(4, "workers", &[(10, w), (10, w)])),
                    (0, leave(7, "workers", &[10, 10, 10])),
                    (FROM_Q, leave(5, "workers", &[10])),
                ],
            ),
        ),
        (
            "peer-down-up".into(),
            input(
                WARM,
                &[
                    (PEER_DOWN, join(6, "g", &[(13, o)])),
                    (0, join(7, "g", &[(14, o)])),
                    (PEER_UP, sync(1, &[("g", &[(13, o, 1)])], false)),
                    (0, join(2, "g", &[(14, o)])),
                ],
            ),
        ),
        (
            "from-self".into(),
            input(
                WARM,
                &[
                    (FROM_ME, sync(1, &[("workers", &[(1, w, 5)])], true)),
                    (FROM_ME | TICK, leave(3, "workers", &[1, 2])),
                    (FROM_ME | PEER_UP | PEER_DOWN, digest(0, 0)),
                ],
            ),
        ),
        // Odd but valid Syncs.
        (
            "sync-empty-groups".into(),
            input(
                WARM,
                &[(
                    0,
                    sync(
                        7,
                        &[("empty", &[]), ("zero", &[(10, w, 0)]), ("g", &[])],
                        false,
                    ),
                )],
            ),
        ),
        (
            "sync-repeated-pid".into(),
            input(
                WARM,
                &[(0, sync(7, &[("g", &[(5, w, 3), (5, o, 2)])], false))],
            ),
        ),
        (
            "sync-repeated-group".into(),
            input(
                WARM,
                &[(
                    0,
                    sync(
                        7,
                        &[("g", &[(5, w, 1)]), ("g", &[(5, w, 2), (6, w, 1)])],
                        false,
                    ),
                )],
            ),
        ),
        (
            "sync-local-group-names".into(),
            input(
                0,
                &[(
                    0,
                    sync(
                        1,
                        &[("solo", &[(3, o, 1)]), ("workers", &[(1, w, 2)])],
                        true,
                    ),
                )],
            ),
        ),
        // Over the caps.
        (
            "sync-count-at-cap".into(),
            input(0, &[(0, sync(1, &[("g", &[(5, w, MAX_JOINS)])], false))]),
        ),
        (
            "sync-count-over-cap".into(),
            input(
                WARM,
                &[(0, sync(1, &[("g", &[(5, w, MAX_JOINS + 1)])], false))],
            ),
        ),
        (
            "sync-repeated-pid-over-cap".into(),
            input(
                WARM,
                &[(0, sync(1, &[("g", &[(5, w, MAX_JOINS), (5, w, 1)])], false))],
            ),
        ),
        (
            "sync-count-u32-max".into(),
            input(0, &[(0, sync(1, &[("g", &[(5, w, u32::MAX)])], true))]),
        ),
        (
            "sync-version-max".into(),
            input(WARM, &[(0, sync(u64::MAX, &[("g", &[(5, w, 1)])], false))]),
        ),
        (
            "many-records".into(),
            input(
                UP,
                &(0..40u8)
                    .map(|i| {
                        let tick = if i % 5 == 0 { TICK } else { 0 };
                        ((i % 2) | tick, digest(u64::from(i), 0))
                    })
                    .collect::<Vec<_>>(),
            ),
        ),
    ];
    // Near misses of the encoding.
    let valid = sync(1, &[("workers", &[(10, w, 1)])], true);
    let mut truncated = valid.clone();
    truncated.truncate(valid.len() / 2);
    out.push(("truncated".into(), input(0, &[(0, truncated)])));
    let mut trailing = valid.clone();
    trailing.push(0);
    out.push(("trailing-byte".into(), input(0, &[(0, trailing)])));
    let mut past_end = input(0, &[(0, valid.clone())]);
    past_end[2..4].copy_from_slice(&u16::MAX.to_le_bytes());
    out.push(("length-past-end".into(), past_end));
    // Envelopes by hand: scope "d" (length 1), then the variant index and the fields.
    let raw = |rest: &[u8]| [&[1, b'd'][..], rest].concat();
    let huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
    out.push((
        "huge-group-count".into(),
        input(0, &[(0, raw(&[&[0, 1][..], &huge].concat()))]),
    ));
    out.push((
        "huge-member-count".into(),
        input(0, &[(0, raw(&[&[2, 1, 1, b'g'][..], &huge].concat()))]),
    ));
    out.push((
        "huge-scope-length".into(),
        input(0, &[(0, [&huge[..], b"d"].concat())]),
    ));
    out.push(("bad-variant".into(), input(0, &[(0, raw(&[4, 1, 1]))])));
    out.push(("bad-bool".into(), input(0, &[(0, raw(&[0, 1, 0, 2]))])));
    out.push((
        "bad-utf8-scope".into(),
        input(0, &[(0, vec![1, 0xff, 3, 1, 1])]),
    ));
    out.push((
        "overlong-varint".into(),
        input(WARM, &[(0, raw(&[3, 0x85, 0x80, 0x00, 0]))]),
    ));
    out.push((
        "digest-max".into(),
        input(
            WARM,
            &[(
                0,
                raw(&[
                    3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0,
                ]),
            )],
        ),
    ));
    out.push(("empty".into(), vec![]));
    out.push(("mode-only".into(), vec![WARM | UP]));
    out.push(("short-header".into(), vec![WARM, 0, 5]));
    out
}
