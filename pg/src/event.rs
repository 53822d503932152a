//! Members, monitor events and subscriptions: what applications see of a scope.

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
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<Change<ActorCell>>,
    id: u64,
    scope: Weak<ScopeShared>,
}

impl Subscription {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<Change<ActorCell>>,
        id: u64,
        scope: Weak<ScopeShared>,
    ) -> Self {
        Subscription { rx, id, scope }
    }

    /// The next event; `None` once the scope is gone.
    pub async fn recv(&mut self) -> Option<PgEvent> {
        self.rx.recv().await.map(convert)
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<PgEvent> {
        self.rx.try_recv().ok().map(convert)
    }

    /// Stops the monitor: nothing more arrives and queued events are dropped.
    pub fn demonitor(self) {
        drop(self)
    }
}

fn convert(change: Change<ActorCell>) -> PgEvent {
    let members = |m: Vec<Entry<ActorCell>>| m.into_iter().map(Member::from_entry).collect();
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

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.upgrade() {
            scope.demonitor(self.id);
        }
        self.rx.close();
    }
}
