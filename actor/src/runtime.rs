//! The per-node runtime: the value that owns everything ractor would otherwise keep in
//! process statics.
//!
//! A [`Runtime`] is one node's actor system: its [`NodeId`], its Local name table and its
//! exported-actor table. Two runtimes in one process share nothing, so a test can run a
//! five-node cluster in one `cargo test`. Actors are never given a ractor name (ractor's
//! named registry is process-global); names live here instead. The cluster's `Node` wraps
//! a `Runtime`.

use std::fmt;

use std::any::Any;
#[cfg(feature = "remote")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

#[cfg(feature = "remote")]
use ractor::message::SerializedMessage;
use ractor::{ActorCell, ActorRef, SpawnErr};

use crate::actor::Handler;
#[cfg(feature = "remote")]
use crate::exported::{DeliverError, ExportTable};
use crate::host::{Host, Start};
#[cfg(feature = "remote")]
use crate::id::ActorAddr;
use crate::id::NodeId;
use crate::names::{NameTable, Registration};
#[cfg(feature = "remote")]
use crate::remote::RemoteMessage;

/// One node's actor runtime. Cheap to clone (a shared handle).
///
/// ```
/// use understudy_actor::Runtime;
/// let a = Runtime::new();
/// let b = Runtime::new();
/// assert_ne!(a.node_id(), b.node_id());
/// assert!(a.registered().is_empty());
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    names: NameTable<ActorCell>,
    /// What this runtime is part of (a cluster node), held weakly: the owner holds the
    /// runtime, not the other way round.
    owner: OnceLock<Weak<dyn Any + Send + Sync>>,
    #[cfg(feature = "remote")]
    exports: ExportTable,
    #[cfg(feature = "remote")]
    rejected: AtomicU64,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

/// A Local name is already held by a live actor.
#[derive(Debug, thiserror::Error)]
#[error(
    "the name {name:?} is already registered on this node (to {owner:?}); pick another name or look the owner up with whereis"
)]
pub struct NameTaken {
    /// The name.
    pub name: String,
    /// Its current owner.
    pub owner: ActorCell,
}

/// Why a spawn failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The requested Local name is held by a live actor.
    #[error(transparent)]
    NameTaken(#[from] NameTaken),
    /// The actor's `on_start` (ractor's `pre_start`) returned an error or panicked; the
    /// error (or the panic's message) is the source.
    #[error("the actor failed to start")]
    StartFailed(#[source] crate::actor::ActorError),
}

impl From<SpawnErr> for SpawnError {
    fn from(e: SpawnErr) -> Self {
        match e {
            SpawnErr::StartupFailed(inner) => match inner.downcast::<NameTaken>() {
                Ok(taken) => SpawnError::NameTaken(*taken),
                Err(other) => SpawnError::StartFailed(other),
            },
            other => SpawnError::StartFailed(Box::new(other)),
        }
    }
}

/// How to spawn: an optional Local name and an optional supervisor to link to.
///
/// ```
/// # use understudy_actor::Spawn;
/// let opts = Spawn::new().name("cache");
/// assert_eq!(opts.name_ref(), Some("cache"));
/// ```
#[derive(Default, Clone, Debug)]
pub struct Spawn {
    name: Option<String>,
    supervisor: Option<ActorCell>,
}

impl Spawn {
    /// No name, no supervisor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the actor under a Local name while it runs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Links the actor to `supervisor`, which receives its supervision events.
    pub fn supervisor(mut self, supervisor: ActorCell) -> Self {
        self.supervisor = Some(supervisor);
        self
    }

    /// The requested name.
    pub fn name_ref(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The name and the supervisor, for spawners outside this module (supervisors).
    pub(crate) fn into_parts(self) -> (Option<String>, Option<ActorCell>) {
        (self.name, self.supervisor)
    }
}

impl Runtime {
    /// A runtime with a fresh random [`NodeId`].
    pub fn new() -> Self {
        Self::with_node_id(NodeId::random())
    }

    /// A runtime for the node `node_id` (the cluster assigns it).
    pub fn with_node_id(node_id: NodeId) -> Self {
        Runtime {
            inner: Arc::new(Inner {
                node_id,
                names: NameTable::new(),
                owner: OnceLock::new(),
                #[cfg(feature = "remote")]
                exports: ExportTable::default(),
                #[cfg(feature = "remote")]
                rejected: AtomicU64::new(0),
            }),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// Records what this runtime is part of (a cluster node does, so that an actor can reach
    /// its node from its [`Ctx`](crate::Ctx)). Held weakly; set once (`false` if it already
    /// was).
    ///
    /// ```
    /// use std::sync::Arc;
    /// # use understudy_actor::Runtime;
    /// struct Owner(&'static str);
    /// let runtime = Runtime::new();
    /// let owner = Arc::new(Owner("node a"));
    /// assert!(runtime.attach(Arc::downgrade(&owner)));
    /// assert_eq!(runtime.owner::<Owner>().map(|o| o.0), Some("node a"));
    /// drop(owner);
    /// assert!(runtime.owner::<Owner>().is_none());
    /// ```
    pub fn attach<T: Any + Send + Sync>(&self, owner: Weak<T>) -> bool {
        let owner: Weak<dyn Any + Send + Sync> = owner;
        self.inner.owner.set(owner).is_ok()
    }

    /// What this runtime was [`attach`](Self::attach)ed to, if it is a `T` and still alive.
    pub fn owner<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.inner.owner.get()?.upgrade()?.downcast::<T>().ok()
    }

    /// Spawns an unnamed, unsupervised actor.
    pub async fn spawn<A: Handler>(&self, actor: A) -> Result<ActorRef<A::Msg>, SpawnError> {
        self.spawn_with(actor, Spawn::new()).await
    }

    /// Spawns an actor registered under a Local name (released when it stops).
    pub async fn spawn_named<A: Handler>(
        &self,
        name: impl Into<String>,
        actor: A,
    ) -> Result<ActorRef<A::Msg>, SpawnError> {
        self.spawn_with(actor, Spawn::new().name(name)).await
    }

    /// Spawns an actor linked to `supervisor`.
    pub async fn spawn_linked<A: Handler>(
        &self,
        actor: A,
        supervisor: ActorCell,
    ) -> Result<ActorRef<A::Msg>, SpawnError> {
        self.spawn_with(actor, Spawn::new().supervisor(supervisor))
            .await
    }

    /// Spawns an actor with the given options.
    pub async fn spawn_with<A: Handler>(
        &self,
        actor: A,
        opts: Spawn,
    ) -> Result<ActorRef<A::Msg>, SpawnError> {
        let start = Start {
            actor,
            runtime: self.clone(),
            name: opts.name,
        };
        // Never a ractor name: ractor's registry is process-global (names live in `self`).
        let spawned = match opts.supervisor {
            Some(sup) => ractor::Actor::spawn_linked(None, Host::<A>::new(), start, sup).await,
            None => ractor::Actor::spawn(None, Host::<A>::new(), start).await,
        };
        Ok(spawned?.0)
    }

    /// Spawns a plain ractor actor, optionally named in this node's table and linked to a
    /// supervisor. If the name is taken, the actor is stopped again and the error returned.
    pub async fn spawn_ractor<R: ractor::Actor>(
        &self,
        handler: R,
        args: R::Arguments,
        opts: Spawn,
    ) -> Result<ActorRef<R::Msg>, SpawnError> {
        let (actor, handle) = match opts.supervisor {
            Some(sup) => ractor::Actor::spawn_linked(None, handler, args, sup).await?,
            None => ractor::Actor::spawn(None, handler, args).await?,
        };
        if let Some(name) = opts.name {
            match self.names().register(&name, actor.get_cell()) {
                Ok(reg) => {
                    let runtime = self.clone();
                    tokio::spawn(async move {
                        let _ = handle.await;
                        runtime.release(&reg);
                    });
                }
                Err(owner) => {
                    actor.stop(Some("name taken".into()));
                    return Err(NameTaken { name, owner }.into());
                }
            }
        }
        Ok(actor)
    }

    /// Registers a running actor under a Local name. The registration holds until
    /// [`unregister`](Self::unregister) or until the actor stops.
    pub fn register(&self, name: &str, actor: ActorCell) -> Result<Registration, NameTaken> {
        self.names()
            .register(name, actor)
            .map_err(|owner| NameTaken {
                name: name.to_owned(),
                owner,
            })
    }

    /// Removes a registration made by [`register`](Self::register) if it is still current.
    pub fn unregister(&self, registration: &Registration) -> bool {
        self.release(registration)
    }

    /// The live actor registered under `name`, as a typed ref if its message type is `M`.
    pub fn whereis<M: ractor::Message>(&self, name: &str) -> Option<ActorRef<M>> {
        let cell = self.whereis_cell(name)?;
        match cell.is_message_type_of::<M>() {
            Some(false) => None,
            _ => Some(ActorRef::from(cell)),
        }
    }

    /// The live actor registered under `name`, untyped.
    pub fn whereis_cell(&self, name: &str) -> Option<ActorCell> {
        self.inner.names.whereis(name)
    }

    /// All Local names with a live owner, sorted.
    pub fn registered(&self) -> Vec<String> {
        self.inner.names.registered()
    }

    pub(crate) fn names(&self) -> &NameTable<ActorCell> {
        &self.inner.names
    }

    pub(crate) fn release(&self, registration: &Registration) -> bool {
        self.inner.names.unregister(registration)
    }
}

/// Exported actors: what other nodes may reach on this node (feature `remote`).
#[cfg(feature = "remote")]
impl Runtime {
    /// Lets other nodes reach `actor`; returns its address.
    pub fn export<M: RemoteMessage>(&self, actor: &ActorRef<M>) -> ActorAddr {
        let pid = self.inner.exports.export(actor);
        ActorAddr {
            node: self.node_id(),
            pid,
        }
    }

    /// Stops exporting an actor.
    pub fn unexport(&self, pid: u64) -> bool {
        self.inner.exports.unexport(pid)
    }

    /// Delivers a message that arrived from the network to the exported actor `pid`,
    /// decoding it against the actor's message type first.
    /// Undecodable messages are counted ([`rejected_messages`](Self::rejected_messages)
    /// and the `understudy_decode_errors_total` metric) and returned as errors.
    pub fn deliver(&self, pid: u64, message: SerializedMessage) -> Result<(), DeliverError> {
        let result = self.inner.exports.deliver(pid, message);
        if let Err(DeliverError::Decode(_)) = &result {
            self.inner.rejected.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// How many inbound messages this node rejected because they did not decode.
    pub fn rejected_messages(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// The exported-actor table.
    pub fn exports(&self) -> &ExportTable {
        &self.inner.exports
    }
}
