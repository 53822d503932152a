//! # understudy-registry
//!
//! Cluster-wide names on a bounded Raft core (docs/ARCHITECTURE.md, section 9). The registry
//! keeps its consensus small however large the cluster grows: at most `max_voters` voters,
//! `max_standbys` fully replicated standbys ready to be promoted, and every other node a
//! client that reads from its own replica.
//!
//! Built in the repository's vocabulary: a *core* is pure (no tasks, no clock, no I/O), a
//! *driver* is its async shell. This crate has its first core so far:
//! - [`core::reconcile`]: which nodes should vote and which should stand by, as a pure
//!   function of the membership view, and the quorum-safe steps from the Raft configuration
//!   in force to that target.

#![forbid(unsafe_code)]

pub mod core;
