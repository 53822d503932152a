//! A simulated cluster of Eventual cores: a network that can reorder, duplicate and lose
//! messages, the checks every step must pass, and the anti-entropy that ends a run.

use std::collections::{BTreeMap, BTreeSet};

use understudy_actor::{ActorAddr, NodeId, Tag};

use crate::core::command::Owner;
use crate::eventual::core::{Claim, EventualCore, EventualMessage, Output, Stamp, Version};

/// The run every simulated node is in.
pub(super) const RUN: u64 = 1;

/// The id of simulated node `i`.
pub(super) fn node(i: usize) -> NodeId {
    NodeId::new(i as u64 + 1).expect("non-zero")
}

/// Actor `pid` of simulated node `i`.
pub(super) fn owner(i: usize, pid: u64) -> Owner {
    Owner {
        addr: ActorAddr { node: node(i), pid },
        tag: Tag(7),
        incarnation: RUN,
    }
}

/// A message in flight.
#[derive(Clone, Debug)]
pub(super) struct Packet {
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) message: EventualMessage,
}

/// Nodes, the messages between them, and what their outputs said.
pub(super) struct Sim {
    pub(super) nodes: Vec<EventualCore>,
    /// In flight, in the order sent.
    pub(super) net: Vec<Packet>,
    /// Every message delivered, in order (to replay them).
    pub(super) delivered: Vec<Packet>,
    /// Per node, the winners as its `Changed` outputs told them.
    pub(super) watched: Vec<BTreeMap<String, Owner>>,
    /// Every revocation: (node, name, the withdrawn claim).
    pub(super) revoked: Vec<(usize, String, Claim)>,
    /// Per node, its own entries at each version it had, as its deltas and digests tell.
    history: Vec<BTreeMap<Version, BTreeMap<String, Claim>>>,
}

impl Sim {
    /// `n` nodes that know no peer yet.
    pub(super) fn new(n: usize, max_names: usize) -> Sim {
        Sim {
            nodes: (0..n)
                .map(|i| EventualCore::new(node(i), RUN, max_names))
                .collect(),
            net: Vec::new(),
            delivered: Vec::new(),
            watched: vec![BTreeMap::new(); n],
            revoked: Vec::new(),
            history: vec![
                BTreeMap::from([(
                    Version {
                        incarnation: RUN,
                        counter: 0
                    },
                    BTreeMap::new()
                )]);
                n
            ],
        }
    }

    /// Runs `f` on node `i`, then collects and checks its outputs.
    pub(super) fn on<R>(&mut self, i: usize, f: impl FnOnce(&mut EventualCore) -> R) -> R {
        let before: BTreeMap<String, Claim> = self.nodes[i]
            .local()
            .map(|(name, claim)| (name.to_owned(), *claim))
            .collect();
        let out = f(&mut self.nodes[i]);
        self.collect(i, &before);
        out
    }

    /// Every node comes to know every other as up.
    pub(super) fn connect_all(&mut self) {
        let n = self.nodes.len();
        for i in 0..n {
            for j in (0..n).filter(|j| *j != i) {
                self.on(i, |core| core.peer_up(node(j)));
            }
        }
    }

    /// Delivers the message in flight at `at` (which stays in flight too if `duplicate`).
    pub(super) fn deliver(&mut self, at: usize, duplicate: bool) {
        let packet = if duplicate {
            self.net[at].clone()
        } else {
            self.net.remove(at)
        };
        self.delivered.push(packet.clone());
        let Packet { from, to, message } = packet;
        self.on(to, |core| core.receive(node(from), message));
    }

    /// Delivers everything in flight, oldest first, until nothing is.
    pub(super) fn drain(&mut self) -> usize {
        let mut syncs = 0;
        for _ in 0..100_000 {
            if self.net.is_empty() {
                return syncs;
            }
            if matches!(self.net[0].message, EventualMessage::Sync { .. }) {
                syncs += 1;
            }
            self.deliver(0, false);
        }
        panic!("the exchange never went quiet");
    }

    /// Anti-entropy until quiet: what is in flight is lost, then every node sends digests
    /// and everything is delivered, until a round needs no `Sync`.
    pub(super) fn settle(&mut self) {
        self.net.clear();
        for _ in 0..8 {
            for i in 0..self.nodes.len() {
                self.on(i, EventualCore::tick);
            }
            if self.drain() == 0 {
                return;
            }
        }
        panic!("anti-entropy did not converge in 8 rounds");
    }

    /// Each node's resolved view: name → winning claim.
    pub(super) fn view(&self, i: usize) -> BTreeMap<String, Claim> {
        self.nodes[i]
            .iter()
            .map(|(name, claim)| (name.to_owned(), *claim))
            .collect()
    }

    /// Every node's own claims, by name.
    pub(super) fn claims(&self) -> BTreeMap<String, Vec<Claim>> {
        let mut all: BTreeMap<String, Vec<Claim>> = BTreeMap::new();
        for core in &self.nodes {
            for (name, claim) in core.local() {
                all.entry(name.to_owned()).or_default().push(*claim);
            }
        }
        all
    }

    /// After [`Sim::settle`]: every node resolves every name alike, the nodes' own claims
    /// hold one claim per name and are that view, and every node's view of a peer is the
    /// peer's own entries.
    pub(super) fn assert_converged(&self) {
        let claims = self.claims();
        for (name, held) in &claims {
            assert_eq!(held.len(), 1, "{name:?} is claimed by {held:?}");
        }
        let expected: BTreeMap<String, Claim> = claims
            .into_iter()
            .map(|(name, held)| (name, held[0]))
            .collect();
        for (i, core) in self.nodes.iter().enumerate() {
            assert_eq!(self.view(i), expected, "node {i}'s view");
            for (j, peer) in self.nodes.iter().enumerate().filter(|(j, _)| *j != i) {
                assert_eq!(core.view_digest(node(j)), Some(peer.digest()), "{i} of {j}");
            }
        }
    }

    /// Takes node `i`'s outputs: queues its messages and checks its notices. `before` is its
    /// own claims before the step.
    fn collect(&mut self, i: usize, before: &BTreeMap<String, Claim>) {
        let mut entries = before.clone();
        for output in self.nodes[i].take_outputs() {
            match output {
                Output::Send { to, message } => {
                    let to = to.get() as usize - 1;
                    self.net.push(Packet {
                        from: i,
                        to,
                        message,
                    });
                }
                Output::Broadcast(message) => {
                    self.record_delta(i, &mut entries, &message);
                    let peers: Vec<NodeId> = self.nodes[i].peers().collect();
                    assert!(!peers.is_empty(), "a broadcast with no peer");
                    for peer in peers {
                        let to = peer.get() as usize - 1;
                        let message = message.clone();
                        self.net.push(Packet {
                            from: i,
                            to,
                            message,
                        });
                    }
                }
                Output::Revoked {
                    name,
                    loser,
                    winner,
                } => self.check_revoked(i, before, name, loser, winner),
                Output::Changed { name, old, new } => {
                    let watched = &mut self.watched[i];
                    assert_eq!(watched.get(&name).copied(), old, "node {i}: {name:?}");
                    match new {
                        Some(owner) => watched.insert(name, owner),
                        None => watched.remove(&name),
                    };
                }
            }
        }
        let core = &self.nodes[i];
        let local: BTreeMap<String, Claim> = core
            .local()
            .map(|(name, claim)| (name.to_owned(), *claim))
            .collect();
        if core.peers().next().is_some() {
            assert_eq!(entries, local, "node {i}'s deltas do not tell its change");
        }
        self.history[i].insert(core.digest().0, local);
        self.assert_consistent(i);
    }

    /// Applies node `i`'s delta `message` to `entries` (its own, before the delta), and
    /// records them at the delta's version.
    fn record_delta(
        &mut self,
        i: usize,
        entries: &mut BTreeMap<String, Claim>,
        message: &EventualMessage,
    ) {
        let version = match message {
            EventualMessage::Put {
                version,
                name,
                claim,
            } => {
                entries.insert(name.clone(), claim.claim(node(i), RUN));
                version
            }
            EventualMessage::Remove { version, name } => {
                entries.remove(name);
                version
            }
            EventualMessage::Sync { .. } | EventualMessage::Digest { .. } => return,
        };
        self.history[i].insert(*version, entries.clone());
    }

    /// A revocation by node `i` withdrew a claim it held before the step, once.
    fn check_revoked(
        &mut self,
        i: usize,
        before: &BTreeMap<String, Claim>,
        name: String,
        loser: Owner,
        winner: Owner,
    ) {
        let me = node(i);
        let claim = before
            .get(&name)
            .copied()
            .unwrap_or_else(|| panic!("{name:?} revoked, not held by node {i}"));
        assert_eq!(claim.owner, loser);
        assert_eq!(loser.node(), me);
        assert_ne!(winner.node(), me, "a local claim lost to another local one");
        let gone = self.nodes[i].local().all(|(n, c)| n != name || *c != claim);
        assert!(gone, "{name:?} revoked but kept by node {i}");
        let again = self
            .revoked
            .iter()
            .any(|r| r.0 == i && r.1 == name && r.2 == claim);
        assert!(!again, "{name:?} of node {i} revoked twice");
        self.revoked.push((i, name, claim));
    }

    /// Node `i`'s own claims win their names there, its `Changed` outputs told its view,
    /// and its view of each synced peer is the peer's entries at a version the peer had:
    /// never a guess.
    fn assert_consistent(&self, i: usize) {
        let core = &self.nodes[i];
        for (name, claim) in core.local() {
            assert_eq!(core.resolve(name), Some(claim), "node {i}'s {name:?}");
        }
        let owners: BTreeMap<String, Owner> = core
            .iter()
            .map(|(name, claim)| (name.to_owned(), claim.owner))
            .collect();
        assert_eq!(self.watched[i], owners, "node {i}'s changes vs its view");
        for (peer, view) in core.peers.iter().filter(|(_, view)| view.synced) {
            let j = peer.get() as usize - 1;
            let had = self.history[j].get(&view.version);
            assert_eq!(had, Some(&view.entries), "node {i}'s view of {j}");
        }
    }
}

/// The winner of each name among `claims` (the lowest stamp).
pub(super) fn winners(claims: &BTreeMap<String, Vec<Claim>>) -> BTreeMap<String, Claim> {
    claims
        .iter()
        .filter_map(|(name, held)| Some((name.clone(), *held.iter().min()?)))
        .collect()
}

/// A claim as node `i` would stamp it.
pub(super) fn claim(i: usize, pid: u64, at_ms: u64, seq: u64) -> Claim {
    Claim {
        owner: owner(i, pid),
        stamp: Stamp {
            at_ms,
            node: node(i),
            seq,
        },
    }
}

/// The set of (node, name, claim) revoked, for comparing with a model.
pub(super) fn revoked_set(sim: &Sim) -> BTreeSet<(usize, String, Stamp)> {
    sim.revoked
        .iter()
        .map(|(i, name, claim)| (*i, name.clone(), claim.stamp))
        .collect()
}
