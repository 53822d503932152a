//! The inbox: what peers send the registry, each request answered on its own task (a slow
//! Raft call never holds up the next peer's heartbeat). The extension's inbox budget bounds
//! what a peer can queue; [`MAX_IN_FLIGHT`] bounds the tasks.

use std::sync::Arc;

use tokio::sync::Semaphore;
use understudy_cluster::extension::{ExtensionInbox, ExtensionMessage, Responder};
use understudy_cluster::identity::NodeName;

use super::{Shared, lock, write};
use crate::raft::network::{RaftRequest, RaftResponse};
use crate::wire::{self, Forwarded, PeerMessage, REJECTED_METRIC};

/// The most peer requests served at once; past it a request is refused (Raft retries).
pub(crate) const MAX_IN_FLIGHT: usize = 1024;

pub(crate) async fn run(shared: Arc<Shared>, mut inbox: ExtensionInbox) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(message) = inbox.recv().await {
        match message {
            ExtensionMessage::PeerUp { node, id } => {
                shared.announce(Some(&node));
                crate::eventual::driver::peer_up(&shared, &node, id);
            }
            ExtensionMessage::PeerDown { node, id } => {
                lock(&shared.peers).remove(&node);
                lock(&shared.subscribers).remove(&node);
                crate::eventual::driver::peer_down(&shared, id);
            }
            ExtensionMessage::Notice { from, body } => match PeerMessage::decode(&body) {
                Ok(PeerMessage::Hello(hello)) => {
                    if let Some(leader) = &hello.leader {
                        *lock(&shared.leader_hint) = Some(leader.clone());
                    }
                    lock(&shared.peers).insert(from, hello);
                }
                Ok(PeerMessage::Feed(feed)) => super::feed::on_feed(&shared, &from, feed),
                Ok(PeerMessage::Eventual(message)) => {
                    crate::eventual::driver::receive(&shared, &from, message)
                }
                Ok(PeerMessage::Unsubscribe) => {
                    lock(&shared.subscribers).remove(&from);
                }
                Ok(_) | Err(_) => rejected(&from),
            },
            ExtensionMessage::Request { from, body, reply } => {
                let Ok(message) = PeerMessage::decode(&body) else {
                    rejected(&from);
                    reply.respond(Err("undecodable registry message".into()));
                    continue;
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    reply.respond(Err("busy".into()));
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    answer(&shared, from, message, reply).await;
                    drop(permit);
                });
            }
            _ => {}
        }
    }
    // The node is gone: stop Raft with it.
    if let Some(raft) = &shared.raft {
        raft.shutdown().await;
    }
}

fn rejected(from: &NodeName) {
    tracing::debug!(peer = %from, "registry: a message that does not decode; dropped");
    metrics::counter!(REJECTED_METRIC).increment(1);
}

async fn answer(shared: &Shared, from: NodeName, message: PeerMessage, reply: Responder) {
    match message {
        PeerMessage::Raft { to, request } => {
            let response = raft_rpc(shared, &from, to, request).await;
            reply.respond(Ok(wire::encode(&response)));
        }
        PeerMessage::Claim(claim) => {
            let grant = super::formation::consider(shared, &claim);
            reply.respond(Ok(wire::encode(&grant)));
        }
        PeerMessage::Forward(request) => {
            let answer = match &shared.raft {
                Some(raft) => write::on_leader(shared, raft, request).await,
                None => Forwarded::NotLeader {
                    leader: shared.leader(),
                },
            };
            reply.respond(Ok(wire::encode(&answer)));
        }
        PeerMessage::ReadIndex => {
            let answer = write::read_index_here(shared).await;
            reply.respond(Ok(wire::encode(&answer)));
        }
        PeerMessage::Subscribe { from: revision } => {
            let answer = super::feed::subscribe(shared, from, revision);
            reply.respond(Ok(wire::encode(&answer)));
        }
        PeerMessage::Ack {
            revision,
            within_ms,
        } => {
            let within = std::time::Duration::from_millis(within_ms);
            let reached = crate::strong::ack(shared, revision, within).await;
            reply.respond(Ok(wire::encode(&reached)));
        }
        PeerMessage::Start { name, epoch, spec } => {
            let answer = super::spawn::start_here(shared, &name, epoch, &spec).await;
            reply.respond(Ok(wire::encode(&answer)));
        }
        PeerMessage::Hello(_)
        | PeerMessage::Unsubscribe
        | PeerMessage::Feed(_)
        | PeerMessage::Eventual(_) => {
            rejected(&from);
            reply.respond(Err("a notice sent as a request".into()));
        }
    }
}

/// Serves a Raft RPC if the sender is who it says: a Raft id this node's configuration binds
/// to another node's name is refused (openraft trusts its RPCs; a snapshot inconsistent with
/// its state makes it panic).
async fn raft_rpc(shared: &Shared, from: &NodeName, to: u64, request: RaftRequest) -> RaftResponse {
    let Some(raft) = &shared.raft else {
        return RaftResponse::Refused("this node runs no Raft (not eligible)".into());
    };
    if to != raft.id {
        return RaftResponse::Refused(
            "this node runs another Raft id now (it lost its store)".into(),
        );
    }
    let claimed = request.sender();
    if let Some(view) = shared.view()
        && let Some(bound) = view.name_of(claimed)
        && !bound.is_empty()
        && bound != from.as_str()
    {
        metrics::counter!(REJECTED_METRIC).increment(1);
        tracing::warn!(peer = %from, raft_id = claimed, bound, "registry: a Raft RPC under another node's id; refused");
        return RaftResponse::Refused("the Raft id belongs to another node".into());
    }
    let from_leader = matches!(request, RaftRequest::Append(_));
    let response = raft.serve(request).await;
    if from_leader && matches!(response, RaftResponse::Append(_)) {
        *lock(&shared.leader_heard) = Some(tokio::time::Instant::now());
    }
    response
}
