//! Tell and ask: sending to an actor with typed errors, and asks with a timeout.
//!
//! An ask is lazy, like every Rust future: nothing is sent until it is awaited. It waits
//! [`DEFAULT_ASK_TIMEOUT`] (5 s, as `gen_server:call/2`) unless given another with
//! [`Ask::timeout`], or none with [`Ask::untimed`]. Its errors say what happened to the
//! message: it could not be enqueued ([`AskError::MailboxClosed`]), it was enqueued but the
//! actor stopped or dropped the reply before answering ([`AskError::ActorStopped`]), or no
//! answer came in time ([`AskError::Timeout`]). Between the last two, the deadline decides:
//! a reply port that closes after it is a timeout, however late the ask is polled, so an ask
//! whose task was held up gets the error it would have got on time.
//!
//! The timeout costs little: the timer is armed only if the reply is not there at the first
//! poll, and timers are reused between asks (see `deadline.rs`); a timed local ask costs
//! about 12% more instructions than an untimed one (docs/BENCHMARKS.md). It gives up within
//! a millisecond after its deadline (tokio's timer resolution).

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ractor::concurrency::OneshotReceiver;
use ractor::{ActorRef, Message, MessagingErr, RpcReplyPort};
// The deadline's clock.
use tokio::time::Instant;

use crate::deadline::{Deadline, Timer};

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
    /// The actor is remote and the message does not fit in one frame (`mesh.max_frame`).
    /// Nothing was sent.
    #[error("the message is {size} bytes, more than the {max}-byte frame limit (mesh.max_frame)")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Sent by name, and no actor holds the name now (it is being restarted, or was never
    /// registered). Nothing was sent; an ask waits for a holder instead, up to its timeout.
    #[error("no actor holds {name:?} now; retry, or ask (an ask waits for a holder)")]
    NotRegistered {
        /// The name.
        name: String,
    },
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
    /// The message was enqueued, but no answer will come: before the ask's deadline, the
    /// actor stopped or dropped the reply port without answering (or, for a remote actor, its
    /// answer could not be sent back, e.g. it is larger than a frame, or the connection to its
    /// node was lost, which its monitors see as an exit with `noconnection`). Never a timeout:
    /// a port that closes after the deadline is [`AskError::Timeout`].
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
    /// The actor is remote and the message does not fit in one frame. Nothing was sent.
    #[error("the message is {size} bytes, more than the {max}-byte frame limit (mesh.max_frame)")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Asked by name, and no actor held the name within the timeout. Nothing was sent.
    #[error("no actor held {name:?} within the ask's timeout")]
    NotRegistered {
        /// The name.
        name: String,
    },
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
            TellError::TooLarge { size, max } => AskError::TooLarge { size, max },
            TellError::NotRegistered { name } => AskError::NotRegistered { name },
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
    // An ask's encoder hands its asker's side over instead of bridging it with a task.
    let (wire, completion) = crate::wire_ref::encoding(route.refs(), || {
        crate::remote_reply::sending(|| message.serialize())
    });
    let wire = wire.map_err(|_| TellError::WrongActorType)?;
    match (wire, completion) {
        (ractor::message::SerializedMessage::Cast { args, .. }, Some(completion)) => {
            route.ask(pid, args, completion)
        }
        (wire, _) => route.send(pid, wire),
    }
}

/// Sends `message` to `to`, waiting while the connection to a remote actor has no room,
/// instead of failing with [`TellError::Overloaded`] as [`tell`] does (as tokio's
/// `Sender::send().await` waits where `try_send` fails). To a local actor it is [`tell`].
///
/// ```
/// # use understudy_actor::{send, TellError};
/// # async fn f(actor: ractor::ActorRef<String>) -> Result<(), TellError> {
/// send(&actor, "hello".to_string()).await?;
/// # Ok(()) }
/// ```
pub async fn send<M: Message>(to: &ActorRef<M>, message: M) -> Result<(), TellError> {
    #[cfg(feature = "remote")]
    if let ractor::ActorId::Remote { node_id, pid } = to.get_id()
        && let Some(route) = crate::route::lookup(node_id)
    {
        if matches!(
            to.get_status(),
            ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped
        ) {
            return Err(TellError::MailboxClosed);
        }
        if !M::serializable() {
            return Err(TellError::WrongActorType);
        }
        return match crate::wire_ref::encoding(route.refs(), || message.serialize()) {
            Ok(ractor::message::SerializedMessage::Cast { args, .. }) => {
                route.send_waiting(pid, args).await
            }
            // An ask (a port inside) goes as a tell would; room is not waited for.
            Ok(wire) => route.send(pid, wire),
            Err(_) => Err(TellError::WrongActorType),
        };
    }
    tell(to, message)
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
        to: AskTo::Ref(to.clone()),
        make,
        timeout: Some(DEFAULT_ASK_TIMEOUT),
        _reply: PhantomData,
    }
}

/// Finds the actor a name-addressed send goes to, at the moment of sending.
pub trait Resolve<M: Message>: Send + Sync + 'static {
    /// The actor holding the name now ([`TellError::NotRegistered`] if none).
    fn now(&self) -> Result<ActorRef<M>, TellError>;

    /// Waits until an actor holds the name, at most `within` (`None`: as long as it takes).
    fn wait(
        &self,
        within: Option<Duration>,
    ) -> Pin<Box<dyn Future<Output = Result<ActorRef<M>, TellError>> + Send>>;
}

/// Builds an ask to whichever actor `to` resolves to when it is sent: if none holds the
/// name then, the ask waits for one (within its timeout) before sending.
pub fn ask_resolved<M, R, F>(to: std::sync::Arc<dyn Resolve<M>>, make: F) -> Ask<M, R, F>
where
    M: Message,
    F: FnOnce(RpcReplyPort<R>) -> M,
{
    Ask {
        to: AskTo::Resolve(to),
        make,
        timeout: Some(DEFAULT_ASK_TIMEOUT),
        _reply: PhantomData,
    }
}

/// Where an ask goes.
enum AskTo<M: Message> {
    Ref(ActorRef<M>),
    /// Resolved when sent.
    Resolve(std::sync::Arc<dyn Resolve<M>>),
}

/// What messages can be sent to: an [`ActorRef`], or a handle that resolves one at each send
/// (a name). The methods `#[messages]` generates work on every `Target`.
pub trait Target<M: Message> {
    /// Sends `message` without waiting ([`tell`]).
    fn tell_to(&self, message: M) -> Result<(), TellError>;

    /// Builds an ask ([`ask`]).
    fn ask_to<R, F>(&self, make: F) -> Ask<M, R, F>
    where
        F: FnOnce(RpcReplyPort<R>) -> M;
}

impl<M: Message> Target<M> for ActorRef<M> {
    #[inline]
    fn tell_to(&self, message: M) -> Result<(), TellError> {
        tell(self, message)
    }

    #[inline]
    fn ask_to<R, F>(&self, make: F) -> Ask<M, R, F>
    where
        F: FnOnce(RpcReplyPort<R>) -> M,
    {
        ask(self, make)
    }
}

/// A pending ask; await it (optionally after [`Ask::timeout`] or [`Ask::untimed`]).
#[must_use = "an ask does nothing until it is awaited"]
pub struct Ask<M: Message, R, F> {
    to: AskTo<M>,
    make: F,
    /// `None`: untimed.
    timeout: Option<Duration>,
    _reply: PhantomData<fn() -> R>,
}

impl<M: Message, R, F> Ask<M, R, F> {
    /// Waits at most `timeout` for the reply instead of [`DEFAULT_ASK_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Waits for the reply as long as it takes: no timer at all.
    ///
    /// For hot paths where the answer is known to come (the actor is local, alive and
    /// answers every such message): it saves the cost of arming a timer per ask. The ask
    /// still ends if the actor stops or drops the reply port ([`AskError::ActorStopped`]).
    ///
    /// **Warning:** an actor that is alive but never answers (stuck in a handler, waiting
    /// for the asker in a cycle, or holding the reply port) makes an untimed ask wait
    /// forever, and the asker with it. That is why asks are timed by default, as
    /// `gen_server:call/2` is; prefer [`timeout`](Self::timeout) unless a profile shows the
    /// timer matters.
    ///
    /// To a remote actor, an untimed ask likewise waits until the answer comes, the actor
    /// stops or drops the reply, or the connection to its node is lost.
    ///
    /// ```
    /// # use understudy_actor::{ask, AskError};
    /// # use ractor::RpcReplyPort;
    /// # enum Msg { Get(RpcReplyPort<u64>) }
    /// # #[cfg(feature = "remote")]
    /// # impl ractor::Message for Msg {}
    /// # async fn f(actor: ractor::ActorRef<Msg>) -> Result<(), AskError> {
    /// let n = ask(&actor, Msg::Get).untimed().await?;
    /// # let _: u64 = n; Ok(()) }
    /// ```
    pub fn untimed(mut self) -> Self {
        self.timeout = None;
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
        let port = match self.timeout {
            Some(timeout) => RpcReplyPort::from((tx, timeout)),
            None => RpcReplyPort::from(tx),
        };
        let message = (self.make)(port);
        let sent = match self.to {
            AskTo::Ref(to) => tell(&to, message),
            AskTo::Resolve(to) => match to.now() {
                Ok(actor) => tell(&actor, message),
                // No holder now: send once there is one, within the ask's own deadline.
                Err(TellError::NotRegistered { .. }) => {
                    let within = self.timeout;
                    return AskFuture {
                        state: Some(Ok(rx)),
                        deadline: self.timeout.map(Deadline::after),
                        timer: None,
                        sending: Some(Box::pin(async move {
                            let actor = to.wait(within).await?;
                            tell(&actor, message)
                        })),
                    };
                }
                Err(e) => Err(e),
            },
        };
        match sent {
            Ok(()) => AskFuture {
                state: Some(Ok(rx)),
                deadline: self.timeout.map(Deadline::after),
                timer: None,
                sending: None,
            },
            Err(e) => AskFuture {
                state: Some(Err(e.into())),
                deadline: None,
                timer: None,
                sending: None,
            },
        }
    }
}

/// A name-addressed ask's send, once a holder is found.
type Sending = Pin<Box<dyn Future<Output = Result<(), TellError>> + Send>>;

/// The future of an [`Ask`].
pub struct AskFuture<R> {
    // `Ok`: waiting for the reply; `Err`: failed before it was sent; `None`: done.
    state: Option<Result<OneshotReceiver<R>, AskError>>,
    deadline: Option<Deadline>,
    // Armed only once the reply is not there at the first poll.
    timer: Option<Timer>,
    // A name-addressed ask waiting for a holder before its message goes.
    sending: Option<Sending>,
}

impl<R> Future for AskFuture<R> {
    type Output = Result<R, AskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is Unpin (the timer is boxed).
        let this = self.get_mut();
        if let Some(sending) = &mut this.sending {
            match sending.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => this.sending = None,
                Poll::Ready(Err(e)) => {
                    this.sending = None;
                    this.state = None;
                    return Poll::Ready(Err(e.into()));
                }
                Poll::Pending => {}
            }
        }
        let rx = match &mut this.state {
            Some(Ok(rx)) => rx,
            Some(Err(_)) | None => {
                // Failed before sending, or polled again after completion.
                let failed = this.state.take().and_then(Result::err);
                return Poll::Ready(Err(failed.unwrap_or(AskError::ActorStopped)));
            }
        };
        if let Poll::Ready(reply) = Pin::new(rx).poll(cx) {
            this.state = None;
            return Poll::Ready(reply.map_err(|_dropped| match this.deadline {
                // Past the deadline the ask has timed out, whatever became of the port since:
                // an asker polled late must not see what an asker polled on time would not
                // (a remote ask's port is closed a little after its timeout by the node that
                // forgets it, with the actor still alive).
                Some(deadline) if Instant::now() >= deadline.at => {
                    AskError::Timeout(deadline.timeout)
                }
                _ => AskError::ActorStopped,
            }));
        }
        let Some(deadline) = this.deadline else {
            return Poll::Pending;
        };
        let timer = this.timer.get_or_insert_with(|| Timer::arm(deadline.at));
        match timer.poll(cx) {
            Poll::Ready(()) => {
                this.state = None;
                Poll::Ready(Err(AskError::Timeout(deadline.timeout)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
