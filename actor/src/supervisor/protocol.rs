//! What a supervisor answers about its children, and the messages it takes.
//!
//! The supervisor is a plain ractor actor whose message type is the opaque
//! [`SupervisorMsg`]; users talk to it through [`SupervisorRef`](super::SupervisorRef).

use ractor::ActorCell;
use tokio::sync::oneshot;

use super::child_spec::{ChildKind, ChildSpec};
use super::error::SupervisorError;
use super::restart::Restart;

/// One child as `which_children` reports it (OTP's `{Id, Child, Type, Modules}`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChildInfo {
    /// The child id.
    pub id: String,
    /// The running incarnation, if it runs.
    pub cell: Option<ActorCell>,
    /// Whether the supervisor is waiting to restart it (backoff, or a retry after a failed
    /// start); `cell` is `None` then.
    pub restarting: bool,
    /// Its restart type.
    pub restart: Restart,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// The Local name it is registered under, if any.
    pub name: Option<String>,
}

/// Child counts as `count_children` reports them (OTP's `specs`, `active`, `supervisors`,
/// `workers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChildCounts {
    /// All child specs, running or not.
    pub specs: usize,
    /// Running children.
    pub active: usize,
    /// Specs of children that are supervisors, running or not.
    pub supervisors: usize,
    /// Specs of children that are workers, running or not.
    pub workers: usize,
}

/// The supervisor's message type. Opaque: use [`SupervisorRef`](super::SupervisorRef).
pub struct SupervisorMsg(pub(crate) Command);

// Without ractor's `cluster` (no `remote`), its blanket impl covers every type.
#[cfg(feature = "remote")]
impl ractor::Message for SupervisorMsg {}

impl std::fmt::Debug for SupervisorMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SupervisorMsg")
    }
}

pub(crate) type Reply<T> = oneshot::Sender<T>;

pub(crate) enum Command {
    StartChild(ChildSpec, Reply<Result<ActorCell, SupervisorError>>),
    TerminateChild(String, Reply<Result<(), SupervisorError>>),
    RestartChild(String, Reply<Result<ActorCell, SupervisorError>>),
    DeleteChild(String, Reply<Result<(), SupervisorError>>),
    WhichChildren(Reply<Vec<ChildInfo>>),
    CountChildren(Reply<ChildCounts>),
    /// A restart that was delayed (backoff) or has to be tried again (failed start) is due.
    /// Stale when the child's pending token is no longer `token`.
    Retry {
        id: String,
        token: u64,
    },
}
