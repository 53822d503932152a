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

#![forbid(unsafe_code)]

pub mod actor;
pub mod ask;
pub mod backlog;
pub mod exported;
mod host;
pub mod id;
pub mod names;
pub mod remote;
pub mod route;
pub mod runtime;
pub mod supervisor;
pub(crate) mod sync;

pub use actor::{Actor, ActorError, Ctx, Handler};
pub use ask::{Ask, AskError, AskFuture, DEFAULT_ASK_TIMEOUT, TellError, ask, tell};
pub use exported::DeliverError;
pub use id::{ActorAddr, NodeId};
pub use remote::{DecodeError, EncodeError, RemoteMessage, Tag};
pub use runtime::{NameTaken, Runtime, Spawn, SpawnError};
pub use supervisor::{
    ChildSpec, Restart, Shutdown, Strategy, SupervisorError, SupervisorRef, SupervisorSpec,
};
