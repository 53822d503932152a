//! The Strong scope: Consistent names whose writes return only once every live node's copy
//! has them.
//!
//! A Consistent `register` returns when a quorum has the entry; a node outside that quorum
//! (a lagging voter, or a client whose feed is behind) may still resolve the name to its
//! older holder, or to none, for a moment. A Strong `register` then waits until every node
//! SWIM lists as live has acknowledged the revision that made it, so once it returns no node
//! resolves the name to an older holder. If some node has not acknowledged by the deadline,
//! the registration is withdrawn (a conditional unregister) and the call fails with
//! [`RegistryError::NotAcked`] naming those nodes. Strong and Consistent names are one table:
//! reads are the Consistent ones.

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::time::Instant;
use understudy_actor::RemoteMessage;
use understudy_cluster::identity::NodeName;

use crate::consistent::Consistent;
use crate::core::command::Command;
use crate::driver::{Shared, write};
use crate::error::RegistryError;
use crate::wire::{self, PeerMessage};

/// The longest a peer's acknowledgement request may make this node wait.
pub(crate) const MAX_ACK_WAIT: Duration = Duration::from_secs(30);

/// The Strong scope, from [`Registry::strong`]: Consistent names whose writes return only
/// once every node SWIM lists as live has acknowledged them. A registration not
/// acknowledged by every live node within the [deadline](Self::deadline) is withdrawn and
/// fails with [`RegistryError::NotAcked`], naming those nodes. Reads are the Consistent
/// ones ([`consistent`](Self::consistent)): one table.
///
/// [`Registry::strong`]: crate::Registry::strong
#[derive(Clone, Debug)]
pub struct Strong {
    shared: Arc<Shared>,
    deadline: Duration,
}

impl Strong {
    pub(crate) fn new(shared: Arc<Shared>) -> Strong {
        let deadline = shared.config.write_deadline;
        Strong { shared, deadline }
    }

    /// With writes that wait at most `deadline` for the acknowledgements (default: the
    /// registry's `write_deadline`).
    pub fn deadline(mut self, deadline: Duration) -> Strong {
        self.deadline = deadline;
        self
    }

    /// The same names, read as Consistent ones (`whereis`, `owner`, `watch`...).
    pub fn consistent(&self) -> Consistent {
        Consistent::new(self.shared.clone())
    }

    /// Registers `actor` (an actor of this node) as `name`, returning once every live
    /// node's copy has it (within the [deadline](Self::deadline)).
    ///
    /// ```
    /// # use understudy_registry::__doc::*;
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let ca = ClusterCa::ephemeral("docs");
    /// # let registry = Registry::new();
    /// # let node = Node::builder("docs", "a").ephemeral_certs(&ca).extension(registry.clone()).start().await?;
    /// # registry.wait_ready(std::time::Duration::from_secs(10)).await?;
    /// let worker = node.spawn(Worker).await?;
    /// registry.strong()?.register("billing", &worker).await?;
    /// # Ok(()) }
    /// ```
    pub async fn register<M: RemoteMessage>(
        &self,
        name: &str,
        actor: &ActorRef<M>,
    ) -> Result<(), RegistryError> {
        let started = Instant::now();
        let deadline = started + self.deadline;
        let consistent = self.consistent();
        let revision = consistent.register_at(name, actor).await?;
        if let Err(missing) = barrier(&self.shared, revision, deadline).await {
            // Not active everywhere in time: withdrawn, so it is active nowhere.
            if let Some(owner) = self.shared.kernel.owner(name) {
                let withdraw = Command::Unregister {
                    name: name.to_owned(),
                    owner,
                };
                if let Err(e) = write::write(&self.shared, withdraw).await {
                    tracing::warn!(name, error = %e, "registry: could not withdraw an unacknowledged strong registration");
                }
            }
            return Err(RegistryError::NotAcked {
                name: name.to_owned(),
                missing,
                waited: started.elapsed(),
            });
        }
        Ok(())
    }
}

/// Waits until every live node's copy (this one's included) has reached `revision`, or
/// `deadline`: the names of the nodes that had not, if any.
pub(crate) async fn barrier(
    shared: &Shared,
    revision: u64,
    deadline: Instant,
) -> Result<(), Vec<String>> {
    let Ok(node) = shared.node() else {
        return Err(vec![shared.me.to_string()]);
    };
    let peers: Vec<NodeName> = node.members().iter().map(|m| m.name().clone()).collect();
    drop(node);
    let asks = peers.into_iter().map(|peer| async move {
        let left = deadline.saturating_duration_since(Instant::now());
        let body = PeerMessage::Ack {
            revision,
            within_ms: left.as_millis() as u64,
        }
        .encode();
        let acked = match shared.ctx.request(&peer, body, left).await {
            Ok(bytes) => wire::decode::<bool>(&bytes) == Ok(true),
            Err(_) => false,
        };
        (!acked).then(|| peer.to_string())
    });
    let mine = async {
        let mut revisions = shared.kernel.revisions();
        let reached = tokio::time::timeout_at(deadline, revisions.wait_for(|r| *r >= revision));
        (!matches!(reached.await, Ok(Ok(_)))).then(|| shared.me.to_string())
    };
    let (theirs, mine) = tokio::join!(futures_util::future::join_all(asks), mine);
    let mut missing: Vec<String> = theirs.into_iter().flatten().chain(mine).collect();
    missing.sort();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// A peer's request: answers true once this node's copy has reached `revision` (waiting at
/// most `within`, and never more than [`MAX_ACK_WAIT`]).
pub(crate) async fn ack(shared: &Shared, revision: u64, within: Duration) -> bool {
    let mut revisions = shared.kernel.revisions();
    let wait = revisions.wait_for(|r| *r >= revision);
    matches!(
        tokio::time::timeout(within.min(MAX_ACK_WAIT), wait).await,
        Ok(Ok(_))
    )
}
