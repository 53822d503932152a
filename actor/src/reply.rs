//! Where an ask's answer goes: the `reply` field of every ask in a `#[messages]` enum.
//!
//! For an asker on this node it is ractor's one-shot [`RpcReplyPort`]. For an asker on
//! another node (feature `remote`) it is that asker's connection: [`Reply::send`] encodes the
//! answer and queues it for the network right there, in the answering actor's own task, with
//! no task in between. Either way, dropping a `Reply` without sending tells the asker that
//! the actor gave no answer ([`AskError::ActorStopped`](crate::AskError::ActorStopped), or
//! [`AskError::Timeout`](crate::AskError::Timeout) once the ask's deadline has passed).

use ractor::RpcReplyPort;

#[cfg(feature = "remote")]
use crate::remote_reply::RemoteReply;

/// The way back to an asker. Built from a ractor [`RpcReplyPort`] with `From`, so a
/// hand-written ask looks as in ractor:
///
/// ```
/// use understudy_actor::{ask, Reply};
/// # enum Msg { Get(Reply<u64>) }
/// # #[cfg(feature = "remote")]
/// # impl ractor::Message for Msg {}
/// # async fn f(actor: ractor::ActorRef<Msg>) -> Result<(), understudy_actor::AskError> {
/// let n = ask(&actor, |port| Msg::Get(port.into())).await?;
/// # let _: u64 = n; Ok(()) }
/// ```
pub struct Reply<R> {
    to: To<R>,
}

enum To<R> {
    Local(RpcReplyPort<R>),
    #[cfg(feature = "remote")]
    Remote(RemoteReply<R>),
}

/// The asker is gone (it gave up, or its connection did): the answer was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the asker is gone; the answer was not delivered")]
pub struct AskerGone;

impl<R> Reply<R> {
    /// Sends the answer.
    pub fn send(self, value: R) -> Result<(), AskerGone> {
        match self.to {
            To::Local(port) => port.send(value).map_err(|_| AskerGone),
            #[cfg(feature = "remote")]
            To::Remote(remote) => remote.send(value),
        }
    }

    /// Whether the asker is known to be gone already (then the answer need not be computed).
    pub fn is_closed(&self) -> bool {
        match &self.to {
            To::Local(port) => port.is_closed(),
            #[cfg(feature = "remote")]
            To::Remote(remote) => remote.is_closed(),
        }
    }

    #[cfg(feature = "remote")]
    pub(crate) fn remote(remote: RemoteReply<R>) -> Self {
        Reply {
            to: To::Remote(remote),
        }
    }

    /// The port (an asker here) or the connection (an asker elsewhere).
    #[cfg(feature = "remote")]
    pub(crate) fn into_target(self) -> Result<RpcReplyPort<R>, RemoteReply<R>> {
        match self.to {
            To::Local(port) => Ok(port),
            To::Remote(remote) => Err(remote),
        }
    }
}

impl<R> From<RpcReplyPort<R>> for Reply<R> {
    fn from(port: RpcReplyPort<R>) -> Self {
        Reply {
            to: To::Local(port),
        }
    }
}

impl<R> std::fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.to {
            To::Local(_) => f.write_str("Reply(local)"),
            #[cfg(feature = "remote")]
            To::Remote(r) => write!(f, "Reply(remote call {})", r.call()),
        }
    }
}
