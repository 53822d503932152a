//! Formation: the first voter set, agreed exactly once.
//!
//! With `bootstrap_expect = N`, every eligible node that belongs to no registry yet says so
//! in its `Hello`. A node that sees at least N such nodes (itself included), the same set for
//! `reconcile_debounce`, **and has the lowest Raft id among them** proposes the N lowest as
//! the voters: a `Claim` to each. A node grants at most one claim at a time (a grant lapses
//! after [`GRANT_TTL`] if the claimant never formed), and refuses any once it belongs to a
//! registry. The claimant initialises Raft only when all N granted, within half the TTL.
//! Any two sets of N out of fewer than 2N fresh nodes share a node, which grants only one of
//! the two claims: so five nodes started at once with `bootstrap_expect = 3` form one
//! registry, never two. (2N or more fresh nodes split by a real partition could form two,
//! as with Consul's `bootstrap_expect`; start them with seeds and a smaller N.)
//!
//! `bootstrap_expect = 1` forms a one-node registry at once (the node starts a new
//! cluster); `0` never forms, only joins: the leader of an
//! existing registry adds the node.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::{Shared, lock};
use crate::wire::{self, Claim, Grant, PeerMessage};

/// How long a grant holds if its claimant does not form.
pub(crate) const GRANT_TTL: Duration = Duration::from_secs(5);

const TICK: Duration = Duration::from_millis(50);

pub(crate) async fn run(shared: Weak<Shared>) {
    let mut seen: Option<(BTreeSet<(u64, String)>, Instant)> = None;
    loop {
        tokio::time::sleep(TICK).await;
        let Some(s) = shared.upgrade() else { return };
        let Some(raft) = s.raft.clone() else { return };
        if s.ctx.node().is_none() {
            return;
        }
        if raft.is_initialized().await || s.formed() {
            return;
        }
        if s.expect == 0 {
            continue;
        }
        let peers = lock(&s.peers).clone();
        if peers.values().any(|h| h.formed) {
            // A registry exists: its leader adds this node.
            continue;
        }
        let mut fresh: BTreeSet<(u64, String)> = peers
            .iter()
            .filter(|(_, h)| h.raft_id != 0 && h.forming && !h.formed && s.expect > 1)
            .map(|(n, h)| (h.raft_id, n.to_string()))
            .collect();
        fresh.insert((raft.id, s.me.to_string()));
        if fresh.len() < s.expect {
            seen = None;
            continue;
        }
        let stable = match &seen {
            Some((set, since)) if *set == fresh => since.elapsed() >= s.config.reconcile_debounce,
            _ => {
                seen = Some((fresh.clone(), Instant::now()));
                s.expect == 1
            }
        };
        let lowest = fresh.iter().next().map(|(id, _)| *id);
        if !stable || lowest != Some(raft.id) {
            continue;
        }
        let voters: Vec<(u64, String)> = fresh.into_iter().take(s.expect).collect();
        if claim(&s, &voters).await {
            match raft.initialize(&voters).await {
                Ok(()) => {
                    tracing::info!(voters = ?voters, "registry: formed");
                    s.announce(None);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "registry: could not initialise"),
            }
        }
        seen = None;
    }
}

/// Asks every voter-to-be for its grant; true if all granted in time.
async fn claim(s: &Arc<Shared>, voters: &[(u64, String)]) -> bool {
    let me = s.raft_id();
    let claim = Claim {
        claimant: me,
        voters: voters.to_vec(),
    };
    let started = Instant::now();
    if consider(s, &claim) != Grant::Granted {
        return false;
    }
    let body = PeerMessage::Claim(claim).encode();
    let asks = voters.iter().filter(|(id, _)| *id != me).map(|(_, name)| {
        let body = body.clone();
        async move {
            let Ok(name) = understudy_cluster::identity::NodeName::try_from(name.as_str()) else {
                return false;
            };
            match s.ctx.request(&name, body, GRANT_TTL / 4).await {
                Ok(bytes) => wire::decode::<Grant>(&bytes) == Ok(Grant::Granted),
                Err(_) => false,
            }
        }
    });
    let all = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .all(|g| g);
    all && started.elapsed() < GRANT_TTL / 2
}

/// Whether this node grants `claim`: only if it belongs to no registry, is among the
/// proposed voters, and has no other live grant.
pub(crate) fn consider(s: &Shared, claim: &Claim) -> Grant {
    if s.formed() || !claim.voters.iter().any(|(id, _)| *id == s.raft_id()) {
        return Grant::Refused;
    }
    let mut granted = lock(&s.granted);
    match *granted {
        Some((other, at)) if other != claim.claimant && at.elapsed() < GRANT_TTL => Grant::Refused,
        _ => {
            *granted = Some((claim.claimant, Instant::now()));
            Grant::Granted
        }
    }
}
