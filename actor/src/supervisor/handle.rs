//! [`SupervisorRef`]: the typed handle to a running supervisor, and how to start one.
//!
//! Every method is a call to the supervisor actor, answered in order with its other work
//! (child exits are handled first: ractor delivers supervision events before messages).
//! Like OTP's supervisor calls, they wait as long as the supervisor needs — stopping a child
//! can take its whole shutdown timeout — unless a limit is set with
//! [`SupervisorRef::with_timeout`].

use std::any::{TypeId, type_name};
use std::time::Duration;

use ractor::{ActorCell, ActorId, ActorRef};
use tokio::sync::oneshot;

use super::child_spec::ChildSpec;
use super::error::SupervisorError;
use super::protocol::{ChildCounts, ChildInfo, Command, Reply, SupervisorMsg};
use super::server::spawn_supervisor;
use super::shutdown::SHUTDOWN_REASON;
use super::spec::SupervisorSpec;
use crate::runtime::{Runtime, Spawn, SpawnError};

/// A handle to a running supervisor. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SupervisorRef {
    actor: ActorRef<SupervisorMsg>,
    timeout: Option<Duration>,
}

impl From<ActorRef<SupervisorMsg>> for SupervisorRef {
    fn from(actor: ActorRef<SupervisorMsg>) -> Self {
        SupervisorRef {
            actor,
            timeout: None,
        }
    }
}

impl SupervisorRef {
    /// The supervisor behind `cell`, if `cell` is one (e.g. a child of kind `Supervisor`
    /// from [`which_children`](Self::which_children)).
    pub fn from_cell(cell: ActorCell) -> Option<SupervisorRef> {
        match cell.is_message_type_of::<SupervisorMsg>() {
            Some(false) => None,
            _ => Some(ActorRef::<SupervisorMsg>::from(cell).into()),
        }
    }

    /// The same handle, with calls giving up after `timeout` ([`SupervisorError::Timeout`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The supervisor's typed ractor ref.
    pub fn actor_ref(&self) -> &ActorRef<SupervisorMsg> {
        &self.actor
    }

    /// The supervisor's cell (to link, monitor, or give as a parent).
    pub fn cell(&self) -> ActorCell {
        self.actor.get_cell()
    }

    /// The supervisor's actor id.
    pub fn id(&self) -> ActorId {
        self.actor.get_id()
    }

    /// Adds and starts a child (OTP's `start_child/2`). It goes after the existing children
    /// in the start order. If its start fails it is not added.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<ActorCell, SupervisorError> {
        self.call(|reply| Command::StartChild(spec, reply)).await?
    }

    /// Stops a child by its shutdown policy and keeps its spec, so it can be restarted with
    /// [`restart_child`](Self::restart_child) — except a Temporary child, whose spec is
    /// removed. Stopping a child that is not running is not an error.
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.call(|reply| Command::TerminateChild(id, reply))
            .await?
    }

    /// Starts a terminated child again from its spec.
    pub async fn restart_child(&self, id: &str) -> Result<ActorCell, SupervisorError> {
        let id = id.to_owned();
        self.call(|reply| Command::RestartChild(id, reply)).await?
    }

    /// Removes the spec of a terminated child.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.call(|reply| Command::DeleteChild(id, reply)).await?
    }

    /// Every child, in start order, with its restart count and, while it waits to be
    /// restarted, when that is due (see [`ChildInfo`]).
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.call(Command::WhichChildren).await
    }

    /// One child, as [`which_children`](Self::which_children) reports it.
    pub async fn child_info(&self, id: &str) -> Result<ChildInfo, SupervisorError> {
        let wanted = id.to_owned();
        self.call(|reply| Command::WhichChild(wanted, reply))
            .await?
            .ok_or_else(|| SupervisorError::NotFound(id.to_owned()))
    }

    /// How many children, by kind and by whether they run.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        self.call(Command::CountChildren).await
    }

    /// The running incarnation of child `id`, untyped (`None` if it is not running). To
    /// send it messages, [`child_ref`](Self::child_ref) checks its type.
    pub async fn child(&self, id: &str) -> Result<Option<ActorCell>, SupervisorError> {
        Ok(self.child_info(id).await?.cell)
    }

    /// The running incarnation of child `id` as an `ActorRef<M>` (`None` if it is not
    /// running), checked to take messages of type `M`.
    ///
    /// A child that takes another type is [`SupervisorError::WrongMessageType`], naming
    /// both types — an error, not `None`, since no later call can make the type right,
    /// while a child that is not running may run again. The running incarnation is checked
    /// with [`ActorCell::is_message_type_of`]; a child that is not running by the type in
    /// its spec, which every incarnation has, so the answer never depends on timing. For a
    /// nested supervisor, `M` is [`SupervisorMsg`] (and `SupervisorRef::from` the result).
    ///
    /// ```
    /// use understudy_actor::supervisor::{ChildSpec, SupervisorError, SupervisorSpec};
    /// use understudy_actor::{Actor, ActorError, Ctx, Handler, Runtime};
    ///
    /// struct Worker;
    /// impl Actor for Worker {}
    /// impl Handler for Worker {
    ///     type Msg = Job;
    ///     async fn handle(&mut self, _: &Ctx<Self>, _: Job) -> Result<(), ActorError> { Ok(()) }
    /// }
    /// struct Job;
    /// # #[cfg(feature = "remote")] // ractor has a blanket impl without `cluster`
    /// impl ractor::Message for Job {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sup = Runtime::new()
    ///     .start_supervisor(SupervisorSpec::one_for_one().child(ChildSpec::new("worker", || Worker)))
    ///     .await?;
    /// let worker = sup.child_ref::<Job>("worker").await?.expect("running");
    /// worker.send_message(Job)?;
    ///
    /// let wrong = sup.child_ref::<String>("worker").await.unwrap_err();
    /// assert!(matches!(wrong, SupervisorError::WrongMessageType { .. }));
    /// assert!(wrong.to_string().contains("Job`, not `alloc::string::String`"), "{wrong}");
    /// sup.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn child_ref<M: ractor::Message>(
        &self,
        id: &str,
    ) -> Result<Option<ActorRef<M>>, SupervisorError> {
        let info = self.child_info(id).await?;
        let matches = match &info.cell {
            // Children are local, so ractor always knows the type (`None` is a remote cell).
            Some(cell) => cell.is_message_type_of::<M>() != Some(false),
            None => info.message_type_id == TypeId::of::<M>(),
        };
        if !matches {
            return Err(SupervisorError::WrongMessageType {
                id: info.id,
                takes: info.message_type,
                asked: type_name::<M>(),
            });
        }
        Ok(info.cell.map(ActorRef::from))
    }

    /// Stops the supervisor gracefully with reason `"shutdown"` — it stops its children in
    /// reverse start order first — and waits until it has stopped.
    pub async fn shutdown(&self) {
        let cell = self.cell();
        cell.stop(Some(SHUTDOWN_REASON.to_owned()));
        let _ = cell.wait(None).await;
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, SupervisorError> {
        let (tx, rx) = oneshot::channel();
        self.actor
            .send_message(SupervisorMsg(make(tx)))
            .map_err(|_| SupervisorError::NotRunning)?;
        let answer = match self.timeout {
            None => rx.await,
            Some(limit) => tokio::time::timeout(limit, rx)
                .await
                .map_err(|_| SupervisorError::Timeout(limit))?,
        };
        answer.map_err(|_| SupervisorError::NotRunning)
    }
}

impl Runtime {
    /// Starts a supervisor: its children are started in order before this returns. If one
    /// fails to start, those already started are stopped in reverse order and the error is
    /// returned.
    ///
    /// ```
    /// use understudy_actor::supervisor::{ChildSpec, SupervisorSpec};
    /// use understudy_actor::{Actor, ActorError, Ctx, Handler, Runtime};
    ///
    /// struct Worker;
    /// impl Actor for Worker {}
    /// impl Handler for Worker {
    ///     type Msg = Job;
    ///     async fn handle(&mut self, _: &Ctx<Self>, _: Job) -> Result<(), ActorError> { Ok(()) }
    /// }
    /// struct Job;
    /// # #[cfg(feature = "remote")] // ractor has a blanket impl without `cluster`
    /// impl ractor::Message for Job {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = Runtime::new();
    /// let sup = runtime
    ///     .start_supervisor(
    ///         SupervisorSpec::one_for_one()
    ///             .child(ChildSpec::new("a", || Worker).name("worker-a"))
    ///             .child(ChildSpec::new("b", || Worker)),
    ///     )
    ///     .await?;
    /// assert_eq!(sup.count_children().await?.active, 2);
    /// assert!(runtime.whereis::<Job>("worker-a").is_some());
    /// sup.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn start_supervisor(
        &self,
        spec: SupervisorSpec,
    ) -> Result<SupervisorRef, SpawnError> {
        self.start_supervisor_with(spec, Spawn::new()).await
    }

    /// [`start_supervisor`](Self::start_supervisor) with spawn options: a Local name for the
    /// supervisor, and a parent it is linked to (whose supervision events it then produces).
    pub async fn start_supervisor_with(
        &self,
        spec: SupervisorSpec,
        opts: Spawn,
    ) -> Result<SupervisorRef, SpawnError> {
        Ok(spawn_supervisor(self, spec, opts).await?.into())
    }
}
