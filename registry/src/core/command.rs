//! What the registry's replicated log holds: commands on the name table, and their outcomes.
//!
//! Every command travels as a [`Request`] with a [`RequestId`] its client picks once and
//! keeps across retries: the table remembers the outcome of the latest requests (a window in
//! log order, [`REQUEST_WINDOW`](super::table::REQUEST_WINDOW)), so a retried or duplicated
//! request (a reply lost to a timeout or a leader change, a late copy still in flight) is
//! answered with its first outcome and never applied twice. That is what makes a retried
//! write linearizable when other clients act in between (the Raft thesis, section 6.3).

use serde::{Deserialize, Serialize};
use understudy_actor::{ActorAddr, NodeId, Tag};

use super::placement::{Spec, Target};

/// Who holds a name: an actor, the message type it takes, and the run of its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// The actor.
    pub addr: ActorAddr,
    /// Its message type ([`RemoteMessage::TAG`](understudy_actor::RemoteMessage::TAG)).
    pub tag: Tag,
    /// The incarnation (run) of the actor's node when it registered; a restarted node's
    /// names from its earlier run are released by incarnation.
    pub incarnation: u64,
}

impl Owner {
    /// The node the owner runs on.
    pub fn node(&self) -> NodeId {
        self.addr.node
    }
}

/// A change to the name table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Give `name` to `owner` if nobody holds it (first writer wins). Holding it already is
    /// success.
    Register {
        /// The name.
        name: String,
        /// Who asks for it.
        owner: Owner,
    },
    /// Take `name` from `owner`; refused if someone else holds it now (another actor, or
    /// the same pid of another run of its node).
    Unregister {
        /// The name.
        name: String,
        /// The holder expected.
        owner: Owner,
    },
    /// Release every name `actor` of run `incarnation` holds (it stopped). The run matters:
    /// a restarted node reuses pids.
    ReleaseActor {
        /// The actor.
        actor: ActorAddr,
        /// The run of its node.
        incarnation: u64,
        /// It failed (a panic or an error) rather than stopped normally: a `Transient`
        /// placed name is restarted.
        abnormal: bool,
    },
    /// Release every name held by actors of `node` from runs up to `incarnation` (the node
    /// failed, left, or restarted as a later run).
    ReleaseNode {
        /// The node.
        node: NodeId,
        /// Its latest run that is gone.
        incarnation: u64,
    },
    /// Assign the free `name` to `target`, which is to start `spec` and bind it. `replaces`
    /// names the epoch of the orphaned record a failover places again; `at_ms` is the
    /// proposer's clock, for the restart intensity.
    Place {
        /// The name.
        name: String,
        /// What to start and how to keep it running.
        spec: Spec,
        /// The node to start it.
        target: Target,
        /// The orphaned epoch this re-places (None: a first placement).
        replaces: Option<u64>,
        /// The proposer's clock (ms since the Unix epoch).
        at_ms: u64,
    },
    /// `owner`, started for the assignment `epoch`, takes `name`.
    Bind {
        /// The name.
        name: String,
        /// The actor started.
        owner: Owner,
        /// The assignment it was started for.
        epoch: u64,
    },
    /// Hand `name` over from its holder `owner` to `target` (a graceful leave): `owner`
    /// keeps it until the successor's `Bind`.
    Move {
        /// The name.
        name: String,
        /// Its holder now.
        owner: Owner,
        /// The node to start the successor.
        target: Target,
    },
    /// The node assigned `name` under `epoch` could not start it.
    Abandon {
        /// The name.
        name: String,
        /// The assignment.
        epoch: u64,
    },
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Register { name, owner } => write!(f, "register {name:?} to {}", owner.addr),
            Command::Unregister { name, owner } => {
                write!(f, "unregister {name:?} from {}", owner.addr)
            }
            Command::ReleaseActor {
                actor, incarnation, ..
            } => {
                write!(f, "release the names of {actor} (run {incarnation})")
            }
            Command::ReleaseNode { node, incarnation } => {
                write!(f, "release the names of {node} up to run {incarnation}")
            }
            Command::Place {
                name, spec, target, ..
            } => write!(f, "place {name:?} ({}) on {}", spec.kind, target.node),
            Command::Bind { name, owner, epoch } => {
                write!(f, "bind {name:?} to {} (epoch {epoch})", owner.addr)
            }
            Command::Abandon { name, epoch } => write!(f, "abandon {name:?} (epoch {epoch})"),
            Command::Move {
                name,
                owner,
                target,
            } => write!(f, "move {name:?} from {} to {}", owner.addr, target.node),
        }
    }
}

/// Names one request of one client: a random session per registry instance, and a sequence
/// number within it. A retry keeps the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId {
    /// The client's session (random, per registry instance).
    pub session: u64,
    /// The request's number in the session.
    pub seq: u64,
}

/// A command as it is proposed: with the id that makes its retries safe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The request's id.
    pub id: RequestId,
    /// The command.
    pub command: Command,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (request {}.{})",
            self.command, self.id.session, self.id.seq
        )
    }
}

/// What applying a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The owner holds the name (now or already).
    Registered,
    /// Someone else holds the name.
    AlreadyRegistered(Owner),
    /// The name is free now.
    Unregistered,
    /// Nobody held the name.
    NotRegistered,
    /// The name is held by another actor than the one named.
    NotOwner(Owner),
    /// This many names were released.
    Released(u64),
    /// The table holds its limit of names.
    Full(u64),
    /// Not a name-table entry (a membership change or a leader's blank entry).
    Nothing,
    /// The request was applied before, when this node's copy was fed by another member, so
    /// its outcome is not known here (only ever the answer to a retry).
    Repeated,
    /// `Place`: assigned to `target` under `epoch`; it is to start the actor now.
    Placed {
        /// The node to start it.
        target: Target,
        /// The assignment.
        epoch: u64,
    },
    /// The name is being started on `target` under `epoch` (by an earlier `Place`).
    Starting {
        /// The node starting it.
        target: Target,
        /// The assignment.
        epoch: u64,
    },
    /// The name is kept for a placed actor that is being placed again.
    Reserved,
    /// A `Bind`, `Abandon` or re-`Place` for an assignment no longer in force.
    Stale,
    /// The start under this assignment failed and was given up.
    Abandoned,
    /// The placed name ran out of restarts and was released.
    GaveUp,
}
