//! A connection as a [`Route`]: serialised messages become lane frames, asks wait in a
//! pending table until their reply comes back (or the connection or the deadline goes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::RpcReplyPort;
use ractor::message::SerializedMessage;
use understudy_actor::route::Route;
use understudy_actor::{NodeId, TellError};

use crate::mesh::MAX_SETTING;
use crate::mesh::{PeerLink, SendError};
use crate::wire::{Delivery, ReplyOutcome};

/// Asks whose asker gave up are forgotten this long after their timeout.
const PENDING_SLACK: Duration = Duration::from_secs(1);

struct Pending {
    reply: RpcReplyPort<Vec<u8>>,
    forget_at: Instant,
}

/// Messages to one peer over one connection.
pub(crate) struct LinkRoute {
    pub(crate) link: Arc<PeerLink>,
    node: NodeId,
    next_call: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
}

fn to_tell_error(e: SendError) -> TellError {
    match e {
        SendError::Disconnected => TellError::MailboxClosed,
        SendError::Overloaded => TellError::Overloaded,
        _ => TellError::WrongActorType,
    }
}

impl LinkRoute {
    pub(crate) fn new(link: Arc<PeerLink>) -> Arc<Self> {
        let node = link.info().id;
        let route = Arc::new(LinkRoute {
            link,
            node,
            next_call: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
        });
        // Forget asks nobody waits for any more; stops when the route is dropped.
        let weak = Arc::downgrade(&route);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(route) = weak.upgrade() else { return };
                let now = Instant::now();
                route.pending().retain(|_, p| p.forget_at > now);
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
        match outcome {
            ReplyOutcome::Ok(bytes) => {
                let _ = p.reply.send(bytes);
            }
            // Dropping the port tells the asker the actor is gone.
            other => tracing::debug!(call, ?other, "remote ask failed"),
        }
    }

    /// Fails every pending ask (the connection is gone).
    pub(crate) fn fail_all(&self) {
        self.pending().clear();
    }
}

impl Route for LinkRoute {
    fn node(&self) -> NodeId {
        self.node
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
                let timeout = reply
                    .get_timeout()
                    .unwrap_or(understudy_actor::DEFAULT_ASK_TIMEOUT);
                let call = self.next_call.fetch_add(1, Ordering::Relaxed);
                // Forgotten a little after the asker gave up; an ask that waits longer than
                // any setting may is kept as long as that.
                let keep = timeout.min(MAX_SETTING) + PENDING_SLACK;
                self.pending().insert(
                    call,
                    Pending {
                        reply,
                        forget_at: Instant::now() + keep,
                    },
                );
                let delivery = Delivery::Ask {
                    to: pid,
                    call,
                    timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
                    variant,
                    args,
                };
                self.link.send(pid, &delivery).map_err(|e| {
                    self.pending().remove(&call);
                    to_tell_error(e)
                })
            }
            SerializedMessage::CallReply(..) => Err(TellError::WrongActorType),
        }
    }
}
