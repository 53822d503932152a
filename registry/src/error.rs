//! What can go wrong, each error saying what to do about it.

use std::time::Duration;

use understudy_actor::{ActorAddr, Tag};

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The name cannot be registered; pick another.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name (its first 64 characters).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Another actor holds the name (first writer wins); unregister it there first, or pick
    /// another name.
    #[error("{name:?} is registered to {owner} already")]
    AlreadyRegistered {
        /// The name.
        name: String,
        /// Its holder.
        owner: ActorAddr,
    },
    /// Nobody holds the name.
    #[error("no actor is registered as {name:?}")]
    NotRegistered {
        /// The name.
        name: String,
    },
    /// The name is held by another actor than the one unregistering it.
    #[error("{name:?} is registered to {owner}, not to the actor unregistering it")]
    NotOwner {
        /// The name.
        name: String,
        /// Its holder.
        owner: ActorAddr,
    },
    /// The name's holder takes another message type than the one asked for.
    #[error(
        "{name:?} is held by an actor of another message type (tag {found:?}, asked for {expected:?})"
    )]
    TypeMismatch {
        /// The name.
        name: String,
        /// The type asked for.
        expected: Tag,
        /// The holder's type.
        found: Tag,
    },
    /// No quorum answered within the write deadline: this node is likely in a minority
    /// partition, or most voters are down. Reads still answer from the local replica.
    #[error("no quorum within {waited:?}: is this node cut off from most voters?")]
    NoQuorum {
        /// How long the write waited.
        waited: Duration,
    },
    /// The table holds its limit of names (`max_names`); unregister some or raise it.
    #[error("the registry holds its limit of {limit} names")]
    Full {
        /// The limit.
        limit: u64,
    },
    /// This node's Raft store failed (a full or broken disk): the node stopped taking part
    /// in Raft. Fix the disk and restart the node.
    #[error("the registry's store failed; the node no longer takes part in Raft")]
    Storage {
        /// What the store said.
        #[source]
        source: std::io::Error,
    },
    /// The registry has not formed yet (fewer than `bootstrap_expect` nodes have met) or this
    /// node has not received the names yet; wait and retry.
    #[error("the registry is not ready yet: {0}")]
    NotReady(&'static str),
    /// The registry or its node is stopped.
    #[error("the registry is stopped (its node is shut down or was never started)")]
    Stopped,
    /// A watch fell more than its backlog behind and was ended; watch again for a fresh
    /// snapshot.
    #[error("the watch fell more than {backlog} changes behind and was ended")]
    WatchOverflow {
        /// The backlog it had.
        backlog: usize,
    },
    /// The holder is on a node this one cannot reach now.
    #[error("the holder of {name:?} ({owner}) cannot be reached")]
    Unreachable {
        /// The name.
        name: String,
        /// Its holder.
        owner: ActorAddr,
        /// Why.
        #[source]
        source: understudy_actor::wire_ref::RefError,
    },
    /// The name is kept for a placed actor (`spawn_named`) that is being started or started
    /// again elsewhere; it cannot be registered by hand meanwhile.
    #[error("{name:?} is kept for a placed actor being (re)started; use spawn_named, or wait")]
    Reserved {
        /// The name.
        name: String,
    },
    /// A spawn's argument does not encode, or is too large.
    #[error("the argument for {name:?} cannot be sent")]
    BadArgs {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: crate::kinds::StartError,
    },
    /// No node can take a placed name: why is the source (no live node has the kind, or the
    /// node the placement names is not up or lacks it, with the nodes that have it).
    #[error("no eligible node for {name:?}")]
    NoEligibleNode {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: crate::core::choose::Unplaceable,
    },
    /// The node assigned a placed name could not start its actor (the name is free again).
    #[error("{name:?} could not be started on {node}: {reason}")]
    StartFailed {
        /// The name.
        name: String,
        /// The node that tried.
        node: String,
        /// What it said.
        reason: String,
    },
    /// The placed name was restarted more often than its intensity allows and was released.
    #[error("{name:?} was restarted too often and was released")]
    GaveUp {
        /// The name.
        name: String,
    },
    /// The placed name had no holder within the spawn's timeout.
    #[error("{name:?} had no holder after {waited:?}: is its node starting it, or cut off?")]
    SpawnTimeout {
        /// The name.
        name: String,
        /// How long the call waited.
        waited: std::time::Duration,
    },
    /// A Strong registration was not acknowledged by every live node in time, and was
    /// withdrawn.
    #[error("{name:?} was not acknowledged by {missing:?} within {waited:?}, and was withdrawn")]
    NotAcked {
        /// The name.
        name: String,
        /// The live nodes that had not acknowledged it.
        missing: Vec<String>,
        /// How long the call waited.
        waited: std::time::Duration,
    },
    /// The holder's node could not be connected to.
    #[error("the holder of {name:?} ({owner}) could not be reached")]
    Connect {
        /// The name.
        name: String,
        /// Its holder.
        owner: ActorAddr,
        /// Why.
        #[source]
        source: understudy_cluster::remote::ResolveError,
    },
    /// The registry's configuration is invalid.
    #[error("invalid registry configuration: {0}")]
    Config(String),
}
