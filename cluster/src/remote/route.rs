//! A connection as a [`Route`]: serialised messages become lane frames, asks wait in a
//! pending table until their reply comes back (or the connection or the deadline goes).
//!
//! An ask sent with `tell`/`ask` waits as a [`Completion`], which the signal reader runs with
//! the answer's bytes: the asker's typed port is filled right there, with no task between the
//! network and the asker. An ask that came through a proxy's mailbox waits as a byte port.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::RpcReplyPort;
use ractor::message::SerializedMessage;
use understudy_actor::remote_reply::Completion;
use understudy_actor::route::{Route, WaitingSend};
use understudy_actor::wire_ref::ResolverId;
use understudy_actor::{NodeId, TellError};

// tokio's clock, as the asker's deadline is: an ask is forgotten only after its asker's
// deadline by the asker's own clock (so a forgotten ask reads as a timeout).
use tokio::time::Instant;

use crate::mesh::{PeerLink, SendError};
use crate::wire::{Delivery, ReplyOutcome, WireError};

/// Asks whose asker gave up are forgotten this long after their timeout.
const PENDING_SLACK: Duration = Duration::from_secs(1);

/// Who waits for an answer.
enum Asker {
    Direct(Completion),
    Port(RpcReplyPort<Vec<u8>>),
}

impl Asker {
    /// The asker gave up (its future or port is gone): nobody waits for the answer.
    fn is_closed(&self) -> bool {
        match self {
            Asker::Direct(completion) => completion.is_closed(),
            Asker::Port(port) => port.is_closed(),
        }
    }
}

struct Pending {
    asker: Asker,
    /// `None`: an untimed ask, kept until it is answered or the connection goes.
    forget_at: Option<Instant>,
}

/// Messages to one peer over one connection.
pub(crate) struct LinkRoute {
    pub(crate) link: Arc<PeerLink>,
    node: NodeId,
    /// The node this route belongs to, which exports the local actors whose refs go out.
    refs: Option<ResolverId>,
    next_call: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
}

fn to_tell_error(e: SendError) -> TellError {
    match e {
        SendError::Disconnected => TellError::MailboxClosed,
        SendError::Overloaded => TellError::Overloaded,
        SendError::Frame(WireError::TooLarge { len, max }) => {
            TellError::TooLarge { size: len, max }
        }
        _ => TellError::WrongActorType,
    }
}

impl LinkRoute {
    pub(crate) fn new(link: Arc<PeerLink>, refs: Option<ResolverId>) -> Arc<Self> {
        let node = link.info().id;
        let route = Arc::new(LinkRoute {
            link,
            node,
            refs,
            next_call: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
        });
        // Forget asks nobody waits for any more (past their deadline, or whose asker gave up,
        // which keeps untimed asks to a peer that never answers from piling up); stops when
        // the route is dropped. Forgetting closes the asker's port past its deadline, which
        // it reads as a timeout.
        let weak = Arc::downgrade(&route);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(route) = weak.upgrade() else { return };
                let now = Instant::now();
                route
                    .pending()
                    .retain(|_, p| p.forget_at.is_none_or(|at| at > now) && !p.asker.is_closed());
            }
        });
        route
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands a reply to its asker (a late one, whose asker gave up, is dropped).
    pub(crate) fn complete(&self, call: u64, outcome: ReplyOutcome) {
        let Some(p) = self.pending().remove(&call) else {
            return;
        };
        match (outcome, p.asker) {
            (ReplyOutcome::Ok(bytes), Asker::Direct(completion)) => completion.complete(bytes),
            (ReplyOutcome::Ok(bytes), Asker::Port(port)) => {
                let _ = port.send(bytes);
            }
            // Dropping the asker's side tells it the actor gave no answer.
            (other, _) => tracing::debug!(call, ?other, "remote ask failed"),
        }
    }

    /// How many asks wait for their answer.
    pub(crate) fn pending_asks(&self) -> usize {
        self.pending().len()
    }

    /// Fails every pending ask (the connection is gone).
    pub(crate) fn fail_all(&self) {
        self.pending().clear();
    }

    /// Sends an ask for `asker`, who waits at most `timeout`.
    fn send_ask(
        &self,
        pid: u64,
        variant: String,
        args: Vec<u8>,
        asker: Asker,
        timeout: Option<Duration>,
    ) -> Result<(), TellError> {
        // Forgotten a little after the asker gives up, never before (the asker would read its
        // port closing as the actor's stop); an untimed one, or one whose deadline is past
        // what the clock can name, is kept until it is answered.
        let forget_at =
            timeout.and_then(|t| Instant::now().checked_add(t.checked_add(PENDING_SLACK)?));
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        self.pending().insert(call, Pending { asker, forget_at });
        let delivery = Delivery::Ask {
            to: pid,
            call,
            timeout_ms: timeout.map_or(u32::MAX, |t| {
                u32::try_from(t.as_millis()).unwrap_or(u32::MAX)
            }),
            variant,
            args,
        };
        self.link.send(pid, &delivery).map_err(|e| {
            self.pending().remove(&call);
            to_tell_error(e)
        })
    }
}

impl Route for LinkRoute {
    fn node(&self) -> NodeId {
        self.node
    }

    fn refs(&self) -> Option<ResolverId> {
        self.refs
    }

    fn send(&self, pid: u64, message: SerializedMessage) -> Result<(), TellError> {
        match message {
            SerializedMessage::Cast { variant, args, .. } => self
                .link
                .send(
                    pid,
                    &Delivery::Tell {
                        to: pid,
                        variant,
                        args,
                    },
                )
                .map_err(to_tell_error),
            SerializedMessage::Call {
                variant,
                args,
                reply,
                ..
            } => {
                let timeout = reply.get_timeout();
                self.send_ask(pid, variant, args, Asker::Port(reply), timeout)
            }
            SerializedMessage::CallReply(..) => Err(TellError::WrongActorType),
        }
    }

    fn ask(&self, pid: u64, args: Vec<u8>, completion: Completion) -> Result<(), TellError> {
        let timeout = completion.timeout();
        self.send_ask(pid, String::new(), args, Asker::Direct(completion), timeout)
    }

    fn send_waiting(&self, pid: u64, args: Vec<u8>) -> WaitingSend {
        let link = self.link.clone();
        Box::pin(async move {
            let tell = Delivery::Tell {
                to: pid,
                variant: String::new(),
                args,
            };
            link.send_waiting(pid, &tell).await.map_err(to_tell_error)
        })
    }
}
