//! A graceful leave hands this node's placed names over before the node goes, with no
//! moment where a name has no holder: for each name an actor of this node holds, a `Move`
//! picks a successor's node by the name's placement rule (this node left out), that node
//! starts the successor and its `Bind` takes the name over from the holder in one log entry;
//! only then is the local actor stopped. A name that cannot move (its rule allows no other
//! node, or the move fails) stays with its holder and is handled as a departure when the
//! node is gone.

use std::sync::Arc;

use tokio::time::Instant;

use super::{Shared, lock, spawn, write};
use crate::core::command::{Command, Outcome, Owner};
use crate::core::placement::Spec;
use crate::wire::Started;

/// Hands every placed name this node's actors hold over to other nodes.
pub(crate) async fn hand_over(shared: &Arc<Shared>) {
    // This node's copy may not have applied its latest binds yet (a standby or a client):
    // bring it up to date first, so every name it holds is seen.
    if let Err(e) = write::linearize(shared).await {
        tracing::warn!(error = %e, "registry: leaving without a current copy; some placed names may not move");
    }
    let held: Vec<(String, Owner, Spec)> = lock(&shared.started)
        .iter()
        .filter_map(|((name, _), entry)| entry.as_ref().map(|(o, s)| (name, *o, s)))
        .filter(|(name, owner, _)| shared.kernel.owner(name) == Some(*owner))
        .map(|(name, owner, spec)| (name.clone(), owner, spec.clone()))
        .collect();
    if held.is_empty() {
        return;
    }
    let started = Instant::now();
    let moves = held.into_iter().map(|(name, owner, spec)| {
        let shared = shared.clone();
        tokio::spawn(async move { move_one(&shared, &name, owner, &spec).await })
    });
    let outcomes = futures_util::future::join_all(moves).await;
    let moved = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
    tracing::info!(
        moved,
        of = outcomes.len(),
        took = ?started.elapsed(),
        "registry: handed placed names over before leaving"
    );
}

/// Moves one name; true once its successor holds it and the local actor is stopped.
async fn move_one(shared: &Shared, name: &str, owner: Owner, spec: &Spec) -> bool {
    let (target, node) = match spawn::place(shared, name, spec, None, Some(owner.node())) {
        Ok(placed) => placed,
        Err(why) => {
            tracing::warn!(name, %why, "registry: a placed name cannot move before the leave");
            return false;
        }
    };
    let begin = Command::Move {
        name: name.to_owned(),
        owner,
        target,
    };
    let epoch = match write::write(shared, begin).await {
        Ok((Outcome::Placed { epoch, .. }, _)) => epoch,
        other => {
            tracing::warn!(name, ?other, "registry: a placed name's move was refused");
            return false;
        }
    };
    match spawn::start_on(shared, &node, name, epoch, spec).await {
        Started::Bound(_) => {
            if let Ok(n) = shared.node()
                && let Ok(cell) = n.actor_cell_now(owner.addr)
            {
                cell.stop(Some("handed over: its node is leaving".into()));
            }
            true
        }
        other => {
            tracing::warn!(name, %node, ?other, "registry: a placed name's successor did not start");
            false
        }
    }
}
