//! Tell and ask: sending to an actor with typed errors, and asks with a timeout.
//!
//! An ask is lazy, like every Rust future: nothing is sent until it is awaited. It waits
//! [`DEFAULT_ASK_TIMEOUT`] (5 s, as `gen_server:call/2`) unless given another with
//! [`Ask::timeout`]. Its errors say what happened to the message: it could not be enqueued
//! ([`AskError::MailboxClosed`]), it was enqueued but the actor stopped or dropped the reply
//! before answering ([`AskError::ActorStopped`]), or no answer came in time
//! ([`AskError::Timeout`]).

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ractor::concurrency::OneshotReceiver;
use ractor::{ActorRef, Message, MessagingErr, RpcReplyPort};
use tokio::time::Timeout;

/// How long an ask waits for its answer unless told otherwise.
pub const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a tell failed. The message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TellError {
    /// The actor has stopped (or is stopping) and its mailbox no longer takes messages.
    #[error(
        "the actor's mailbox is closed: it has stopped; look it up again (by name) or restart it"
    )]
    MailboxClosed,
    /// The ref's message type does not match the actor, or the message could not be
    /// serialised for a remote actor.
    #[error(
        "the message does not fit this actor (wrong ActorRef type, or not serialisable for a remote actor)"
    )]
    WrongActorType,
    /// The actor is remote and the connection to its node is not keeping up (its send buffer
    /// is full). Nothing was sent; retry later or slow down.
    #[error("the remote node is not keeping up (send buffer full); retry later")]
    Overloaded,
}

/// Why an ask failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// No reply within the timeout. The actor may still process the message later.
    #[error(
        "no reply within {0:?}; the actor is busy or slow: raise the timeout with `.timeout(..)` or check the actor"
    )]
    Timeout(Duration),
    /// The message could not be enqueued: the actor has stopped.
    #[error(
        "the actor's mailbox is closed: it has stopped; look it up again (by name) or restart it"
    )]
    MailboxClosed,
    /// The message was enqueued, but the actor stopped (or dropped the reply port) before
    /// it answered.
    #[error("the actor stopped before it replied")]
    ActorStopped,
    /// The ref's message type does not match the actor, or the message could not be
    /// serialised for a remote actor.
    #[error(
        "the message does not fit this actor (wrong ActorRef type, or not serialisable for a remote actor)"
    )]
    WrongActorType,
    /// The actor is remote and the connection to its node is not keeping up. Nothing was sent.
    #[error("the remote node is not keeping up (send buffer full); retry later")]
    Overloaded,
}

impl<T> From<MessagingErr<T>> for TellError {
    fn from(e: MessagingErr<T>) -> Self {
        match e {
            MessagingErr::SendErr(_) | MessagingErr::ChannelClosed => TellError::MailboxClosed,
            MessagingErr::InvalidActorType => TellError::WrongActorType,
        }
    }
}

impl From<TellError> for AskError {
    fn from(e: TellError) -> Self {
        match e {
            TellError::MailboxClosed => AskError::MailboxClosed,
            TellError::WrongActorType => AskError::WrongActorType,
            TellError::Overloaded => AskError::Overloaded,
        }
    }
}

/// Sends `message` to `to` without waiting.
///
/// ```
/// # use understudy_actor::{tell, TellError};
/// # async fn f(actor: ractor::ActorRef<String>) -> Result<(), TellError> {
/// tell(&actor, "hello".to_string())?;
/// # Ok(()) }
/// ```
#[inline]
pub fn tell<M: Message>(to: &ActorRef<M>, message: M) -> Result<(), TellError> {
    // Without `remote` there are no remote refs: ractor makes proxies only with `cluster`.
    #[cfg(feature = "remote")]
    if let ractor::ActorId::Remote { node_id, pid } = to.get_id() {
        return tell_remote(to, node_id, pid, message);
    }
    to.send_message(message).map_err(TellError::from)
}

/// The remote half of [`tell`]: hand the serialised message to the route now, in the sender's
/// task (see [`crate::route`] for why).
#[cfg(feature = "remote")]
fn tell_remote<M: Message>(
    to: &ActorRef<M>,
    route: u64,
    pid: u64,
    message: M,
) -> Result<(), TellError> {
    if matches!(
        to.get_status(),
        ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped
    ) {
        return Err(TellError::MailboxClosed);
    }
    let Some(route) = crate::route::lookup(route) else {
        // Not one of ours (e.g. a ractor_cluster proxy): ractor's own path.
        return to.send_message(message).map_err(TellError::from);
    };
    if !M::serializable() {
        return Err(TellError::WrongActorType);
    }
    let wire = message.serialize().map_err(|_| TellError::WrongActorType)?;
    route.send(pid, wire)
}

/// Builds an ask: `make` wraps the reply port into the message. Await the result.
///
/// ```
/// # use understudy_actor::{ask, AskError};
/// # use ractor::RpcReplyPort;
/// # enum Msg { Get(RpcReplyPort<u64>) }
/// # #[cfg(feature = "remote")]
/// # impl ractor::Message for Msg {}
/// # async fn f(actor: ractor::ActorRef<Msg>) -> Result<(), AskError> {
/// let n = ask(&actor, Msg::Get).timeout(std::time::Duration::from_millis(100)).await?;
/// # let _: u64 = n; Ok(()) }
/// ```
#[inline]
pub fn ask<M, R, F>(to: &ActorRef<M>, make: F) -> Ask<M, R, F>
where
    M: Message,
    F: FnOnce(RpcReplyPort<R>) -> M,
{
    Ask {
        to: to.clone(),
        make,
        timeout: DEFAULT_ASK_TIMEOUT,
        _reply: PhantomData,
    }
}

/// A pending ask; await it (optionally after [`Ask::timeout`]).
#[must_use = "an ask does nothing until it is awaited"]
pub struct Ask<M: Message, R, F> {
    to: ActorRef<M>,
    make: F,
    timeout: Duration,
    _reply: PhantomData<fn() -> R>,
}

impl<M: Message, R, F> Ask<M, R, F> {
    /// Waits at most `timeout` for the reply instead of [`DEFAULT_ASK_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl<M, R, F> IntoFuture for Ask<M, R, F>
where
    M: Message,
    R: Send + 'static,
    F: FnOnce(RpcReplyPort<R>) -> M,
{
    type Output = Result<R, AskError>;
    type IntoFuture = AskFuture<R>;

    fn into_future(self) -> AskFuture<R> {
        let (tx, rx) = ractor::concurrency::oneshot();
        let port = RpcReplyPort::from((tx, self.timeout));
        match tell(&self.to, (self.make)(port)) {
            Ok(()) => AskFuture {
                failed: None,
                wait: Some(tokio::time::timeout(self.timeout, rx)),
                timeout: self.timeout,
            },
            Err(e) => AskFuture {
                failed: Some(e.into()),
                wait: None,
                timeout: self.timeout,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of an [`Ask`].
    pub struct AskFuture<R> {
        failed: Option<AskError>,
        #[pin]
        wait: Option<Timeout<OneshotReceiver<R>>>,
        timeout: Duration,
    }
}

impl<R> Future for AskFuture<R> {
    type Output = Result<R, AskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(e) = this.failed.take() {
            return Poll::Ready(Err(e));
        }
        match this.wait.as_pin_mut() {
            Some(wait) => match wait.poll(cx) {
                Poll::Ready(Ok(Ok(reply))) => Poll::Ready(Ok(reply)),
                Poll::Ready(Ok(Err(_dropped))) => Poll::Ready(Err(AskError::ActorStopped)),
                Poll::Ready(Err(_elapsed)) => Poll::Ready(Err(AskError::Timeout(*this.timeout))),
                Poll::Pending => Poll::Pending,
            },
            // Polled again after completion: the reply was already taken.
            None => Poll::Ready(Err(AskError::ActorStopped)),
        }
    }
}
