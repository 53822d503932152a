//! Raft's RPCs over the registry's extension channel: each RPC is one request to the
//! registry on the target node, with the time budget openraft gives it.
//!
//! Both RPCs openraft leaves as no-ops by default are carried for real: **pre-vote** (so a
//! node cut off from the leader does not raise the term and depose it when it comes back)
//! and **leader transfer** (so a leader that is being removed hands over at once instead of
//! leaving the cluster to an election timeout).

use std::future::Future;
use std::time::{Duration, Instant};

use openraft::RaftNetworkV2;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use understudy_cluster::extension::{ExtensionContext, ExtensionError};
use understudy_cluster::identity::NodeName;

use super::standby::{Quiet, Roles};
use super::types::{RaftNode, Snapshot, SnapshotMeta, Tc, Vote};
use crate::wire::PeerMessage;

/// Snapshots travel in parts of this many bytes (well under a mesh frame).
pub(crate) const SNAPSHOT_PART: usize = 1 << 20;

/// The largest snapshot a node assembles from a peer's parts.
pub(crate) const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

/// One Raft RPC, as it travels.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RaftRequest {
    Append(AppendEntriesRequest<Tc>),
    Vote(VoteRequest<Tc>),
    PreVote(VoteRequest<Tc>),
    /// One part of a snapshot: its bytes from `offset` on; the receiver installs the
    /// snapshot when the `last` part arrives.
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        last: bool,
    },
    TransferLeader(TransferLeaderRequest<Tc>),
}

impl RaftRequest {
    /// The Raft id of the node that sent it (the leader or the candidate), which the
    /// receiver checks against the sending node's name.
    pub(crate) fn sender(&self) -> u64 {
        match self {
            RaftRequest::Append(r) => r.vote.leader_id.voted_for,
            RaftRequest::Vote(r) | RaftRequest::PreVote(r) => r.vote.leader_id.voted_for,
            RaftRequest::Snapshot { vote, .. } => vote.leader_id.voted_for,
            RaftRequest::TransferLeader(r) => r.from_leader().leader_id.voted_for,
        }
    }
}

/// The answer to one Raft RPC.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RaftResponse {
    Append(AppendEntriesResponse<Tc>),
    Vote(VoteResponse<Tc>),
    Snapshot(SnapshotResponse<Tc>),
    /// A snapshot part was taken; send the next.
    Part,
    TransferLeader(TransferLeaderResponse<Tc>),
    /// The receiver would not or could not serve it (not running Raft, or stopped).
    Refused(String),
}

/// Makes a client per target node.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    pub(crate) ctx: ExtensionContext,
    pub(crate) me: u64,
    pub(crate) roles: Roles,
}

impl RaftNetworkFactory<Tc> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &RaftNode) -> Peer {
        Peer {
            ctx: self.ctx.clone(),
            me: self.me,
            target,
            name: NodeName::try_from(node.name.as_str()).ok(),
            roles: self.roles.clone(),
            quiet: Quiet::default(),
        }
    }
}

/// The way to one target's Raft.
#[derive(Debug)]
pub(crate) struct Peer {
    ctx: ExtensionContext,
    me: u64,
    target: u64,
    name: Option<NodeName>,
    roles: Roles,
    /// Heartbeats to the target while it is a standby (see [`super::standby`]).
    quiet: Quiet,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

impl Peer {
    async fn call(
        &self,
        request: RaftRequest,
        timeout: Duration,
        action: openraft::network::RPCTypes,
    ) -> Result<RaftResponse, RPCError<Tc>> {
        let Some(name) = &self.name else {
            return Err(RPCError::Unreachable(Unreachable::from_string(
                "the member's node name is not valid",
            )));
        };
        let body = PeerMessage::Raft {
            to: self.target,
            request,
        }
        .encode();
        match self.ctx.request(name, body, timeout).await {
            Ok(bytes) => match postcard::from_bytes::<RaftResponse>(&bytes) {
                Ok(RaftResponse::Refused(why)) => {
                    Err(RPCError::Unreachable(Unreachable::new(&Refused(why))))
                }
                Ok(response) => Ok(response),
                Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
            },
            Err(ExtensionError::Timeout(_)) => Err(RPCError::Timeout(openraft::error::Timeout {
                action,
                id: self.me,
                target: self.target,
                timeout,
            })),
            Err(
                e @ (ExtensionError::NotConnected(_)
                | ExtensionError::Disconnected
                | ExtensionError::NodeGone
                | ExtensionError::Refused(_)),
            ) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl Peer {
    /// Sends `request` and takes the answer `pick` expects (any other is a network error).
    async fn rpc<R>(
        &self,
        request: RaftRequest,
        option: &RPCOption,
        action: openraft::network::RPCTypes,
        pick: fn(RaftResponse) -> Result<R, RaftResponse>,
    ) -> Result<R, RPCError<Tc>> {
        let response = self.call(request, option.hard_ttl(), action).await?;
        pick(response).map_err(|other| unexpected(&other))
    }
}

fn unexpected(what: &RaftResponse) -> RPCError<Tc> {
    RPCError::Network(NetworkError::new(&Refused(format!(
        "an answer of the wrong kind: {what:?}"
    ))))
}

impl RaftNetworkV2<Tc> for Peer {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Tc>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<Tc>, RPCError<Tc>> {
        let pick = |r| match r {
            RaftResponse::Append(r) => Ok(r),
            other => Err(other),
        };
        let action = openraft::network::RPCTypes::AppendEntries;
        if !rpc.entries.is_empty() || !self.roles.is_standby(self.target) {
            return self
                .rpc(RaftRequest::Append(rpc), &option, action, pick)
                .await;
        }
        if let Some(answer) = self.quiet.answer(&rpc, Instant::now()) {
            return Ok(answer);
        }
        let heartbeat = AppendEntriesRequest {
            vote: rpc.vote,
            prev_log_id: rpc.prev_log_id,
            leader_commit: rpc.leader_commit,
            entries: Vec::new(),
        };
        let answer = self
            .rpc(RaftRequest::Append(rpc), &option, action, pick)
            .await;
        let acked = matches!(answer, Ok(AppendEntriesResponse::Success));
        self.quiet.sent(&heartbeat, acked, Instant::now());
        answer
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Tc>,
        option: RPCOption,
    ) -> Result<VoteResponse<Tc>, RPCError<Tc>> {
        let pick = |r| match r {
            RaftResponse::Vote(r) => Ok(r),
            other => Err(other),
        };
        let action = openraft::network::RPCTypes::Vote;
        self.rpc(RaftRequest::Vote(rpc), &option, action, pick)
            .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<Tc>,
        option: RPCOption,
    ) -> Result<VoteResponse<Tc>, RPCError<Tc>> {
        let pick = |r| match r {
            RaftResponse::Vote(r) => Ok(r),
            other => Err(other),
        };
        let action = openraft::network::RPCTypes::Vote;
        self.rpc(RaftRequest::PreVote(rpc), &option, action, pick)
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<Tc>, StreamingError<Tc>> {
        use openraft::network::RPCTypes;
        let send = async {
            let data = snapshot.snapshot;
            let mut offset = 0;
            loop {
                let end = (offset + SNAPSHOT_PART).min(data.len());
                let last = end == data.len();
                let request = RaftRequest::Snapshot {
                    vote,
                    meta: snapshot.meta.clone(),
                    offset: offset as u64,
                    data: data[offset..end].to_vec(),
                    last,
                };
                match self
                    .call(request, option.hard_ttl(), RPCTypes::InstallSnapshot)
                    .await?
                {
                    RaftResponse::Snapshot(r) if last => return Ok(r),
                    RaftResponse::Part if !last => offset = end,
                    other => return Err(unexpected(&other).into()),
                }
            }
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            answer = send => answer,
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<Tc>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<Tc>, RPCError<Tc>> {
        let pick = |r| match r {
            RaftResponse::TransferLeader(r) => Ok(r),
            other => Err(other),
        };
        let action = openraft::network::RPCTypes::TransferLeader;
        self.rpc(RaftRequest::TransferLeader(req), &option, action, pick)
            .await
    }
}

/// One request of each kind, carrying `command` where an entry goes (the fuzz seeds).
pub(crate) fn samples(request: crate::core::command::Request) -> Vec<(&'static str, RaftRequest)> {
    use openraft::vote::leader_id_std::CommittedLeaderId;
    let vote = Vote::new(2, 11);
    let log_id = super::types::LogId::new(CommittedLeaderId::new(2), 5);
    let entry = super::types::Entry {
        log_id,
        payload: openraft::EntryPayload::Normal(request),
    };
    let mut blank = entry.clone();
    blank.payload = openraft::EntryPayload::Blank;
    vec![
        (
            "raft-append",
            RaftRequest::Append(AppendEntriesRequest {
                vote,
                prev_log_id: None,
                entries: vec![entry, blank],
                leader_commit: Some(log_id),
            }),
        ),
        (
            "raft-vote",
            RaftRequest::Vote(VoteRequest::new(vote, Some(log_id))),
        ),
        (
            "raft-pre-vote",
            RaftRequest::PreVote(VoteRequest::new(vote, None)),
        ),
        (
            "raft-transfer",
            RaftRequest::TransferLeader(TransferLeaderRequest::new(vote, 12, Some(log_id))),
        ),
    ]
}
