//! What can go wrong with a process group operation.

use understudy_actor::{ActorAddr, Tag};

use crate::core::CoreError;

/// Why a pg operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// `leave` of actors none of which is in the group (Erlang's `not_joined`).
    #[error("none of the actors is a member of group {group:?}; nothing left it")]
    NotJoined {
        /// The group.
        group: String,
    },
    /// Only actors of this node join and leave here (call it on the actor's own node).
    #[error("actor {actor} is not on this node; join and leave groups on the actor's own node")]
    NotLocal {
        /// The actor's id as this node sees it.
        actor: String,
    },
    /// An actor would be in the group more than 65,536 times at once (leave it some times).
    #[error("an actor may be in group {group:?} at most 65536 times at once; leave it first")]
    TooManyJoins {
        /// The group.
        group: String,
    },
    /// The group's members take another message type than the one asked for.
    #[error(
        "group {group:?} holds members of another message type (tag {found}) than `{wanted}`; use one message type per group"
    )]
    TypeMismatch {
        /// The group.
        group: String,
        /// The type asked for.
        wanted: &'static str,
        /// The tag of a type found in the group.
        found: Tag,
    },
    /// A member takes another message type than the one asked for.
    #[error("member {member} takes another message type (tag {found}) than `{wanted}`")]
    MemberType {
        /// The member.
        member: ActorAddr,
        /// The type asked for.
        wanted: &'static str,
        /// Its type's tag.
        found: Tag,
    },
    /// A ref to a member could not be made: its node is not connected now (it is gone, and
    /// its members' leave is on the way), or this node is shutting down.
    #[error("member {member} cannot be reached: {source}")]
    Unreachable {
        /// The member.
        member: ActorAddr,
        /// Why.
        #[source]
        source: understudy_cluster::remote::ResolveError,
    },
    /// A monitor's subscriber fell more than `backlog` member occurrences behind, so its
    /// monitor was stopped rather than let its queue grow; monitor again for a fresh
    /// snapshot (and read events as they come).
    #[error(
        "the monitor fell more than {backlog} members behind and was stopped; monitor again for a fresh snapshot"
    )]
    MonitorOverflow {
        /// How many member occurrences a monitor's queue holds at most.
        backlog: usize,
    },
    /// The `Pg` handle was used before its node started (register it with
    /// `Node::builder(..).extension(pg.clone())` and start the node first).
    #[error("pg is not started: add it to a node with `.extension(pg.clone())` and start the node")]
    NotStarted,
    /// The node this pg ran on is gone.
    #[error("the node is shut down")]
    NodeGone,
}

impl PgError {
    pub(crate) fn from_core(error: CoreError, wanted: &'static str) -> PgError {
        match error {
            CoreError::NotJoined { group } => PgError::NotJoined { group },
            CoreError::TooManyJoins { group } => PgError::TooManyJoins { group },
            CoreError::NotLocal(addr) => PgError::NotLocal {
                actor: addr.to_string(),
            },
            CoreError::TypeMismatch { group, found, .. } => PgError::TypeMismatch {
                group,
                wanted,
                found,
            },
        }
    }
}
