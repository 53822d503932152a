//! # understudy
//!
//! Typed actors with OTP supervision trees, built on [`ractor`], and — when one process is
//! not enough — a cluster extension (the `cluster` feature): an mTLS QUIC mesh, SWIM
//! membership, remote actors that are ordinary `ActorRef`s, and Erlang-style process groups.
//!
//! ```
//! use understudy::prelude::*;
//!
//! #[derive(Actor)]
//! struct Counter { n: u64 }
//!
//! #[messages]
//! impl Counter {
//!     /// Adds `by` to the count.
//!     #[message]
//!     fn add(&mut self, by: u64) { self.n += by }
//!
//!     /// The current count.
//!     #[message]
//!     fn get(&self) -> u64 { self.n }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Runtime::new();
//! let counter = node.spawn(Counter { n: 0 }).await?;
//! counter.add(5)?;                        // tell
//! assert_eq!(counter.get().await?, 5);    // ask, default 5 s timeout
//! # Ok(()) }
//! ```
//!
//! What is where:
//! - [`prelude`]: everything an actor module needs.
//! - [`Runtime`]: one node's actor system (names, exports); no process-wide state.
//! - [`supervisor`]: OTP supervision trees (one_for_one, one_for_all, rest_for_one).
//! - [`monitor`]: Erlang's monitors (`ctx.monitor`, `Runtime::monitor`), whose DOWN comes after
//!   the messages the exited actor sent; [`exit`]: typed exit reasons.
//! - `remote` (feature `remote`, part of `cluster`): what messages that cross the network are
//!   made of, including `ActorRef`s inside them.
//! - `cluster` (feature `cluster`, on by default): nodes, the mesh, membership, remote actors
//!   and extensions; see also the `understudy certs` command (feature `cli`, on by default).
//! - `pg` (feature `cluster`): cluster-wide process groups with monitors.
//!
//! Features: `default = ["cluster", "cli"]`. For the local runtime alone, depend with
//! `default-features = false`: no TLS crates to build, and ractor is built without its
//! `cluster` feature, so no actor pays for a process-wide pid registry or wider messages
//! (`#[derive(RemoteMessage)]` and `#[messages(remote)]` then say which feature they need).
//! For messages that cross the network without the cluster itself (a crate that only
//! defines them), add `features = ["remote"]`; for the cluster without the command-line
//! tool's dependencies, `features = ["cluster"]`. If another crate in the build turns on
//! ractor's `cluster` feature, turn on understudy's `remote` too: the derives emit ractor's
//! `Message` impls only where understudy's features say ractor needs them.

#![forbid(unsafe_code)]

// Lets the macros' `::understudy::...` paths resolve inside this crate's own doc tests.
extern crate self as understudy;

pub use understudy_actor::{
    Actor, ActorAddr, ActorError, Ask, AskError, AskFuture, AskerGone, Ctx, DEFAULT_ASK_TIMEOUT,
    Down, ExitReason, Handler, Monitor, MonitorRef, NameTaken, NodeId, Reply, Runtime, Spawn,
    SpawnError, Target, TellError, ask, exit, monitor, names, send, supervisor, tell,
};
#[cfg(feature = "remote")]
pub use understudy_actor::{DecodeError, DeliverError, EncodeError, RemoteMessage, Tag, remote};
pub use understudy_macros::{Actor, Message, RemoteMessage, messages};

pub use ractor;
pub use ractor::{ActorCell, ActorRef, RpcReplyPort, SupervisionEvent};

/// The cluster extension: nodes, the mesh, membership, remote actors, extensions. See
/// [`understudy_cluster`].
#[cfg(feature = "cluster")]
pub use understudy_cluster as cluster;

/// Cluster-wide process groups (Erlang's `pg`, typed): scopes, counted joins, monitors with
/// atomic snapshots, broadcast. See [`understudy_pg`].
#[cfg(feature = "cluster")]
pub use understudy_pg as pg;

/// Cluster-wide names on a bounded Raft core: the Consistent scope (linearizable,
/// first-writer-wins), at most five voters however large the cluster. See
/// [`understudy_registry`].
#[cfg(feature = "cluster")]
pub use understudy_registry as registry;

/// Everything an actor module needs: `use understudy::prelude::*;`.
pub mod prelude {
    // `RemoteMessage` is the derive here; with `remote`, the trait too (same name, other
    // namespace), and without it the derive says which feature to enable.
    pub use crate::{
        Actor, ActorCell, ActorError, ActorRef, AskError, Ctx, Down, ExitReason, Handler, Message,
        Monitor, MonitorRef, RemoteMessage, Reply, RpcReplyPort, Runtime, Spawn, SpawnError,
        TellError, messages,
    };

    /// `ctx.node()`: the cluster node an actor runs on.
    #[cfg(feature = "cluster")]
    pub use crate::cluster::node::CtxNode;
}

#[doc(hidden)]
pub mod __private {
    pub use ractor;
    pub use understudy_actor as actor;
}

// The README's Rust snippets are compiled and run as doc tests, so the front door never lies.
// Some use the cluster, so they run in the default build (which has it).
#[cfg(all(doctest, feature = "cluster"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
