//! # understudy-pg
//!
//! Cluster-wide process groups: Erlang's [`pg`](https://www.erlang.org/doc/apps/kernel/pg.html)
//! (OTP 23+, monitors from 25.1), typed, for understudy nodes.
//!
//! ## Semantics
//!
//! - **Scopes** are independent overlays of groups ([`Pg::scope`]; every node has
//!   [`DEFAULT_SCOPE`]). A scope exchanges only with the nodes that run it too.
//! - **Groups** are named by strings. Only **local** actors join and leave, one or several
//!   at once, and membership is **counted**: join twice, listed twice, leave twice. Leaving
//!   a group one is not in is [`PgError::NotJoined`]. A member that stops leaves every group.
//! - **Typed**: the members of a group are actors of one message type `M: RemoteMessage`;
//!   asking for another type is [`PgError::TypeMismatch`], never a wrong ref.
//! - **Lookups** ([`Scope::get_members`], [`Scope::get_local_members`], [`Scope::members`],
//!   [`Scope::which_groups`]) read this node's view without waiting for the network.
//! - **Remote members cost no actor**: this node stores a remote member as its address and
//!   message type (under 200 bytes). A ref to it is a proxy actor (several KB), made only
//!   when one is asked for ([`Scope::get_members`], which is why it is `async`, and
//!   [`Member::typed`]) and reused while it runs; [`Scope::broadcast`] sends by address and
//!   makes none. A peer's notice is checked whole against the limits before any of it is
//!   applied, and never makes an actor here.
//! - **Bounded against peers**: a peer may hold at most [`core::MAX_MEMBERSHIPS`] memberships
//!   per scope in this node's view; a monitor's queue holds at most [`MONITOR_BACKLOG`] member
//!   occurrences, and a subscriber that falls further behind gets
//!   [`PgError::MonitorOverflow`] instead of a silent gap (Erlang's mailbox would grow).
//! - **Monitors** ([`Scope::monitor_scope`], [`Scope::monitor`]) return the current membership
//!   and a [`Subscription`] atomically: the snapshot plus the events give exactly the later
//!   view, each change once, in the order this node applied them. Dropping the subscription
//!   (or [`Subscription::demonitor`]) drops the queued events.
//! - **Across nodes**: each node is the authority for its own members. Changes go to peers
//!   as deltas on the mesh; a peer that comes up gets a full sync; a periodic digest repairs
//!   anything lost (within one anti-entropy period); when a node fails or leaves, all of its
//!   members leave on every other node, with events. The view is eventually consistent and
//!   needs no quorum: pg keeps working on both sides of a partition, and the sides converge
//!   when it heals.
//!
//! ```
//! # use understudy_pg::__doc::*;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (node, pg) = one_node().await?;
//! let scope = pg.default_scope()?;
//! let (members, mut events) = scope.monitor("workers");
//! assert!(members.is_empty());
//!
//! let worker = node.spawn(Worker).await?;
//! scope.join("workers", &worker)?;
//! let event = events.recv().await?;
//! assert!(matches!(event, PgEvent::Join { ref group, .. } if group == "workers"));
//! assert_eq!(scope.broadcast("workers", WorkerMsg::Ping).await?, 1);
//! # Ok(()) }
//! ```
//!
//! The membership logic is a deterministic state machine ([`core`]); the async driver only
//! feeds it and carries out what it says.

#![forbid(unsafe_code)]

pub mod core;
mod driver;
mod error;
mod event;
#[doc(hidden)]
pub mod kernel;
mod scope;
mod sync;
pub mod wire;

pub use driver::{DEFAULT_ANTI_ENTROPY, DEFAULT_SCOPE, Pg, SERVICE};
pub use error::PgError;
pub use event::{MONITOR_BACKLOG, Member, PgEvent, Subscription};
pub use scope::Scope;

#[doc(hidden)]
pub mod __private {
    pub use ractor;
    pub use understudy_actor as actor;
}

/// Helpers for the examples in these docs.
#[doc(hidden)]
pub mod __doc {
    pub use crate::{Pg, PgEvent};
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

    /// One started node running pg.
    pub async fn one_node() -> Result<(Node, Pg), Box<dyn std::error::Error>> {
        let ca = ClusterCa::ephemeral("docs");
        let pg = Pg::new();
        let node = Node::builder("docs", "a")
            .ephemeral_certs(&ca)
            .extension(pg.clone())
            .start()
            .await?;
        Ok((node, pg))
    }
}
