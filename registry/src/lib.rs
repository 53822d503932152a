//! # understudy-registry
//!
//! Cluster-wide names on a bounded Raft core (docs/ARCHITECTURE.md, section 9). The registry
//! keeps its consensus small however large the cluster grows: at most `max_voters` voters,
//! `max_standbys` fully replicated standbys ready to be promoted, and every other node a
//! client that reads from its own replica.
//!
//! Built in the repository's vocabulary: a *core* is pure (no tasks, no clock, no I/O), a
//! *driver* is its async shell.
//! - [`core::reconcile`]: which nodes should vote and which should stand by, as a pure
//!   function of the membership view, and the quorum-safe steps from the Raft configuration
//!   in force to that target.
//! - [`core::table`]: the name table, the replicated state machine.

#![forbid(unsafe_code)]

mod config;
pub mod core;
mod error;
mod kernel;
mod name;
mod raft;

pub use config::RegistryConfig;
pub use core::command::Owner;
pub use core::table::Change;
pub use error::RegistryError;
pub use kernel::{NameWatch, WATCH_BACKLOG};
pub use name::{MAX_NAME_LEN, check_name};

