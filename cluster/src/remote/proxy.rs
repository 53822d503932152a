//! Proxy cells and the node's watch agent.
//!
//! A remote actor is a ractor proxy cell (`ActorRuntime::spawn_linked_remote`) with id
//! `ActorId::Remote { node_id: route id, pid }`. Sends through understudy's `tell`/`ask` go
//! straight to the route; a plain ractor send lands in the proxy's mailbox as a serialised
//! message, which the proxy forwards. A proxy stops when its actor exits (reason from the
//! owning node's DOWN) or its connection goes (reason `noconnection`), so ractor links and
//! monitors on it fire exactly as for a local actor.
//!
//! The watch agent is one plain actor per node. It supervises the shared proxies (ignoring
//! their exits) and monitors the local actors that remote nodes watch, turning their exits
//! into DOWN signals.

use std::sync::{Arc, Weak};

use ractor::message::SerializedMessage;
use ractor::{ActorProcessingErr, ActorRef, SupervisionEvent};
use understudy_actor::route::Route;

use super::RemoteDriver;
use super::route::LinkRoute;

/// A proxy's message type: nothing is ever sent to it as a local message.
pub(crate) enum Never {}
impl ractor::Message for Never {}

pub(crate) struct Proxy;

pub(crate) struct ProxyState {
    pub(crate) route: Arc<LinkRoute>,
    pub(crate) pid: u64,
}

impl ractor::Actor for Proxy {
    type Msg = Never;
    type State = ProxyState;
    type Arguments = ProxyState;

    async fn pre_start(
        &self,
        _: ActorRef<Never>,
        args: ProxyState,
    ) -> Result<ProxyState, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle_serialized(
        &self,
        _: ActorRef<Never>,
        message: SerializedMessage,
        state: &mut ProxyState,
    ) -> Result<(), ActorProcessingErr> {
        if let Err(e) = state.route.send(state.pid, message) {
            tracing::debug!(pid = state.pid, error = %e, "message to a remote actor not sent");
        }
        Ok(())
    }
}

pub(crate) struct Agent {
    pub(crate) driver: Weak<RemoteDriver>,
}

impl ractor::Actor for Agent {
    type Msg = Never;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Never>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<Never>,
        event: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, reason),
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            _ => return Ok(()),
        };
        let Some(driver) = self.driver.upgrade() else {
            return Ok(());
        };
        match cell.get_id() {
            // A watched local actor exited: its remote watchers hear it.
            ractor::ActorId::Local(pid) => driver.local_exit(pid, reason),
            // A shared proxy it supervises stopped; if not by this layer, release it.
            ractor::ActorId::Remote { node_id, .. } => driver.proxy_exited(node_id, &cell),
        }
        Ok(())
    }
}
