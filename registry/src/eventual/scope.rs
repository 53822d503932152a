//! The Eventual scope's public face.

use std::sync::Arc;

use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use understudy_actor::{ActorAddr, RemoteMessage, tell};

use super::core::EventualError;
use super::driver;
use crate::core::command::Owner;
use crate::driver::{Shared, lock};
use crate::error::RegistryError;

/// Sent to an actor whose Eventual name went to another actor when two sides of a partition
/// had both registered it: the actor keeps running, without the name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRevoked {
    /// The name.
    pub name: String,
    /// The actor that holds it now.
    pub winner: ActorAddr,
}

/// The Eventual scope (from [`Registry::eventual`]): names replicated by gossip, with no
/// quorum, so they can be registered on any node, in a minority partition too. Each node
/// writes only its own actors' names; when both sides of a partition took one name, every
/// node resolves it to the same winner (the earliest registration, then the lower node id)
/// once they hear of each other, and the loser is sent [`NameRevoked`] and keeps running.
/// A name goes when its actor stops, is unregistered, or its node's connection is lost.
///
/// ```
/// # use understudy_registry::__doc::*;
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let ca = ClusterCa::ephemeral("docs");
/// # let registry = Registry::new();
/// # let node = Node::builder("docs", "a").ephemeral_certs(&ca).extension(registry.clone()).start().await?;
/// let names = registry.eventual()?;
/// let worker = node.spawn(Worker).await?;
/// names.register("cache", &worker)?;
/// assert_eq!(names.whereis::<WorkerMsg>("cache")?.get_id(), worker.get_id());
/// # Ok(()) }
/// ```
///
/// [`Registry::eventual`]: crate::Registry::eventual
#[derive(Clone, Debug)]
pub struct Eventual {
    shared: Arc<Shared>,
}

fn error(e: EventualError) -> RegistryError {
    match e {
        EventualError::InvalidName(e) => e,
        EventualError::NotLocal(owner) => RegistryError::InvalidName {
            name: owner.addr.to_string(),
            reason: "only actors of this node can be registered here; register it on its own node",
        },
        EventualError::AlreadyRegistered { name, holder } => RegistryError::AlreadyRegistered {
            name,
            owner: holder.addr,
        },
        EventualError::NotRegistered { name } => RegistryError::NotRegistered { name },
        EventualError::NotOwner { name, holder } => RegistryError::NotOwner {
            name,
            owner: holder.addr,
        },
        EventualError::Full { limit } => RegistryError::Full {
            limit: limit as u64,
        },
    }
}

impl Eventual {
    pub(crate) fn new(shared: Arc<Shared>) -> Eventual {
        Eventual { shared }
    }

    /// Registers `actor` (an actor of this node) as `name`, at once: no round trip; peers
    /// hear of it by gossip. [`RegistryError::AlreadyRegistered`] if another actor holds it
    /// in this node's view.
    pub fn register<M>(&self, name: &str, actor: &ActorRef<M>) -> Result<(), RegistryError>
    where
        M: RemoteMessage + From<NameRevoked>,
    {
        let owner = crate::consistent::local_owner(&self.shared, name, actor)?;
        let addr = owner.addr;
        let now_ms = crate::driver::spawn::now_ms();
        {
            let mut state = lock(&self.shared.eventual);
            state.core.register(name, owner, now_ms).map_err(error)?;
            let notify = actor.clone();
            state.revokers.insert(
                (name.to_owned(), addr),
                Box::new(move |revoked| {
                    let _ = tell(&notify, M::from(revoked));
                }),
            );
        }
        driver::flush(&self.shared);
        Ok(())
    }

    /// Frees `name`, held by an actor of this node.
    pub fn unregister(&self, name: &str) -> Result<(), RegistryError> {
        {
            let mut state = lock(&self.shared.eventual);
            let owner = state
                .core
                .owner(name)
                .ok_or_else(|| RegistryError::NotRegistered {
                    name: name.to_owned(),
                })?;
            state.core.unregister(name, owner).map_err(error)?;
            state.revokers.remove(&(name.to_owned(), owner.addr));
        }
        driver::flush(&self.shared);
        Ok(())
    }

    /// The holder of `name` in this node's view.
    pub fn owner(&self, name: &str) -> Option<Owner> {
        lock(&self.shared.eventual).core.owner(name)
    }

    /// The names in this node's view, in order.
    pub fn names(&self) -> Vec<String> {
        lock(&self.shared.eventual).core.names()
    }

    /// The actor holding `name` in this node's view (typed: a different message type is
    /// [`RegistryError::TypeMismatch`]).
    pub fn whereis<M: RemoteMessage>(&self, name: &str) -> Result<ActorRef<M>, RegistryError> {
        let owner = self
            .owner(name)
            .ok_or_else(|| RegistryError::NotRegistered {
                name: name.to_owned(),
            })?;
        if owner.tag != M::TAG {
            return Err(RegistryError::TypeMismatch {
                name: name.to_owned(),
                expected: M::TAG,
                found: owner.tag,
            });
        }
        let node = self.shared.node()?;
        node.actor_cell_now(owner.addr)
            .map(Into::into)
            .map_err(|source| RegistryError::Unreachable {
                name: name.to_owned(),
                owner: owner.addr,
                source,
            })
    }
}
