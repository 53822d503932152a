//! # understudy-registry
//!
//! Cluster-wide names on a bounded Raft core (docs/ARCHITECTURE.md, section 9). The registry
//! keeps its consensus small however large the cluster grows: at most `max_voters` voters,
//! `max_standbys` fully replicated standbys ready to be promoted, and every other node a
//! client that reads from its own replica.
//!
//! Register [`Registry`] on each node as an extension; [`Registry::consistent`] gives the
//! Consistent scope ([`Consistent`]): linearizable, first-writer-wins names whose lookups
//! ([`Consistent::whereis`]) answer from the node's own copy. The semantics are on
//! [`Consistent`]; the settings on [`RegistryConfig`].
//!
//! Built in the repository's vocabulary: a *core* is pure (no tasks, no clock, no I/O), a
//! *driver* is its async shell.
//! - [`core::table`]: the name table, the replicated state machine (with the outcomes of
//!   recent requests, so a retried write is applied once).
//! - [`core::reconcile`]: which nodes should vote and which should stand by, as a pure
//!   function of the membership view, and the quorum-safe steps from the Raft configuration
//!   in force to that target.
//! - the kernel: the table behind one lock, with watches and cached refs;
//! - the Raft module (the only one that names openraft): stores (memory, and redb with group
//!   commit), RPCs over the extension channel, snapshots in parts;
//! - the driver: formation, the leader's reconciler and name release, writes routed to the
//!   leader, the feed that keeps clients' copies current, the watcher of local holders.

#![forbid(unsafe_code)]

mod config;
mod consistent;
pub mod core;
mod driver;
mod error;
mod eventual;
#[doc(hidden)]
pub mod fuzz;
mod kernel;
mod kinds;
mod name;
mod named;
mod raft;
mod strong;
mod wire;

pub use config::RegistryConfig;
pub use consistent::{Consistent, Staleness};
pub use core::choose::Unplaceable;
pub use core::command::Owner;
pub use core::placement::{Intensity, Placement};
pub use core::table::Change;
pub use driver::placer::GAVE_UP_METRIC;
pub use driver::{Registry, RegistryStatus, SERVICE, Scope, SpawnOptions};
pub use error::RegistryError;
pub use eventual::scope::{Eventual, NameRevoked};
pub use kernel::{NameWatch, WATCH_BACKLOG};
pub use kinds::{MAX_ARGS_BYTES, StartError};
pub use name::{MAX_NAME_LEN, check_name};
pub use named::Named;
pub use strong::Strong;
pub use understudy_actor::supervisor::Restart;
pub use wire::REJECTED_METRIC;

/// Helpers for the examples in these docs.
#[doc(hidden)]
pub mod __doc {
    pub use crate::Registry;
    pub use understudy_cluster::certs::ClusterCa;
    pub use understudy_cluster::node::Node;

    /// A worker's messages.
    #[derive(
        Debug, Clone, serde::Serialize, serde::Deserialize, understudy_macros::RemoteMessage,
    )]
    #[understudy(crate = crate)]
    pub enum WorkerMsg {
        /// Are you there?
        Ping,
        /// Its Eventual name went to another actor.
        Revoked(crate::NameRevoked),
    }

    impl From<crate::NameRevoked> for WorkerMsg {
        fn from(revoked: crate::NameRevoked) -> Self {
            WorkerMsg::Revoked(revoked)
        }
    }

    /// A worker that takes pings.
    #[derive(understudy_macros::Actor)]
    #[understudy(crate = crate)]
    pub struct Worker;

    impl understudy_actor::Handler for Worker {
        type Msg = WorkerMsg;
        async fn handle(
            &mut self,
            _: &understudy_actor::Ctx<Self>,
            _: WorkerMsg,
        ) -> Result<(), understudy_actor::ActorError> {
            Ok(())
        }
    }
}

#[doc(hidden)]
pub mod __private {
    pub use ractor;
    pub use understudy_actor as actor;
}
