//! The node's own lifecycle around foca: joining (announces with backoff, the join sync),
//! staying in (periodic sync, rejoining after being declared down), and its load.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::seq::IteratorRandom;

use super::timer::Tick;
use super::{Swim, jitter, peer_of};
use crate::membership::transport::{Peer, SyncRequest};
use crate::membership::wire::{
    LoadUpdate, NodeRecord, SYNC_VERSION, SwimId, SyncPayload, load_packet,
};
use understudy_actor::NodeId;

impl Swim {
    pub(super) fn on_active(&mut self) {
        self.connected = true;
        // Stop announcing; the next isolation starts over from the first delay.
        self.announce_token += 1;
        self.seed_backoff = self.config.seed_retry_initial;
        // First contact: pull the whole view from whoever let us in.
        if let Some(peer) = self.contact.clone() {
            self.join_sync = Some(self.start_sync(peer));
        }
    }

    /// The cluster declared this run down. Rejoin under a renewed identity: at once the first
    /// time, then with exponential backoff while the renewed identities keep being refused
    /// (so two nodes can never bounce "you are down" at each other at network speed).
    pub(super) fn on_defunct(&mut self, now: Instant) {
        if self.left || self.defunct {
            return;
        }
        self.defunct = true;
        self.rejoin_token += 1;
        // Back off only while defunct keeps recurring; a node declared down once in a while
        // (a partition healing) rejoins at once.
        let recurring = self
            .last_defunct
            .is_some_and(|at| now.saturating_duration_since(at) < self.config.seed_retry_max * 2);
        if !recurring {
            self.rejoin_backoff = Duration::ZERO;
        }
        self.last_defunct = Some(now);
        let delay = self.rejoin_backoff;
        self.rejoin_backoff = (self.rejoin_backoff * 2)
            .max(self.config.seed_retry_initial)
            .min(self.config.seed_retry_max);
        self.schedule(now + delay, Tick::Rejoin(self.rejoin_token));
    }

    /// Switches to a new identity of the same run: the next generation, past any generation
    /// of this run that the cluster has been told about.
    pub(super) fn rejoin(&mut self, now: Instant, token: u64) {
        if token != self.rejoin_token || !self.defunct || self.left {
            return;
        }
        let me = self.local_record();
        let ours = self
            .foca
            .iter_membership_state()
            .filter_map(|m| m.id().node())
            .filter(|r| r.node_id == me.node_id);
        let mut seen = 0;
        for record in ours {
            if record.incarnation > me.incarnation {
                tracing::error!(
                    ours = %me.incarnation,
                    theirs = %record.incarnation,
                    "the cluster knows a newer run of this node: is another process using this \
                     name, or did the clock go backwards? This run cannot stay in the cluster \
                     until that one is forgotten (remove_down_after)"
                );
            } else if record.incarnation == me.incarnation {
                seen = seen.max(record.generation);
            }
        }
        let Some(generation) = seen.max(me.generation).checked_add(1) else {
            tracing::error!("out of SWIM generations for this run; restart the node to rejoin");
            return;
        };
        let renewed = NodeRecord { generation, ..me };
        if let Err(error) = self
            .foca
            .change_identity(SwimId::Node(renewed), &mut self.rt)
        {
            tracing::warn!(%error, "could not rejoin under a renewed identity");
        }
        tracing::info!(generation, "declared down by the cluster; rejoining");
        self.defunct = false;
        self.stats.rejoins += 1;
        self.drain(now);
        self.restart_announces(now);
        // Members that saw this node go down forgot its load, and our view of them may not
        // change (so no join sends it): send it again.
        if self.own_load.is_some() {
            self.request_load_fanout(now);
        }
    }

    pub(super) fn restart_announces(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.announce_token += 1;
        self.seed_backoff = self.config.seed_retry_initial;
        self.schedule(now, Tick::Announce(self.announce_token));
    }

    /// While not connected: announce to every seed and to a few members we know of (the
    /// other side of a healed partition), then back off.
    pub(super) fn on_announce(&mut self, now: Instant, token: u64) {
        if token != self.announce_token || self.connected || self.left || self.defunct {
            return;
        }
        let mut targets: Vec<SwimId> = self.seeds.iter().map(|s| SwimId::Seed(*s)).collect();
        let own = self.own_id;
        let known = self
            .foca
            .iter_membership_state()
            .filter(|m| m.id().node_id().is_some_and(|id| id != own))
            .map(|m| m.id().clone())
            .sample(&mut self.rng, 3);
        targets.extend(known);
        for target in targets {
            self.stats.announces += 1;
            if let Err(error) = self.foca.announce(target, &mut self.rt) {
                tracing::debug!(%error, "announce");
            }
        }
        self.drain(now);
        let delay = jitter(&mut self.rng, self.seed_backoff);
        self.seed_backoff = (self.seed_backoff * 2).min(self.config.seed_retry_max);
        self.schedule(now + delay, Tick::Announce(token));
    }

    pub(super) fn on_sync_tick(&mut self, now: Instant, token: u64) {
        if token != self.sync_token || self.left {
            return;
        }
        if self.connected {
            let peer = self
                .foca
                .iter_members()
                .filter(|m| m.id().node_id().is_some_and(|id| id != self.own_id))
                .map(|m| peer_of(m.id()))
                .choose(&mut self.rng);
            if let Some(peer) = peer {
                self.start_sync(peer);
            }
        }
        self.schedule(now + self.config.sync_interval, Tick::Sync(token));
    }

    pub(super) fn start_sync(&mut self, to: Peer) -> u64 {
        self.next_sync_id += 1;
        let id = self.next_sync_id;
        self.stats.syncs_started += 1;
        self.pending_syncs.insert(id, to.clone());
        let payload = self.encode_state();
        self.syncs.push_back(SyncRequest { id, to, payload });
        id
    }

    /// Our state for a push-pull sync: ourselves, then live members, then the down ones
    /// foca still remembers, cut at `max_sync_members`; and our own load.
    pub(super) fn encode_state(&self) -> Bytes {
        let state = || self.foca.iter_membership_state();
        let members: Vec<foca::Member<SwimId>> =
            std::iter::once(foca::Member::alive(self.foca.identity().clone()))
                .chain(state().filter(|m| m.state() != foca::State::Down).cloned())
                .chain(state().filter(|m| m.state() == foca::State::Down).cloned())
                .take(self.config.max_sync_members)
                .collect();
        Bytes::from(
            SyncPayload {
                version: SYNC_VERSION,
                members,
                loads: self.own_load_update().into_iter().collect(),
            }
            .encode(),
        )
    }

    /// Applies a peer's sync payload. `from` is the verified peer it came from: its own load
    /// is the only one taken (see [`LoadUpdate`]).
    pub(super) fn apply_state(
        &mut self,
        now: Instant,
        payload: SyncPayload,
        from: Option<NodeId>,
        do_broadcast: bool,
    ) {
        if !payload.loads.is_empty() {
            let sender = payload
                .members
                .iter()
                .filter_map(|m| m.id().node())
                .find(|r| Some(r.node_id) == from);
            let mut book = self.book.lock();
            for load in payload.loads {
                book.offer_from(sender, load);
            }
        }
        if let Err(error) =
            self.foca
                .apply_many(payload.members.into_iter(), do_broadcast, &mut self.rt)
        {
            tracing::debug!(%error, "applying a membership sync");
        }
        self.drain(now);
    }

    /// Our load as members should record it, if we have set one.
    fn own_load_update(&self) -> Option<LoadUpdate> {
        let me = self.local_record();
        self.own_load.map(|load| LoadUpdate {
            node_id: me.node_id,
            incarnation: me.incarnation,
            version: self.load_version,
            load,
        })
    }

    /// Sends our load to every member now, or at the next fan-out slot.
    pub(super) fn request_load_fanout(&mut self, now: Instant) {
        let next = self
            .last_load_fanout
            .map(|at| at + self.config.gossip_interval);
        match next {
            Some(at) if at > now => {
                if !self.load_fanout_pending {
                    self.load_fanout_pending = true;
                    self.schedule(at, Tick::LoadFanout);
                }
            }
            _ => self.fan_out_load(now),
        }
    }

    /// Sends our load straight to every live member: members take a node's load only from
    /// the node itself, so it is never relayed.
    pub(super) fn fan_out_load(&mut self, now: Instant) {
        self.load_fanout_pending = false;
        self.last_load_fanout = Some(now);
        let own = self.own_id;
        let members: Vec<SwimId> = self
            .foca
            .iter_members()
            .filter(|m| m.id().node_id().is_some_and(|id| id != own))
            .map(|m| m.id().clone())
            .collect();
        for member in &members {
            self.send_load(member);
        }
    }

    /// Sends our load (if any) to `member`.
    pub(super) fn send_load(&mut self, member: &SwimId) {
        if self.left {
            return;
        }
        let Some(update) = self.own_load_update() else {
            return;
        };
        match load_packet(self.foca.identity(), member, &update) {
            Ok(packet) => {
                self.stats.packets_sent += 1;
                self.transmits
                    .push_back((peer_of(member), Bytes::from(packet)));
            }
            Err(error) => tracing::debug!(%error, "encoding a load report"),
        }
    }

    pub(super) fn adjust_transmissions(&mut self) {
        let size = self.foca.num_members() + 1;
        let wanted = self.config.max_transmissions(size).get();
        if wanted != self.max_transmissions {
            self.max_transmissions = wanted;
            // Only max_transmissions differs, which foca allows changing live.
            if let Err(error) = self.foca.set_config(self.config.foca(size)) {
                tracing::debug!(%error, "adjusting SWIM transmissions");
            }
        }
    }
}
