//! # understudy-actor
//!
//! The local programming model of understudy: typed actors on [`ractor`], OTP-style
//! supervision trees, and a per-node [`Runtime`] that owns what ractor keeps in process
//! statics (names, exported actors), so several nodes can live in one process.
//!
//! Promises:
//! - **No process-wide state.** Names and exports belong to a [`Runtime`]; ractor's global
//!   registry and `pg` are never used.
//! - **No panics on input.** Bytes from the network decode into errors
//!   ([`remote::DecodeError`]), counted in a metric; they never panic.
//! - **It is ractor.** An understudy actor is a ractor actor: `ActorRef`, links, monitors
//!   and supervision events are ractor's own, so both ecosystems mix freely.
//!
//! Most users reach this crate through the `understudy` facade and its macros.
//!
//! Feature `remote` (off by default; understudy's `cluster` feature turns it on): messages
//! that cross the network ([`RemoteMessage`], the wire encoding, routes, exported actors). It
//! turns on ractor's `cluster` feature, which registers every actor in a process-wide pid
//! registry and widens every message; without it, a program pays none of that.

#![forbid(unsafe_code)]

pub mod actor;
pub mod ask;
#[cfg(feature = "remote")]
pub mod backlog;
mod deadline;
pub mod exit;
pub mod exported;
mod host;
pub mod id;
mod message_impls;
pub mod monitor;
pub mod names;
#[cfg(feature = "remote")]
pub mod remote;
#[cfg(feature = "remote")]
pub mod remote_reply;
pub mod reply;
#[cfg(feature = "remote")]
pub mod route;
pub mod runtime;
pub mod supervisor;
pub(crate) mod sync;
#[cfg(feature = "remote")]
mod weak_registry;
#[cfg(feature = "remote")]
pub mod wire_ref;

pub use actor::{Actor, ActorError, Ctx, Handler};
pub use ask::{
    Ask, AskError, AskFuture, DEFAULT_ASK_TIMEOUT, Resolve, Target, TellError, ask, ask_resolved,
    send, tell,
};
/// What `#[messages]` returns a handler's future in (a DOWN's, or the messages').
#[doc(hidden)]
pub use futures_util::future::Either as __Either;

pub use exit::ExitReason;
#[cfg(feature = "remote")]
pub use exported::DeliverError;
pub use id::{ActorAddr, NodeId};
pub use monitor::{Down, Monitor, MonitorRef};
#[cfg(feature = "remote")]
pub use remote::{DecodeError, EncodeError, RemoteMessage, Tag};
pub use reply::{AskerGone, Reply};
pub use runtime::{NameTaken, Runtime, Spawn, SpawnError};
pub use supervisor::{
    ChildSpec, Restart, Shutdown, Strategy, SupervisorError, SupervisorRef, SupervisorSpec,
};
