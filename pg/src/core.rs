//! The pure state machine of one pg scope on one node.
//!
//! Semantics (Erlang's `pg`, OTP 25):
//! - A node is the **authority** for its own members: only local actors join and leave here,
//!   and every other node's view of them is exactly what this node last told it.
//! - Membership is **counted**: joining twice makes an actor a member twice (it appears twice
//!   in the member list) and it must leave twice. Leaving a group with none of the given
//!   actors in it is [`CoreError::NotJoined`]; otherwise the members that were in it leave.
//! - A local member that stops leaves every group ([`ScopeCore::member_down`]); a node that
//!   goes down takes all of its members with it ([`ScopeCore::peer_down`]).
//! - **Monitors** get the current membership and every later change, atomically: the snapshot
//!   is taken and the monitor registered in the same step, and events are pushed to the
//!   monitor's sink in the order the changes were applied. Removing a monitor stops delivery.
//!
//! The exchange with peers (all messages for one scope, per peer in order):
//! - `Sync` carries the sender's whole local membership with its version; with `reply` set,
//!   the receiver answers with its own. Sent to a peer that comes up, and on repair.
//! - `Join`/`Leave` are deltas, numbered by the sender's version (one per change). A receiver
//!   that sees a gap (or a delta before any `Sync`) asks for a `Sync` instead of guessing.
//! - `Digest` is the periodic anti-entropy probe: the sender's version and membership hash. A
//!   receiver whose view of the sender differs asks for a `Sync`; one that has never synced
//!   with the sender asks too, so the digest also retries discovery.
//!
//! No I/O, no clock, no randomness: inputs are method calls, outputs are [`Output`]s the
//! driver carries out and events pushed to [`EventSink`]s. Member handles are a type
//! parameter (plain values in the property tests; in the driver a local member's cell, and
//! for a remote member nothing until a ref to it is asked for, which the driver then caches
//! with [`ScopeCore::set_handles`]). A peer's message is checked whole against the limits
//! before anything of it is applied, and applying it makes no handle the caller did not
//! provide, so a refused message costs nothing but its decoding.

use std::collections::{BTreeMap, HashMap};

use understudy_actor::{ActorAddr, NodeId, Tag};

use crate::wire::PeerMessage;

/// A group's name.
pub type Group = String;

/// How many times one actor may be in one group at once. Far above any sane use; it bounds
/// what a peer's message can make this node allocate (a `Sync` carries counts, not lists).
pub const MAX_JOINS: u32 = 1 << 16;

/// How many memberships (member occurrences, summed over groups) one node may hold in one
/// scope. Refused locally beyond it, and a peer's message beyond it is dropped: it bounds
/// what a peer can make this node hold (about 32 MiB of view per peer at most).
pub const MAX_MEMBERSHIPS: u64 = 1 << 20;

/// One occurrence of a member in the merged view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<H> {
    /// Where the actor lives.
    pub addr: ActorAddr,
    /// Its message type.
    pub tag: Tag,
    /// The driver's handle on it.
    pub handle: H,
}

/// A change of a group, as monitors see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<H> {
    /// `members` joined `group` (an actor joined twice is listed twice).
    Join {
        /// The group.
        group: Group,
        /// The members that joined.
        members: Vec<Entry<H>>,
    },
    /// `members` left `group`.
    Leave {
        /// The group.
        group: Group,
        /// The members that left.
        members: Vec<Entry<H>>,
    },
}

impl<H> Change<H> {
    /// The group the change is about.
    pub fn group(&self) -> &str {
        match self {
            Change::Join { group, .. } | Change::Leave { group, .. } => group,
        }
    }
}

/// Where a monitor's events go. Called with the core borrowed, so it must not block.
pub trait EventSink<H> {
    /// Delivers one change.
    fn deliver(&self, change: Change<H>);
}

/// What a monitor watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watch {
    /// Every group of the scope.
    Scope,
    /// One group.
    Group(Group),
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to each of `to`.
    Send {
        /// The peers.
        to: Vec<NodeId>,
        /// The message.
        message: PeerMessage,
    },
}

/// Why a local operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// None of the actors is a member of the group.
    #[error("none of the actors is a member of group {group:?}")]
    NotJoined {
        /// The group.
        group: Group,
    },
    /// Only actors of this node can join or leave here.
    #[error("{0} is not a local actor: join and leave it on its own node")]
    NotLocal(ActorAddr),
    /// An actor would be in the group more than [`MAX_JOINS`] times, or this node would
    /// hold more than [`MAX_MEMBERSHIPS`] memberships in the scope.
    #[error(
        "too many joins: an actor may be in group {group:?} at most {MAX_JOINS} times, and a node may hold at most {MAX_MEMBERSHIPS} memberships per scope"
    )]
    TooManyJoins {
        /// The group.
        group: Group,
    },
    /// The group's members take another message type.
    #[error("group {group:?} holds members of another message type (tag {found}, not {wanted})")]
    TypeMismatch {
        /// The group.
        group: Group,
        /// The type asked for.
        wanted: Tag,
        /// A type found in the group.
        found: Tag,
    },
}

/// What this node knows about one peer's members.
#[derive(Default, Debug)]
struct PeerView {
    /// A `Sync` arrived since the peer came up: its deltas may be applied.
    synced: bool,
    /// A `Sync` was asked for this period and has not arrived yet (ask once per period,
    /// not once per message).
    asked: bool,
    /// The sender's version this view reflects.
    version: u64,
    /// pid → (tag, count) per group.
    groups: BTreeMap<Group, BTreeMap<u64, (Tag, u32)>>,
    /// The sum of all counts in `groups`.
    total: u64,
}

#[derive(Debug)]
struct Monitor<S> {
    watch: Watch,
    sink: S,
}

/// A group in the merged view: every member occurrence, local and remote.
#[derive(Debug)]
struct GroupView<H> {
    members: Vec<Entry<H>>,
    local: usize,
    /// How many members take each message type (one, unless peers disagree), so a join's
    /// type check does not scan the group.
    tags: BTreeMap<Tag, usize>,
}

impl<H> Default for GroupView<H> {
    fn default() -> Self {
        GroupView {
            members: Vec::new(),
            local: 0,
            tags: BTreeMap::new(),
        }
    }
}

/// One scope's membership and monitors on one node.
#[derive(Debug)]
pub struct ScopeCore<H, S> {
    me: NodeId,
    /// Bumped by every local change; numbers the deltas.
    version: u64,
    /// This node's members: group → pid → (tag, count). The authority's copy.
    local: BTreeMap<Group, BTreeMap<u64, (Tag, u32)>>,
    /// The sum of all counts in `local`.
    local_total: u64,
    /// The peers this node exchanges with (alive, or heard from).
    peers: HashMap<NodeId, PeerView>,
    /// The merged view that lookups and monitors read.
    view: HashMap<Group, GroupView<H>>,
    monitors: BTreeMap<u64, Monitor<S>>,
    next_monitor: u64,
    outputs: Vec<Output>,
    /// Peer messages dropped as invalid (counts above [`MAX_JOINS`]).
    rejected: u64,
}

impl<H: Clone, S: EventSink<H>> ScopeCore<H, S> {
    /// An empty scope on node `me`.
    pub fn new(me: NodeId) -> Self {
        ScopeCore {
            me,
            version: 0,
            local: BTreeMap::new(),
            local_total: 0,
            peers: HashMap::new(),
            view: HashMap::new(),
            monitors: BTreeMap::new(),
            next_monitor: 1,
            outputs: Vec::new(),
            rejected: 0,
        }
    }

    /// This node.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Takes what the driver must do, in order.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    // ---- queries ----------------------------------------------------------------------

    /// Every member occurrence of `group` (local and remote), in no particular order.
    pub fn members(&self, group: &str) -> &[Entry<H>] {
        self.view.get(group).map_or(&[], |g| &g.members)
    }

    /// The local member occurrences of `group`.
    pub fn local_members(&self, group: &str) -> impl Iterator<Item = &Entry<H>> {
        let me = self.me;
        self.members(group)
            .iter()
            .filter(move |e| e.addr.node == me)
    }

    /// Whether `group` has local members.
    pub fn has_local(&self, group: &str) -> bool {
        self.view.get(group).is_some_and(|g| g.local > 0)
    }

    /// Every group with at least one member, sorted.
    pub fn groups(&self) -> Vec<Group> {
        let mut out: Vec<Group> = self.view.keys().cloned().collect();
        out.sort();
        out
    }

    /// The groups with local members, sorted.
    pub fn local_groups(&self) -> Vec<Group> {
        self.local.keys().cloned().collect()
    }

    /// The groups a local actor is in (each once), sorted.
    pub fn groups_of(&self, pid: u64) -> Vec<Group> {
        self.local
            .iter()
            .filter(|(_, m)| m.contains_key(&pid))
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// The first message type in `group` other than `wanted`, if any.
    pub fn foreign_tag(&self, group: &str, wanted: Tag) -> Option<Tag> {
        self.view
            .get(group)?
            .tags
            .keys()
            .copied()
            .find(|t| *t != wanted)
    }

    /// Every member occurrence of `group`, if they all take message type `wanted`; else the
    /// first other type found (one lookup of the group for both).
    pub fn typed_members(&self, group: &str, wanted: Tag) -> Result<&[Entry<H>], Tag> {
        let Some(view) = self.view.get(group) else {
            return Ok(&[]);
        };
        // One type, the one wanted: by far the usual case, and the cheapest check.
        if view.tags.len() == 1 && view.tags.contains_key(&wanted) {
            return Ok(&view.members);
        }
        match view.tags.keys().copied().find(|t| *t != wanted) {
            Some(found) => Err(found),
            None => Ok(&view.members),
        }
    }

    /// This node's version and membership hash (what its digests carry).
    pub fn digest(&self) -> (u64, u64) {
        (self.version, hash_groups(&self.local))
    }

    /// The version and hash of this node's view of `peer`, if synced with it.
    pub fn view_digest(&self, peer: NodeId) -> Option<(u64, u64)> {
        let p = self.peers.get(&peer).filter(|p| p.synced)?;
        Some((p.version, hash_groups(&p.groups)))
    }

    /// How many peer messages were dropped as invalid.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// How many monitors are registered.
    pub fn monitor_count(&self) -> usize {
        self.monitors.len()
    }

    // ---- local changes ----------------------------------------------------------------

    /// Local actors join `group` (an actor listed twice joins twice).
    pub fn join(&mut self, group: &str, members: Vec<Entry<H>>) -> Result<(), CoreError> {
        for m in &members {
            if m.addr.node != self.me {
                return Err(CoreError::NotLocal(m.addr));
            }
        }
        if let Some(first) = members.first() {
            let wanted = first.tag;
            let found = members
                .iter()
                .map(|m| m.tag)
                .find(|t| *t != wanted)
                .or_else(|| self.foreign_tag(group, wanted));
            if let Some(found) = found {
                return Err(CoreError::TypeMismatch {
                    group: group.to_owned(),
                    wanted,
                    found,
                });
            }
        } else {
            return Ok(());
        }
        let existing = self.local.get(group);
        let mut adding: BTreeMap<u64, usize> = BTreeMap::new();
        for m in &members {
            *adding.entry(m.addr.pid).or_default() += 1;
        }
        let too_many = self.local_total + members.len() as u64 > MAX_MEMBERSHIPS
            || adding.into_iter().any(|(pid, n)| {
                let before = existing.and_then(|l| l.get(&pid)).map_or(0, |s| s.1);
                before as usize + n > MAX_JOINS as usize
            });
        if too_many {
            return Err(CoreError::TooManyJoins {
                group: group.to_owned(),
            });
        }
        self.local_total += members.len() as u64;
        let local = self.local.entry(group.to_owned()).or_default();
        for m in &members {
            local.entry(m.addr.pid).or_insert((m.tag, 0)).1 += 1;
        }
        self.version += 1;
        let wire: Vec<(u64, Tag)> = members.iter().map(|m| (m.addr.pid, m.tag)).collect();
        self.send_to_peers(PeerMessage::Join {
            version: self.version,
            group: group.to_owned(),
            members: wire,
        });
        self.add_to_view(group, members);
        Ok(())
    }

    /// Local actors leave `group` once each. `NotJoined` if none of them was in it; the
    /// ones that were leave even if others were not.
    pub fn leave(&mut self, group: &str, pids: &[u64]) -> Result<(), CoreError> {
        let Some(local) = self.local.get_mut(group) else {
            return Err(CoreError::NotJoined {
                group: group.to_owned(),
            });
        };
        let mut left = Vec::new();
        for pid in pids {
            if let Some(slot) = local.get_mut(pid) {
                slot.1 -= 1;
                if slot.1 == 0 {
                    local.remove(pid);
                }
                left.push(*pid);
            }
        }
        if local.is_empty() {
            self.local.remove(group);
        }
        if left.is_empty() {
            return Err(CoreError::NotJoined {
                group: group.to_owned(),
            });
        }
        self.local_total -= left.len() as u64;
        self.local_left(group, left);
        Ok(())
    }

    /// A local actor stopped: it leaves every group it was in (as often as it had joined).
    pub fn member_down(&mut self, pid: u64) {
        let groups: Vec<(Group, u32)> = self
            .local
            .iter()
            .filter_map(|(g, m)| m.get(&pid).map(|(_, n)| (g.clone(), *n)))
            .collect();
        for (group, count) in groups {
            self.local_total -= u64::from(count);
            if let Some(local) = self.local.get_mut(&group) {
                local.remove(&pid);
                if local.is_empty() {
                    self.local.remove(&group);
                }
            }
            self.local_left(&group, vec![pid; count as usize]);
        }
    }

    fn local_left(&mut self, group: &str, pids: Vec<u64>) {
        self.version += 1;
        self.send_to_peers(PeerMessage::Leave {
            version: self.version,
            group: group.to_owned(),
            members: pids.clone(),
        });
        let me = self.me;
        self.remove_from_view(
            group,
            pids.into_iter().map(|pid| ActorAddr { node: me, pid }),
        );
    }

    /// Replaces handles of `group`'s members: `f` sees each member occurrence and returns its
    /// new handle, or `None` to keep the one it has. Membership does not change and monitors
    /// hear nothing (the driver caches the refs it made on demand here).
    pub fn set_handles(&mut self, group: &str, mut f: impl FnMut(&Entry<H>) -> Option<H>) {
        if let Some(view) = self.view.get_mut(group) {
            for entry in &mut view.members {
                if let Some(handle) = f(entry) {
                    entry.handle = handle;
                }
            }
        }
    }

    // ---- monitors ---------------------------------------------------------------------

    /// Registers a monitor of the whole scope; returns its id and the current membership.
    pub fn monitor_scope(&mut self, sink: S) -> (u64, BTreeMap<Group, Vec<Entry<H>>>) {
        let snapshot = self
            .view
            .iter()
            .map(|(g, v)| (g.clone(), v.members.clone()))
            .collect();
        (self.add_monitor(Watch::Scope, sink), snapshot)
    }

    /// Registers a monitor of one group; returns its id and the group's current members.
    pub fn monitor_group(&mut self, group: &str, sink: S) -> (u64, Vec<Entry<H>>) {
        let snapshot = self.members(group).to_vec();
        (
            self.add_monitor(Watch::Group(group.to_owned()), sink),
            snapshot,
        )
    }

    fn add_monitor(&mut self, watch: Watch, sink: S) -> u64 {
        let id = self.next_monitor;
        self.next_monitor += 1;
        self.monitors.insert(id, Monitor { watch, sink });
        id
    }

    /// Removes a monitor; nothing more is delivered to it. Returns its sink, if it existed.
    pub fn demonitor(&mut self, id: u64) -> Option<S> {
        self.monitors.remove(&id).map(|m| m.sink)
    }

    // ---- peers ------------------------------------------------------------------------

    /// A peer came up (or came back): offer it our membership and ask for its own.
    pub fn peer_up(&mut self, peer: NodeId) {
        if peer == self.me {
            return;
        }
        let view = self.peers.entry(peer).or_default();
        view.asked = true;
        let message = self.sync_message(true);
        self.outputs.push(Output::Send {
            to: vec![peer],
            message,
        });
    }

    /// A peer went down (failed, left or restarted): all its members leave.
    pub fn peer_down(&mut self, peer: NodeId) {
        if let Some(view) = self.peers.remove(&peer) {
            for (group, members) in view.groups {
                let gone = members.into_iter().flat_map(|(pid, (_, n))| {
                    std::iter::repeat_n(ActorAddr { node: peer, pid }, n as usize)
                });
                self.remove_from_view(&group, gone);
            }
        }
    }

    /// The periodic anti-entropy round: a digest to every peer. A `Sync` asked for in the
    /// last period and not received may have been lost: it may be asked for again.
    pub fn tick(&mut self) {
        if self.peers.is_empty() {
            return;
        }
        for view in self.peers.values_mut() {
            view.asked = false;
        }
        let (version, hash) = self.digest();
        let to: Vec<NodeId> = self.sorted_peers();
        self.outputs.push(Output::Send {
            to,
            message: PeerMessage::Digest { version, hash },
        });
    }

    /// A message from `from`, applied only if it is valid whole (counts within [`MAX_JOINS`],
    /// the peer within [`MAX_MEMBERSHIPS`], one message type per pid); an invalid one is
    /// counted ([`ScopeCore::rejected`]) and changes nothing. Members it adds need handles:
    /// `resolve` makes them, called only once the message is accepted (the driver gives
    /// remote members no handle yet: their refs are made when asked for).
    pub fn receive(
        &mut self,
        from: NodeId,
        message: PeerMessage,
        resolve: &mut dyn FnMut(ActorAddr, Tag) -> H,
    ) {
        if from == self.me {
            return;
        }
        match message {
            PeerMessage::Sync {
                version,
                groups,
                reply,
            } => {
                if !valid_sync(&groups) {
                    self.rejected += 1;
                    return;
                }
                let old = {
                    let view = self.peers.entry(from).or_default();
                    view.synced = true;
                    view.asked = false;
                    view.version = version;
                    std::mem::take(&mut view.groups)
                };
                let mut new: BTreeMap<Group, BTreeMap<u64, (Tag, u32)>> = BTreeMap::new();
                for (group, members) in groups {
                    let slots = new.entry(group).or_default();
                    for (pid, tag, count) in members {
                        if count > 0 {
                            let slot = slots.entry(pid).or_insert((tag, 0));
                            slot.1 = slot.1.saturating_add(count);
                        }
                    }
                }
                // An empty group is no group; tolerate senders that list one.
                new.retain(|_, m| !m.is_empty());
                let total = new
                    .values()
                    .flat_map(|m| m.values())
                    .map(|(_, n)| u64::from(*n))
                    .sum();
                self.replace_peer_groups(from, old, &new, resolve);
                if let Some(view) = self.peers.get_mut(&from) {
                    view.groups = new;
                    view.total = total;
                }
                if reply {
                    let message = self.sync_message(false);
                    self.outputs.push(Output::Send {
                        to: vec![from],
                        message,
                    });
                }
            }
            PeerMessage::Join {
                version,
                group,
                members,
            } => {
                if !self.valid_join(from, &group, &members) {
                    self.rejected += 1;
                    return;
                }
                if !self.accept_delta(from, version) {
                    return;
                }
                if let Some(view) = self.peers.get_mut(&from) {
                    view.total += members.len() as u64;
                    let slots = view.groups.entry(group.clone()).or_default();
                    for (pid, tag) in &members {
                        slots.entry(*pid).or_insert((*tag, 0)).1 += 1;
                    }
                }
                let entries = members
                    .into_iter()
                    .map(|(pid, tag)| {
                        let addr = ActorAddr { node: from, pid };
                        Entry {
                            addr,
                            tag,
                            handle: resolve(addr, tag),
                        }
                    })
                    .collect();
                self.add_to_view(&group, entries);
            }
            PeerMessage::Leave {
                version,
                group,
                members,
            } => {
                if !self.accept_delta(from, version) {
                    return;
                }
                let mut gone = Vec::new();
                if let Some(view) = self.peers.get_mut(&from)
                    && let Some(slots) = view.groups.get_mut(&group)
                {
                    for pid in members {
                        if let Some(slot) = slots.get_mut(&pid) {
                            slot.1 -= 1;
                            if slot.1 == 0 {
                                slots.remove(&pid);
                            }
                            view.total -= 1;
                            gone.push(ActorAddr { node: from, pid });
                        }
                    }
                    if slots.is_empty() {
                        view.groups.remove(&group);
                    }
                }
                self.remove_from_view(&group, gone.into_iter());
            }
            PeerMessage::Digest { version, hash } => {
                let matches = self.view_digest(from) == Some((version, hash));
                if !matches {
                    self.ask_sync(from);
                }
            }
        }
    }

    /// Whether a peer's join keeps every count within [`MAX_JOINS`], the peer within
    /// [`MAX_MEMBERSHIPS`], and every pid at one message type.
    fn valid_join(&self, from: NodeId, group: &str, members: &[(u64, Tag)]) -> bool {
        let peer = self.peers.get(&from);
        if peer.map_or(0, |p| p.total) + members.len() as u64 > MAX_MEMBERSHIPS {
            return false;
        }
        let existing = peer.and_then(|p| p.groups.get(group));
        let mut adding: BTreeMap<u64, (Tag, usize)> = BTreeMap::new();
        for (pid, tag) in members {
            let slot = adding.entry(*pid).or_insert((*tag, 0));
            if slot.0 != *tag {
                return false;
            }
            slot.1 += 1;
        }
        adding.into_iter().all(|(pid, (tag, n))| {
            let (known, before) = existing
                .and_then(|g| g.get(&pid))
                .map_or((tag, 0), |s| (s.0, s.1));
            known == tag && before as usize + n <= MAX_JOINS as usize
        })
    }

    /// Whether a delta numbered `version` from `from` follows what we have; if not, ask for
    /// a `Sync` (once) and drop it.
    fn accept_delta(&mut self, from: NodeId, version: u64) -> bool {
        let view = self.peers.entry(from).or_default();
        if view.synced && view.version.checked_add(1) == Some(version) {
            view.version = version;
            return true;
        }
        if view.synced && version <= view.version {
            return false; // already reflected (a Sync overtook it)
        }
        self.ask_sync(from);
        false
    }

    fn ask_sync(&mut self, from: NodeId) {
        let view = self.peers.entry(from).or_default();
        if view.asked {
            return;
        }
        view.asked = true;
        let message = self.sync_message(true);
        self.outputs.push(Output::Send {
            to: vec![from],
            message,
        });
    }

    fn sync_message(&self, reply: bool) -> PeerMessage {
        PeerMessage::Sync {
            version: self.version,
            groups: self
                .local
                .iter()
                .map(|(g, m)| {
                    (
                        g.clone(),
                        m.iter().map(|(pid, (tag, n))| (*pid, *tag, *n)).collect(),
                    )
                })
                .collect(),
            reply,
        }
    }

    fn send_to_peers(&mut self, message: PeerMessage) {
        if self.peers.is_empty() {
            return;
        }
        let to = self.sorted_peers();
        self.outputs.push(Output::Send { to, message });
    }

    fn sorted_peers(&self) -> Vec<NodeId> {
        let mut to: Vec<NodeId> = self.peers.keys().copied().collect();
        to.sort();
        to
    }

    // ---- the merged view --------------------------------------------------------------

    /// Applies the difference between two versions of a peer's membership to the view.
    fn replace_peer_groups(
        &mut self,
        peer: NodeId,
        old: BTreeMap<Group, BTreeMap<u64, (Tag, u32)>>,
        new: &BTreeMap<Group, BTreeMap<u64, (Tag, u32)>>,
        resolve: &mut dyn FnMut(ActorAddr, Tag) -> H,
    ) {
        let mut groups: Vec<&Group> = old.keys().chain(new.keys()).collect();
        groups.sort();
        groups.dedup();
        for group in groups {
            let before = old.get(group);
            let after = new.get(group);
            let mut gone = Vec::new();
            let mut came = Vec::new();
            let pids = before
                .into_iter()
                .flat_map(|m| m.keys())
                .chain(after.into_iter().flat_map(|m| m.keys()));
            let mut seen = std::collections::BTreeSet::new();
            for pid in pids {
                if !seen.insert(*pid) {
                    continue;
                }
                let (old_tag, mut was) = before
                    .and_then(|m| m.get(pid))
                    .map_or((Tag(0), 0), |s| (s.0, s.1));
                let (tag, is) = after
                    .and_then(|m| m.get(pid))
                    .map_or((Tag(0), 0), |s| (s.0, s.1));
                let addr = ActorAddr {
                    node: peer,
                    pid: *pid,
                };
                // A pid whose type changed (a peer bug or a reused pid) leaves and rejoins.
                let retyped = was > 0 && is > 0 && old_tag != tag;
                let keep = if retyped { 0 } else { is.min(was) };
                for _ in keep..was {
                    gone.push(addr);
                }
                if retyped {
                    was = 0;
                }
                if is > was {
                    let handle = resolve(addr, tag);
                    for _ in was..is {
                        came.push(Entry {
                            addr,
                            tag,
                            handle: handle.clone(),
                        });
                    }
                }
            }
            // Leaves first: a member replaced by another shows as leave then join.
            self.remove_from_view(group, gone.into_iter());
            self.add_to_view(group, came);
        }
    }

    fn add_to_view(&mut self, group: &str, members: Vec<Entry<H>>) {
        if members.is_empty() {
            return;
        }
        let me = self.me;
        let view = self.view.entry(group.to_owned()).or_default();
        view.local += members.iter().filter(|m| m.addr.node == me).count();
        for m in &members {
            *view.tags.entry(m.tag).or_default() += 1;
        }
        view.members.extend(members.iter().cloned());
        self.notify(Change::Join {
            group: group.to_owned(),
            members,
        });
    }

    fn remove_from_view(&mut self, group: &str, addrs: impl Iterator<Item = ActorAddr>) {
        let me = self.me;
        let Some(view) = self.view.get_mut(group) else {
            return;
        };
        // One pass over the group, however many leave (a node going down takes many).
        let mut leaving: HashMap<ActorAddr, usize> = HashMap::new();
        for addr in addrs {
            *leaving.entry(addr).or_default() += 1;
        }
        let mut removed = Vec::new();
        let mut kept = Vec::with_capacity(view.members.len());
        for entry in view.members.drain(..) {
            match leaving.get_mut(&entry.addr) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    if entry.addr.node == me {
                        view.local -= 1;
                    }
                    if let Some(count) = view.tags.get_mut(&entry.tag) {
                        *count -= 1;
                        if *count == 0 {
                            view.tags.remove(&entry.tag);
                        }
                    }
                    removed.push(entry);
                }
                _ => kept.push(entry),
            }
        }
        view.members = kept;
        if view.members.is_empty() {
            self.view.remove(group);
        }
        if !removed.is_empty() {
            self.notify(Change::Leave {
                group: group.to_owned(),
                members: removed,
            });
        }
    }

    fn notify(&self, change: Change<H>) {
        for m in self.monitors.values() {
            let wanted = match &m.watch {
                Watch::Scope => true,
                Watch::Group(g) => g == change.group(),
            };
            if wanted {
                m.sink.deliver(change.clone());
            }
        }
    }
}

/// Whether a `Sync` keeps every count within [`MAX_JOINS`] (summed over repeated entries,
/// also of a group listed twice) and the total within [`MAX_MEMBERSHIPS`].
fn valid_sync(groups: &[(Group, Vec<crate::wire::SyncedMember>)]) -> bool {
    let mut counts: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    let mut total = 0u64;
    groups.iter().all(|(group, members)| {
        members.iter().all(|(pid, _, n)| {
            let c = counts.entry((group.as_str(), *pid)).or_default();
            *c += u64::from(*n);
            total += u64::from(*n);
            *c <= u64::from(MAX_JOINS) && total <= MAX_MEMBERSHIPS
        })
    })
}

/// An order-independent hash of a membership: the sum of one hash per member occurrence.
fn hash_groups(groups: &BTreeMap<Group, BTreeMap<u64, (Tag, u32)>>) -> u64 {
    let mut sum = 0u64;
    for (group, members) in groups {
        let g = Tag::of(group).0;
        for (pid, (tag, count)) in members {
            let h = mix(g ^ mix(*pid) ^ tag.0.rotate_left(17));
            sum = sum.wrapping_add(h.wrapping_mul(u64::from(*count)));
        }
    }
    sum
}

/// splitmix64's finaliser.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
