//! Runs an understudy [`Handler`] as a ractor actor.
//!
//! ractor separates an immutable behaviour (`self`) from a mutable `State`; understudy actors
//! are one struct that owns its state. `Host<A>` is the zero-sized behaviour and the struct is
//! the state, so each hook is a direct call — no boxing, no extra indirection per message.
//! A Local name, when the actor has one, is taken in `pre_start` (so a taken name fails the
//! spawn before the actor runs) and released when the state is dropped, which happens on
//! every way out: stop, kill, panic; so is its entry in the export table.

use std::marker::PhantomData;

use ractor::{ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::actor::{Ctx, Handler};
use crate::names::Registration;
use crate::runtime::{NameTaken, Runtime};

pub(crate) struct Host<A>(PhantomData<fn() -> A>);

impl<A> Host<A> {
    pub(crate) fn new() -> Self {
        Host(PhantomData)
    }
}

pub(crate) struct Start<A> {
    pub(crate) actor: A,
    pub(crate) runtime: Runtime,
    pub(crate) name: Option<String>,
}

pub(crate) struct Hosted<A> {
    actor: A,
    ctx: Ctx<A>,
    _name: Option<NameGuard>,
    #[cfg(feature = "remote")]
    _export: ExportGuard,
}

/// Removes the actor from its node's export table when its state goes away, so an exported
/// actor that stopped is not kept alive (nor found) by the table.
#[cfg(feature = "remote")]
pub(crate) struct ExportGuard {
    runtime: Runtime,
    pid: u64,
}

#[cfg(feature = "remote")]
impl Drop for ExportGuard {
    fn drop(&mut self) {
        self.runtime.exports().remove(self.pid);
    }
}

/// Releases a Local name when the actor's state goes away.
pub(crate) struct NameGuard {
    runtime: Runtime,
    registration: Registration,
}

impl NameGuard {
    pub(crate) fn new(runtime: Runtime, registration: Registration) -> Self {
        NameGuard {
            runtime,
            registration,
        }
    }
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        self.runtime.release(&self.registration);
    }
}

impl<A: Handler> ractor::Actor for Host<A> {
    type Msg = A::Msg;
    type State = Hosted<A>;
    type Arguments = Start<A>;

    async fn pre_start(
        &self,
        myself: ActorRef<A::Msg>,
        start: Start<A>,
    ) -> Result<Hosted<A>, ActorProcessingErr> {
        let Start {
            mut actor,
            runtime,
            name,
        } = start;
        let cell = myself.get_cell();
        let guard = match name {
            Some(name) => match runtime.names().register(&name, cell.clone()) {
                Ok(reg) => Some(NameGuard::new(runtime.clone(), reg)),
                Err(owner) => return Err(Box::new(NameTaken { name, owner })),
            },
            None => None,
        };
        #[cfg(feature = "remote")]
        let export = ExportGuard {
            runtime: runtime.clone(),
            pid: cell.get_id().pid(),
        };
        let ctx = Ctx::new(cell, runtime);
        actor.on_start(&ctx).await?;
        Ok(Hosted {
            actor,
            ctx,
            _name: guard,
            #[cfg(feature = "remote")]
            _export: export,
        })
    }

    // Not an `async fn`: returning the handler's future directly keeps the message in it
    // once, so an actor's loop future is no bigger than a raw ractor actor's (measured:
    // 112 bytes less per actor; see docs/BENCHMARKS.md).
    #[inline]
    fn handle(
        &self,
        _myself: ActorRef<A::Msg>,
        message: A::Msg,
        state: &mut Hosted<A>,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send {
        let Hosted { actor, ctx, .. } = state;
        actor.handle(ctx, message)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<A::Msg>,
        state: &mut Hosted<A>,
    ) -> Result<(), ActorProcessingErr> {
        state.actor.on_stop(&state.ctx).await
    }

    // Not an `async fn`, for the reason `handle` is not: the check runs before the future is
    // made, so the actor's loop future holds no more than `on_supervision`'s (measured: an
    // `async fn` here cost 160 bytes per actor).
    fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<A::Msg>,
        event: SupervisionEvent,
        state: &mut Hosted<A>,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send {
        // An exit this actor monitors goes to the back of its own mailbox, behind the
        // messages the exited actor sent before it (see monitor.rs); anything else is a
        // linked child's, for `on_supervision`.
        let monitored = state
            .ctx
            .monitors()
            .is_some_and(|monitors| monitors.on_event(&event));
        let Hosted { actor, ctx, .. } = state;
        // The hook's future is made here, so the one returned holds it and nothing else.
        let hook = (!monitored).then(|| actor.on_supervision(ctx, event));
        async move {
            match hook {
                Some(hook) => hook.await,
                None => Ok(()),
            }
        }
    }
}
