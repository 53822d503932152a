//! Errors of the calls a [`SupervisorRef`](super::SupervisorRef) makes, as OTP's
//! `{error, Reason}` replies.

use std::time::Duration;

use ractor::ActorCell;

use crate::runtime::SpawnError;

/// Why a call to a supervisor failed.
///
/// Which call returns which error:
/// - `start_child`: [`AlreadyStarted`](Self::AlreadyStarted),
///   [`AlreadyPresent`](Self::AlreadyPresent), [`StartFailed`](Self::StartFailed);
/// - `terminate_child`: [`NotFound`](Self::NotFound);
/// - `restart_child`: [`NotFound`](Self::NotFound), [`Running`](Self::Running),
///   [`Restarting`](Self::Restarting), [`StartFailed`](Self::StartFailed);
/// - `delete_child`: [`NotFound`](Self::NotFound), [`Running`](Self::Running),
///   [`Restarting`](Self::Restarting);
/// - `child`, `child_info`: [`NotFound`](Self::NotFound);
/// - `child_ref`: [`NotFound`](Self::NotFound), [`WrongMessageType`](Self::WrongMessageType);
/// - every call: [`NotRunning`](Self::NotRunning), [`Timeout`](Self::Timeout).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// No child with this id.
    #[error("no child {0:?} in this supervisor")]
    NotFound(String),
    /// The child is running; terminate it first.
    #[error("child {0:?} is running; terminate_child it first")]
    Running(String),
    /// The child is waiting to be restarted (backoff or a retry after a failed start).
    #[error("child {0:?} is being restarted by its supervisor")]
    Restarting(String),
    /// A child with this id exists but is not running; use `restart_child` or
    /// `delete_child`.
    #[error("a child {0:?} already exists (not running); restart_child or delete_child it")]
    AlreadyPresent(String),
    /// A child with this id is already running.
    #[error("child {id:?} is already running as {cell:?}")]
    AlreadyStarted {
        /// The child id.
        id: String,
        /// The running incarnation.
        cell: ActorCell,
    },
    /// The child's start failed (`on_start` returned an error or panicked, its name was
    /// taken, or its factory panicked).
    #[error("child {id:?} failed to start: {source}")]
    StartFailed {
        /// The child id.
        id: String,
        /// Why.
        source: SpawnError,
    },
    /// `child_ref::<M>` asked for a child whose message type is not `M`: checked against
    /// the running incarnation, or the child's spec while it does not run (the same type),
    /// so the answer does not depend on whether the child runs.
    #[error(
        "child {id:?} takes messages of type `{takes}`, not `{asked}`; \
         ask child_ref for the type it takes"
    )]
    WrongMessageType {
        /// The child id.
        id: String,
        /// The message type the child takes (`std::any::type_name`).
        takes: &'static str,
        /// The message type that was asked for.
        asked: &'static str,
    },
    /// The supervisor has stopped (or stopped before it answered).
    #[error("the supervisor is not running")]
    NotRunning,
    /// No answer within the timeout set with `SupervisorRef::with_timeout`.
    #[error("the supervisor did not answer within {0:?}")]
    Timeout(Duration),
}
