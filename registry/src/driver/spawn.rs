//! `spawn_named`: place, start and bind a named actor, exactly once.
//!
//! The caller picks a node by the placement rule among the live nodes that have the kind,
//! and proposes `Place`: the log decides which caller's assignment holds, and every other
//! caller is told where the name is being started (or who holds it). The winner asks the
//! assigned node to `Start` it; that node starts the actor from its factory and proposes
//! `Bind`, which only the actor of the assignment in force can win (a stale one is stopped).
//! Every caller then waits for the name to reach its own copy and resolves it there, so all
//! of them hold the same actor. A start that fails proposes `Abandon`: the caller gets the
//! error and the name is free again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ractor::ActorRef;
use tokio::time::Instant;
use understudy_actor::RemoteMessage;
use understudy_cluster::identity::NodeName;

use super::{Shared, lock, watcher, write};
use crate::core::choose::{Candidate, choose};
use crate::core::command::{Command, Outcome, Owner};
use crate::core::placement::{Spec, Stage};
use crate::error::RegistryError;
use crate::wire::{self, PeerMessage, Started};

/// What this node started for a placed name: the actor, and what it was started from.
pub(crate) type StartedHere = (Owner, Spec);

/// How long one `Start` request may take (a factory and a bind).
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// The live nodes that can start `kind`, this one included, with what placement weighs.
pub(crate) fn candidates(shared: &Shared, kind: &str) -> Result<Vec<Candidate>, RegistryError> {
    let node = shared.node()?;
    let peers = lock(&shared.peers);
    let named = shared.kernel.read().table.holder_counts();
    let count = |id| named.get(&id).copied().unwrap_or(0);
    let mut out = Vec::new();
    if shared.kinds.get(kind).is_some() {
        let me = node.runtime().node_id();
        out.push(Candidate {
            node: me,
            name: shared.me.to_string(),
            incarnation: shared.incarnation,
            score: 0,
            named: count(me),
        });
    }
    // The members SWIM lists as up (this node is not among them).
    for member in node.members() {
        let has_kind = peers
            .get(member.name())
            .is_some_and(|h| h.kinds.iter().any(|(k, _)| k == kind));
        if has_kind {
            out.push(Candidate {
                node: member.node_id(),
                name: member.name().to_string(),
                incarnation: member.incarnation().get(),
                score: member.load().map_or(0, |l| l.score),
                named: count(member.node_id()),
            });
        }
    }
    Ok(out)
}

/// Where `spec` puts `name` now: the target and its node's name, chosen by the placement
/// rule among the live nodes with the kind, `except` one node (a leaving one); `me` is the
/// calling node for `Local` (`None`: any node).
pub(crate) fn place(
    shared: &Shared,
    name: &str,
    spec: &Spec,
    me: Option<&str>,
    except: Option<understudy_actor::NodeId>,
) -> Result<(crate::core::placement::Target, String), RegistryError> {
    let mut candidates = candidates(shared, &spec.kind)?;
    candidates.retain(|c| Some(c.node) != except);
    let target = choose(
        &spec.placement,
        name,
        &spec.kind,
        me,
        &candidates,
        rand::random(),
    )
    .map_err(|source| RegistryError::NoEligibleNode {
        name: name.to_owned(),
        source,
    })?;
    let node = candidates
        .iter()
        .find(|c| c.node == target.node)
        .map(|c| c.name.clone())
        .expect("chosen among the candidates");
    Ok((target, node))
}

/// The message type `kind`'s actors take, as this node or its peers announced it.
fn kind_tag(shared: &Shared, kind: &str) -> Option<understudy_actor::Tag> {
    if let Some(k) = shared.kinds.get(kind) {
        return Some(k.tag);
    }
    lock(&shared.peers)
        .values()
        .flat_map(|h| h.kinds.iter())
        .find(|(k, _)| k == kind)
        .map(|(_, tag)| *tag)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The caller's side of `spawn_named`.
pub(crate) async fn spawn_named<M: RemoteMessage>(
    shared: &Shared,
    name: &str,
    spec: Spec,
    timeout: Duration,
) -> Result<ActorRef<M>, RegistryError> {
    match crate::consistent::whereis_connecting::<M>(shared, name).await {
        Err(RegistryError::NotRegistered { .. }) => {}
        found => return found,
    }
    if let Some(tag) = kind_tag(shared, &spec.kind)
        && tag != M::TAG
    {
        return Err(RegistryError::TypeMismatch {
            name: name.to_owned(),
            expected: M::TAG,
            found: tag,
        });
    }
    let deadline = Instant::now() + timeout;
    let (target, target_name) = place(shared, name, &spec, Some(shared.me.as_str()), None)?;
    let (outcome, _) = write::write(
        shared,
        Command::Place {
            name: name.to_owned(),
            spec: spec.clone(),
            target,
            replaces: None,
            at_ms: now_ms(),
        },
    )
    .await?;
    match outcome {
        Outcome::Placed { epoch, .. } => {
            match start_on(shared, &target_name, name, epoch, &spec).await {
                Started::Failed(reason) => {
                    return Err(RegistryError::StartFailed {
                        name: name.to_owned(),
                        node: target_name,
                        reason,
                    });
                }
                Started::Bound(_) | Started::Stale => {}
            }
        }
        Outcome::AlreadyRegistered(_) | Outcome::Starting { .. } | Outcome::Reserved => {}
        Outcome::GaveUp => {
            return Err(RegistryError::GaveUp {
                name: name.to_owned(),
            });
        }
        Outcome::Full(limit) => return Err(RegistryError::Full { limit }),
        other => {
            tracing::warn!(?other, "registry: an unexpected answer to a placement");
        }
    }
    wait_for(shared, name, deadline).await?;
    crate::consistent::whereis_connecting::<M>(shared, name).await
}

/// Waits until `name` has a holder in this node's copy.
async fn wait_for(shared: &Shared, name: &str, deadline: Instant) -> Result<Owner, RegistryError> {
    let (now, mut watch) = shared.kernel.watch(name);
    if let Some(owner) = now {
        return Ok(owner);
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, watch.recv()).await {
            Ok(Ok(change)) => {
                if let Some(owner) = change.new {
                    return Ok(owner);
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(RegistryError::SpawnTimeout {
                    name: name.to_owned(),
                    waited: deadline.elapsed(),
                });
            }
        }
    }
}

/// Asks `node` (this one or a peer) to start `name` for `epoch`.
pub(crate) async fn start_on(
    shared: &Shared,
    node: &str,
    name: &str,
    epoch: u64,
    spec: &Spec,
) -> Started {
    if node == shared.me.as_str() {
        return start_here(shared, name, epoch, spec).await;
    }
    let Ok(peer) = NodeName::try_from(node) else {
        return Started::Failed(format!("{node:?} is not a node name"));
    };
    let body = PeerMessage::Start {
        name: name.to_owned(),
        epoch,
        spec: spec.clone(),
    }
    .encode();
    match shared.ctx.request(&peer, body, START_TIMEOUT).await {
        Ok(bytes) => wire::decode::<Started>(&bytes)
            .unwrap_or_else(|_| Started::Failed("an answer that does not decode".into())),
        // The assignment stands: if that node is gone, the name is placed again
        // elsewhere; the caller waits for it either way.
        Err(e) => {
            tracing::debug!(%node, error = %e, "registry: a start request failed");
            Started::Stale
        }
    }
}

/// Whether this node's copy has `name` assigned to this node under `epoch` (waiting for the
/// copy to reach that revision first, at most [`START_TIMEOUT`]). A `Start` from a peer is
/// acted on only then: the log, not the peer, says what this node is to start.
async fn assigned_here(shared: &Shared, name: &str, epoch: u64) -> bool {
    let mut revisions = shared.kernel.revisions();
    let reached = tokio::time::timeout(START_TIMEOUT, revisions.wait_for(|r| *r >= epoch)).await;
    if !matches!(reached, Ok(Ok(_))) {
        return false;
    }
    let Ok(node) = shared.node() else {
        return false;
    };
    let me = node.runtime().node_id();
    let state = shared.kernel.read();
    state.table.placements().get(name).is_some_and(|r| {
        r.epoch == epoch
            && matches!(r.stage,
                Stage::Starting { target } | Stage::Moving { target, .. } if target.node == me)
    })
}

/// This node's starts: the actor started for (name, epoch), or `None` while it is being
/// started. Entries for names this node no longer holds (and is not starting) are dropped
/// as the map grows, so it holds about what this node runs or is about to.
fn claim_start(shared: &Shared, name: &str, epoch: u64) -> Result<(), Option<Owner>> {
    let mut started = lock(&shared.started);
    if let Some(entry) = started.get(&(name.to_owned(), epoch)) {
        return Err(entry.as_ref().map(|(owner, _)| *owner));
    }
    // Pruned when the map doubles (at 128, 256, ... entries), so starting n names costs
    // O(n) in all, not O(n) each.
    if started.len() < 128 || !started.len().is_power_of_two() {
        started.insert((name.to_owned(), epoch), None);
        return Ok(());
    }
    let state = shared.kernel.read();
    started.retain(|(n, e), entry| {
        let pending = state
            .table
            .placements()
            .get(n)
            .is_some_and(|r| r.epoch == *e);
        let held = entry
            .as_ref()
            .is_some_and(|(owner, _)| state.table.get(n).map(|s| s.owner) == Some(*owner));
        pending || held
    });
    drop(state);
    started.insert((name.to_owned(), epoch), None);
    Ok(())
}

/// The assigned node's side: start `name`'s actor for `epoch` and bind it.
pub(crate) async fn start_here(shared: &Shared, name: &str, epoch: u64, spec: &Spec) -> Started {
    let key = (name.to_owned(), epoch);
    if !assigned_here(shared, name, epoch).await {
        return Started::Stale;
    }
    let owner = match claim_start(shared, name, epoch) {
        Err(Some(owner)) => owner,
        // Being started by an earlier request: that one binds it.
        Err(None) => return Started::Stale,
        Ok(()) => {
            let Some(kind) = shared.kinds.get(&spec.kind) else {
                lock(&shared.started).remove(&key);
                return abandon(
                    shared,
                    name,
                    epoch,
                    format!("this node has no kind {:?}", spec.kind),
                )
                .await;
            };
            let Ok(node) = shared.node() else {
                lock(&shared.started).remove(&key);
                return Started::Failed("the node is stopping".into());
            };
            let (cell, addr) = match kind.start(node, spec.args.clone()).await {
                Ok(started) => started,
                Err(e) => {
                    lock(&shared.started).remove(&key);
                    return abandon(shared, name, epoch, e.to_string()).await;
                }
            };
            // Watched before the bind: if it stops at once its name still goes.
            watcher::watch(shared, &cell);
            let owner = Owner {
                addr,
                tag: kind.tag,
                incarnation: shared.incarnation,
            };
            lock(&shared.started).insert(key.clone(), Some((owner, spec.clone())));
            owner
        }
    };
    let bind = Command::Bind {
        name: name.to_owned(),
        owner,
        epoch,
    };
    match write::write(shared, bind).await {
        Ok((Outcome::Registered, _)) => {
            released_if_gone(shared, owner).await;
            Started::Bound(owner)
        }
        Ok(_) => {
            // Another start holds the name: this one must not run beside it.
            lock(&shared.started).remove(&key);
            if let Ok(node) = shared.node()
                && let Ok(cell) = node.actor_cell_now(owner.addr)
            {
                cell.stop(Some("another node holds the name".into()));
            }
            Started::Stale
        }
        Err(e) => Started::Failed(e.to_string()),
    }
}

/// An actor that stopped before its bind was applied had its release come first (a
/// no-op), so the bind gave the name to a stopped actor: release it again now, as its exit
/// was (a failure restarts a `Transient` name).
async fn released_if_gone(shared: &Shared, owner: Owner) {
    let alive = shared
        .node()
        .ok()
        .and_then(|n| n.actor_cell_now(owner.addr).ok())
        .is_some_and(|cell| cell.get_status() < ractor::ActorStatus::Stopping);
    if alive {
        return;
    }
    let abnormal = watcher::exit_of(shared, owner.addr).unwrap_or(true);
    let release = Command::ReleaseActor {
        actor: owner.addr,
        incarnation: owner.incarnation,
        abnormal,
    };
    if let Err(e) = write::write(shared, release).await {
        tracing::warn!(actor = %owner.addr, error = %e, "registry: could not release a placed actor that stopped at once");
    }
}

async fn abandon(shared: &Shared, name: &str, epoch: u64, reason: String) -> Started {
    let abandon = Command::Abandon {
        name: name.to_owned(),
        epoch,
    };
    if let Err(e) = write::write(shared, abandon).await {
        tracing::warn!(name, error = %e, "registry: could not abandon a failed start");
    }
    Started::Failed(reason)
}
