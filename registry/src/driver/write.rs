//! Writes and linearizable reads from any node: to the leader, following redirects, retrying
//! until the write deadline. Commands are idempotent, so a retry after a timeout or a leader
//! change is safe; past the deadline the caller gets `NoQuorum`.

use std::time::Duration;

use tokio::time::Instant;
use understudy_cluster::identity::NodeName;

use super::Shared;
use crate::core::command::{Command, Outcome};
use crate::error::RegistryError;
use crate::raft::handle::{RaftHandle, Written};
use crate::wire::{self, Forwarded, PeerMessage, ReadIndex};

/// Pause between attempts while no leader is known.
const RETRY: Duration = Duration::from_millis(20);

/// One attempt to a peer waits at most this long.
const ATTEMPT: Duration = Duration::from_secs(1);

/// Commits `command` and returns its outcome and revision.
pub(crate) async fn write(
    shared: &Shared,
    command: Command,
) -> Result<(Outcome, u64), RegistryError> {
    let started = Instant::now();
    let deadline = started + shared.config.write_deadline;
    let mut hint: Option<String> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(RegistryError::NoQuorum {
                waited: now - started,
            });
        }
        let left = deadline - now;
        if let Some(raft) = &shared.raft
            && raft.view().leading
        {
            match tokio::time::timeout(left, raft.write(command.clone())).await {
                Ok(Written::Done { outcome, revision }) => return Ok((outcome, revision)),
                Ok(Written::NotLeader(leader) | Written::Unknown(leader)) => hint = leader,
                Ok(Written::Failed(why)) => return Err(storage(why)),
                Err(_) => continue,
            }
        }
        let target = hint
            .take()
            .or_else(|| shared.leader())
            .filter(|l| *l != shared.me.as_str());
        let Some(target) = target.and_then(|t| NodeName::try_from(t.as_str()).ok()) else {
            tokio::time::sleep(RETRY.min(left)).await;
            continue;
        };
        let body = PeerMessage::Forward(command.clone()).encode();
        match shared.ctx.request(&target, body, ATTEMPT.min(left)).await {
            Ok(bytes) => match wire::decode::<Forwarded>(&bytes) {
                Ok(Forwarded::Done { outcome, revision }) => return Ok((outcome, revision)),
                Ok(Forwarded::NotLeader { leader }) => {
                    hint = leader.filter(|l| *l != target.as_str());
                    if hint.is_none() {
                        tokio::time::sleep(RETRY.min(left)).await;
                    }
                }
                Ok(Forwarded::Failed(_)) | Err(_) => tokio::time::sleep(RETRY.min(left)).await,
            },
            Err(_) => tokio::time::sleep(RETRY.min(left)).await,
        }
    }
}

fn storage(why: String) -> RegistryError {
    RegistryError::Storage {
        source: std::io::Error::other(why),
    }
}

/// A forwarded write, on the node it was sent to: committed here if this node leads.
pub(crate) async fn on_leader(shared: &Shared, raft: &RaftHandle, command: Command) -> Forwarded {
    if !raft.view().leading {
        return Forwarded::NotLeader {
            leader: shared.leader(),
        };
    }
    match tokio::time::timeout(shared.config.write_deadline, raft.write(command)).await {
        Ok(Written::Done { outcome, revision }) => Forwarded::Done { outcome, revision },
        Ok(Written::NotLeader(leader) | Written::Unknown(leader)) => {
            Forwarded::NotLeader { leader }
        }
        Ok(Written::Failed(why)) => Forwarded::Failed(why),
        Err(_) => Forwarded::NotLeader { leader: None },
    }
}

/// The read index, on the node asked: only the leader answers with one.
pub(crate) async fn read_index_here(shared: &Shared) -> ReadIndex {
    match &shared.raft {
        Some(raft) if raft.view().leading => match raft.read_index().await {
            Ok(index) => ReadIndex::At(index),
            Err(leader) => ReadIndex::NotLeader { leader },
        },
        _ => ReadIndex::NotLeader {
            leader: shared.leader(),
        },
    }
}

/// Waits until this node's names reflect every write committed before the call: asks the
/// leader for a read index and waits for the local revision to reach it.
pub(crate) async fn linearize(shared: &Shared) -> Result<(), RegistryError> {
    let started = Instant::now();
    let deadline = started + shared.config.write_deadline;
    let mut hint: Option<String> = None;
    let index = loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(RegistryError::NoQuorum {
                waited: now - started,
            });
        }
        let left = deadline - now;
        if let Some(raft) = &shared.raft
            && raft.view().leading
        {
            if let Ok(Ok(index)) = tokio::time::timeout(left, raft.read_index()).await {
                break index;
            }
            continue;
        }
        let target = hint
            .take()
            .or_else(|| shared.leader())
            .filter(|l| *l != shared.me.as_str());
        let Some(target) = target.and_then(|t| NodeName::try_from(t.as_str()).ok()) else {
            tokio::time::sleep(RETRY.min(left)).await;
            continue;
        };
        let body = PeerMessage::ReadIndex.encode();
        match shared.ctx.request(&target, body, ATTEMPT.min(left)).await {
            Ok(bytes) => match wire::decode::<ReadIndex>(&bytes) {
                Ok(ReadIndex::At(index)) => break index,
                Ok(ReadIndex::NotLeader { leader }) => {
                    hint = leader.filter(|l| *l != target.as_str());
                    if hint.is_none() {
                        tokio::time::sleep(RETRY.min(left)).await;
                    }
                }
                Err(_) => tokio::time::sleep(RETRY.min(left)).await,
            },
            Err(_) => tokio::time::sleep(RETRY.min(left)).await,
        }
    };
    let mut revisions = shared.kernel.revisions();
    let reached = tokio::time::timeout_at(deadline, revisions.wait_for(|r| *r >= index)).await;
    match reached {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(RegistryError::Stopped),
        Err(_) => Err(RegistryError::NoQuorum {
            waited: started.elapsed(),
        }),
    }
}
