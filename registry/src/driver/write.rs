//! Writes and linearizable reads from any node: to the leader, following redirects, retrying
//! until the write deadline. Commands are idempotent, so a retry after a timeout or a leader
//! change is safe; past the deadline the caller gets `NoQuorum`.

use std::time::Duration;

use tokio::time::Instant;
use understudy_cluster::identity::NodeName;

use super::Shared;
use crate::core::command::{Command, Outcome, Request};
use crate::error::RegistryError;
use crate::raft::handle::{RaftHandle, Written};
use crate::wire::{self, Forwarded, PeerMessage, ReadIndex};

/// Pause between attempts while no leader is known.
const RETRY: Duration = Duration::from_millis(20);

/// One attempt to a peer waits at most this long.
const ATTEMPT: Duration = Duration::from_secs(1);

/// What one attempt at the leader came to.
enum Attempt<T> {
    /// The answer.
    Done(T),
    /// Not the leader: try this node, if it named one.
    Redirect(Option<String>),
    /// Try again after a pause.
    Retry,
    /// Give up with this error.
    Fail(RegistryError),
}

/// Runs an operation on the leader, wherever it is, until the write deadline: here if this
/// node leads (`here`), else as `request` to the leader this node knows of, following
/// redirects (`answer` reads the reply). Past the deadline: `NoQuorum`.
async fn at_leader<T, F>(
    shared: &Shared,
    request: PeerMessage,
    here: impl Fn(RaftHandle) -> F,
    answer: impl Fn(&[u8]) -> Attempt<T>,
) -> Result<T, RegistryError>
where
    F: std::future::Future<Output = Attempt<T>>,
{
    let started = Instant::now();
    let deadline = started + shared.config.write_deadline;
    let body = request.encode();
    let mut hint: Option<String> = None;
    loop {
        if shared.is_stopped() {
            return Err(RegistryError::Stopped);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(RegistryError::NoQuorum {
                waited: now - started,
            });
        }
        let left = deadline - now;
        let pause = tokio::time::sleep(RETRY.min(left));
        let attempt = match &shared.raft {
            Some(raft) if raft.view().leading => {
                match tokio::time::timeout(left, here(raft.clone())).await {
                    Ok(attempt) => attempt,
                    Err(_) => continue,
                }
            }
            _ => {
                let target = hint
                    .take()
                    .or_else(|| shared.leader())
                    .filter(|l| *l != shared.me.as_str())
                    .and_then(|t| NodeName::try_from(t.as_str()).ok());
                match target {
                    Some(target) => {
                        let sent = shared.ctx.request(&target, body.clone(), ATTEMPT.min(left));
                        // A leader elected meanwhile (the target died) ends the wait at once:
                        // the request id makes the abandoned copy harmless if it lands.
                        let known = shared.leader();
                        let moved = async {
                            loop {
                                tokio::time::sleep(RETRY).await;
                                let now = shared.leader();
                                if now.is_some() && now != known {
                                    return;
                                }
                            }
                        };
                        tokio::select! {
                            sent = sent => match sent {
                                Ok(bytes) => match answer(&bytes) {
                                    Attempt::Redirect(leader) => {
                                        Attempt::Redirect(leader.filter(|l| *l != target.as_str()))
                                    }
                                    other => other,
                                },
                                Err(_) => Attempt::Retry,
                            },
                            () = moved => Attempt::Redirect(None),
                        }
                    }
                    None => Attempt::Retry,
                }
            }
        };
        match attempt {
            Attempt::Done(value) => return Ok(value),
            Attempt::Fail(e) => return Err(e),
            Attempt::Redirect(Some(leader)) => hint = Some(leader),
            Attempt::Redirect(None) | Attempt::Retry => pause.await,
        }
    }
}

/// Commits `command` and returns its outcome and revision. The command goes as one request
/// id for all its retries, so it is applied at most once.
pub(crate) async fn write(
    shared: &Shared,
    command: Command,
) -> Result<(Outcome, u64), RegistryError> {
    let request = shared.request(command);
    let here = |raft: RaftHandle| {
        let request = request.clone();
        async move {
            match raft.write(request).await {
                Written::Done { outcome, revision } => Attempt::Done((outcome, revision)),
                Written::NotLeader(leader) | Written::Unknown(leader) => Attempt::Redirect(leader),
                Written::Failed(_) if shared.is_stopped() => Attempt::Fail(RegistryError::Stopped),
                Written::Failed(why) => Attempt::Fail(storage(why)),
            }
        }
    };
    let answer = |bytes: &[u8]| match wire::decode::<Forwarded>(bytes) {
        Ok(Forwarded::Done { outcome, revision }) => Attempt::Done((outcome, revision)),
        Ok(Forwarded::NotLeader { leader }) => Attempt::Redirect(leader),
        Ok(Forwarded::Failed(_)) | Err(_) => Attempt::Retry,
    };
    at_leader(shared, PeerMessage::Forward(request.clone()), here, answer).await
}

fn storage(why: String) -> RegistryError {
    RegistryError::Storage {
        source: std::io::Error::other(why),
    }
}

/// A forwarded write, on the node it was sent to: committed here if this node leads.
pub(crate) async fn on_leader(shared: &Shared, raft: &RaftHandle, request: Request) -> Forwarded {
    if !raft.view().leading {
        return Forwarded::NotLeader {
            leader: shared.leader(),
        };
    }
    match tokio::time::timeout(shared.config.write_deadline, raft.write(request)).await {
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
    let here = |raft: RaftHandle| async move {
        match raft.read_index().await {
            Ok(index) => Attempt::Done(index),
            Err(leader) => Attempt::Redirect(leader),
        }
    };
    let answer = |bytes: &[u8]| match wire::decode::<ReadIndex>(bytes) {
        Ok(ReadIndex::At(index)) => Attempt::Done(index),
        Ok(ReadIndex::NotLeader { leader }) => Attempt::Redirect(leader),
        Err(_) => Attempt::Retry,
    };
    let index = at_leader(shared, PeerMessage::ReadIndex, here, answer).await?;
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
