//! The Consistent scope: cluster-wide names, linearizable and first-writer-wins.
//!
//! Semantics (anchors: Erlang's `global` names; etcd's linearizable writes):
//! - [`register`](Consistent::register) gives a free name to a local actor, through the Raft
//!   log: once it returns, every later linearizable read anywhere sees it. A name held by
//!   another actor is [`RegistryError::AlreadyRegistered`] with the holder; registering a
//!   name the actor holds already is success.
//! - [`unregister`](Consistent::unregister) frees a name, whoever holds it.
//! - A name is released on its own when its actor stops (its node proposes it) and when its
//!   node fails, leaves, or restarts (the leader proposes it).
//! - [`whereis`](Consistent::whereis) answers from this node's copy of the names, with no
//!   network round trip; it may lag the leader by the replication delay.
//!   [`whereis_linearizable`](Consistent::whereis_linearizable) first asks the leader for a
//!   read index, so it sees every write that completed before it was called.
//! - Typed: a name's holder takes one message type; asking for another is
//!   [`RegistryError::TypeMismatch`], never a wrong ref.
//! - In a minority partition, writes fail with [`RegistryError::NoQuorum`] after
//!   `write_deadline`; reads keep answering from the local copy
//!   ([`staleness`](Consistent::staleness) says how far behind it may be).

use std::sync::Arc;

use ractor::ActorRef;
use understudy_actor::{ActorAddr, RemoteMessage};

use crate::core::command::{Command, Outcome, Owner};
use crate::driver::{Shared, watcher, write};
use crate::error::RegistryError;
use crate::kernel::NameWatch;
use crate::name::check_name;

/// The Consistent scope of a node's registry (cheap to clone).
#[derive(Clone, Debug)]
pub struct Consistent {
    shared: Arc<Shared>,
}

/// How current this node's copy of the names is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staleness {
    /// The revision (Raft log index) the copy reflects.
    pub revision: u64,
    /// How long since the copy was last confirmed current: by a quorum's acknowledgement
    /// (on the leader), by the leader's heartbeat (a member), or by its member's feed (a
    /// client). It grows in a minority partition; `None` before the first confirmation.
    /// The copy may miss writes made at most this long ago (plus the replication delay).
    pub last_heard: Option<std::time::Duration>,
}

impl Consistent {
    pub(crate) fn new(shared: Arc<Shared>) -> Consistent {
        Consistent { shared }
    }

    /// Registers `actor` (an actor of this node) as `name`, cluster-wide.
    pub async fn register<M: RemoteMessage>(
        &self,
        name: &str,
        actor: &ActorRef<M>,
    ) -> Result<(), RegistryError> {
        self.register_at(name, actor).await.map(|_| ())
    }

    /// As [`register`](Self::register); the revision at which the name is `actor`'s (or a
    /// later one).
    pub(crate) async fn register_at<M: RemoteMessage>(
        &self,
        name: &str,
        actor: &ActorRef<M>,
    ) -> Result<u64, RegistryError> {
        check_name(name)?;
        let owner = local_owner(&self.shared, name, actor)?;
        let command = Command::Register {
            name: name.to_owned(),
            owner,
        };
        let (outcome, revision) = write::write(&self.shared, command).await?;
        match outcome {
            Outcome::Registered => Ok(revision),
            // Applied before, outcome not known to the leader that answered the retry: the
            // holder now says whether it took.
            Outcome::Repeated => match self.shared.kernel.owner(name) {
                Some(holder) if holder == owner => Ok(revision),
                Some(holder) => Err(RegistryError::AlreadyRegistered {
                    name: name.to_owned(),
                    owner: holder.addr,
                }),
                None => Ok(revision),
            },
            Outcome::AlreadyRegistered(holder) => Err(RegistryError::AlreadyRegistered {
                name: name.to_owned(),
                owner: holder.addr,
            }),
            Outcome::Full(limit) => Err(RegistryError::Full { limit }),
            Outcome::Starting { .. } | Outcome::Reserved => Err(RegistryError::Reserved {
                name: name.to_owned(),
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Frees `name`, whoever holds it. [`RegistryError::NotRegistered`] if nobody does.
    pub async fn unregister(&self, name: &str) -> Result<(), RegistryError> {
        check_name(name)?;
        write::linearize(&self.shared).await?;
        let mut holder = self.shared.kernel.owner(name);
        // A name that moved on between the read and the write is retried with its new
        // holder, a bounded number of times.
        for _ in 0..8 {
            let Some(owner) = holder else {
                return Err(RegistryError::NotRegistered {
                    name: name.to_owned(),
                });
            };
            let command = Command::Unregister {
                name: name.to_owned(),
                owner,
            };
            match write::write(&self.shared, command).await?.0 {
                Outcome::Unregistered | Outcome::Repeated => return Ok(()),
                Outcome::NotRegistered => holder = None,
                Outcome::NotOwner(now) => holder = Some(now),
                other => return Err(unexpected(other)),
            }
        }
        Err(RegistryError::NotReady(
            "the name kept changing hands; retry",
        ))
    }

    /// The actor registered as `name`, from this node's copy of the names (no network round
    /// trip): the local actor, or a proxy of a remote one.
    pub fn whereis<M: RemoteMessage>(&self, name: &str) -> Result<ActorRef<M>, RegistryError> {
        whereis_in(&self.shared, name)
    }

    /// As [`whereis`](Self::whereis), after making sure this node's copy reflects every write
    /// that completed before the call (a read index from the leader).
    pub async fn whereis_linearizable<M: RemoteMessage>(
        &self,
        name: &str,
    ) -> Result<ActorRef<M>, RegistryError> {
        write::linearize(&self.shared).await?;
        self.whereis(name)
    }

    /// The holder of `name` (address and message type), from this node's copy.
    pub fn owner(&self, name: &str) -> Option<Owner> {
        self.shared.kernel.owner(name)
    }

    /// Every registered name, in order, from this node's copy.
    pub fn names(&self) -> Vec<String> {
        self.shared
            .kernel
            .read()
            .table
            .names()
            .map(str::to_owned)
            .collect()
    }

    /// The names `actor` holds, from this node's copy.
    pub fn names_of(&self, actor: ActorAddr) -> Vec<String> {
        self.shared
            .kernel
            .read()
            .table
            .names_of(actor)
            .map(str::to_owned)
            .collect()
    }

    /// The current holder of `name` and its later changes, in order, atomically (like a pg
    /// monitor): the holder plus the changes give exactly the later holders.
    pub fn watch(&self, name: &str) -> (Option<Owner>, NameWatch) {
        self.shared.kernel.watch(name)
    }

    /// The names under `prefix` with their holders, and their later changes, atomically.
    pub fn watch_prefix(&self, prefix: &str) -> (Vec<(String, Owner)>, NameWatch) {
        self.shared.kernel.watch_prefix(prefix)
    }

    /// How current this node's copy of the names is.
    pub fn staleness(&self) -> Staleness {
        Staleness {
            revision: self.shared.kernel.revision(),
            last_heard: self.shared.last_heard(),
        }
    }
}

fn unexpected(outcome: Outcome) -> RegistryError {
    tracing::error!(
        ?outcome,
        "registry: an outcome that does not fit the command"
    );
    RegistryError::NotReady("an unexpected answer from the leader; retry")
}

/// `whereis` on `shared`'s copy. The node is needed only to make a ref the first time (or
/// after the cached one stopped); a cache hit is a hash lookup and a clone.
pub(crate) fn whereis_in<M: RemoteMessage>(
    shared: &Shared,
    name: &str,
) -> Result<ActorRef<M>, RegistryError> {
    shared.kernel.whereis::<M>(name, |addr| {
        let node = shared
            .node()
            .map_err(|_| understudy_actor::wire_ref::RefError::Stopped)?;
        node.actor_cell_now(addr)
    })
}

/// As [`whereis_in`], connecting to the holder's node first if this node has no connection
/// to it yet (a node that has not talked to it since joining).
pub(crate) async fn whereis_connecting<M: RemoteMessage>(
    shared: &Shared,
    name: &str,
) -> Result<ActorRef<M>, RegistryError> {
    match whereis_in::<M>(shared, name) {
        Err(RegistryError::Unreachable { owner, .. }) => {
            let node = shared.node()?;
            node.actor_cell(owner)
                .await
                .map_err(|source| RegistryError::Connect {
                    name: name.to_owned(),
                    owner,
                    source,
                })?;
            whereis_in(shared, name)
        }
        other => other,
    }
}

/// `actor` (which must be an actor of this node) as a holder of `name`, exported for
/// peers and watched, so that its names go when it stops, even right after they are taken.
pub(crate) fn local_owner<M: RemoteMessage>(
    shared: &Shared,
    name: &str,
    actor: &ActorRef<M>,
) -> Result<Owner, RegistryError> {
    let node = shared.node()?;
    if !actor.get_id().is_local() {
        return Err(RegistryError::InvalidName {
            name: name.chars().take(64).collect(),
            reason: "only actors of this node can be registered here; register it on its own node",
        });
    }
    let addr = node.runtime().export(actor);
    drop(node);
    watcher::watch(shared, &actor.get_cell());
    Ok(Owner {
        addr,
        tag: M::TAG,
        incarnation: shared.incarnation,
    })
}
