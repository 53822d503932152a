//! Monitors with Erlang's order: a DOWN reaches the watcher behind every message the watched
//! actor sent it before exiting.
//!
//! Semantics (Erlang's `erlang:monitor/2` and `demonitor/1`):
//! - [`Ctx::monitor`](crate::Ctx::monitor) returns a fresh [`MonitorRef`]; when the watched
//!   actor exits, the watcher gets one [`Down`] per monitor, through its **mailbox**, so it is
//!   handled after every message the watched actor sent before it exited (a worker that sends
//!   its result and then stops is never seen dead before its result). `#[messages]` actors
//!   receive it in [`Actor::on_down`]; a hand-written message type
//!   carries it as a variant (`impl From<Down> for MyMsg`).
//! - Monitoring an actor that is already gone gives a DOWN with [`ExitReason::NoProc`]. A
//!   remote actor's node going away gives [`ExitReason::NoConnection`].
//! - Monitors never stop the watcher (unlike links), and monitoring twice gives two DOWNs.
//! - [`Ctx::demonitor`](crate::Ctx::demonitor) turns a monitor off: `true` if no DOWN will
//!   come for it, `false` if it already fired (its DOWN is queued or was handled), as
//!   `demonitor(Ref, [info])`.
//! - Outside actors, [`Runtime::monitor`](crate::Runtime::monitor) gives a [`Monitor`]: a
//!   future of the [`Down`].
//!
//! Why the mailbox: ractor hands an actor its supervision events (which its own `monitor`
//! produces) before the messages already in its mailbox, so a raw ractor monitor can report
//! an exit before the messages that preceded it. The watcher's host turns the supervision
//! event into a message to itself; the watched actor's messages were enqueued before it
//! exited, hence before that message.
//!
//! The table below is pure bookkeeping; `host.rs` and `actor.rs` drive it.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use ractor::{ActorCell, ActorId, ActorRef};
use tokio::sync::oneshot;

use crate::actor::{Actor, ActorError, Ctx, Handler};
use crate::exit::ExitReason;
use crate::runtime::{Runtime, SpawnError};

/// One monitor, as `erlang:monitor/2` returns a reference. Unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonitorRef(u64);

impl MonitorRef {
    pub(crate) fn fresh() -> MonitorRef {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        MonitorRef(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The raw number (for logs).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MonitorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Ref<{}>", self.0)
    }
}

/// A monitored actor exited (Erlang's `{'DOWN', Ref, process, Pid, Reason}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    /// The monitor that fired.
    pub monitor: MonitorRef,
    /// The actor that exited.
    pub actor: ActorId,
    /// Why.
    pub reason: ExitReason,
}

crate::__message_impl! { impl ractor::Message for Down }

/// How a DOWN reaches a watcher's mailbox: as its message type, through its own cell.
pub(crate) type DeliverDown = fn(&ActorCell, Down);

/// Sends `down` to `watcher` as a message of type `M`. Fails only if the watcher is stopping,
/// when nobody is left to tell.
pub(crate) fn deliver_as<M: ractor::Message + From<Down>>(watcher: &ActorCell, down: Down) {
    let _ = watcher.send_message::<M>(M::from(down));
}

/// One watcher's monitors, by watched actor.
pub(crate) struct MonitorTable {
    targets: HashMap<ActorId, Target>,
    deliver: DeliverDown,
}

struct Target {
    cell: ActorCell,
    /// Empty: a tombstone. The monitors fired or were removed while the actor was already
    /// exiting, and its supervision event may still be on its way; it is swallowed, never
    /// taken for a linked child's exit.
    monitors: Vec<MonitorRef>,
}

/// What an exit means to the table.
pub(crate) enum Fired {
    /// DOWNs to deliver.
    Downs(Vec<Down>),
    /// A watched actor's late event, already accounted for: nothing to do.
    Swallowed,
    /// Not a monitored actor (a linked child, or a raw ractor monitor).
    Unknown,
}

/// What removing a monitor did.
pub(crate) struct Removed {
    /// The watched actor.
    pub(crate) cell: ActorCell,
    /// It was the last monitor on that actor (the ractor monitor can go).
    pub(crate) last: bool,
}

impl MonitorTable {
    pub(crate) fn new(deliver: DeliverDown) -> Self {
        MonitorTable {
            targets: HashMap::new(),
            deliver,
        }
    }

    pub(crate) fn deliver(&self) -> DeliverDown {
        self.deliver
    }

    /// Adds a monitor on `cell`; `true` if it is the first on that actor (the caller then
    /// sets ractor's monitor).
    pub(crate) fn add(&mut self, cell: &ActorCell) -> (MonitorRef, bool) {
        let monitor = MonitorRef::fresh();
        let target = self.targets.entry(cell.get_id()).or_insert_with(|| Target {
            cell: cell.clone(),
            monitors: Vec::new(),
        });
        let first = target.monitors.is_empty();
        target.monitors.push(monitor);
        (monitor, first)
    }

    /// Removes one monitor. `None` if it is not active (fired, removed, or never was).
    pub(crate) fn remove_if_active(&mut self, monitor: MonitorRef) -> Option<Removed> {
        let (id, target) = self
            .targets
            .iter_mut()
            .find(|(_, t)| t.monitors.contains(&monitor))?;
        let id = *id;
        target.monitors.retain(|m| *m != monitor);
        let last = target.monitors.is_empty();
        let cell = target.cell.clone();
        if last {
            self.targets.remove(&id);
        }
        Some(Removed { cell, last })
    }

    /// Leaves a tombstone for `cell`, whose last monitor went while it was exiting: its
    /// supervision event may still come and must not be taken for a linked child's.
    pub(crate) fn keep_tombstone(&mut self, cell: &ActorCell) {
        self.targets.entry(cell.get_id()).or_insert_with(|| Target {
            cell: cell.clone(),
            monitors: Vec::new(),
        });
    }

    /// The watched actor `actor` exited with `reason` (its supervision event arrived).
    pub(crate) fn fired(&mut self, actor: ActorId, reason: &ExitReason) -> Fired {
        match self.targets.remove(&actor) {
            None => Fired::Unknown,
            Some(t) if t.monitors.is_empty() => Fired::Swallowed,
            Some(t) => Fired::Downs(downs(actor, t.monitors, reason)),
        }
    }

    /// The watched actor stopped without its event reaching this table (it was exiting when
    /// the monitor was set): its monitors fire with `noproc`, and a tombstone waits for an
    /// event that may still come.
    pub(crate) fn expired(&mut self, actor: ActorId) -> Vec<Down> {
        match self.targets.get_mut(&actor) {
            Some(t) => downs(actor, std::mem::take(&mut t.monitors), &ExitReason::NoProc),
            None => Vec::new(),
        }
    }

    /// How many actors are watched (tombstones included).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.targets.len()
    }
}

fn downs(actor: ActorId, monitors: Vec<MonitorRef>, reason: &ExitReason) -> Vec<Down> {
    monitors
        .into_iter()
        .map(|monitor| Down {
            monitor,
            actor,
            reason: reason.clone(),
        })
        .collect()
}

/// The exited actor and its reason, if `event` is an exit.
pub(crate) fn exit_of(event: &ractor::SupervisionEvent) -> Option<(ActorId, ExitReason)> {
    match event {
        ractor::SupervisionEvent::ActorTerminated(cell, _, reason) => {
            Some((cell.get_id(), ExitReason::from_reason(reason.as_deref())))
        }
        ractor::SupervisionEvent::ActorFailed(cell, error) => {
            Some((cell.get_id(), ExitReason::Error(error.to_string())))
        }
        _ => None,
    }
}

/// A monitor made outside any actor ([`Runtime::monitor`](crate::Runtime::monitor)): a
/// future of the watched actor's [`Down`]. Dropping it (or
/// [`demonitor`](Self::demonitor)) removes the monitor.
///
/// ```
/// # use understudy_actor::{Runtime, ExitReason};
/// # use understudy_actor::Actor;
/// # struct Worker;
/// # impl Actor for Worker {}
/// # impl understudy_actor::Handler for Worker {
/// #     type Msg = ();
/// #     async fn handle(&mut self, _: &understudy_actor::Ctx<Self>, _: ()) -> Result<(), understudy_actor::ActorError> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = Runtime::new();
/// let worker = node.spawn(Worker).await?;
/// let monitor = node.monitor(&worker).await?;
/// worker.stop(Some("shutdown: done".into()));
/// let down = monitor.await;
/// assert_eq!(down.actor, worker.get_id());
/// assert_eq!(down.reason, ExitReason::Shutdown(Some("done".into())));
/// # Ok(()) }
/// ```
pub struct Monitor {
    down: oneshot::Receiver<Down>,
    watcher: ActorRef<Down>,
    actor: ActorId,
}

impl Monitor {
    pub(crate) fn new(
        down: oneshot::Receiver<Down>,
        watcher: ActorRef<Down>,
        actor: ActorId,
    ) -> Self {
        Monitor {
            down,
            watcher,
            actor,
        }
    }

    /// The watched actor.
    pub fn actor(&self) -> ActorId {
        self.actor
    }

    /// Removes the monitor; no DOWN will come.
    pub fn demonitor(self) {}
}

impl Future for Monitor {
    type Output = Down;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Down> {
        let actor = self.actor;
        Pin::new(&mut self.down).poll(cx).map(|down| {
            // The watcher only ever ends by sending the DOWN, or with the runtime shutting
            // down, when nothing more can be known about the actor.
            down.unwrap_or(Down {
                monitor: MonitorRef(0),
                actor,
                reason: ExitReason::NoProc,
            })
        })
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.watcher.stop(None);
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("actor", &self.actor)
            .finish()
    }
}

/// The actor behind a [`Monitor`]: it monitors one actor and hands its DOWN over.
struct Watch {
    target: ActorCell,
    down: Option<oneshot::Sender<Down>>,
}

impl Actor for Watch {
    async fn on_start(&mut self, ctx: &Ctx<Self>) -> Result<(), ActorError> {
        ctx.monitor(&self.target);
        Ok(())
    }
}

impl Handler for Watch {
    type Msg = Down;

    async fn handle(&mut self, ctx: &Ctx<Self>, down: Down) -> Result<(), ActorError> {
        if let Some(tx) = self.down.take() {
            let _ = tx.send(down);
        }
        ctx.stop(None);
        Ok(())
    }
}

impl Runtime {
    /// Monitors `actor` (local or remote) from outside any actor: the returned [`Monitor`]
    /// is a future of its [`Down`]. Inside an actor, use [`Ctx::monitor`], whose DOWN is
    /// ordered with that actor's messages.
    pub async fn monitor(&self, actor: &ActorCell) -> Result<Monitor, SpawnError> {
        let (tx, rx) = oneshot::channel();
        let watch = Watch {
            target: actor.clone(),
            down: Some(tx),
        };
        let watcher = self.spawn(watch).await?;
        Ok(Monitor::new(rx, watcher, actor.get_id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitors_fire_once_each_and_tombstones_swallow_late_events() {
        // The table's cells only need identities; a plain ractor actor gives one.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            struct Idle;
            impl ractor::Actor for Idle {
                type Msg = ();
                type State = ();
                type Arguments = ();
                async fn pre_start(
                    &self,
                    _: ActorRef<()>,
                    _: (),
                ) -> Result<(), ractor::ActorProcessingErr> {
                    Ok(())
                }
            }
            let (a, _) = ractor::Actor::spawn(None, Idle, ()).await.unwrap();
            let cell = a.get_cell();
            let mut table = MonitorTable::new(|_, _| {});
            let (m1, first) = table.add(&cell);
            assert!(first);
            let (m2, first) = table.add(&cell);
            assert!(!first && m1 != m2);

            // Removing one of two keeps the ractor monitor.
            let removed = table.remove_if_active(m1).expect("active");
            assert!(!removed.last);
            assert!(table.remove_if_active(m1).is_none(), "removed twice");

            let Fired::Downs(downs) = table.fired(cell.get_id(), &ExitReason::Killed) else {
                panic!("monitored");
            };
            assert_eq!(downs.len(), 1);
            assert_eq!(downs[0].monitor, m2);
            assert!(matches!(
                table.fired(cell.get_id(), &ExitReason::Killed),
                Fired::Unknown
            ));

            // Expired before its event: noproc now, the late event swallowed.
            let (m3, _) = table.add(&cell);
            let downs = table.expired(cell.get_id());
            assert_eq!(downs.len(), 1);
            assert_eq!(
                (downs[0].monitor, &downs[0].reason),
                (m3, &ExitReason::NoProc)
            );
            assert!(matches!(
                table.fired(cell.get_id(), &ExitReason::Normal),
                Fired::Swallowed
            ));
            assert_eq!(table.len(), 0);

            // Removed while exiting: a tombstone too.
            let (m4, _) = table.add(&cell);
            assert!(table.remove_if_active(m4).expect("active").last);
            table.keep_tombstone(&cell);
            assert!(matches!(
                table.fired(cell.get_id(), &ExitReason::Normal),
                Fired::Swallowed
            ));
            a.stop(None);
        });
    }
}
