//! The extension API: services that run on every node of a cluster.
//!
//! understudy's registry, process groups and locks are extensions, and so can an
//! application's own cluster services be. An [`Extension`] is registered on the node builder
//! (`Node::builder(..).extension(X)`) and started with the node. Through its
//! [`ExtensionContext`] it gets:
//!
//! - **its own channel** on every peer's control stream, by service name: one-way
//!   [`notify`](ExtensionContext::notify) / [`broadcast`](ExtensionContext::broadcast), and
//!   [`request`](ExtensionContext::request) with a response and a timeout; what peers send it
//!   arrives in its [`ExtensionInbox`], in per-peer send order;
//! - **membership**: [`Node::subscribe_with_snapshot`](crate::node::Node::subscribe_with_snapshot) on the context's node (joins, leaves with
//!   `Left`/`Failed`, updates), so it can react to nodes coming and going;
//! - **the node's actor context**: the node derefs to its actor runtime — spawn actors,
//!   export them, resolve addresses, link and monitor across nodes.
//!
//! Control traffic is reliable and ordered per peer, but a request to a node that goes away
//! fails (its connection's pending requests are dropped), and nothing is retried for you.
//!
//! ```
//! use understudy_cluster::extension::{Extension, ExtensionContext, ExtensionMessage, Starting};
//!
//! /// Answers every request with the same bytes, upper-cased.
//! struct Shout;
//!
//! impl Extension for Shout {
//!     fn name(&self) -> &'static str {
//!         "shout"
//!     }
//!
//!     fn start(&self, ctx: ExtensionContext) -> Starting {
//!         Box::pin(async move {
//!             let mut inbox = ctx.take_inbox().ok_or("the inbox was taken already")?;
//!             tokio::spawn(async move {
//!                 while let Some(message) = inbox.recv().await {
//!                     if let ExtensionMessage::Request { body, reply, .. } = message {
//!                         reply.respond(Ok(body.to_ascii_uppercase()));
//!                     }
//!                 }
//!             });
//!             Ok(())
//!         })
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};

use crate::identity::NodeName;
use crate::mesh::{PeerLink, SendError};
use crate::node::{Inner, Node};
use crate::wire::{Control, ExtensionBody};
use understudy_actor::NodeId;

/// A service that runs on every node (registry, process groups, locks, or your own).
pub trait Extension: Send + Sync + 'static {
    /// The service's name: its channel on the control stream. The same on every node, and
    /// unique among a node's extensions.
    fn name(&self) -> &'static str;

    /// Starts the service. Called once, inside the node's tokio runtime, after the node is
    /// up; spawn the tasks the service needs and keep the context. The node's `start`
    /// awaits the returned future, so the service is ready when the node is; an `Err`
    /// (what went wrong) fails the node's start.
    fn start(&self, ctx: ExtensionContext) -> Starting;
}

/// What [`Extension::start`] returns: the service's start-up, awaited by the node's start.
pub type Starting =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'static>>;

/// Why an extension call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    /// No connection to that node.
    #[error("not connected to {0}")]
    NotConnected(String),
    /// The frame could not be sent (connection overloaded or closing).
    #[error("could not send: {0}")]
    Send(#[from] SendError),
    /// No answer in time.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The connection went away before the answer came.
    #[error("the connection closed before the response arrived")]
    Disconnected,
    /// The peer's service answered with an error (or has no such service).
    #[error("the peer refused: {0}")]
    Refused(String),
    /// The node is shut down.
    #[error("the node is shut down")]
    NodeGone,
}

/// Something a peer's instance of this service sent, or a connection coming or going.
///
/// Per peer, everything arrives in order: `PeerUp`, then what the peer sent on that
/// connection, then `PeerDown` when the connection ends (and `PeerUp` again on the next).
#[derive(Debug)]
#[non_exhaustive]
pub enum ExtensionMessage {
    /// A connection to a peer is up (whether or not the peer runs this service).
    PeerUp {
        /// The peer.
        node: NodeName,
        /// Its id.
        id: NodeId,
    },
    /// The connection to a peer ended (the node failed, left, or the link broke); a
    /// `PeerUp` follows if it comes back.
    PeerDown {
        /// The peer.
        node: NodeName,
        /// Its id.
        id: NodeId,
    },
    /// A one-way notice.
    Notice {
        /// The sending node.
        from: NodeName,
        /// Its bytes.
        body: Vec<u8>,
    },
    /// A request: answer it with `reply` (dropping it answers with an error).
    Request {
        /// The sending node.
        from: NodeName,
        /// Its bytes.
        body: Vec<u8>,
        /// Where the answer goes.
        reply: Responder,
    },
}

/// The way back for one request.
#[derive(Debug)]
pub struct Responder {
    link: Weak<PeerLink>,
    service: String,
    id: u64,
    answered: bool,
}

impl Responder {
    /// Sends the answer (`Err` is delivered to the requester as [`ExtensionError::Refused`]).
    pub fn respond(mut self, result: Result<Vec<u8>, String>) {
        self.answered = true;
        self.send(result);
    }

    fn send(&self, result: Result<Vec<u8>, String>) {
        if let Some(link) = self.link.upgrade() {
            let body = ExtensionBody::Response {
                id: self.id,
                result: result.map(ByteBuf::from),
            };
            let _ = link.send_control(&Control::Extension {
                service: self.service.clone(),
                body,
            });
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            self.send(Err("the service dropped the request unanswered".into()));
        }
    }
}

/// What peers sent to this service.
#[derive(Debug)]
pub struct ExtensionInbox {
    rx: mpsc::UnboundedReceiver<ExtensionMessage>,
}

impl ExtensionInbox {
    /// The next message; `None` once the node is gone.
    pub async fn recv(&mut self) -> Option<ExtensionMessage> {
        self.rx.recv().await
    }
}

/// A service's handle on its node.
#[derive(Clone)]
pub struct ExtensionContext {
    node: Weak<Inner>,
    service: &'static str,
    inbox: Arc<Mutex<Option<ExtensionInbox>>>,
}

impl std::fmt::Debug for ExtensionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionContext")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl ExtensionContext {
    /// The node (runtime, membership, remote actors); `None` once it is gone.
    pub fn node(&self) -> Option<Node> {
        self.node.upgrade().map(Node::from_inner)
    }

    /// The service's name.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Takes the inbox (once; later calls get `None`).
    pub fn take_inbox(&self) -> Option<ExtensionInbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn link(&self, to: &NodeName) -> Result<(Arc<Inner>, Arc<PeerLink>), ExtensionError> {
        let inner = self.node.upgrade().ok_or(ExtensionError::NodeGone)?;
        let link = inner
            .mesh
            .link(to)
            .ok_or_else(|| ExtensionError::NotConnected(to.to_string()))?;
        Ok((inner, link))
    }

    /// Sends a one-way notice to this service on `to`.
    pub fn notify(&self, to: &NodeName, body: Vec<u8>) -> Result<(), ExtensionError> {
        let (_, link) = self.link(to)?;
        link.send_control(&Control::Extension {
            service: self.service.to_owned(),
            body: crate::wire::ExtensionBody::Notice(body),
        })?;
        Ok(())
    }

    /// Sends a notice to this service on every connected node; returns how many it went to.
    pub fn broadcast(&self, body: Vec<u8>) -> usize {
        let Some(inner) = self.node.upgrade() else {
            return 0;
        };
        let frame = Control::Extension {
            service: self.service.to_owned(),
            body: crate::wire::ExtensionBody::Notice(body),
        };
        inner
            .mesh
            .links()
            .iter()
            .filter(|l| l.send_control(&frame).is_ok())
            .count()
    }

    /// Asks this service on `to`, waiting at most `timeout` for the answer.
    pub async fn request(
        &self,
        to: &NodeName,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ExtensionError> {
        let (inner, link) = self.link(to)?;
        let id = inner
            .extensions
            .next_request
            .fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let key = (link.serial(), id);
        inner.extensions.pending().insert(key, tx);
        let sent = link.send_control(&Control::Extension {
            service: self.service.to_owned(),
            body: ExtensionBody::Request { id, body },
        });
        if let Err(e) = sent {
            inner.extensions.pending().remove(&key);
            return Err(e.into());
        }
        drop(inner);
        let outcome = tokio::time::timeout(timeout, rx).await;
        if let Some(inner) = self.node.upgrade() {
            inner.extensions.pending().remove(&key);
        }
        match outcome {
            Ok(Ok(Ok(bytes))) => Ok(bytes),
            Ok(Ok(Err(refused))) => Err(ExtensionError::Refused(refused)),
            Ok(Err(_)) => Err(ExtensionError::Disconnected),
            Err(_) => Err(ExtensionError::Timeout(timeout)),
        }
    }
}

type Pending = HashMap<(u64, u64), oneshot::Sender<Result<Vec<u8>, String>>>;

/// A node's extensions: their inboxes and the requests waiting for answers.
#[derive(Default)]
pub(crate) struct Extensions {
    inboxes: Mutex<HashMap<&'static str, mpsc::UnboundedSender<ExtensionMessage>>>,
    pending: Mutex<Pending>,
    next_request: AtomicU64,
}

impl Extensions {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a service and makes its context.
    pub(crate) fn context(&self, node: Weak<Inner>, service: &'static str) -> ExtensionContext {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(service, tx);
        ExtensionContext {
            node,
            service,
            inbox: Arc::new(Mutex::new(Some(ExtensionInbox { rx }))),
        }
    }

    /// Routes an extension frame from a peer.
    pub(crate) fn inbound(&self, link: &Arc<PeerLink>, service: String, body: ExtensionBody) {
        match body {
            ExtensionBody::Response { id, result } => {
                if let Some(tx) = self.pending().remove(&(link.serial(), id)) {
                    let _ = tx.send(result.map(ByteBuf::into_vec));
                }
            }
            ExtensionBody::Notice(body) => {
                if let Some(tx) = self.inbox(&service) {
                    let _ = tx.send(ExtensionMessage::Notice {
                        from: link.info().name.clone(),
                        body,
                    });
                } else {
                    tracing::debug!(peer = %link.info().name, service, "notice for a service this node does not run");
                }
            }
            ExtensionBody::Request { id, body } => {
                let reply = Responder {
                    link: Arc::downgrade(link),
                    service: service.clone(),
                    id,
                    answered: false,
                };
                match self.inbox(&service) {
                    Some(tx) => {
                        let _ = tx.send(ExtensionMessage::Request {
                            from: link.info().name.clone(),
                            body,
                            reply,
                        });
                    }
                    None => reply.respond(Err(format!("this node runs no service {service:?}"))),
                }
            }
        }
    }

    fn inbox(&self, service: &str) -> Option<mpsc::UnboundedSender<ExtensionMessage>> {
        self.inboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(service)
            .cloned()
    }

    /// A connection is up: every service hears of it.
    pub(crate) fn peer_up(&self, link: &PeerLink) {
        let info = link.info();
        self.tell_all(|| ExtensionMessage::PeerUp {
            node: info.name.clone(),
            id: info.id,
        });
    }

    /// A connection ended: its pending requests fail at once, and every service hears of it.
    pub(crate) fn peer_down(&self, link: &PeerLink) {
        self.pending()
            .retain(|(serial, _), _| *serial != link.serial());
        let info = link.info();
        self.tell_all(|| ExtensionMessage::PeerDown {
            node: info.name.clone(),
            id: info.id,
        });
    }

    fn tell_all(&self, message: impl Fn() -> ExtensionMessage) {
        let inboxes = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
        for tx in inboxes.values() {
            let _ = tx.send(message());
        }
    }
}
