//! The supervisor actor: a plain ractor actor that turns its children's exits into restarts.
//!
//! The algorithm is `supervisor.erl`'s, step by step:
//! 1. **Init.** Children are started in order. If one fails, those already started are
//!    stopped in reverse order and the supervisor fails to start.
//! 2. **A child exits** (ractor `ActorTerminated`/`ActorFailed` of its *current*
//!    incarnation). If its restart type says no, it is left stopped (a Temporary child's
//!    spec is dropped). Otherwise the restart is recorded in the [`RestartWindow`]; if that
//!    exceeds the intensity, go to 5. Otherwise the strategy's group is stopped in reverse
//!    order and started again in order — at once, or after a [`Backoff`] delay.
//! 3. **A (re)start fails** (the new incarnation's `on_start` errs or panics). That counts as
//!    another restart against the intensity; if still allowed, the group restart is tried
//!    again later by a message to itself (OTP's `try_again_restart`), so calls and other
//!    exits are served in between.
//! 4. **Calls** (`start_child`, `terminate_child`, …) are answered in order with the above.
//! 5. **Escalation.** Too many restarts: every child is stopped in reverse order and the
//!    supervisor stops itself with reason [`ESCALATION_REASON`]. Its own parent sees that
//!    exit and applies *its* strategy (a Permanent supervisor child is restarted, subtree
//!    and all — a fresh start that often cures what restarting leaves alone).
//! 6. **Stop.** On any graceful stop the children are stopped in reverse start order, each
//!    by its [`Shutdown`](super::Shutdown) policy. (If the supervisor is killed instead,
//!    ractor kills its whole subtree at once.)

use std::time::{Duration, Instant};

use ractor::{ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::backoff::{Backoff, JitterSource};
use super::child_spec::ChildSpec;
use super::children::{Child, Children, PendingRetry, duplicate_id};
use super::error::SupervisorError;
use super::protocol::{Command, SupervisorMsg};
use super::restart::{ChildExit, Restart};
use super::restart_window::{RestartWindow, Verdict};
use super::shutdown::shut_down;
use super::spec::SupervisorSpec;
use super::strategy::Strategy;
use crate::host::NameGuard;
use crate::runtime::{NameTaken, Runtime, Spawn, SpawnError};

/// The reason a supervisor stops with when it exceeds its restart intensity. It is a
/// `shutdown:` reason, like OTP's `shutdown` exit in this case: a Permanent parent child spec
/// restarts the supervisor, a Transient one does not.
pub const ESCALATION_REASON: &str = "shutdown: reached_max_restart_intensity";

/// Metric counting restarts (each recorded restart, including failed attempts).
pub const RESTARTS_METRIC: &str = "understudy_supervisor_restarts_total";

/// Metric counting supervisors that gave up (exceeded their restart intensity).
pub const ESCALATIONS_METRIC: &str = "understudy_supervisor_escalations_total";

/// The ractor behaviour of a supervisor.
pub(crate) struct SupervisorActor;

/// What a supervisor starts from.
pub(crate) struct Boot {
    spec: SupervisorSpec,
    runtime: Runtime,
    name: Option<String>,
}

/// Spawns a supervisor (never with a ractor name: names live in the runtime).
pub(crate) async fn spawn_supervisor(
    runtime: &Runtime,
    spec: SupervisorSpec,
    opts: Spawn,
) -> Result<ActorRef<SupervisorMsg>, SpawnError> {
    let (name, parent) = opts.into_parts();
    let boot = Boot {
        spec,
        runtime: runtime.clone(),
        name,
    };
    let (actor, _) = match parent {
        Some(parent) => ractor::Actor::spawn_linked(None, SupervisorActor, boot, parent).await?,
        None => ractor::Actor::spawn(None, SupervisorActor, boot).await?,
    };
    Ok(actor)
}

/// Why a supervisor failed to start.
#[derive(Debug, thiserror::Error)]
enum InitError {
    #[error("duplicate child id {0:?} in the supervisor spec")]
    DuplicateId(String),
    #[error("child {id:?} failed to start: {source}")]
    ChildFailed { id: String, source: SpawnError },
}

/// A running supervisor's state.
pub(crate) struct Supervisor {
    runtime: Runtime,
    myself: ActorCell,
    strategy: Strategy,
    intensity: u32,
    period: Duration,
    window: RestartWindow,
    backoff: Option<Backoff>,
    jitter: JitterSource,
    children: Children,
    next_token: u64,
    /// Set once it has given up: nothing is restarted or started any more.
    stopping: bool,
    _name: Option<NameGuard>,
}

impl ractor::Actor for SupervisorActor {
    type Msg = SupervisorMsg;
    type State = Supervisor;
    type Arguments = Boot;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        boot: Boot,
    ) -> Result<Supervisor, ActorProcessingErr> {
        let Boot {
            spec,
            runtime,
            name,
        } = boot;
        let cell = myself.get_cell();
        let guard = match name {
            Some(name) => match runtime.names().register(&name, cell.clone()) {
                Ok(registration) => Some(NameGuard::new(runtime.clone(), registration)),
                Err(owner) => return Err(Box::new(NameTaken { name, owner })),
            },
            None => None,
        };
        if let Some(id) = duplicate_id(&spec.children) {
            return Err(Box::new(InitError::DuplicateId(id.to_owned())));
        }
        let seed = spec
            .jitter_seed
            .unwrap_or_else(|| random_seed(cell.get_id()));
        let mut sup = Supervisor {
            runtime,
            myself: cell,
            strategy: spec.strategy,
            intensity: spec.intensity,
            period: spec.period,
            window: RestartWindow::new(spec.intensity, spec.period),
            backoff: spec.backoff,
            jitter: JitterSource::new(seed),
            children: Children::default(),
            next_token: 0,
            stopping: false,
            _name: guard,
        };
        for child in spec.children {
            match child.start(&sup.runtime, sup.myself.clone()).await {
                Ok(cell) => {
                    let history = sup.new_history();
                    sup.children.push(Child::new(child, cell, history));
                }
                Err(source) => {
                    tracing::error!(supervisor = %sup.myself.get_id(), child = child.id(), error = %source, "child failed to start; supervisor start aborted");
                    sup.stop_all().await;
                    let id = child.id().to_owned();
                    return Err(Box::new(InitError::ChildFailed { id, source }));
                }
            }
        }
        Ok(sup)
    }

    async fn handle(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        SupervisorMsg(command): SupervisorMsg,
        sup: &mut Supervisor,
    ) -> Result<(), ActorProcessingErr> {
        // A dropped reply means the caller gave up waiting: nothing to do about it.
        match command {
            Command::StartChild(spec, reply) => {
                let _ = reply.send(sup.start_child(spec).await);
            }
            Command::TerminateChild(id, reply) => {
                let _ = reply.send(sup.terminate_child(&id).await);
            }
            Command::RestartChild(id, reply) => {
                let _ = reply.send(sup.restart_child(&id).await);
            }
            Command::DeleteChild(id, reply) => {
                let _ = reply.send(sup.delete_child(&id));
            }
            Command::WhichChildren(reply) => {
                let _ = reply.send(sup.children.infos());
            }
            Command::WhichChild(id, reply) => {
                let _ = reply.send(sup.children.get(&id).map(Child::info));
            }
            Command::CountChildren(reply) => {
                let _ = reply.send(sup.children.counts());
            }
            Command::Retry { id, token } => sup.retry(&id, token).await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        sup: &mut Supervisor,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                sup.child_exited(cell.get_id(), ChildExit::classify(reason.as_deref()))
                    .await;
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                sup.child_exited(cell.get_id(), ChildExit::failed(error))
                    .await;
            }
            // Starts are seen when `start` returns; groups and lifecycle events are not ours.
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        sup: &mut Supervisor,
    ) -> Result<(), ActorProcessingErr> {
        sup.stopping = true;
        sup.stop_all().await;
        Ok(())
    }
}

impl Supervisor {
    fn new_history(&self) -> RestartWindow {
        RestartWindow::new(self.intensity, self.period)
    }

    // ---- exits and restarts -------------------------------------------------------------

    /// The current incarnation of a child has exited (step 2 of the module docs).
    async fn child_exited(&mut self, actor: ActorId, exit: ChildExit) {
        if self.stopping {
            return;
        }
        // Not a current incarnation: one we stopped ourselves, or already replaced.
        let Some(child) = self.children.running(actor) else {
            return;
        };
        let id = child.id().to_owned();
        let restart = child.spec.restart_type();
        if let Some(child) = self.children.get_mut(&id) {
            child.cell = None;
        }
        if !restart.restarts_after(&exit) {
            tracing::info!(supervisor = %self.myself.get_id(), child = %id, %exit, ?restart, "child exited; not restarted");
            if restart == Restart::Temporary {
                self.children.remove(&id);
            }
            return;
        }
        tracing::warn!(supervisor = %self.myself.get_id(), child = %id, %exit, strategy = ?self.strategy, "child exited; restarting");
        let Some(delay) = self.count_restart(&id) else {
            return;
        };
        self.stop_group(&id).await;
        if delay.is_zero() {
            self.start_group(&id).await;
        } else {
            self.schedule_retry(&id, delay);
        }
    }

    /// A delayed or repeated restart of `id` is due (step 3).
    async fn retry(&mut self, id: &str, token: u64) {
        if self.stopping {
            return;
        }
        let Some(child) = self.children.get_mut(id) else {
            return;
        };
        if child.retry.as_ref().map(|r| r.token) != Some(token) {
            return; // cancelled, or superseded by a terminate/restart call
        }
        child.retry = None;
        self.stop_group(id).await;
        self.start_group(id).await;
    }

    /// Records a restart of `id` now. `None` if that exceeded the intensity (the supervisor
    /// has then escalated); otherwise the backoff delay to wait first.
    fn count_restart(&mut self, id: &str) -> Option<Duration> {
        let now = now();
        metrics::counter!(RESTARTS_METRIC).increment(1);
        if self.window.record(now) == Verdict::Exceeded {
            self.escalate_later(id);
            return None;
        }
        let Some(backoff) = self.backoff else {
            return Some(Duration::ZERO);
        };
        let Some(child) = self.children.get_mut(id) else {
            return Some(Duration::ZERO);
        };
        let attempt = u32::try_from(child.history.recent(now)).unwrap_or(u32::MAX);
        child.history.record(now);
        Some(backoff.delay(attempt, self.jitter.next_unit()))
    }

    /// Stops the running members of `id`'s group in reverse start order. Temporary members
    /// are dropped (they are never restarted); pending retries in the group are cancelled,
    /// since the group is about to be started as a whole.
    async fn stop_group(&mut self, id: &str) {
        let group = self.children.group(self.strategy, id);
        for member in group.iter().rev() {
            let Some(child) = self.children.get_mut(member) else {
                continue;
            };
            if member != id {
                child.cancel_retry();
            }
            if let Some(cell) = child.cell.take() {
                shut_down(&cell, child.spec.shutdown_policy()).await;
            }
        }
        self.children.remove_where(|c| {
            c.spec.restart_type() == Restart::Temporary && group.iter().any(|m| m == c.id())
        });
    }

    /// Starts the stopped members of `id`'s group in start order. On a failed start the
    /// rest stay stopped and the failed child is retried (step 3).
    async fn start_group(&mut self, id: &str) {
        for member in self.children.group(self.strategy, id) {
            let Some(child) = self.children.get(&member) else {
                continue;
            };
            if child.cell.is_some() || self.stopping {
                continue;
            }
            let started = child.spec.start(&self.runtime, self.myself.clone()).await;
            match started {
                Ok(cell) => {
                    tracing::info!(supervisor = %self.myself.get_id(), child = %member, actor = %cell.get_id(), "child restarted");
                    if let Some(child) = self.children.get_mut(&member) {
                        child.cell = Some(cell);
                        child.restarts += 1;
                    }
                }
                Err(error) => {
                    tracing::error!(supervisor = %self.myself.get_id(), child = %member, %error, "child failed to restart; will try again");
                    if let Some(delay) = self.count_restart(&member) {
                        self.schedule_retry(&member, delay);
                    }
                    return;
                }
            }
        }
    }

    /// Restarts `id` (and its group) after `delay`, by a message to itself.
    fn schedule_retry(&mut self, id: &str, delay: Duration) {
        let token = self.next_token;
        self.next_token += 1;
        let me = ActorRef::<SupervisorMsg>::from(self.myself.clone());
        let message = SupervisorMsg(Command::Retry {
            id: id.to_owned(),
            token,
        });
        let due = deadline(now(), delay);
        let timer = if delay.is_zero() {
            let _ = me.send_message(message);
            None
        } else {
            // Sleeps until `due` itself, so that the time `which_children` reports is the
            // timer's.
            let task = tokio::spawn(async move {
                tokio::time::sleep_until(due.into()).await;
                let _ = me.send_message(message);
            });
            Some(task.abort_handle())
        };
        if let Some(child) = self.children.get_mut(id) {
            child.cancel_retry();
            child.retry = Some(PendingRetry { token, due, timer });
        }
    }

    /// Gives up (step 5): the children are stopped by the stop that follows at once (a stop
    /// is delivered before any other message or event), in `post_stop`.
    fn escalate_later(&mut self, id: &str) {
        metrics::counter!(ESCALATIONS_METRIC).increment(1);
        tracing::error!(supervisor = %self.myself.get_id(), child = %id, intensity = self.intensity, period = ?self.period, "restart intensity exceeded; stopping the supervisor and all its children");
        self.stopping = true;
        self.myself.stop(Some(ESCALATION_REASON.to_owned()));
    }

    /// Stops every child in reverse start order (step 6).
    async fn stop_all(&mut self) {
        for id in self.children.ids().iter().rev() {
            let Some(child) = self.children.get_mut(id) else {
                continue;
            };
            child.cancel_retry();
            if let Some(cell) = child.cell.take() {
                shut_down(&cell, child.spec.shutdown_policy()).await;
            }
        }
    }

    // ---- calls ----------------------------------------------------------------------------

    async fn start_child(&mut self, spec: ChildSpec) -> Result<ActorCell, SupervisorError> {
        if self.stopping {
            return Err(SupervisorError::NotRunning);
        }
        if let Some(existing) = self.children.get(spec.id()) {
            let id = spec.id().to_owned();
            return Err(match &existing.cell {
                Some(cell) => SupervisorError::AlreadyStarted {
                    id,
                    cell: cell.clone(),
                },
                None => SupervisorError::AlreadyPresent(id),
            });
        }
        match spec.start(&self.runtime, self.myself.clone()).await {
            Ok(cell) => {
                let history = self.new_history();
                self.children.push(Child::new(spec, cell.clone(), history));
                Ok(cell)
            }
            Err(source) => Err(SupervisorError::StartFailed {
                id: spec.id().to_owned(),
                source,
            }),
        }
    }

    async fn terminate_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let child = self
            .children
            .get_mut(id)
            .ok_or_else(|| SupervisorError::NotFound(id.to_owned()))?;
        child.cancel_retry();
        if let Some(cell) = child.cell.take() {
            shut_down(&cell, child.spec.shutdown_policy()).await;
        }
        if child.spec.restart_type() == Restart::Temporary {
            self.children.remove(id);
        }
        Ok(())
    }

    async fn restart_child(&mut self, id: &str) -> Result<ActorCell, SupervisorError> {
        if self.stopping {
            return Err(SupervisorError::NotRunning);
        }
        let child = self.stopped_child(id)?;
        match child.spec.start(&self.runtime, self.myself.clone()).await {
            Ok(cell) => {
                if let Some(child) = self.children.get_mut(id) {
                    child.cell = Some(cell.clone());
                }
                Ok(cell)
            }
            Err(source) => Err(SupervisorError::StartFailed {
                id: id.to_owned(),
                source,
            }),
        }
    }

    fn delete_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        self.stopped_child(id)?;
        self.children.remove(id);
        Ok(())
    }

    /// The child `id` if it is neither running nor restarting.
    fn stopped_child(&self, id: &str) -> Result<&Child, SupervisorError> {
        let child = self
            .children
            .get(id)
            .ok_or_else(|| SupervisorError::NotFound(id.to_owned()))?;
        if child.cell.is_some() {
            return Err(SupervisorError::Running(id.to_owned()));
        }
        if child.retry.is_some() {
            return Err(SupervisorError::Restarting(id.to_owned()));
        }
        Ok(child)
    }
}

/// The current time for the restart window. tokio's clock, so tests can pause it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// `delay` after `now`. A delay past what `Instant` can hold (a `Backoff` with a `max` of
/// centuries is repaired, not rejected) means about 30 years, as tokio's timers do (and `now`
/// if even that does not fit, which no platform's clock comes near).
fn deadline(now: Instant, delay: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);
    now.checked_add(delay)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// A jitter seed for a supervisor that was given none.
fn random_seed(id: ActorId) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_beyond_the_clock_is_far_in_the_future_not_a_panic() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(deadline(now, second), now + second);
        let far = deadline(now, Duration::MAX);
        assert!(far >= now + Duration::from_secs(29 * 365 * 86_400));
    }
}
