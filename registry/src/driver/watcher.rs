//! The watcher: one plain actor that monitors every actor registered from this node. When
//! one stops, this node proposes `ReleaseActor` for it, so its names go with it (as Erlang's
//! `global` unregisters a dead process's names).

use std::sync::Weak;

use ractor::{ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use understudy_actor::ActorAddr;

use super::{Shared, write};
use crate::core::command::Command;
use crate::error::RegistryError;

pub(crate) async fn start(shared: Weak<Shared>) -> Result<ActorCell, RegistryError> {
    let (watcher, _) = ractor::Actor::spawn(None, Watcher { shared }, ())
        .await
        .map_err(|_| RegistryError::Stopped)?;
    Ok(watcher.get_cell())
}

/// Monitors `actor` (idempotent: ractor keeps one monitor per pair).
pub(crate) fn watch(shared: &Shared, actor: &ActorCell) {
    if let Some(watcher) = shared.watcher.get() {
        watcher.monitor(actor.clone());
    }
}

/// How many recent exits a node remembers (for a placed actor that stops before its bind).
const RECENT_EXITS: usize = 1024;

fn remember_exit(shared: &Shared, actor: ActorAddr, abnormal: bool) {
    let mut exits = super::lock(&shared.exits);
    if exits.len() >= RECENT_EXITS {
        exits.clear();
    }
    exits.insert(actor, abnormal);
}

/// Whether `actor` of this node failed (true) or stopped normally (false), if it stopped
/// lately.
pub(crate) fn exit_of(shared: &Shared, actor: ActorAddr) -> Option<bool> {
    super::lock(&shared.exits).get(&actor).copied()
}

struct Watcher {
    shared: Weak<Shared>,
}

impl ractor::Actor for Watcher {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let (cell, abnormal) = match event {
            SupervisionEvent::ActorTerminated(cell, ..) => (cell, false),
            SupervisionEvent::ActorFailed(cell, _) => (cell, true),
            _ => return Ok(()),
        };
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        let Ok(node) = shared.node() else {
            return Ok(());
        };
        let actor = ActorAddr {
            node: node.runtime().node_id(),
            pid: cell.get_id().pid(),
        };
        drop(node);
        remember_exit(&shared, actor, abnormal);
        crate::eventual::driver::actor_stopped(&shared, actor);
        // Off the watcher's loop: a write may wait for a quorum.
        tokio::spawn(async move {
            if let Err(e) = write::write(
                &shared,
                Command::ReleaseActor {
                    actor,
                    incarnation: shared.incarnation,
                    abnormal,
                },
            )
            .await
            {
                // The leader releases the names when this node is gone; until then they
                // point at a stopped actor, and `whereis` says so.
                tracing::warn!(%actor, error = %e, "registry: could not release a stopped actor's names");
            }
        });
        Ok(())
    }
}
