//! The leader's duties: reconcile the Raft configuration with the membership view, and
//! release the names of nodes that are gone.
//!
//! **Reconcile.** Each tick, the leader computes the target roles ([`reconcile::target`])
//! from the live, eligible nodes, waits until that target has held for
//! `reconcile_debounce`, then takes the next quorum-safe step towards it
//! ([`reconcile::next_step`]), one at a time. A voter counts as live while SWIM says so
//! **or** it still answers heartbeats: it is evicted only when both say it is gone, and
//! never below three voters (while fewer than three live candidates exist, dead voters keep
//! their seats). A node
//! whose Raft id changed (it lost its disk) is a new candidate under its new id, while its
//! old id counts as a departed member: the new id is added and caught up, the voter set
//! swaps old for new in one joint step, and the old id is dropped, so the voter count never
//! dips.
//!
//! **Release.** Names held by actors of a node that SWIM has not listed for
//! [`RELEASE_GRACE`] in a row, or that restarted as a later run, are released with
//! `ReleaseNode`, through this node's own Raft only (a deposed leader's stale view is never
//! forwarded). A new leader waits [`RELEASE_GRACE`] first, so it acts on a settled view
//! rather than one still filling in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Weak;
use std::time::Duration;

use tokio::time::Instant;
use understudy_actor::NodeId;
use understudy_cluster::identity::node_id;

use super::{Shared, lock};
use crate::core::command::Command;
use crate::core::reconcile::{self, Candidate, Limits, Membership, Step, Target};
use crate::raft::handle::{RaftHandle, RaftView, Written};

const TICK: Duration = Duration::from_millis(100);

/// How long a new leader waits before it releases the names of absent nodes.
pub(crate) const RELEASE_GRACE: Duration = Duration::from_secs(2);

/// Ticks skipped after a reconcile that found nothing to do.
const SETTLED_TICKS: u32 = 4;

/// A joint configuration still in force after this long is finished by the leader.
const STUCK_CHANGE: Duration = Duration::from_secs(1);

/// Below this many live candidates, dead voters keep their seats.
const MIN_VOTERS: usize = 3;

/// How far behind the leader's log a learner may be and still count as caught up.
const CAUGHT_UP_LAG: u64 = 300;

pub(crate) async fn run(shared: Weak<Shared>) {
    let mut pending: Option<(Target, Instant)> = None;
    let mut leading_since: Option<Instant> = None;
    let mut last_release = Instant::now();
    let mut absent: HashMap<NodeId, Instant> = HashMap::new();
    let mut changing_since: Option<Instant> = None;
    let mut quiet = 0u32;
    loop {
        tokio::time::sleep(TICK).await;
        let Some(s) = shared.upgrade() else { return };
        let Some(raft) = s.raft.clone() else { return };
        if s.ctx.node().is_none() {
            return;
        }
        let view = raft.view();
        if !view.leading || view.failed.is_some() {
            leading_since = None;
            pending = None;
            absent.clear();
            continue;
        }
        let since = *leading_since.get_or_insert_with(Instant::now);
        if !view.changing {
            changing_since = None;
            // Settled (nothing to do last time): look again every few ticks only, so an idle
            // leader's work stays small however many members there are.
            if quiet > 0 {
                quiet -= 1;
            } else if reconcile_once(&s, &raft, &view, &mut pending).await {
                quiet = SETTLED_TICKS;
            }
        } else if let Some(target) = &view.joint_target {
            // A joint configuration is normally left within a round trip. One still in force
            // after a second (the call that would have left it failed, or a new leader
            // inherited it) is finished here, or the reconciler would wait on it forever.
            let stuck = changing_since.get_or_insert_with(Instant::now).elapsed();
            if stuck >= STUCK_CHANGE {
                changing_since = None;
                if let Err(e) = raft.change_voters(target.clone()).await {
                    tracing::debug!(error = %e, "registry: finishing a joint configuration failed; retrying");
                }
            }
        }
        if since.elapsed() >= RELEASE_GRACE && last_release.elapsed() >= TICK * 10 {
            last_release = Instant::now();
            release_gone(&s, &raft, &mut absent).await;
        }
    }
}

/// One member of the Raft configuration, or a candidate for it.
#[derive(Debug, Clone)]
struct Seat {
    raft_id: u64,
    name: String,
}

async fn reconcile_once(
    s: &Shared,
    raft: &RaftHandle,
    view: &RaftView,
    pending: &mut Option<(Target, Instant)>,
) -> bool {
    let Ok(node) = s.node() else { return false };
    let cluster = node.cluster().clone();
    let settings = node.settings().clone();
    let me_id = node.runtime().node_id();
    let members = node.members();
    drop(node);

    // Who announced which Raft id.
    let mut announced: HashMap<String, u64> = lock(&s.peers)
        .iter()
        .map(|(n, h)| (n.to_string(), h.raft_id))
        .collect();
    announced.insert(s.me.to_string(), raft.id);

    // The configuration, keyed by node id; an entry whose node now runs another Raft id is
    // keyed by a placeholder id so that the reconciler drops it.
    let mut seats: HashMap<NodeId, Seat> = HashMap::new();
    let mut key_of = |raft_id: u64, name: &str| -> NodeId {
        let stale = announced.get(name).is_some_and(|a| *a != raft_id);
        let key = match (
            stale,
            understudy_cluster::identity::NodeName::try_from(name),
        ) {
            (false, Ok(n)) => node_id(&cluster, &n),
            _ => NodeId::new(raft_id).unwrap_or(me_id),
        };
        seats.insert(
            key,
            Seat {
                raft_id,
                name: name.to_owned(),
            },
        );
        key
    };
    let now = Membership {
        voters: view.voters.iter().map(|(id, n)| key_of(*id, n)).collect(),
        learners: view.learners.iter().map(|(id, n)| key_of(*id, n)).collect(),
    };

    // Candidates: live, eligible nodes with a Raft id; plus voters still answering
    // heartbeats even if SWIM has lost them.
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut add = |node: NodeId, name: String, raft_id: u64, domain, priority: u8| {
        if raft_id == 0 {
            return;
        }
        seats.entry(node).or_insert(Seat {
            raft_id,
            name: name.clone(),
        });
        candidates.push(Candidate {
            node,
            name,
            domain,
            priority: i32::from(priority),
        });
    };
    add(
        me_id,
        s.me.to_string(),
        raft.id,
        settings.failure_domain.clone(),
        settings.raft_priority,
    );
    for m in &members {
        if !m.meta().raft_eligible {
            continue;
        }
        let name = m.name().to_string();
        let Some(&raft_id) = announced.get(&name) else {
            continue;
        };
        add(
            m.node_id(),
            name,
            raft_id,
            m.meta().failure_domain.clone(),
            m.meta().raft_priority,
        );
    }
    let silent_after = s.config.election_timeout_max * 2;
    let seat_of = |id: u64| {
        now.voters
            .iter()
            .copied()
            .find(|k| seats.get(k).is_some_and(|seat| seat.raft_id == id))
    };
    for (id, name) in &view.voters {
        let Some(key) = seat_of(*id) else { continue };
        let heard = view.heard.get(id).is_some_and(|d| *d < silent_after) || *id == raft.id;
        if heard && !candidates.iter().any(|c| c.node == key) {
            candidates.push(Candidate {
                node: key,
                name: name.clone(),
                domain: None,
                priority: 0,
            });
        }
    }

    // Never evict below three voters: while fewer than three live candidates exist, a dead
    // voter keeps its seat (as Consul's autopilot keeps a minimum quorum). Three voters with
    // one dead still commit on the other two; shrinking to one would let a single disk hold
    // the only acknowledged copy of every write.
    if candidates.len() < MIN_VOTERS {
        for (id, name) in &view.voters {
            if let Some(key) = seat_of(*id)
                && !candidates.iter().any(|c| c.node == key)
            {
                candidates.push(Candidate {
                    node: key,
                    name: name.clone(),
                    domain: None,
                    priority: 0,
                });
            }
        }
    }

    let limits = Limits {
        max_voters: s.config.max_voters,
        max_standbys: s.config.max_standbys,
    };
    let target = reconcile::target(&candidates, &now.voters, limits);
    let settled = match pending {
        Some((t, since)) if *t == target => since.elapsed() >= s.config.reconcile_debounce,
        _ => {
            *pending = Some((target.clone(), Instant::now()));
            false
        }
    };
    if !settled {
        return false;
    }
    let caught_up = |n: NodeId| {
        seats.get(&n).is_some_and(|seat| {
            view.matched
                .get(&seat.raft_id)
                .is_some_and(|m| m + CAUGHT_UP_LAG >= view.last_log_index)
        })
    };
    let Some(step) = reconcile::next_step(&now, &target, caught_up) else {
        return true;
    };
    let ids = |nodes: &[NodeId]| -> BTreeSet<u64> {
        nodes
            .iter()
            .filter_map(|n| seats.get(n))
            .map(|s| s.raft_id)
            .collect()
    };
    let result = match &step {
        Step::AddLearner(n) => match seats.get(n) {
            Some(seat) => raft.add_learner(seat.raft_id, &seat.name).await,
            None => return false,
        },
        Step::ChangeVoters(voters) => raft.change_voters(ids(voters)).await,
        Step::RemoveLearners(gone) => raft.remove_learners(ids(gone)).await,
    };
    match result {
        Ok(()) => tracing::info!(?step, "registry: configuration step done"),
        Err(e) => {
            tracing::debug!(?step, error = %e, "registry: configuration step failed; retrying")
        }
    }
    false
}

/// Releases the names of nodes SWIM has not listed for [`RELEASE_GRACE`] in a row, and of
/// earlier runs of nodes that restarted. Proposed only through this node's own Raft while it
/// leads, never forwarded: a deposed leader's view (cut off, it saw the others as gone) must
/// not reach the new leader as a release. The absence must last: a node briefly marked down
/// by stale gossip after a partition heals keeps its names.
async fn release_gone(s: &Shared, raft: &RaftHandle, absent: &mut HashMap<NodeId, Instant>) {
    let Ok(node) = s.node() else { return };
    let me = node.runtime().node_id();
    let live: BTreeMap<NodeId, u64> = node
        .members()
        .iter()
        .map(|m| (m.node_id(), m.incarnation().get()))
        .chain([(me, s.incarnation)])
        .collect();
    drop(node);
    absent.retain(|n, _| !live.contains_key(n));
    let holders = s.kernel.read().table.holder_nodes();
    for (holder, incarnation) in holders {
        let gone = match live.get(&holder) {
            // A later run of the node is live: the earlier run is surely gone.
            Some(run) => *run > incarnation,
            None => absent.entry(holder).or_insert_with(Instant::now).elapsed() >= RELEASE_GRACE,
        };
        if !gone || !raft.view().leading {
            continue;
        }
        let request = s.request(Command::ReleaseNode {
            node: holder,
            incarnation,
        });
        match tokio::time::timeout(s.config.write_deadline, raft.write(request)).await {
            Ok(Written::Done { outcome, .. }) => {
                tracing::info!(node = %holder, ?outcome, "registry: released a gone node's names")
            }
            Ok(other) => {
                tracing::debug!(node = %holder, ?other, "registry: release not committed; retrying");
                return;
            }
            Err(_) => return,
        }
    }
}
