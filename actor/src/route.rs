//! Routes to remote nodes: how a send to a remote `ActorRef` reaches the network.
//!
//! A remote actor is a ractor proxy cell whose id is `ActorId::Remote { node_id, pid }`; here
//! `node_id` is a *route id*, naming one connection to one peer node. Sending with
//! [`tell`](crate::tell) / [`ask`](fn@crate::ask) (and so every macro-generated method) looks the
//! route up and hands it the serialised message **synchronously, in the sender's own task**.
//! That is what keeps Erlang's pairwise order: everything a sender sent is on the wire, in
//! order, before anything that happens after the send — including the sender's own exit,
//! whose DOWN is emitted later. (A plain `ActorRef::send_message` to a remote actor still
//! works: ractor serialises it into the proxy's mailbox and the proxy forwards it, in order
//! per sender, but without that guarantee relative to the sender's exit.)
//!
//! Why a process-wide table: ractor's send path gives nothing but the target's `ActorId`, so
//! the route must be found from the id alone. Route ids are unique in the process and each
//! names exactly one connection of one node, so several nodes in one process never see each
//! other's routes — node isolation holds (docs/ARCHITECTURE.md, section 2), the table only maps
//! ids.

use crate::id::IdMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use ractor::message::SerializedMessage;

use crate::ask::TellError;
use crate::id::NodeId;
use crate::remote_reply::Completion;

/// Where messages to one remote node's actors go. Implemented by the cluster for each live
/// connection.
pub trait Route: Send + Sync + 'static {
    /// The node this route leads to.
    fn node(&self) -> NodeId;

    /// Sends a serialised message (a tell, or an ask with its byte reply port) to the actor
    /// `pid` on that node. Must not block.
    fn send(&self, pid: u64, message: SerializedMessage) -> Result<(), TellError>;

    /// Sends an ask whose answer is handed to `completion` (run by the route when the answer
    /// arrives; dropped unrun if none comes). Must not block.
    fn ask(&self, pid: u64, args: Vec<u8>, completion: Completion) -> Result<(), TellError>;

    /// Sends a tell, waiting for room on the connection instead of failing with
    /// [`TellError::Overloaded`] (as tokio's `Sender::send().await`).
    fn send_waiting(&self, pid: u64, args: Vec<u8>) -> WaitingSend;

    /// The sending node, which exports the local actors whose refs a message to this route
    /// carries (see [`crate::wire_ref`]). `None`: such messages do not encode.
    fn refs(&self) -> Option<crate::wire_ref::ResolverId> {
        None
    }
}

/// The future of [`Route::send_waiting`].
pub type WaitingSend =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), TellError>> + Send + 'static>>;

type Table = RwLock<IdMap<Arc<dyn Route>>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| RwLock::new(IdMap::default()))
}

// Route ids start high so they never look like a small test node id in logs.
static NEXT_ROUTE: AtomicU64 = AtomicU64::new(1 << 32);

/// A registered route; unregistered when dropped.
#[derive(Debug)]
pub struct RouteRegistration {
    id: u64,
}

impl RouteRegistration {
    /// The route id (the `node_id` of proxy cells' `ActorId::Remote`).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for RouteRegistration {
    fn drop(&mut self) {
        table()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Registers a route; keep the registration as long as the route is live.
pub fn register(route: Arc<dyn Route>) -> RouteRegistration {
    let id = NEXT_ROUTE.fetch_add(1, Ordering::Relaxed);
    table()
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, route);
    RouteRegistration { id }
}

/// The route with this id, if registered.
pub fn lookup(id: u64) -> Option<Arc<dyn Route>> {
    table()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .cloned()
}
