//! Members, monitor events and subscriptions: what applications see of a scope.

use std::marker::PhantomData;
use std::sync::Weak;

use ractor::{ActorCell, ActorRef};
use tokio::sync::mpsc;
use understudy_actor::{ActorAddr, RemoteMessage, Tag};

use crate::core::{Change, Entry, EventSink};
use crate::error::PgError;
use crate::scope::ScopeShared;

/// One member of a group, whatever its message type: its address, its type's tag and a
/// cell to reach it. [`Member::typed`] turns it into a typed ref.
#[derive(Clone, Debug)]
pub struct Member {
    addr: ActorAddr,
    tag: Tag,
    cell: ActorCell,
}

impl Member {
    pub(crate) fn from_entry(entry: Entry<ActorCell>) -> Member {
        Member {
            addr: entry.addr,
            tag: entry.tag,
            cell: entry.handle,
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

    /// The untyped cell (a remote actor's proxy on this node).
    pub fn cell(&self) -> &ActorCell {
        &self.cell
    }

    /// The member as a ref of message type `M`; an error if it takes another type.
    pub fn typed<M: RemoteMessage>(&self) -> Result<ActorRef<M>, PgError> {
        if self.tag == M::TAG {
            Ok(ActorRef::from(self.cell.clone()))
        } else {
            Err(PgError::MemberType {
                member: self.addr,
                wanted: std::any::type_name::<M>(),
                found: self.tag,
            })
        }
    }
}

/// A change of a group, as a monitor receives it. `T` is [`Member`] for scope monitors and
/// `ActorRef<M>` for typed group monitors.
#[derive(Clone, Debug)]
pub enum PgEvent<T> {
    /// `members` joined `group` (an actor that joined twice is listed twice).
    Join {
        /// The group.
        group: String,
        /// Who joined.
        members: Vec<T>,
    },
    /// `members` left `group` (left, stopped, or their node went down).
    Leave {
        /// The group.
        group: String,
        /// Who left.
        members: Vec<T>,
    },
}

impl<T> PgEvent<T> {
    /// The group the event is about.
    pub fn group(&self) -> &str {
        match self {
            PgEvent::Join { group, .. } | PgEvent::Leave { group, .. } => group,
        }
    }

    /// The members that joined or left.
    pub fn members(&self) -> &[T] {
        match self {
            PgEvent::Join { members, .. } | PgEvent::Leave { members, .. } => members,
        }
    }
}

/// How a subscription turns core entries into what it hands out.
pub trait FromMember: Sized + sealed::Sealed {
    /// `None` for a member of another message type (skipped, with a warning).
    fn from_member(entry: Entry<ActorCell>) -> Option<Self>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Member {}
    impl<M: understudy_actor::RemoteMessage> Sealed for ractor::ActorRef<M> {}
}

impl FromMember for Member {
    fn from_member(entry: Entry<ActorCell>) -> Option<Self> {
        Some(Member::from_entry(entry))
    }
}

impl<M: RemoteMessage> FromMember for ActorRef<M> {
    fn from_member(entry: Entry<ActorCell>) -> Option<Self> {
        if entry.tag == M::TAG {
            Some(ActorRef::from(entry.handle))
        } else {
            tracing::warn!(
                member = %entry.addr,
                wanted = std::any::type_name::<M>(),
                "a member of another message type joined a monitored group; not delivered"
            );
            None
        }
    }
}

/// The queue of one monitor's events (the core pushes into it under the scope's lock).
pub(crate) type EventQueue = mpsc::UnboundedSender<Change<ActorCell>>;

impl EventSink<ActorCell> for EventQueue {
    fn deliver(&self, change: Change<ActorCell>) {
        // A receiver gone means the subscription is being dropped; it demonitors itself.
        let _ = self.send(change);
    }
}

/// A monitor's stream of events, in the order the changes were applied on this node.
///
/// Dropping it (or calling [`Subscription::demonitor`]) removes the monitor and drops any
/// events still queued, as Erlang's `pg:demonitor/2` flushes them.
#[derive(Debug)]
pub struct Subscription<T> {
    rx: mpsc::UnboundedReceiver<Change<ActorCell>>,
    id: u64,
    scope: Weak<ScopeShared>,
    _kind: PhantomData<fn() -> T>,
}

impl<T: FromMember> Subscription<T> {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<Change<ActorCell>>,
        id: u64,
        scope: Weak<ScopeShared>,
    ) -> Self {
        Subscription {
            rx,
            id,
            scope,
            _kind: PhantomData,
        }
    }

    /// The next event; `None` once the scope is gone.
    pub async fn recv(&mut self) -> Option<PgEvent<T>> {
        loop {
            let change = self.rx.recv().await?;
            if let Some(event) = convert(change) {
                return Some(event);
            }
        }
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<PgEvent<T>> {
        while let Ok(change) = self.rx.try_recv() {
            if let Some(event) = convert(change) {
                return Some(event);
            }
        }
        None
    }

    /// Stops the monitor: nothing more arrives and queued events are dropped.
    pub fn demonitor(self) {
        drop(self)
    }
}

fn convert<T: FromMember>(change: Change<ActorCell>) -> Option<PgEvent<T>> {
    let (join, group, members) = match change {
        Change::Join { group, members } => (true, group, members),
        Change::Leave { group, members } => (false, group, members),
    };
    let members: Vec<T> = members.into_iter().filter_map(T::from_member).collect();
    if members.is_empty() {
        return None;
    }
    Some(if join {
        PgEvent::Join { group, members }
    } else {
        PgEvent::Leave { group, members }
    })
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.upgrade() {
            scope.demonitor(self.id);
        }
        self.rx.close();
    }
}
