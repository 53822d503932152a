//! The pure state machine of the Eventual name scope on one node.
//!
//! Semantics:
//! - Every node is the **sole writer of its own entries**: only its local actors register
//!   and unregister here, and every other node's view of them is exactly what this node last
//!   told it. The scope is the union of all nodes' entries, a map from name to the claims
//!   on it, at most one claim per node.
//! - A name **resolves to its lowest-stamped claim** ([`Stamp`]: the registering node's clock,
//!   then its node id, then its change counter), so every node that sees the same claims
//!   picks the same winner, whatever order they came in. No quorum: registration works in a
//!   minority partition, and the view converges once messages flow again.
//! - **First writer wins locally**: registering a name this node sees held by another actor
//!   is refused ([`EventualError::AlreadyRegistered`], with the holder). Holding it already
//!   is success. Conflicts arise only between claims made before either node saw the other's
//!   (a partition, or a race within one message delay).
//! - On a **conflict**, the node whose local claim stops being the winner **withdraws it**:
//!   the claim leaves its entries (a `Remove` goes to every peer) and [`Output::Revoked`] is
//!   emitted once, for the driver to send the losing actor a `NameRevoked` notice; the actor
//!   keeps running (Erlang's `global` resolves a clash with a function whose default kills
//!   one of the two). The losing claim is withdrawn rather than kept in the map beneath the
//!   winner, so the map itself converges to one claim per name: a loser never regains the
//!   name silently when the winner goes later (its actor was told it lost, and registers
//!   again to hold it), and no node carries losing claims forever.
//! - Stamps are the registering node's word: a node whose clock runs behind wins the
//!   conflicts it takes part in, and a peer could rank its claims first at will. The mesh
//!   admits only nodes holding the cluster's certificates; they are trusted that far, as
//!   pg trusts a node's word on its members.
//! - A name is **released** when its actor unregisters it, when the actor stops
//!   ([`EventualCore::actor_stopped`]), and when its node goes down
//!   ([`EventualCore::peer_down`]): the next-ranked claim still held, if any, then wins.
//! - Every change of a name's winner is emitted as [`Output::Changed`] in the order it was
//!   applied, for watches; a claim that is not the winner changes no winner and emits none.
//!
//! The exchange with peers is pg's (`pg/src/core.rs`), with names instead of groups:
//! - `Sync` carries the sender's whole set of entries with its [`Version`]; with `reply` set,
//!   the receiver answers with its own. Sent to a peer that comes up, and on repair. A `Sync`
//!   older than the view it would replace (overtaken by later messages) is not applied.
//! - `Put`/`Remove` are deltas, numbered by the sender's version (one per change). A receiver
//!   that sees a gap, a delta before any `Sync`, or a newer run of the sender asks for a
//!   `Sync` instead of guessing; one it has already reflected is dropped, so a duplicate
//!   changes nothing.
//! - `Digest` is the periodic anti-entropy probe ([`EventualCore::tick`]): the sender's
//!   version and entries hash. A receiver whose view of the sender differs, or that has never
//!   synced with it, asks for a `Sync` (once per period).
//! - Messages from a node that is not up ([`EventualCore::peer_up`]) are ignored, so a late
//!   message of a node gone down cannot bring its names back; the peer's next `Sync`, asked
//!   for when it comes up, brings them in.
//!
//! No I/O, no clock, no randomness: inputs are method calls (the driver supplies the clock
//! value a registration is stamped with), outputs are [`Output`]s collected for the driver
//! ([`EventualCore::take_outputs`]). A peer's message is checked whole before any of it is
//! applied: every name valid (`crate::name::check_name`), no name twice, and no more than
//! `max_names` entries per peer, the same bound a node keeps for its own; a message over
//! them is dropped whole and counted ([`EventualCore::rejected`]). So a peer can make this
//! node hold at most `max_names` names of at most 255 bytes.

use std::collections::{BTreeMap, HashMap};

use understudy_actor::{ActorAddr, NodeId};

use crate::core::command::Owner;
use crate::error::RegistryError;
use crate::name::check_name;

use super::wire::entry_hash;
pub(crate) use super::wire::{Claim, EventualMessage, Stamp, Version, WireClaim};

/// How many names one node may hold in the scope, by default. A full `Sync` of this many
/// names of the longest length encodes to under 6 MiB, inside the mesh's default 8 MiB
/// frame, and a peer's names cost about 12 MiB here at most (its view and the merged one).
pub(crate) const DEFAULT_MAX_NAMES: usize = 16_384;

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// Send `message` to the peer `to`.
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        message: EventualMessage,
    },
    /// Send `message` to every peer that is up ([`EventualCore::peers`]).
    Broadcast(EventualMessage),
    /// The local actor `loser` lost `name` to `winner`, another node's claim ranked before
    /// its own: its claim is withdrawn. Tell it (`NameRevoked`); it keeps running. Comes
    /// after the `Remove` that withdraws the claim and before the name's `Changed`.
    Revoked {
        /// The name.
        name: String,
        /// The local actor that held it.
        loser: Owner,
        /// The actor that holds it now.
        winner: Owner,
    },
    /// The winner of `name` changed from `old` to `new` (`None`: nobody).
    Changed {
        /// The name.
        name: String,
        /// Who held it before.
        old: Option<Owner>,
        /// Who holds it now.
        new: Option<Owner>,
    },
}

/// What a successful registration did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Registered {
    /// The actor holds the name now.
    Now,
    /// The actor held the name already.
    Already,
}

/// Why a local operation was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EventualError {
    /// The name cannot be registered; pick another.
    #[error("the name cannot be registered in the Eventual scope")]
    InvalidName(#[source] RegistryError),
    /// Only actors of this node's current run register here.
    #[error("{} is not an actor of this node's current run: register it on its own node", .0.addr)]
    NotLocal(Owner),
    /// Another actor holds the name (first writer wins).
    #[error("{name:?} is registered to {} already", holder.addr)]
    AlreadyRegistered {
        /// The name.
        name: String,
        /// Its holder.
        holder: Owner,
    },
    /// Nobody holds the name.
    #[error("no actor is registered as {name:?}")]
    NotRegistered {
        /// The name.
        name: String,
    },
    /// Another actor than the one given holds the name.
    #[error("{name:?} is registered to {}, not to the actor unregistering it", holder.addr)]
    NotOwner {
        /// The name.
        name: String,
        /// Its holder.
        holder: Owner,
    },
    /// This node holds as many names as it may; unregister some first.
    #[error("this node holds {limit} names in the Eventual scope, its limit")]
    Full {
        /// The limit.
        limit: usize,
    },
}

/// What this node knows of one peer's entries.
#[derive(Debug, Default)]
pub(super) struct PeerView {
    /// A `Sync` arrived since the peer came up: its deltas may be applied.
    pub(super) synced: bool,
    /// A `Sync` was asked for this period and has not arrived yet (ask once per period).
    pub(super) asked: bool,
    /// The peer's version this view reflects.
    pub(super) version: Version,
    /// Its entries.
    pub(super) entries: BTreeMap<String, Claim>,
    /// The hash of `entries` (as digests carry it), kept as they change.
    pub(super) hash: u64,
}

/// The Eventual scope on one node: its own entries, its views of its peers', and the
/// winners resolved from them.
#[derive(Debug)]
pub(crate) struct EventualCore {
    pub(super) me: NodeId,
    /// Bumped by every local change; numbers the deltas.
    pub(super) version: Version,
    pub(super) max_names: usize,
    /// This node's entries: the only copy that is written.
    pub(super) local: BTreeMap<String, Claim>,
    /// The hash of `local` (as digests carry it), kept as it changes.
    pub(super) local_hash: u64,
    /// The peers that are up, and what they told us.
    pub(super) peers: BTreeMap<NodeId, PeerView>,
    /// The last peer a digest went to (digests go round the peers a few at a time).
    pub(super) digest_cursor: Option<NodeId>,
    /// Every claim per name, local and peers', sorted: the winner first. One node holds at
    /// most one claim per name, so a name has a claim per node at most (usually one).
    pub(super) view: HashMap<String, Vec<Claim>>,
    pub(super) outputs: Vec<Output>,
    /// Peer messages dropped whole as invalid.
    pub(super) rejected: u64,
}

impl EventualCore {
    /// An empty scope on node `me`, in its run `incarnation`, holding at most `max_names`
    /// names of its own and per peer.
    pub(crate) fn new(me: NodeId, incarnation: u64, max_names: usize) -> Self {
        EventualCore {
            me,
            version: Version {
                incarnation,
                counter: 0,
            },
            max_names,
            local: BTreeMap::new(),
            local_hash: 0,
            peers: BTreeMap::new(),
            digest_cursor: None,
            view: HashMap::new(),
            outputs: Vec::new(),
            rejected: 0,
        }
    }

    /// Takes what the driver must do, in order.
    pub(crate) fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    // ---- queries ----------------------------------------------------------------------

    /// The winning claim on `name`, if anyone holds it.
    pub(crate) fn resolve(&self, name: &str) -> Option<&Claim> {
        self.view.get(name).and_then(|claims| claims.first())
    }

    /// Who holds `name`, if anyone.
    pub(crate) fn owner(&self, name: &str) -> Option<Owner> {
        self.resolve(name).map(|c| c.owner)
    }

    /// Every held name, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.view.keys().cloned().collect();
        names.sort();
        names
    }

    /// Every held name with its winning claim, in no particular order.
    #[cfg_attr(not(test), allow(dead_code, reason = "the tests read it"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Claim)> {
        self.view
            .iter()
            .filter_map(|(name, claims)| Some((name.as_str(), claims.first()?)))
    }

    /// This node's own claims, sorted by name (each is the winner of its name).
    #[cfg_attr(not(test), allow(dead_code, reason = "the tests read it"))]
    pub(crate) fn local(&self) -> impl Iterator<Item = (&str, &Claim)> {
        self.local
            .iter()
            .map(|(name, claim)| (name.as_str(), claim))
    }

    /// The peers that are up, sorted.
    #[cfg_attr(not(test), allow(dead_code, reason = "the tests read it"))]
    pub(crate) fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers.keys().copied()
    }

    /// This node's version and entries hash (what its digests carry).
    pub(crate) fn digest(&self) -> (Version, u64) {
        (self.version, self.local_hash)
    }

    /// The version and hash of this node's view of `peer`, if synced with it.
    pub(crate) fn view_digest(&self, peer: NodeId) -> Option<(Version, u64)> {
        let view = self.peers.get(&peer).filter(|p| p.synced)?;
        Some((view.version, view.hash))
    }

    /// How many peer messages were dropped whole as invalid.
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected
    }

    // ---- local changes ----------------------------------------------------------------

    /// The local actor `owner` takes `name`, stamped with this node's clock `now_ms` (ms
    /// since the Unix epoch). Refused if another actor holds the name here.
    pub(crate) fn register(
        &mut self,
        name: &str,
        owner: Owner,
        now_ms: u64,
    ) -> Result<Registered, EventualError> {
        check_name(name).map_err(EventualError::InvalidName)?;
        self.check_local(owner)?;
        if let Some(holder) = self.owner(name) {
            return if holder == owner {
                Ok(Registered::Already)
            } else {
                Err(EventualError::AlreadyRegistered {
                    name: name.to_owned(),
                    holder,
                })
            };
        }
        if self.local.len() >= self.max_names {
            return Err(EventualError::Full {
                limit: self.max_names,
            });
        }
        self.version = self.version.next();
        let claim = Claim {
            owner,
            stamp: Stamp {
                at_ms: now_ms,
                node: self.me,
                seq: self.version.counter,
            },
        };
        self.local.insert(name.to_owned(), claim);
        self.local_hash = self.local_hash.wrapping_add(entry_hash(name, &claim));
        self.broadcast(EventualMessage::Put {
            version: self.version,
            name: name.to_owned(),
            claim: claim.to_wire(),
        });
        // Nobody held the name, so the new claim is its only one.
        self.view.insert(name.to_owned(), vec![claim]);
        self.changed(name, None);
        Ok(Registered::Now)
    }

    /// The local actor `owner` gives `name` up.
    pub(crate) fn unregister(&mut self, name: &str, owner: Owner) -> Result<(), EventualError> {
        self.check_local(owner)?;
        match self.local.get(name) {
            Some(claim) if claim.owner == owner => {
                let claim = *claim;
                self.withdraw(name, claim);
                self.changed(name, Some(owner));
                Ok(())
            }
            _ => match self.owner(name) {
                Some(holder) => Err(EventualError::NotOwner {
                    name: name.to_owned(),
                    holder,
                }),
                None => Err(EventualError::NotRegistered {
                    name: name.to_owned(),
                }),
            },
        }
    }

    /// The local actor `actor` stopped: every name it held is released. Returns how many.
    pub(crate) fn actor_stopped(&mut self, actor: ActorAddr) -> usize {
        let held: Vec<(String, Claim)> = self
            .local
            .iter()
            .filter(|(_, claim)| claim.owner.addr == actor)
            .map(|(name, claim)| (name.clone(), *claim))
            .collect();
        for (name, claim) in &held {
            self.withdraw(name, *claim);
            self.changed(name, Some(claim.owner));
        }
        held.len()
    }

    fn check_local(&self, owner: Owner) -> Result<(), EventualError> {
        if owner.addr.node == self.me && owner.incarnation == self.version.incarnation {
            Ok(())
        } else {
            Err(EventualError::NotLocal(owner))
        }
    }

    // ---- the resolved view ------------------------------------------------------------

    /// Takes the local `claim` on `name` out of this node's entries and the view, and tells
    /// the peers.
    pub(super) fn withdraw(&mut self, name: &str, claim: Claim) {
        self.local.remove(name);
        self.local_hash = self.local_hash.wrapping_sub(entry_hash(name, &claim));
        self.version = self.version.next();
        self.broadcast(EventualMessage::Remove {
            version: self.version,
            name: name.to_owned(),
        });
        self.view_remove(name, &claim);
    }

    /// A peer's claim on `name` went from `old` to `new`: updates the view, withdraws the
    /// local claim if it lost, and reports the change.
    pub(super) fn peer_claim(&mut self, name: &str, old: Option<Claim>, new: Option<Claim>) {
        if old == new {
            return;
        }
        let before = self.owner(name);
        if let Some(old) = old {
            self.view_remove(name, &old);
        }
        if let Some(new) = new {
            self.view_insert(name, new);
        }
        // A local claim is always its name's winner until now: if it is not any more, it
        // lost to the claim just added.
        if let Some(mine) = self.local.get(name).copied()
            && let Some(winner) = self.resolve(name).copied()
            && winner != mine
        {
            self.withdraw(name, mine);
            self.outputs.push(Output::Revoked {
                name: name.to_owned(),
                loser: mine.owner,
                winner: winner.owner,
            });
        }
        self.changed(name, before);
    }

    /// Reports `name`'s winner if it is not `before` any more.
    fn changed(&mut self, name: &str, before: Option<Owner>) {
        let after = self.owner(name);
        if after != before {
            self.outputs.push(Output::Changed {
                name: name.to_owned(),
                old: before,
                new: after,
            });
        }
    }

    fn view_insert(&mut self, name: &str, claim: Claim) {
        let claims = match self.view.get_mut(name) {
            Some(claims) => claims,
            None => self.view.entry(name.to_owned()).or_default(),
        };
        if let Err(at) = claims.binary_search(&claim) {
            claims.insert(at, claim);
        }
    }

    fn view_remove(&mut self, name: &str, claim: &Claim) {
        if let Some(claims) = self.view.get_mut(name) {
            if let Ok(at) = claims.binary_search(claim) {
                claims.remove(at);
            }
            if claims.is_empty() {
                self.view.remove(name);
            }
        }
    }

    /// Sends `message` to every peer, if there are any (a peer that comes up later gets a
    /// `Sync` instead).
    pub(super) fn broadcast(&mut self, message: EventualMessage) {
        if !self.peers.is_empty() {
            self.outputs.push(Output::Broadcast(message));
        }
    }

    /// This node's whole set of entries, as a `Sync`.
    pub(super) fn sync_message(&self, reply: bool) -> EventualMessage {
        EventualMessage::Sync {
            version: self.version,
            entries: self
                .local
                .iter()
                .map(|(name, claim)| (name.clone(), claim.to_wire()))
                .collect(),
            reply,
        }
    }
}
