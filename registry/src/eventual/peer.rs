//! The Eventual core's side of the exchange with peers: peers coming and going, the
//! anti-entropy tick, and messages received (checked whole, then applied).

use std::collections::BTreeMap;

use understudy_actor::NodeId;

use super::core::{Claim, EventualCore, EventualMessage, Output, Version, WireClaim};
use super::wire::{entries_hash, entry_hash};
use crate::name::check_name;

impl EventualCore {
    /// A peer came up (or came back): offer it our entries and ask for its own.
    pub(crate) fn peer_up(&mut self, peer: NodeId) {
        if peer == self.me {
            return;
        }
        self.peers.entry(peer).or_default().asked = true;
        let message = self.sync_message(true);
        self.outputs.push(Output::Send { to: peer, message });
    }

    /// A peer went down (failed, left or restarted): every name it held is released.
    pub(crate) fn peer_down(&mut self, peer: NodeId) {
        if let Some(view) = self.peers.remove(&peer) {
            for (name, claim) in view.entries {
                self.peer_claim(&name, Some(claim), None);
            }
        }
    }

    /// The periodic anti-entropy round: a digest to every peer. A `Sync` asked for in the
    /// last period and not received may have been lost: it may be asked for again.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "the driver goes round a few at a time")
    )]
    pub(crate) fn tick(&mut self) {
        self.tick_fanout(usize::MAX);
    }

    /// An anti-entropy round that sends the digest to the next `fanout` peers only, in
    /// turn: the deltas travel on an ordered, reliable channel and a lost connection is
    /// resynced when it comes back, so the digest is a safety net, and sending it to every
    /// peer every round would make each node's idle work grow with the cluster.
    pub(crate) fn tick_fanout(&mut self, fanout: usize) {
        if self.peers.is_empty() {
            return;
        }
        for view in self.peers.values_mut() {
            view.asked = false;
        }
        let (version, hash) = self.digest();
        if fanout >= self.peers.len() {
            self.broadcast(EventualMessage::Digest { version, hash });
            return;
        }
        let after = self.digest_cursor;
        let next: Vec<NodeId> = self
            .peers
            .keys()
            .filter(|p| after.is_none_or(|a| **p > a))
            .chain(self.peers.keys())
            .take(fanout)
            .copied()
            .collect();
        self.digest_cursor = next.last().copied();
        for to in next {
            self.outputs.push(Output::Send {
                to,
                message: EventualMessage::Digest { version, hash },
            });
        }
    }

    /// A message from the peer `from`. Ignored unless `from` is up; applied only if valid
    /// whole (names valid, each once, the peer within `max_names`), else counted
    /// ([`EventualCore::rejected`]) and nothing of it is applied.
    pub(crate) fn receive(&mut self, from: NodeId, message: EventualMessage) {
        if from == self.me || !self.peers.contains_key(&from) {
            return;
        }
        match message {
            EventualMessage::Sync {
                version,
                entries,
                reply,
            } => {
                let Some(entries) = self.check_sync(from, version, entries) else {
                    self.rejected += 1;
                    return;
                };
                self.apply_sync(from, version, entries);
                if reply {
                    let message = self.sync_message(false);
                    self.outputs.push(Output::Send { to: from, message });
                }
            }
            EventualMessage::Put {
                version,
                name,
                claim,
            } => {
                if !self.valid_put(from, &name) {
                    self.rejected += 1;
                    return;
                }
                if !self.accept_delta(from, version) {
                    return;
                }
                let claim = claim.claim(from, version.incarnation);
                let old = self.set_peer_entry(from, &name, Some(claim));
                self.peer_claim(&name, old, Some(claim));
            }
            EventualMessage::Remove { version, name } => {
                if check_name(&name).is_err() {
                    self.rejected += 1;
                    return;
                }
                if !self.accept_delta(from, version) {
                    return;
                }
                let old = self.set_peer_entry(from, &name, None);
                self.peer_claim(&name, old, None);
            }
            EventualMessage::Digest { version, hash } => {
                let Some(view) = self.peers.get(&from) else {
                    return;
                };
                if view.synced && version < view.version {
                    return; // overtaken by what we have: a probe from the past
                }
                if self.view_digest(from) != Some((version, hash)) {
                    self.ask_sync(from);
                }
            }
        }
    }

    /// A `Sync`'s entries as claims, if the whole message is valid: every name valid and
    /// listed once, at most `max_names` of them.
    fn check_sync(
        &self,
        from: NodeId,
        version: Version,
        entries: Vec<(String, WireClaim)>,
    ) -> Option<BTreeMap<String, Claim>> {
        if entries.len() > self.max_names {
            return None;
        }
        let count = entries.len();
        let mut claims = BTreeMap::new();
        for (name, claim) in entries {
            check_name(&name).ok()?;
            claims.insert(name, claim.claim(from, version.incarnation));
        }
        // A name listed twice would be two claims of one node: ambiguous, so refused.
        (claims.len() == count).then_some(claims)
    }

    /// Whether a peer's `Put` of `name` is valid and keeps it within `max_names`.
    fn valid_put(&self, from: NodeId, name: &str) -> bool {
        if check_name(name).is_err() {
            return false;
        }
        self.peers.get(&from).is_none_or(|view| {
            view.entries.len() < self.max_names || view.entries.contains_key(name)
        })
    }

    /// Replaces the view of `from` with its `Sync` at `version`, unless the view reflects a
    /// later version already (the `Sync` was overtaken).
    fn apply_sync(&mut self, from: NodeId, version: Version, new: BTreeMap<String, Claim>) {
        let Some(view) = self.peers.get_mut(&from) else {
            return;
        };
        if view.synced && version < view.version {
            return;
        }
        view.synced = true;
        view.asked = false;
        view.version = version;
        view.hash = entries_hash(&new);
        let old = std::mem::replace(&mut view.entries, new);
        // The names whose claim changed, in name order: the old ones gone or replaced, then
        // the new ones, merged.
        let mut changes: Vec<(String, Option<Claim>, Option<Claim>)> = Vec::new();
        for (name, claim) in &old {
            let now = view.entries.get(name).copied();
            if now != Some(*claim) {
                changes.push((name.clone(), Some(*claim), now));
            }
        }
        for (name, claim) in &view.entries {
            if !old.contains_key(name) {
                changes.push((name.clone(), None, Some(*claim)));
            }
        }
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, was, now) in changes {
            self.peer_claim(&name, was, now);
        }
    }

    /// Sets (or with `None` removes) `from`'s entry for `name`; returns the one it had.
    fn set_peer_entry(&mut self, from: NodeId, name: &str, claim: Option<Claim>) -> Option<Claim> {
        let view = self.peers.get_mut(&from)?;
        let old = match claim {
            Some(claim) => {
                view.hash = view.hash.wrapping_add(entry_hash(name, &claim));
                view.entries.insert(name.to_owned(), claim)
            }
            None => view.entries.remove(name),
        };
        if let Some(old) = &old {
            view.hash = view.hash.wrapping_sub(entry_hash(name, old));
        }
        old
    }

    /// Whether a delta numbered `version` from `from` follows what we have; if not, ask for
    /// a `Sync` (once) and drop it.
    fn accept_delta(&mut self, from: NodeId, version: Version) -> bool {
        let Some(view) = self.peers.get_mut(&from) else {
            return false;
        };
        if view.synced
            && version.incarnation == view.version.incarnation
            && view.version.counter.checked_add(1) == Some(version.counter)
        {
            view.version = version;
            return true;
        }
        if view.synced && version <= view.version {
            return false; // reflected already: a duplicate, or overtaken by a `Sync`
        }
        self.ask_sync(from);
        false
    }

    fn ask_sync(&mut self, from: NodeId) {
        let Some(view) = self.peers.get_mut(&from) else {
            return;
        };
        if view.asked {
            return;
        }
        view.asked = true;
        let message = self.sync_message(true);
        self.outputs.push(Output::Send { to: from, message });
    }
}
