//! The Eventual scope's async shell: carries the core's messages over the registry's
//! extension channel, feeds it peers coming and going, ticks it, and delivers revocations to
//! the losing actors.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use understudy_actor::{ActorAddr, NodeId};
use understudy_cluster::identity::NodeName;

use super::core::{EventualCore, Output};
use super::wire::EventualMessage;
use crate::driver::{Shared, lock};
use crate::wire::PeerMessage;

/// How often an anti-entropy round goes out.
pub(crate) const TICK: Duration = Duration::from_secs(1);

/// How many peers each round's digest goes to (in turn).
pub(crate) const DIGEST_FANOUT: usize = 3;

/// Tells a losing actor its name was revoked.
pub(crate) type Revoker = Box<dyn Fn(crate::NameRevoked) + Send + Sync>;

/// This node's Eventual scope: the core, the peers' names by id, and how to reach each local
/// claimant when it loses its name.
pub(crate) struct EventualState {
    pub(crate) core: EventualCore,
    peers: HashMap<NodeId, NodeName>,
    pub(crate) revokers: HashMap<(String, ActorAddr), Revoker>,
}

impl std::fmt::Debug for EventualState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventualState")
            .field("names", &self.core.names().len())
            .field("peers", &self.peers.len())
            .finish()
    }
}

impl EventualState {
    pub(crate) fn new(me: NodeId, incarnation: u64, max_names: usize) -> Mutex<EventualState> {
        Mutex::new(EventualState {
            core: EventualCore::new(me, incarnation, max_names),
            peers: HashMap::new(),
            revokers: HashMap::new(),
        })
    }
}

/// Carries out what the core asked for (called after every change to it, lock released).
pub(crate) fn flush(shared: &Shared) {
    let (outputs, peers, revoked) = {
        let mut state = lock(&shared.eventual);
        let outputs = state.core.take_outputs();
        let mut revoked = Vec::new();
        for output in &outputs {
            if let Output::Revoked {
                name,
                loser,
                winner,
            } = output
                && let Some(revoke) = state.revokers.remove(&(name.clone(), loser.addr))
            {
                revoked.push((revoke, name.clone(), winner.addr));
            }
        }
        (outputs, state.peers.clone(), revoked)
    };
    for output in outputs {
        match output {
            Output::Send { to, message } => {
                if let Some(peer) = peers.get(&to) {
                    let _ = shared
                        .ctx
                        .notify(peer, PeerMessage::Eventual(message).encode());
                }
            }
            Output::Broadcast(message) => {
                shared
                    .ctx
                    .broadcast(PeerMessage::Eventual(message).encode());
            }
            Output::Revoked { .. } | Output::Changed { .. } => {}
        }
    }
    for (revoke, name, winner) in revoked {
        revoke(crate::NameRevoked { name, winner });
    }
}

/// A peer's connection came up.
pub(crate) fn peer_up(shared: &Shared, peer: &NodeName, id: NodeId) {
    {
        let mut state = lock(&shared.eventual);
        state.peers.insert(id, peer.clone());
        state.core.peer_up(id);
    }
    flush(shared);
}

/// A peer's connection went down: its names go.
pub(crate) fn peer_down(shared: &Shared, id: NodeId) {
    {
        let mut state = lock(&shared.eventual);
        state.peers.remove(&id);
        state.core.peer_down(id);
    }
    flush(shared);
}

/// A peer's message (ignored from a peer whose connection is not up).
pub(crate) fn receive(shared: &Shared, from: &NodeName, message: EventualMessage) {
    {
        let mut state = lock(&shared.eventual);
        let Some(id) = state
            .peers
            .iter()
            .find(|(_, name)| *name == from)
            .map(|(id, _)| *id)
        else {
            return;
        };
        let before = state.core.rejected();
        state.core.receive(id, message);
        if state.core.rejected() > before {
            metrics::counter!(crate::wire::REJECTED_METRIC).increment(1);
        }
    }
    flush(shared);
}

/// A local actor stopped: its names go.
pub(crate) fn actor_stopped(shared: &Shared, actor: ActorAddr) {
    {
        let mut state = lock(&shared.eventual);
        state.revokers.retain(|(_, addr), _| *addr != actor);
        if state.core.actor_stopped(actor) == 0 {
            return;
        }
    }
    flush(shared);
}

/// Sends digests every [`TICK`] to [`DIGEST_FANOUT`] peers in turn, while the registry runs.
pub(crate) async fn tick(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(TICK).await;
        let Some(s) = shared.upgrade() else { return };
        if s.ctx.node().is_none() {
            return;
        }
        lock(&s.eventual).core.tick_fanout(DIGEST_FANOUT);
        flush(&s);
    }
}
