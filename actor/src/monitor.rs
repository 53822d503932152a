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
//! - Monitoring an actor that is already gone gives a DOWN with [`ExitReason::NoProc`]
//!   ([`ExitReason::NoConnection`] for a remote one whose connection is gone). A remote
//!   actor's node going away gives [`ExitReason::NoConnection`].
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
//! Races with ractor: a monitor set while its actor is already exiting may miss the event
//! (ractor copies an actor's monitors once, as it exits), and one set while its actor is
//! still starting gets none if the start fails; an event of a monitor removed while its actor
//! exits may still come, and must not reach `on_supervision` as a link's (which by default
//! stops the watcher). In those cases the monitors are *settled*: once the actor has
//! stopped, a probe actor linked to the watcher exits; its event comes after any of the
//! actor's, and then whatever has not fired fires with `noproc` (and a removed monitor's
//! tombstone goes).
//!
//! `MonitorTable` is the pure bookkeeping; `Monitors` is its shell on ractor, which
//! `actor.rs` (the API) and `host.rs` (supervision events) drive. A watcher that stops
//! removes itself from the monitors of every actor it watched.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use ractor::{ActorCell, ActorId, ActorRef, ActorStatus};
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

/// One watcher's monitors, by watched actor: pure bookkeeping.
pub(crate) struct MonitorTable {
    targets: HashMap<ActorId, Target>,
    /// Probe actor → the watched actor it settles (see [`Monitors::settle`]).
    probes: HashMap<ActorId, ActorId>,
}

struct Target {
    cell: ActorCell,
    /// Empty: a tombstone. The monitors fired or were removed while the actor was already
    /// exiting, and its supervision event may still be on its way; it is swallowed, never
    /// taken for a linked child's exit, until its probe settles it.
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
    pub(crate) fn new() -> Self {
        MonitorTable {
            targets: HashMap::new(),
            probes: HashMap::new(),
        }
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

    /// `probe` will settle `actor`: its exit event comes after any event of `actor`'s.
    pub(crate) fn add_probe(&mut self, probe: ActorId, actor: ActorId) {
        self.probes.insert(probe, actor);
    }

    /// Whether `actor` is a probe (its own events are this table's, not the watcher's).
    pub(crate) fn is_probe(&self, actor: ActorId) -> bool {
        self.probes.contains_key(&actor)
    }

    /// `probe` exited, so every event of the actor it settles has been seen: monitors that
    /// have not fired never will, and fire with `noproc`; a tombstone goes.
    pub(crate) fn probed(&mut self, probe: ActorId) -> Vec<Down> {
        let Some(actor) = self.probes.remove(&probe) else {
            return Vec::new();
        };
        match self.targets.remove(&actor) {
            Some(t) => downs(actor, t.monitors, &gone(actor)),
            None => Vec::new(),
        }
    }

    /// The actors watched (tombstones included).
    pub(crate) fn cells(&self) -> impl Iterator<Item = &ActorCell> {
        self.targets.values().map(|t| &t.cell)
    }

    /// How many actors are watched (tombstones included).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.targets.len()
    }
}

/// A watcher's monitors and what its host needs of them: the async shell of [`MonitorTable`]
/// (ractor's monitors, delivery into the mailbox, exits that need settling).
pub(crate) struct Monitors {
    watcher: ActorCell,
    deliver: DeliverDown,
    table: Mutex<MonitorTable>,
}

impl Monitors {
    pub(crate) fn new(watcher: ActorCell, deliver: DeliverDown) -> Self {
        Monitors {
            watcher,
            deliver,
            table: Mutex::new(MonitorTable::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, MonitorTable> {
        // Each operation is one map change: a panic cannot leave it half-done.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deliver_all(&self, downs: Vec<Down>) {
        for down in downs {
            (self.deliver)(&self.watcher, down);
        }
    }

    /// Monitors `actor` (see [`Ctx::monitor`](crate::Ctx::monitor)).
    pub(crate) fn monitor(self: &Arc<Self>, actor: &ActorCell) -> MonitorRef {
        if actor.get_status() == ActorStatus::Stopped {
            let monitor = MonitorRef::fresh();
            self.deliver_all(downs(actor.get_id(), vec![monitor], &gone(actor.get_id())));
            return monitor;
        }
        let (monitor, first) = self.table().add(actor);
        if first {
            self.watcher.monitor(actor.clone());
        }
        if !is_running(actor.get_status()) {
            // Exiting: its exit may have been announced before this monitor was set. Not
            // yet running: its start may fail, which announces nothing.
            self.settle(actor.clone());
        }
        monitor
    }

    /// Turns a monitor off (see [`Ctx::demonitor`](crate::Ctx::demonitor)).
    pub(crate) fn demonitor(self: &Arc<Self>, monitor: MonitorRef) -> bool {
        let mut table = self.table();
        let Some(removed) = table.remove_if_active(monitor) else {
            return false;
        };
        if removed.last {
            self.watcher.unmonitor(removed.cell.clone());
            // Checked after ractor's monitor went: an actor already exiting may have
            // announced it to its monitors, this one included.
            if removed.cell.get_status() >= ActorStatus::Stopping {
                table.keep_tombstone(&removed.cell);
                drop(table);
                self.settle(removed.cell);
            }
        }
        true
    }

    /// Makes sure the monitors of `actor`, whose exit may never be announced to this watcher
    /// (or may already be on its way), end exactly once. Once `actor` has stopped, every
    /// event it sent is in the watcher's supervision queue; a probe actor linked to the
    /// watcher then exits, and its event comes after them: when it arrives, the monitors
    /// that have not fired fire with `noproc`, and a tombstone goes.
    fn settle(self: &Arc<Self>, actor: ActorCell) {
        let monitors = Arc::downgrade(self);
        tokio::spawn(async move {
            // A spawned actor is `Starting` until its loop runs, a moment after its spawn
            // returned; give it that moment before taking it for one whose start may fail.
            for _ in 0..64 {
                if actor.get_status() >= ActorStatus::Running {
                    break;
                }
                tokio::task::yield_now().await;
            }
            if is_running(actor.get_status()) {
                return; // Running, with the monitor set: its exit will be announced.
            }
            let _ = actor.wait(None).await;
            let Some(monitors) = monitors.upgrade() else {
                return; // The watcher is gone.
            };
            match ractor::Actor::spawn(None, Probe, ()).await {
                Ok((probe, _)) => {
                    monitors.table().add_probe(probe.get_id(), actor.get_id());
                    probe.get_cell().link(monitors.watcher.clone());
                    probe.stop(None);
                }
                // No actor can start (the runtime is going down): settle now.
                Err(_) => {
                    let fired = monitors
                        .table()
                        .fired(actor.get_id(), &gone(actor.get_id()));
                    if let Fired::Downs(downs) = fired {
                        monitors.deliver_all(downs);
                    }
                }
            }
        });
    }

    /// A supervision event reached the watcher: `true` if it was a monitored exit (its
    /// DOWNs are now in the mailbox) or a probe's, `false` if it is a link's.
    pub(crate) fn on_event(&self, event: &ractor::SupervisionEvent) -> bool {
        let mut table = self.table();
        if let Some(actor) = actor_of(event)
            && table.is_probe(actor)
        {
            if exit_of(event).is_some() {
                let downs = table.probed(actor);
                drop(table);
                self.deliver_all(downs);
            }
            return true;
        }
        let Some((actor, reason)) = exit_of(event) else {
            return false;
        };
        match table.fired(actor, &reason) {
            Fired::Downs(downs) => {
                drop(table);
                self.deliver_all(downs);
                true
            }
            Fired::Swallowed => true,
            Fired::Unknown => false,
        }
    }
}

/// Why an actor that exited unobserved is gone, as Erlang says it: `noconnection` for a remote
/// actor whose connection is gone (nothing more can be known of it), else `noproc`.
fn gone(actor: ActorId) -> ExitReason {
    #[cfg(feature = "remote")]
    if let ActorId::Remote { node_id, .. } = actor
        && crate::route::lookup(node_id).is_none()
    {
        return ExitReason::NoConnection;
    }
    let _ = actor;
    ExitReason::NoProc
}

/// Running, and so sure to announce its exit to the monitors it has.
fn is_running(status: ActorStatus) -> bool {
    (ActorStatus::Running..ActorStatus::Stopping).contains(&status)
}

/// The actor that settles an exit (see [`Monitors::settle`]): it only exits.
struct Probe;

/// A probe's messages: there are none.
enum Never {}
crate::__message_impl! { impl ractor::Message for Never }

impl ractor::Actor for Probe {
    type Msg = Never;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Never>, _: ()) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }
}

/// The actor an event is about.
fn actor_of(event: &ractor::SupervisionEvent) -> Option<ActorId> {
    match event {
        ractor::SupervisionEvent::ActorStarted(cell)
        | ractor::SupervisionEvent::ActorTerminated(cell, _, _)
        | ractor::SupervisionEvent::ActorFailed(cell, _) => Some(cell.get_id()),
        _ => None,
    }
}

impl Drop for Monitors {
    /// The watcher is gone: the actors it watched forget it (ractor would otherwise keep
    /// its cell until they exit).
    fn drop(&mut self) {
        let table = self.table.get_mut().unwrap_or_else(|e| e.into_inner());
        for cell in table.cells() {
            self.watcher.unmonitor(cell.clone());
        }
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
fn exit_of(event: &ractor::SupervisionEvent) -> Option<(ActorId, ExitReason)> {
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
            let mut table = MonitorTable::new();
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

            // Settled by a probe before any event: noproc.
            let probe = ActorId::Local(u64::MAX);
            let (m3, _) = table.add(&cell);
            table.add_probe(probe, cell.get_id());
            assert!(table.is_probe(probe));
            let downs = table.probed(probe);
            assert_eq!(downs.len(), 1);
            assert_eq!(
                (downs[0].monitor, &downs[0].reason),
                (m3, &ExitReason::NoProc)
            );
            assert!(!table.is_probe(probe));
            assert_eq!(table.len(), 0);

            // Its event first, then the probe: the event's reason, the probe finds nothing.
            let (m4, _) = table.add(&cell);
            table.add_probe(probe, cell.get_id());
            let Fired::Downs(downs) = table.fired(cell.get_id(), &ExitReason::Killed) else {
                panic!("monitored");
            };
            assert_eq!(
                (downs[0].monitor, &downs[0].reason),
                (m4, &ExitReason::Killed)
            );
            assert!(table.probed(probe).is_empty());

            // Removed while exiting: a tombstone swallows the late event, or the probe
            // clears it.
            let (m5, _) = table.add(&cell);
            assert!(table.remove_if_active(m5).expect("active").last);
            table.keep_tombstone(&cell);
            assert!(matches!(
                table.fired(cell.get_id(), &ExitReason::Normal),
                Fired::Swallowed
            ));
            table.keep_tombstone(&cell);
            table.add_probe(probe, cell.get_id());
            assert!(table.probed(probe).is_empty());
            assert_eq!(table.len(), 0);
            a.stop(None);
        });
    }
}
