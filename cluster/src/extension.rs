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
//! **Backpressure.** What a peer sends waits in the inbox until the service takes it; each
//! peer may have at most [`ExtensionConfig::inbox_budget`] bytes waiting there (all services
//! together, whichever of its connections it came on). Past that its control stream is not
//! read until the services catch up, so the peer's `notify`/`broadcast`/`request` fail with
//! [`Overloaded`](crate::mesh::SendError::Overloaded) instead of this node's memory
//! filling up. Connection events (`PeerUp`/`PeerDown`) are never held back or dropped.
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

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::identity::NodeName;
use crate::mesh::{Admit, PeerLink, SendError};
use crate::node::{Inner, Node};
use crate::wire::{Control, ExtensionBody, Signal};
use understudy_actor::NodeId;

/// A service that runs on every node (registry, process groups, locks, or your own).
pub trait Extension: Send + Sync + 'static {
    /// The service's name: its channel on the control stream. The same on every node, and
    /// unique among a node's extensions.
    fn name(&self) -> &'static str;

    /// Starts the service. Called once, inside the node's tokio runtime, after the node is
    /// up; spawn the tasks the service needs and keep the context. The node's `start`
    /// awaits the returned future, so the service is ready when the node is; an `Err`
    /// (what went wrong) fails the node's start, and the node is stopped again.
    fn start(&self, ctx: ExtensionContext) -> Starting;

    /// The node is leaving gracefully ([`Node::leave`](crate::node::Node::leave)): hand work
    /// over while the connections are still up (the registry hands its Raft leadership to
    /// another voter). Awaited before the goodbye, for at most [`LEAVING_LIMIT`]. Does
    /// nothing by default.
    fn leaving(&self) -> Leaving {
        Box::pin(std::future::ready(()))
    }
}

/// What [`Extension::leaving`] returns.
pub type Leaving = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// The longest a node's `leave` waits for its extensions' [`Extension::leaving`].
pub const LEAVING_LIMIT: Duration = Duration::from_secs(5);

/// Why an extension could not start (any error; a `String` or `&str` converts with `?`).
pub type ExtensionStartError = Box<dyn std::error::Error + Send + Sync>;

/// What [`Extension::start`] returns: the service's start-up, awaited by the node's start.
pub type Starting = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), ExtensionStartError>> + Send + 'static>,
>;

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
            // On the signal stream: never behind this peer's paused control stream, never
            // refused for lack of room (the connection fails instead, and the requester hears
            // `Disconnected`). An answer too large for a frame becomes an error answer.
            let response = |result: Result<Vec<u8>, String>| Signal::ExtensionResponse {
                service: self.service.clone(),
                id: self.id,
                result: result.map(ByteBuf::from),
            };
            if let Err(SendError::Frame(e)) = link.send_signal(&response(result)) {
                let _ = link.send_signal(&response(Err(format!("the response does not fit: {e}"))));
            }
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

/// How much extension traffic a peer may make this node hold.
///
/// ```
/// use understudy_cluster::extension::ExtensionConfig;
/// let cfg: ExtensionConfig = toml::from_str("inbox_budget = 1048576")?;
/// assert_eq!(cfg.inbox_budget, 1 << 20);
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtensionConfig {
    /// Bytes of notices and requests from one connection that may wait in services'
    /// inboxes (each counts its body plus a fixed overhead). Past it the connection's control
    /// stream is not read until the services catch up.
    pub inbox_budget: usize,
}

impl Default for ExtensionConfig {
    fn default() -> Self {
        ExtensionConfig {
            inbox_budget: 8 << 20,
        }
    }
}

impl ExtensionConfig {
    /// Checks the values, saying what to change.
    pub fn validate(&self) -> Result<(), InvalidExtensionConfig> {
        if !(64 * 1024..=1 << 30).contains(&self.inbox_budget) {
            return Err(InvalidExtensionConfig(
                "inbox_budget must be between 64 KiB and 1 GiB".into(),
            ));
        }
        Ok(())
    }
}

/// An extension configuration that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid extension configuration: {0}")]
pub struct InvalidExtensionConfig(pub String);

/// Bytes an inbox message costs besides its body.
const MESSAGE_OVERHEAD: usize = 128;

/// The bytes one connection has waiting in inboxes.
#[derive(Debug)]
struct Budget {
    used: Mutex<usize>,
    limit: usize,
    freed: Notify,
}

impl Budget {
    fn used(&self) -> std::sync::MutexGuard<'_, usize> {
        self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_over(&self) -> bool {
        *self.used() > self.limit
    }

    async fn below_limit(&self) {
        loop {
            let freed = self.freed.notified();
            if !self.is_over() {
                return;
            }
            freed.await;
        }
    }
}

/// A message's share of its connection's budget, given back when the service takes it.
#[derive(Debug)]
struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut used = self.budget.used();
        let was_over = *used > self.budget.limit;
        *used -= self.bytes;
        let over = *used > self.budget.limit;
        drop(used);
        if was_over && !over {
            self.budget.freed.notify_waiters();
        }
    }
}

#[derive(Debug)]
struct Queued {
    message: ExtensionMessage,
    _charge: Option<Charge>,
}

/// What peers sent to this service.
#[derive(Debug)]
pub struct ExtensionInbox {
    rx: mpsc::UnboundedReceiver<Queued>,
}

impl ExtensionInbox {
    /// The next message; `None` once the node is gone.
    pub async fn recv(&mut self) -> Option<ExtensionMessage> {
        self.rx.recv().await.map(|q| q.message)
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

/// A node's extensions: their inboxes, each connection's inbox budget, and the requests
/// waiting for answers.
pub(crate) struct Extensions {
    inboxes: Mutex<HashMap<&'static str, mpsc::UnboundedSender<Queued>>>,
    /// Per peer (kept across its connections while it has notices waiting).
    budgets: Mutex<HashMap<NodeId, Arc<Budget>>>,
    config: ExtensionConfig,
    pending: Mutex<Pending>,
    next_request: AtomicU64,
}

impl Extensions {
    pub(crate) fn new(config: ExtensionConfig) -> Self {
        Extensions {
            inboxes: Mutex::new(HashMap::new()),
            budgets: Mutex::new(HashMap::new()),
            config,
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
        }
    }

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

    /// Routes an extension frame from a peer. Says to wait before the next frame while the
    /// connection's inbox budget is spent.
    pub(crate) fn inbound(
        &self,
        link: &Arc<PeerLink>,
        service: String,
        body: ExtensionBody,
    ) -> Admit {
        let (message, size, tx) = match body {
            ExtensionBody::Notice(body) => {
                let Some(tx) = self.inbox(&service) else {
                    tracing::debug!(peer = %link.info().name, service, "notice for a service this node does not run");
                    return Admit::Next;
                };
                let size = body.len();
                let message = ExtensionMessage::Notice {
                    from: link.info().name.clone(),
                    body,
                };
                (message, size, tx)
            }
            ExtensionBody::Request { id, body } => {
                let reply = Responder {
                    link: Arc::downgrade(link),
                    service: service.clone(),
                    id,
                    answered: false,
                };
                let Some(tx) = self.inbox(&service) else {
                    reply.respond(Err(format!("this node runs no service {service:?}")));
                    return Admit::Next;
                };
                let size = body.len();
                let message = ExtensionMessage::Request {
                    from: link.info().name.clone(),
                    body,
                    reply,
                };
                (message, size, tx)
            }
        };
        let budget = self.budget(link.info().id);
        let bytes = size + MESSAGE_OVERHEAD;
        *budget.used() += bytes;
        let charge = Charge {
            budget: budget.clone(),
            bytes,
        };
        // A closed inbox (its service ended) drops the message, and with it the charge.
        let _ = tx.send(Queued {
            message,
            _charge: Some(charge),
        });
        if budget.is_over() {
            Admit::After(Box::pin(async move { budget.below_limit().await }))
        } else {
            Admit::Next
        }
    }

    /// The answer to one of this node's requests arrived.
    pub(crate) fn response(
        &self,
        link: &PeerLink,
        id: u64,
        result: Result<serde_bytes::ByteBuf, String>,
    ) {
        if let Some(tx) = self.pending().remove(&(link.serial(), id)) {
            let _ = tx.send(result.map(ByteBuf::into_vec));
        }
    }

    fn budget(&self, peer: NodeId) -> Arc<Budget> {
        self.budgets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(peer)
            .or_insert_with(|| {
                Arc::new(Budget {
                    used: Mutex::new(0),
                    limit: self.config.inbox_budget,
                    freed: Notify::new(),
                })
            })
            .clone()
    }

    fn inbox(&self, service: &str) -> Option<mpsc::UnboundedSender<Queued>> {
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

    /// A connection ended (after its last frame): its pending requests fail at once, and
    /// every service hears of it.
    pub(crate) fn peer_down(&self, link: &PeerLink) {
        self.pending()
            .retain(|(serial, _), _| *serial != link.serial());
        // What an old connection left in the inboxes still counts against the next one.
        self.budgets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|peer, budget| *peer != link.info().id || *budget.used() > 0);
        let info = link.info();
        self.tell_all(|| ExtensionMessage::PeerDown {
            node: info.name.clone(),
            id: info.id,
        });
    }

    fn tell_all(&self, message: impl Fn() -> ExtensionMessage) {
        let inboxes = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
        for tx in inboxes.values() {
            let _ = tx.send(Queued {
                message: message(),
                _charge: None,
            });
        }
    }
}
