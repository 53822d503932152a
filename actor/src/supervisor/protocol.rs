//! What a supervisor answers about its children, and the messages it takes.
//!
//! The supervisor is a plain ractor actor whose message type is the opaque
//! [`SupervisorMsg`]; users talk to it through [`SupervisorRef`](super::SupervisorRef).

use std::any::TypeId;
use std::time::Instant;

use ractor::ActorCell;
use tokio::sync::oneshot;

use super::child_spec::{ChildKind, ChildSpec};
use super::error::SupervisorError;
use super::restart::Restart;

/// One child as `which_children` reports it: OTP's `{Id, Child, Type, Modules}`, plus its
/// restart type, its Local name, how often it was restarted and when it will be next.
///
/// ```
/// use std::time::Duration;
/// use understudy_actor::supervisor::{Backoff, ChildSpec, SupervisorSpec};
/// use understudy_actor::{Actor, ActorError, Ctx, Handler, Runtime};
///
/// struct Worker;
/// impl Actor for Worker {}
/// impl Handler for Worker {
///     type Msg = Crash;
///     async fn handle(&mut self, _: &Ctx<Self>, _: Crash) -> Result<(), ActorError> {
///         Err("crashed on purpose".into())
///     }
/// }
/// struct Crash;
/// # #[cfg(feature = "remote")] // ractor has a blanket impl without `cluster`
/// impl ractor::Message for Crash {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backoff = Backoff { min: Duration::from_secs(30), max: Duration::from_secs(30), factor: 1.0, jitter: 0.0 };
/// let sup = Runtime::new()
///     .start_supervisor(SupervisorSpec::one_for_one().backoff(backoff).child(ChildSpec::new("w", || Worker)))
///     .await?;
/// sup.child_ref::<Crash>("w").await?.expect("running").send_message(Crash)?;
/// // The supervisor now waits 30 s before restarting it.
/// let info = loop {
///     let info = sup.child_info("w").await?;
///     if info.restarting { break info; }
///     tokio::task::yield_now().await;
/// };
/// assert!(info.cell.is_none());
/// assert_eq!(info.restarts, 0); // the pending restart is not done yet
/// let wait = info.next_restart.expect("in backoff") - tokio::time::Instant::now().into_std();
/// assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30));
/// sup.shutdown().await;
/// # Ok(()) }
/// ```
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
    /// How many times the supervisor has restarted this child since the child was added
    /// (the supervisor's start, or `start_child`): every new incarnation its restart
    /// strategy started, including as a member of a `OneForAll`/`RestForOne` group.
    /// Failed attempts, the first start and `restart_child` calls are not counted. A
    /// restarted nested supervisor starts afresh, so its children's counts start at 0.
    pub restarts: u64,
    /// When the pending restart is due, while `restarting` (`None` otherwise): the end of
    /// its backoff delay, or the moment a retry after a failed start was scheduled. It may
    /// be in the past: the restart is due and waits its turn in the supervisor's mailbox.
    ///
    /// Measured on tokio's clock, the one the backoff timer sleeps on, as a std `Instant`:
    /// compare it with `tokio::time::Instant::now().into_std()`, which is
    /// `std::time::Instant::now()` unless a test paused tokio's time.
    pub next_restart: Option<Instant>,
    /// Its restart type.
    pub restart: Restart,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// The Local name it is registered under, if any.
    pub name: Option<String>,
    /// The name of the message type it takes ([`ChildSpec::message_type`]).
    pub message_type: &'static str,
    /// The same type, to check typed lookups with.
    pub(crate) message_type_id: TypeId,
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
    WhichChild(String, Reply<Option<ChildInfo>>),
    CountChildren(Reply<ChildCounts>),
    /// A restart that was delayed (backoff) or has to be tried again (failed start) is due.
    /// Stale when the child's pending token is no longer `token`.
    Retry {
        id: String,
        token: u64,
    },
}
