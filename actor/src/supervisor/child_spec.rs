//! Child specifications: what a supervisor starts, and how it treats the child afterwards.
//!
//! A [`ChildSpec`] is OTP's child spec map: an `id` unique within its supervisor, a way to
//! start the child (a factory, called again for every restart, so each incarnation starts
//! from fresh state), a [`Restart`] type, a [`Shutdown`] policy, whether the child is a
//! worker or a supervisor ([`ChildKind`]), and optionally a Local name the child is
//! registered under while it runs — so callers that go by name (`Runtime::whereis`) always
//! reach the current incarnation.
//!
//! Three kinds of children:
//! - understudy actors ([`ChildSpec::new`], a factory `Fn() -> A` for a [`Handler`]);
//! - plain ractor actors ([`ChildSpec::ractor`], a factory giving the actor and its
//!   arguments);
//! - nested supervisors ([`ChildSpec::supervisor`], from a [`SupervisorSpec`]).

use std::any::{TypeId, type_name};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use ractor::ActorCell;

use super::protocol::SupervisorMsg;
use super::restart::Restart;
use super::server::spawn_supervisor;
use super::shutdown::Shutdown;
use super::spec::SupervisorSpec;
use crate::actor::Handler;
use crate::runtime::{Runtime, Spawn, SpawnError};

/// The future that starts one incarnation of a child.
pub(crate) type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnError>> + Send>>;

/// Starts one incarnation: given the runtime and the spawn options (supervisor link, name).
type StartFn = dyn Fn(Runtime, Spawn) -> StartFuture + Send + Sync;

/// The message type every incarnation of a child takes: known from the spec, so a typed
/// lookup can be checked even while the child is not running.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageType {
    pub(crate) id: TypeId,
    pub(crate) name: &'static str,
}

impl MessageType {
    pub(crate) fn of<M: 'static>() -> Self {
        MessageType {
            id: TypeId::of::<M>(),
            name: type_name::<M>(),
        }
    }
}

/// Whether a child is a worker or a supervisor (OTP's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// An ordinary actor.
    Worker,
    /// A supervisor with children of its own.
    Supervisor,
}

/// How to start and treat one child: OTP's child spec.
///
/// An id unique within its supervisor; a factory called for every (re)start, so each
/// incarnation starts from fresh state; a [`Restart`] type (default `Permanent`); a
/// [`Shutdown`] policy (default `Timeout(5 s)` for workers, `Infinity` for supervisors); its
/// [`ChildKind`]; and optionally a Local name that every incarnation is registered under
/// while it runs, so `Runtime::whereis` always finds the current one.
///
/// ```
/// use std::time::Duration;
/// use understudy_actor::supervisor::{ChildSpec, Restart, Shutdown};
/// use understudy_actor::{Actor, ActorError, Ctx, Handler};
///
/// struct Cache;
/// impl Actor for Cache {}
/// impl Handler for Cache {
///     type Msg = CacheMsg;
///     async fn handle(&mut self, _: &Ctx<Self>, _: CacheMsg) -> Result<(), ActorError> { Ok(()) }
/// }
/// struct CacheMsg;
/// # #[cfg(feature = "remote")] // ractor has a blanket impl without `cluster`
/// impl ractor::Message for CacheMsg {}
///
/// let spec = ChildSpec::new("cache", || Cache)
///     .restart(Restart::Transient)
///     .shutdown(Shutdown::Timeout(Duration::from_secs(1)))
///     .name("cache");
/// assert_eq!(spec.id(), "cache");
/// assert_eq!(spec.registered_name(), Some("cache"));
/// assert!(spec.message_type().ends_with("CacheMsg"));
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    id: String,
    start: Arc<StartFn>,
    restart: Restart,
    shutdown: Shutdown,
    kind: ChildKind,
    name: Option<String>,
    message_type: MessageType,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("message_type", &self.message_type.name)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// An understudy actor made by `factory` for every (re)start. Permanent, worker,
    /// `Shutdown::Timeout(5 s)`, unnamed.
    pub fn new<A, F>(id: impl Into<String>, factory: F) -> Self
    where
        A: Handler,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let start = move |runtime: Runtime, opts: Spawn| -> StartFuture {
            let made = call_factory(&factory);
            Box::pin(async move {
                let actor = made?;
                let actor = runtime.spawn_with(actor, opts).await?;
                Ok(actor.get_cell())
            })
        };
        Self::from_start::<A::Msg>(id, ChildKind::Worker, Arc::new(start))
    }

    /// A plain ractor actor: `factory` returns the actor and its `pre_start` arguments for
    /// every (re)start. Permanent, worker, `Shutdown::Timeout(5 s)`, unnamed.
    pub fn ractor<R, F>(id: impl Into<String>, factory: F) -> Self
    where
        R: ractor::Actor,
        F: Fn() -> (R, R::Arguments) + Send + Sync + 'static,
    {
        let start = move |runtime: Runtime, opts: Spawn| -> StartFuture {
            let made = call_factory(&factory);
            Box::pin(async move {
                let (handler, args) = made?;
                let actor = runtime.spawn_ractor(handler, args, opts).await?;
                Ok(actor.get_cell())
            })
        };
        Self::from_start::<R::Msg>(id, ChildKind::Worker, Arc::new(start))
    }

    /// A nested supervisor started from `spec` (a fresh copy for every restart: its
    /// dynamically added children are not carried over). Permanent, `Shutdown::Infinity`.
    pub fn supervisor(id: impl Into<String>, spec: SupervisorSpec) -> Self {
        let start = move |runtime: Runtime, opts: Spawn| -> StartFuture {
            let spec = spec.clone();
            Box::pin(async move {
                let sup = spawn_supervisor(&runtime, spec, opts).await?;
                Ok(sup.get_cell())
            })
        };
        let mut child =
            Self::from_start::<SupervisorMsg>(id, ChildKind::Supervisor, Arc::new(start));
        child.shutdown = Shutdown::SUPERVISOR_DEFAULT;
        child
    }

    /// `M` is the message type of the actor `start` spawns.
    fn from_start<M: 'static>(id: impl Into<String>, kind: ChildKind, start: Arc<StartFn>) -> Self {
        ChildSpec {
            id: id.into(),
            start,
            restart: Restart::default(),
            shutdown: Shutdown::WORKER_DEFAULT,
            kind,
            name: None,
            message_type: MessageType::of::<M>(),
        }
    }

    /// Sets the restart type (default [`Restart::Permanent`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets the shutdown policy (default `Timeout(5 s)` for workers, `Infinity` for
    /// supervisors).
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Registers every incarnation of the child under this Local name while it runs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The child's id, unique within its supervisor.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The restart type.
    pub fn restart_type(&self) -> Restart {
        self.restart
    }

    /// The shutdown policy.
    pub fn shutdown_policy(&self) -> Shutdown {
        self.shutdown
    }

    /// Worker or supervisor.
    pub fn kind(&self) -> ChildKind {
        self.kind
    }

    /// The Local name the child is registered under, if any.
    pub fn registered_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The name of the message type the child takes (as [`std::any::type_name`] gives it:
    /// for diagnostics, not guaranteed stable across compiler versions). A nested
    /// supervisor takes [`SupervisorMsg`].
    pub fn message_type(&self) -> &'static str {
        self.message_type.name
    }

    pub(crate) fn message_type_id(&self) -> TypeId {
        self.message_type.id
    }

    /// Starts one incarnation linked to `supervisor`.
    pub(crate) fn start(&self, runtime: &Runtime, supervisor: ActorCell) -> StartFuture {
        let mut opts = Spawn::new().supervisor(supervisor);
        if let Some(name) = &self.name {
            opts = opts.name(name.clone());
        }
        (self.start)(runtime.clone(), opts)
    }
}

/// Calls a user factory, turning a panic into a start error (as a crashing start function
/// is a start error in OTP) instead of taking the supervisor down.
fn call_factory<T>(factory: &(impl Fn() -> T + ?Sized)) -> Result<T, SpawnError> {
    std::panic::catch_unwind(AssertUnwindSafe(factory)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic".to_owned());
        SpawnError::StartFailed(format!("the child factory panicked: {what}").into())
    })
}
