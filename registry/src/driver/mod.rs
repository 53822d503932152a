//! The async shell: the `registry` extension, its Raft node and the tasks around it.
//!
//! - **inbox** ([`serve`]): peers' Raft RPCs, formation claims, forwarded writes and
//!   read-index requests, each answered on its own task; `Hello`s update what this node
//!   knows of its peers.
//! - **formation** ([`formation`]): until the registry has formed, gathers
//!   `bootstrap_expect` eligible nodes and initialises them, exactly once.
//! - **leader** ([`leader`]): while this node leads, moves the Raft configuration towards the
//!   reconciler's target, and releases the names of nodes that are gone.
//! - **writes** ([`write`]): a write from any node reaches the leader, with retries, until
//!   the write deadline.
//! - **watcher** ([`watcher`]): monitors this node's registered actors; an exit releases
//!   their names.

pub(crate) mod feed;
pub(crate) mod formation;
pub(crate) mod handover;
pub(crate) mod leader;
pub(crate) mod placer;
pub(crate) mod serve;
pub(crate) mod spawn;
pub(crate) mod watcher;
pub(crate) mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ractor::ActorCell;
use understudy_cluster::extension::{Extension, ExtensionContext, Starting};
use understudy_cluster::identity::NodeName;
use understudy_cluster::node::Node;

use crate::config::RegistryConfig;
use crate::consistent::Consistent;
use crate::core::placement::{Intensity, Placement, Spec};
use crate::error::RegistryError;
use crate::kernel::Kernel;
use crate::kinds::Kinds;
use crate::raft::disk::{Disk, fresh_raft_id};
use crate::raft::handle::{RaftHandle, RaftView};
use crate::raft::log::{LogStore, Mirror};
use crate::raft::state_machine::StateMachine;
use crate::wire::{Hello, PeerMessage};
use understudy_actor::supervisor::Restart;

/// The extension's channel name on the mesh.
pub const SERVICE: &str = "registry";

/// Cluster-wide names on a bounded Raft core: the `registry` extension.
///
/// Register a clone on the node builder; once the node has started and the registry has
/// formed, use [`Registry::consistent`]:
///
/// ```
/// # use understudy_registry::__doc::*;
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ca = ClusterCa::ephemeral("docs");
/// let registry = Registry::new(); // a node without seeds forms a one-node registry
/// let node = Node::builder("docs", "a")
///     .ephemeral_certs(&ca)
///     .extension(registry.clone())
///     .start()
///     .await?;
/// registry.wait_ready(std::time::Duration::from_secs(10)).await?;
/// let names = registry.consistent()?;
/// let worker = node.spawn(Worker).await?;
/// names.register("billing", &worker).await?;
/// let found = names.whereis::<WorkerMsg>("billing")?;
/// assert_eq!(found.get_id(), worker.get_id());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

#[derive(Debug)]
struct RegistryInner {
    config: RegistryConfig,
    started: OnceLock<Arc<Shared>>,
    /// The kinds this node can start (added before the node starts).
    kinds: Mutex<Kinds>,
}

/// What every task of a running registry shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) ctx: ExtensionContext,
    pub(crate) config: RegistryConfig,
    pub(crate) kernel: Arc<Kernel>,
    /// This node's Raft (eligible nodes only).
    pub(crate) raft: Option<RaftHandle>,
    pub(crate) me: NodeName,
    pub(crate) incarnation: u64,
    /// The last `Hello` from each connected peer.
    pub(crate) peers: Mutex<HashMap<NodeName, Hello>>,
    /// The claim this node granted: `(claimant, when)`.
    pub(crate) granted: Mutex<Option<(u64, tokio::time::Instant)>>,
    /// The leader other nodes told of (for a node without Raft, or before its own knows).
    pub(crate) leader_hint: Mutex<Option<String>>,
    pub(crate) watcher: OnceLock<ActorCell>,
    pub(crate) expect: usize,
    /// Member side: the clients this node feeds, with the revision each has.
    pub(crate) subscribers: Mutex<HashMap<NodeName, u64>>,
    /// Wakes the feed (a new subscriber).
    pub(crate) feed_now: Arc<tokio::sync::Notify>,
    /// Client side: the member this node follows.
    pub(crate) following: Mutex<feed::Following>,
    /// Member side: when the leader last sent this node entries or a heartbeat.
    pub(crate) leader_heard: Mutex<Option<tokio::time::Instant>>,
    /// This instance's request ids: a random session and a counter.
    pub(crate) session: u64,
    pub(crate) next_seq: std::sync::atomic::AtomicU64,
    /// `shutdown` was called: calls answer `Stopped`.
    pub(crate) stopped: std::sync::atomic::AtomicBool,
    /// The kinds this node can start.
    pub(crate) kinds: Kinds,
    /// This node's actors that stopped lately, and whether they failed (the watcher's).
    pub(crate) exits: Mutex<HashMap<understudy_actor::ActorAddr, bool>>,
    /// The Eventual scope.
    pub(crate) eventual: Mutex<crate::eventual::driver::EventualState>,
    /// This node's copy does not follow its feed (tests: a lagging replica).
    pub(crate) stalled: std::sync::atomic::AtomicBool,
    /// The placed names this node started, by (name, epoch), with what was started: a
    /// repeated `Start` answers with the same actor, and a leave hands them over.
    pub(crate) started: Mutex<HashMap<(String, u64), Option<spawn::StartedHere>>>,
    /// The switch that breaks this node's disk (tests only).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) broken: Option<crate::raft::disk::Broken>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn node(&self) -> Result<Node, RegistryError> {
        self.ctx.node().ok_or(RegistryError::Stopped)
    }

    pub(crate) fn view(&self) -> Option<RaftView> {
        self.raft.as_ref().map(RaftHandle::view)
    }

    /// This node belongs to a formed registry.
    /// (A node whose Raft stopped on a store failure is not: it follows a member's feed
    /// like a client.)
    pub(crate) fn formed(&self) -> bool {
        self.view().is_some_and(|v| self.formed_in(&v))
    }

    fn formed_in(&self, v: &RaftView) -> bool {
        v.failed.is_none() && !v.voters.is_empty() && v.is_member(self.raft_id())
    }

    /// A new request for `command` (its id stays the same across retries).
    pub(crate) fn request(
        &self,
        command: crate::core::command::Command,
    ) -> crate::core::command::Request {
        let seq = self
            .next_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::core::command::Request {
            id: crate::core::command::RequestId {
                session: self.session,
                seq,
            },
            command,
        }
    }

    /// `shutdown` was called.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn raft_id(&self) -> u64 {
        self.raft.as_ref().map_or(0, |r| r.id)
    }

    /// The leader's node name, as best this node knows.
    pub(crate) fn leader(&self) -> Option<String> {
        // On every write's retry loop: only the leader's name, not the whole view.
        self.raft
            .as_ref()
            .and_then(RaftHandle::leader_name)
            .or_else(|| lock(&self.leader_hint).clone())
    }

    /// How long since this node's copy of the names was last confirmed current: by a quorum
    /// (a leader), by the leader (a member), or by its member's feed (a client).
    pub(crate) fn last_heard(&self) -> Option<Duration> {
        if self.formed() {
            let view = self.view()?;
            if view.leading {
                return view.quorum_acked;
            }
            return lock(&self.leader_heard).map(|t| t.elapsed());
        }
        feed::last_heard(self)
    }

    pub(crate) fn hello(&self) -> Hello {
        // A node whose Raft failed announces no Raft id: the leader then treats its seat as
        // departed, and no formation counts it.
        let view = self.view();
        let failed = view.as_ref().is_some_and(|v| v.failed.is_some());
        Hello {
            raft_id: if failed { 0 } else { self.raft_id() },
            formed: view.as_ref().is_some_and(|v| self.formed_in(v)),
            forming: self.expect > 0 && self.raft.is_some() && !failed,
            leader: view.and_then(|v| v.leader.map(|(_, name)| name)),
            kinds: self.kinds.tagged(),
        }
    }

    /// Tells every peer (or one) who this node is now.
    pub(crate) fn announce(&self, to: Option<&NodeName>) {
        let body = PeerMessage::Hello(self.hello()).encode();
        match to {
            Some(peer) => {
                let _ = self.ctx.notify(peer, body);
            }
            None => {
                self.ctx.broadcast(body);
            }
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

/// `spawn_named`'s way when the name is not held here yet: place, start, bind, and for the
/// Strong scope wait for every live node's copy.
async fn spawn_placed<M: understudy_actor::RemoteMessage>(
    shared: Arc<Shared>,
    name: String,
    scope: Scope,
    spec: Spec,
    timeout: Duration,
) -> Result<ractor::ActorRef<M>, RegistryError> {
    let started = tokio::time::Instant::now();
    let actor = spawn::spawn_named(&shared, &name, spec, timeout).await?;
    if scope == Scope::Strong {
        // The copy here has the name at its current revision: every live node must too.
        let revision = shared.kernel.revision();
        if let Err(missing) = crate::strong::barrier(&shared, revision, started + timeout).await {
            return Err(RegistryError::NotAcked {
                name,
                missing,
                waited: started.elapsed(),
            });
        }
    }
    Ok(actor)
}

/// The scope a spawned name lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// Linearizable, first-writer-wins, on the Raft core (see [`Consistent`]).
    Consistent,
    /// As Consistent, and the call returns only once every live node's copy has the name
    /// (see [`Strong`](crate::Strong)); if some node has not acknowledged it by the
    /// timeout, the call fails with [`RegistryError::NotAcked`] (the actor runs, and keeps
    /// the name).
    Strong,
}

/// How [`Registry::spawn_named_with`] keeps a name running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpawnOptions {
    /// When the actor is started again after it stops or its node fails (the supervisor's
    /// policy; default `Permanent`).
    pub restart: Restart,
    /// How many restarts, cluster-wide, within a window before the name is released.
    pub intensity: Intensity,
    /// How long the call waits for the name to have its actor (default: the registry's
    /// `write_deadline`).
    pub timeout: Option<Duration>,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            restart: Restart::Permanent,
            intensity: Intensity::default(),
            timeout: None,
        }
    }
}

impl SpawnOptions {
    /// With this restart policy.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// With this restart intensity.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// Waiting at most this long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// What this node is to the registry now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryStatus {
    /// This node's Raft id (0 if it runs no Raft: not eligible).
    pub raft_id: u64,
    /// The registry has formed and this node belongs to it (as a voter or a standby).
    pub member: bool,
    /// This node leads.
    pub leader: bool,
    /// The leader's node name, if known.
    pub leader_name: Option<String>,
    /// The voters' node names (as this node's Raft knows them).
    pub voters: Vec<String>,
    /// The standbys' node names.
    pub standbys: Vec<String>,
    /// A change of voters is in flight (while it is, the old voters' quorum is needed too).
    pub changing: bool,
    /// The revision of this node's copy of the names.
    pub revision: u64,
    /// Why this node's Raft stopped, if it did (a failed store).
    pub failed: Option<String>,
    /// A client: the member whose feed keeps its copy current (never the leader while
    /// another member can serve it, so the leader's work does not grow with the cluster).
    pub following: Option<String>,
    /// A member: how many clients it feeds.
    pub feeding: usize,
}

impl Registry {
    /// A registry with the default settings.
    pub fn new() -> Registry {
        Registry::with_config(RegistryConfig::default())
    }

    /// A registry with these settings (checked when the node starts).
    pub fn with_config(config: RegistryConfig) -> Registry {
        Registry {
            inner: Arc::new(RegistryInner {
                config,
                started: OnceLock::new(),
                kinds: Mutex::new(Kinds::default()),
            }),
        }
    }

    /// A ref to whichever actor holds `name` at each send, from this node's copy: it
    /// follows the name across restarts and failovers. A tell while nobody holds the name
    /// fails with `TellError::NotRegistered`; an ask waits for a holder within its timeout.
    /// The methods `#[messages]` generates work on it.
    ///
    /// ```
    /// # use understudy_registry::__doc::*;
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let ca = ClusterCa::ephemeral("docs");
    /// # let registry = Registry::new();
    /// # let node = Node::builder("docs", "a").ephemeral_certs(&ca).extension(registry.clone()).start().await?;
    /// # registry.wait_ready(std::time::Duration::from_secs(10)).await?;
    /// use understudy_actor::Target;
    /// let billing = registry.named::<WorkerMsg>("billing")?;
    /// assert!(billing.tell_to(WorkerMsg::Ping).is_err(), "nobody holds it yet");
    /// let worker = node.spawn(Worker).await?;
    /// registry.consistent()?.register("billing", &worker).await?;
    /// billing.tell_to(WorkerMsg::Ping)?;
    /// # Ok(()) }
    /// ```
    pub fn named<M: understudy_actor::RemoteMessage>(
        &self,
        name: &str,
    ) -> Result<crate::named::Named<M>, RegistryError> {
        crate::name::check_name(name)?;
        Ok(crate::named::Named::new(self.shared()?.clone(), name))
    }

    /// Adds a kind this node can start when `spawn_named` places an actor here: `factory`
    /// makes the actor from the caller's argument (an error or a panic fails that spawn,
    /// and the name is freed). Add kinds before the node starts; every node that should
    /// host the kind adds it.
    ///
    /// ```
    /// # use understudy_registry::__doc::*;
    /// let registry = Registry::new().kind("worker", |_: ()| Ok::<_, String>(Worker));
    /// ```
    pub fn kind<A, Args, F>(self, name: &str, factory: F) -> Registry
    where
        A: understudy_actor::Handler,
        A::Msg: understudy_actor::RemoteMessage,
        Args: serde::de::DeserializeOwned + Send + 'static,
        F: Fn(Args) -> Result<A, String> + Send + Sync + 'static,
    {
        lock(&self.inner.kinds).add(name, crate::kinds::Kind::new(factory));
        self
    }

    /// Makes sure exactly one actor of `kind` runs as `name` in the cluster, and returns
    /// it: the holder if the name is taken (whoever started it), else one started on the
    /// node `placement` picks among the live nodes that have the kind. Concurrent calls for
    /// one name from any nodes end with one actor, every caller holding it. A `Permanent`
    /// name (the default) whose actor stops or whose node fails is started again elsewhere
    /// by the same rule; see [`spawn_named_with`](Self::spawn_named_with) for the restart
    /// policy and limits.
    ///
    /// ```
    /// # use understudy_registry::__doc::*;
    /// # use understudy_registry::{Placement, Scope};
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = ClusterCa::ephemeral("docs");
    /// let registry = Registry::new().kind("worker", |_: ()| Ok::<_, String>(Worker));
    /// let node = Node::builder("docs", "a")
    ///     .ephemeral_certs(&ca)
    ///     .extension(registry.clone())
    ///     .start()
    ///     .await?;
    /// registry.wait_ready(std::time::Duration::from_secs(10)).await?;
    /// let worker = registry
    ///     .spawn_named::<WorkerMsg, _>("billing", Scope::Consistent, Placement::Hash, "worker", &())
    ///     .await?;
    /// let again = registry
    ///     .spawn_named::<WorkerMsg, _>("billing", Scope::Consistent, Placement::Hash, "worker", &())
    ///     .await?;
    /// assert_eq!(worker.get_id(), again.get_id());
    /// # Ok(()) }
    /// ```
    pub async fn spawn_named<M, Args>(
        &self,
        name: &str,
        scope: Scope,
        placement: Placement,
        kind: &str,
        args: &Args,
    ) -> Result<ractor::ActorRef<M>, RegistryError>
    where
        M: understudy_actor::RemoteMessage,
        Args: serde::Serialize,
    {
        self.spawn_named_with(name, scope, placement, kind, args, SpawnOptions::default())
            .await
    }

    /// [`spawn_named`](Self::spawn_named) with a restart policy, a restart intensity and a
    /// timeout.
    pub async fn spawn_named_with<M, Args>(
        &self,
        name: &str,
        scope: Scope,
        placement: Placement,
        kind: &str,
        args: &Args,
        options: SpawnOptions,
    ) -> Result<ractor::ActorRef<M>, RegistryError>
    where
        M: understudy_actor::RemoteMessage,
        Args: serde::Serialize,
    {
        let shared = self.shared()?;
        if scope == Scope::Consistent {
            // A held name answers from this node's copy at `whereis`'s cost: nothing else is
            // built (the slow path below is boxed, so this future stays small).
            match crate::consistent::whereis_in::<M>(shared, name) {
                Err(RegistryError::NotRegistered { .. } | RegistryError::Unreachable { .. }) => {}
                found => return found,
            }
        }
        crate::name::check_name(name)?;
        if shared.is_stopped() {
            return Err(RegistryError::Stopped);
        }
        let args = crate::kinds::encode_args(args).map_err(|source| RegistryError::BadArgs {
            name: name.to_owned(),
            source,
        })?;
        let spec = Spec {
            kind: kind.to_owned(),
            args,
            placement,
            restart: options.restart,
            intensity: options.intensity,
        };
        if !spec.fits() {
            return Err(RegistryError::InvalidName {
                name: spec.kind.chars().take(64).collect(),
                reason: "a kind name is at most 255 bytes, and a placement names at most 64 nodes of at most 255 bytes",
            });
        }
        let timeout = options.timeout.unwrap_or(shared.config.write_deadline);
        Box::pin(spawn_placed::<M>(
            shared.clone(),
            name.to_owned(),
            scope,
            spec,
            timeout,
        ))
        .await
    }

    pub(crate) fn shared(&self) -> Result<&Arc<Shared>, RegistryError> {
        self.inner.started.get().ok_or(RegistryError::Stopped)
    }

    /// `name` resolved in every scope, in a fixed order, the same on every node: the
    /// Strong and Consistent names first (one linearizable table), then the Eventual ones,
    /// then this node's Local names (`Runtime::register`). The first scope that has the
    /// name answers; a name held with another message type there is
    /// [`RegistryError::TypeMismatch`], not a reason to look further.
    ///
    /// ```
    /// # use understudy_registry::__doc::*;
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let ca = ClusterCa::ephemeral("docs");
    /// # let registry = Registry::new();
    /// # let node = Node::builder("docs", "a").ephemeral_certs(&ca).extension(registry.clone()).start().await?;
    /// # registry.wait_ready(std::time::Duration::from_secs(10)).await?;
    /// let local = node.spawn(Worker).await?;
    /// node.runtime().register("billing", local.get_cell()).expect("free");
    /// let global = node.spawn(Worker).await?;
    /// registry.consistent()?.register("billing", &global).await?;
    /// // The Consistent name comes before the Local one.
    /// assert_eq!(registry.whereis::<WorkerMsg>("billing")?.get_id(), global.get_id());
    /// # Ok(()) }
    /// ```
    pub fn whereis<M: understudy_actor::RemoteMessage>(
        &self,
        name: &str,
    ) -> Result<ractor::ActorRef<M>, RegistryError> {
        let shared = self.shared()?;
        match crate::consistent::whereis_in::<M>(shared, name) {
            Err(RegistryError::NotRegistered { .. }) => {}
            found => return found,
        }
        match crate::eventual::scope::Eventual::new(shared.clone()).whereis::<M>(name) {
            Err(RegistryError::NotRegistered { .. }) => {}
            found => return found,
        }
        let node = shared.node()?;
        match node.runtime().whereis_cell(name) {
            Some(cell) => match cell.is_message_type_of::<M>() {
                Some(false) => Err(RegistryError::TypeMismatch {
                    name: name.to_owned(),
                    expected: M::TAG,
                    found: understudy_actor::Tag(0),
                }),
                _ => Ok(ractor::ActorRef::from(cell)),
            },
            None => Err(RegistryError::NotRegistered {
                name: name.to_owned(),
            }),
        }
    }

    /// The Eventual scope: gossip-replicated names that need no quorum.
    pub fn eventual(&self) -> Result<crate::eventual::scope::Eventual, RegistryError> {
        Ok(crate::eventual::scope::Eventual::new(
            self.shared()?.clone(),
        ))
    }

    /// The Strong scope: Consistent names whose registration returns only once every live
    /// node's copy has it.
    pub fn strong(&self) -> Result<crate::strong::Strong, RegistryError> {
        Ok(crate::strong::Strong::new(self.shared()?.clone()))
    }

    /// The Consistent scope: linearizable, first-writer-wins names.
    pub fn consistent(&self) -> Result<Consistent, RegistryError> {
        Ok(Consistent::new(self.shared()?.clone()))
    }

    /// What this node is to the registry now.
    pub fn status(&self) -> RegistryStatus {
        let Ok(shared) = self.shared() else {
            return RegistryStatus {
                raft_id: 0,
                member: false,
                leader: false,
                leader_name: None,
                voters: Vec::new(),
                standbys: Vec::new(),
                changing: false,
                revision: 0,
                failed: Some("not started".into()),
                following: None,
                feeding: 0,
            };
        };
        let view = shared.view().unwrap_or_default();
        RegistryStatus {
            raft_id: shared.raft_id(),
            member: shared.formed(),
            leader: view.leading,
            leader_name: shared.leader(),
            voters: view.voters.iter().map(|(_, n)| n.clone()).collect(),
            standbys: view.learners.iter().map(|(_, n)| n.clone()).collect(),
            changing: view.changing,
            revision: shared.kernel.revision(),
            failed: view.failed,
            following: feed::source(shared).map(|n| n.to_string()),
            feeding: lock(&shared.subscribers).len(),
        }
    }

    /// Waits until this node can serve: the registry has formed, a leader is known, and this
    /// node is a member or follows one.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), RegistryError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let shared = self.shared()?;
            let following = feed::last_heard(shared).is_some();
            if shared.leader().is_some() && (shared.formed() || following) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RegistryError::NotReady(
                    "the registry did not form in time: are bootstrap_expect nodes up?",
                ));
            }
            match &shared.raft {
                Some(raft) => raft.changed(Duration::from_millis(50)).await,
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Makes every later write to this node's Raft store fail, as a broken disk would
    /// (tests: the node must stop taking part in Raft, with a clear error). False if the node
    /// keeps its log in memory.
    #[cfg(feature = "testing")]
    pub fn break_disk(&self) -> bool {
        match self.shared().ok().and_then(|s| s.broken.as_ref()) {
            Some(broken) => {
                broken.set();
                true
            }
            None => false,
        }
    }

    /// Makes this node's copy stop following its member's feed (or follow it again), as a
    /// replica that lags would (tests: a client node only; a member's copy follows its Raft).
    #[cfg(feature = "testing")]
    pub fn stall_replica(&self, stalled: bool) {
        if let Ok(shared) = self.shared() {
            shared
                .stalled
                .store(stalled, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Stops this node's Raft (the node keeps running): call it before the node leaves.
    /// A leader first hands leadership to a caught-up voter, so the others need not wait
    /// for an election timeout. A stopped registry answers [`RegistryError::Stopped`].
    pub async fn shutdown(&self) {
        let Ok(shared) = self.shared() else { return };
        shared
            .stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let Some(raft) = &shared.raft else { return };
        let view = raft.view();
        if view.leading {
            let heir = view
                .voters
                .iter()
                .map(|(id, _)| *id)
                .filter(|id| *id != raft.id)
                .max_by_key(|id| view.matched.get(id).copied().unwrap_or(0));
            if let Some(heir) = heir {
                raft.transfer_leader(heir).await;
                let deadline = tokio::time::Instant::now() + shared.config.election_timeout_max;
                while raft.view().leading && tokio::time::Instant::now() < deadline {
                    raft.changed(Duration::from_millis(20)).await;
                }
            }
        }
        raft.shutdown().await;
    }
}

impl Extension for Registry {
    fn name(&self) -> &'static str {
        SERVICE
    }

    /// A leaving node first hands its placed names over to other nodes (each keeps its
    /// holder until the successor binds it); a leaving leader then hands leadership to a
    /// caught-up voter, so the others need not wait for an election timeout; then this
    /// node's Raft stops.
    fn leaving(&self) -> understudy_cluster::extension::Leaving {
        let registry = self.clone();
        Box::pin(async move {
            if let Ok(shared) = registry.shared() {
                handover::hand_over(shared).await;
            }
            registry.shutdown().await
        })
    }

    fn start(&self, ctx: ExtensionContext) -> Starting {
        let registry = self.clone();
        Box::pin(async move {
            if registry.inner.started.get().is_some() {
                return Err("this Registry is already running on a node; use one per node".into());
            }
            let config = registry.inner.config.clone();
            config.validate()?;
            let node = ctx.node().ok_or("the node is gone")?;
            let inbox = ctx
                .take_inbox()
                .ok_or("the registry inbox was taken already")?;
            let settings = node.settings().clone();
            let kernel = Kernel::new(config.max_names);
            let mut broken = None;
            let raft = if settings.raft_eligible {
                let (mirror, snapshot, disk, id) = match &settings.data_dir {
                    Some(dir) => {
                        let (disk, r) = Disk::open(&dir.join("registry"))
                            .map_err(|source| RegistryError::Storage { source })?;
                        let mirror = Mirror {
                            log: r.log,
                            last_purged: r.last_purged,
                            committed: r.committed,
                            vote: r.vote,
                        };
                        broken = Some(disk.broken.clone());
                        (mirror, r.snapshot, Some(Arc::new(disk)), r.raft_id)
                    }
                    None => (Mirror::default(), None, None, fresh_raft_id()),
                };
                let sm = StateMachine::new(kernel.clone(), snapshot, disk.clone())
                    .map_err(|source| RegistryError::Storage { source })?;
                let log = LogStore::new(mirror, disk);
                Some(RaftHandle::start(id, &config, ctx.clone(), log, sm).await?)
            } else {
                None
            };
            let expect = config
                .bootstrap_expect
                .unwrap_or(if settings.seeded { 0 } else { 1 });
            let shared = Arc::new(Shared {
                ctx,
                config,
                kernel,
                raft,
                me: node.name().clone(),
                incarnation: node.identity().incarnation().get(),
                peers: Mutex::new(HashMap::new()),
                granted: Mutex::new(None),
                leader_hint: Mutex::new(None),
                watcher: OnceLock::new(),
                expect,
                subscribers: Mutex::new(HashMap::new()),
                feed_now: Arc::new(tokio::sync::Notify::new()),
                following: Mutex::new(feed::Following::default()),
                leader_heard: Mutex::new(None),
                session: crate::raft::disk::fresh_raft_id(),
                next_seq: std::sync::atomic::AtomicU64::new(1),
                stopped: std::sync::atomic::AtomicBool::new(false),
                kinds: lock(&registry.inner.kinds).clone(),
                stalled: std::sync::atomic::AtomicBool::new(false),
                exits: Mutex::new(HashMap::new()),
                eventual: crate::eventual::driver::EventualState::new(
                    node.runtime().node_id(),
                    node.identity().incarnation().get(),
                    crate::eventual::core::DEFAULT_MAX_NAMES,
                ),
                started: Mutex::new(HashMap::new()),
                broken,
            });
            // From here a failed start stops the Raft node it made: nothing keeps running.
            let watcher = match watcher::start(Arc::downgrade(&shared)).await {
                Ok(watcher) => watcher,
                Err(e) => {
                    if let Some(raft) = &shared.raft {
                        raft.shutdown().await;
                    }
                    return Err(e.into());
                }
            };
            let _ = shared.watcher.set(watcher.clone());
            if registry.inner.started.set(shared.clone()).is_err() {
                watcher.stop(None);
                if let Some(raft) = &shared.raft {
                    raft.shutdown().await;
                }
                return Err("this Registry is already running on a node; use one per node".into());
            }
            let connected = node.connected();
            drop(node);
            for peer in &connected {
                shared.announce(Some(peer));
            }
            tokio::spawn(serve::run(shared.clone(), inbox));
            tokio::spawn(feed::follow(Arc::downgrade(&shared)));
            tokio::spawn(crate::eventual::driver::tick(Arc::downgrade(&shared)));
            if shared.raft.is_some() {
                tokio::spawn(feed::serve(Arc::downgrade(&shared)));
                tokio::spawn(formation::run(Arc::downgrade(&shared)));
                tokio::spawn(leader::run(Arc::downgrade(&shared)));
                tokio::spawn(placer::departures(Arc::downgrade(&shared)));
                tokio::spawn(placer::run(Arc::downgrade(&shared)));
                tokio::spawn(announce_changes(Arc::downgrade(&shared)));
            }
            Ok(())
        })
    }
}

/// Tells peers when this node's registry state (formed, leader) changes.
async fn announce_changes(shared: std::sync::Weak<Shared>) {
    let mut last = None;
    loop {
        let Some(s) = shared.upgrade() else { return };
        if s.ctx.node().is_none() {
            return;
        }
        let hello = s.hello();
        if last.as_ref() != Some(&hello) {
            s.announce(None);
            last = Some(hello);
        }
        let raft = s.raft.clone();
        drop(s);
        match raft {
            Some(raft) => raft.role_changed(Duration::from_millis(500)).await,
            None => return,
        }
    }
}
