//! Members, monitor events and subscriptions: what applications see of a scope.
//!
//! A monitor's events wait in a queue until its subscriber reads them. Peers feed it (every
//! change they send becomes an event), so it is bounded: at most [`MONITOR_BACKLOG`] member
//! occurrences wait (or one event, if a single event is larger). A subscriber that falls
//! further behind is not left with a silent gap: it reads what was queued, then
//! [`PgError::MonitorOverflow`], and the monitor is gone; monitoring again gives a fresh
//! snapshot.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use ractor::{ActorCell, ActorRef};
use tokio::sync::mpsc;
use understudy_actor::{ActorAddr, RemoteMessage, Tag};

use crate::core::{Change, Entry, EventSink};
use crate::error::PgError;
use crate::scope::{Handle, ScopeShared};

/// How many member occurrences may wait in one monitor's queue (summed over its events). An
/// event that finds the queue empty is taken whatever its size, so a reader that keeps up
/// never overflows; one that falls this far behind is told so and loses its monitor. At
/// most about 4 MiB a monitor (an occurrence is about 40 bytes queued, plus the event's own
/// few dozen bytes).
pub const MONITOR_BACKLOG: usize = 1 << 16;

/// One member of a group, whatever its message type: its address and its type's tag.
/// [`Member::typed`] gives a ref to it.
#[derive(Clone, Debug)]
pub struct Member {
    addr: ActorAddr,
    tag: Tag,
    /// The local actor's cell, or the proxy of a remote one if a ref to it was made already.
    cell: Handle,
    scope: Weak<ScopeShared>,
}

impl Member {
    pub(crate) fn from_entry(entry: Entry<Handle>, scope: Weak<ScopeShared>) -> Member {
        Member {
            addr: entry.addr,
            tag: entry.tag,
            cell: entry.handle,
            scope,
        }
    }

    /// Where the actor lives.
    pub fn addr(&self) -> ActorAddr {
        self.addr
    }

    /// The wire tag of its message type.
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// The untyped cell: the local actor itself, or a proxy of the remote one (made now if
    /// this node has none yet; it lives as long as the actor does).
    pub async fn cell(&self) -> Result<ActorCell, PgError> {
        let scope = self.scope.upgrade().ok_or(PgError::NodeGone)?;
        match &self.cell {
            // A local actor's own cell, even stopped (as a pid stays a pid); a remote one's
            // proxy while it runs (a stopped proxy may have stopped for a lost connection).
            Some(cell) if self.addr.node == scope.env.me || crate::scope::is_live(cell) => {
                Ok(cell.clone())
            }
            _ => scope.env.resolve(self.addr).await,
        }
    }

    /// The member as a ref of message type `M` (see [`Member::cell`]); an error if it takes
    /// another type, or if it is on a node this node cannot reach now.
    pub async fn typed<M: RemoteMessage>(&self) -> Result<ActorRef<M>, PgError> {
        if self.tag != M::TAG {
            return Err(PgError::MemberType {
                member: self.addr,
                wanted: std::any::type_name::<M>(),
                found: self.tag,
            });
        }
        Ok(ActorRef::from(self.cell().await?))
    }
}

/// A change of a group, as a monitor receives it.
#[derive(Clone, Debug)]
pub enum PgEvent {
    /// `members` joined `group` (an actor that joined twice is listed twice).
    Join {
        /// The group.
        group: String,
        /// Who joined.
        members: Vec<Member>,
    },
    /// `members` left `group` (left, stopped, or their node went down).
    Leave {
        /// The group.
        group: String,
        /// Who left.
        members: Vec<Member>,
    },
}

impl PgEvent {
    /// The group the event is about.
    pub fn group(&self) -> &str {
        match self {
            PgEvent::Join { group, .. } | PgEvent::Leave { group, .. } => group,
        }
    }

    /// The members that joined or left.
    pub fn members(&self) -> &[Member] {
        match self {
            PgEvent::Join { members, .. } | PgEvent::Leave { members, .. } => members,
        }
    }
}

/// What a monitor's queue carries.
#[derive(Debug)]
pub(crate) enum Delivery {
    Change(Change<Handle>),
    /// The subscriber fell [`MONITOR_BACKLOG`] behind; nothing follows.
    Overflow,
}

/// How far behind a monitor's subscriber is, shared by the sink and the subscription.
#[derive(Debug, Default)]
struct Backlog {
    /// Member occurrences queued.
    queued: AtomicUsize,
    /// The overflow was queued: deliver nothing more.
    overflowed: AtomicBool,
}

/// The sending side of one monitor's queue (the core pushes into it under the scope's lock).
#[derive(Debug)]
pub(crate) struct EventQueue {
    tx: mpsc::UnboundedSender<Delivery>,
    backlog: Arc<Backlog>,
}

impl EventQueue {
    /// A queue and the subscription reading it (see [`Subscription::new`] for the rest).
    pub(crate) fn new() -> (EventQueue, mpsc::UnboundedReceiver<Delivery>, QueueReader) {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::default());
        (
            EventQueue {
                tx,
                backlog: backlog.clone(),
            },
            rx,
            QueueReader(backlog),
        )
    }
}

impl EventSink<Handle> for EventQueue {
    fn deliver(&self, change: Change<Handle>) {
        let backlog = &self.backlog;
        if backlog.overflowed.load(Ordering::Relaxed) {
            return;
        }
        let n = change_len(&change);
        // Only this sink adds, under the scope's write lock; the reader only subtracts, so
        // the queue holds at most what this check allows.
        let queued = backlog.queued.load(Ordering::Acquire);
        if queued > 0 && queued.saturating_add(n) > MONITOR_BACKLOG {
            backlog.overflowed.store(true, Ordering::Relaxed);
            let _ = self.tx.send(Delivery::Overflow);
            return;
        }
        backlog.queued.fetch_add(n, Ordering::AcqRel);
        // A receiver gone means the subscription is being dropped; it demonitors itself.
        let _ = self.tx.send(Delivery::Change(change));
    }
}

fn change_len(change: &Change<Handle>) -> usize {
    match change {
        Change::Join { members, .. } | Change::Leave { members, .. } => members.len(),
    }
}

/// The subscription's side of a [`Backlog`].
#[derive(Debug)]
pub(crate) struct QueueReader(Arc<Backlog>);

/// A monitor's stream of events, in the order the changes were applied on this node.
///
/// Dropping it (or calling [`Subscription::demonitor`]) removes the monitor and drops any
/// events still queued, as Erlang's `pg:demonitor/2` flushes them. A subscriber that falls
/// [`MONITOR_BACKLOG`] member occurrences behind gets [`PgError::MonitorOverflow`] after the
/// queued events, and the monitor ends (see the module docs).
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<Delivery>,
    backlog: QueueReader,
    id: u64,
    scope: Weak<ScopeShared>,
    ended: Option<PgError>,
}

impl Subscription {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<Delivery>,
        backlog: QueueReader,
        id: u64,
        scope: Weak<ScopeShared>,
    ) -> Self {
        Subscription {
            rx,
            backlog,
            id,
            scope,
            ended: None,
        }
    }

    /// The next event. An error once the monitor has ended: [`PgError::MonitorOverflow`] if
    /// this subscriber fell too far behind, [`PgError::NodeGone`] once the scope is gone.
    pub async fn recv(&mut self) -> Result<PgEvent, PgError> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        let delivery = self.rx.recv().await;
        self.take(delivery)
    }

    /// The next event if one is queued (`Ok(None)` if none is); errors as [`Subscription::recv`].
    pub fn try_recv(&mut self) -> Result<Option<PgEvent>, PgError> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        match self.rx.try_recv() {
            Ok(delivery) => self.take(Some(delivery)).map(Some),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => self.take(None).map(Some),
        }
    }

    /// How many member occurrences are queued, unread (at most [`MONITOR_BACKLOG`], or one
    /// event's if a single event is larger).
    pub fn backlog(&self) -> usize {
        self.backlog.0.queued.load(Ordering::Acquire)
    }

    /// Stops the monitor: nothing more arrives and queued events are dropped.
    pub fn demonitor(self) {
        drop(self)
    }

    fn take(&mut self, delivery: Option<Delivery>) -> Result<PgEvent, PgError> {
        match delivery {
            Some(Delivery::Change(change)) => {
                self.backlog
                    .0
                    .queued
                    .fetch_sub(change_len(&change), Ordering::AcqRel);
                Ok(self.convert(change))
            }
            Some(Delivery::Overflow) => {
                // The monitor is dead: remove it now rather than when this is dropped.
                if let Some(scope) = self.scope.upgrade() {
                    scope.demonitor(self.id);
                }
                Err(self.end(PgError::MonitorOverflow {
                    backlog: MONITOR_BACKLOG,
                }))
            }
            None => Err(self.end(PgError::NodeGone)),
        }
    }

    fn end(&mut self, error: PgError) -> PgError {
        self.rx.close();
        self.ended = Some(error.clone());
        error
    }

    fn convert(&self, change: Change<Handle>) -> PgEvent {
        let members = |m: Vec<Entry<Handle>>| {
            m.into_iter()
                .map(|e| Member::from_entry(e, self.scope.clone()))
                .collect()
        };
        match change {
            Change::Join { group, members: m } => PgEvent::Join {
                group,
                members: members(m),
            },
            Change::Leave { group, members: m } => PgEvent::Leave {
                group,
                members: members(m),
            },
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.upgrade() {
            scope.demonitor(self.id);
        }
        self.rx.close();
    }
}
