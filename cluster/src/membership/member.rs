//! What membership says about a node: its static [`NodeMeta`], its dynamic [`NodeLoad`], the
//! [`Member`] snapshot that combines them, and the [`MembershipEvent`]s that report changes.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use understudy_actor::NodeId;

use crate::identity::{Incarnation, NodeIdentity, NodeName};

/// The longest `role` or `failure_domain` label, in bytes.
///
/// Static metadata travels inside the SWIM identity, which is in every packet header twice and
/// in every membership update; keeping it short keeps about twenty updates per 1140-byte
/// packet.
pub const MAX_LABEL_LEN: usize = 32;

/// This node, as membership announces it.
///
/// ```
/// use understudy_cluster::identity::{ClusterName, Incarnation, NodeIdentity, NodeName};
/// use understudy_cluster::membership::LocalNode;
///
/// let identity = NodeIdentity::new(
///     ClusterName::new("prod")?, NodeName::new("web-1")?, Incarnation::new(1));
/// let mut local = LocalNode::new(identity, "127.0.0.1:7000".parse()?);
/// local.meta.role = Some("web".into());
/// local.meta.raft_eligible = true;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNode {
    /// Cluster, name, id and incarnation.
    pub identity: NodeIdentity,
    /// The mesh address peers dial.
    pub addr: SocketAddr,
    /// Static metadata; `meta.name` is the identity's name.
    pub meta: NodeMeta,
}

impl LocalNode {
    /// A node with default metadata (no role, no failure domain, not Raft-eligible).
    pub fn new(identity: NodeIdentity, addr: SocketAddr) -> LocalNode {
        let meta = NodeMeta::new(identity.name().clone());
        LocalNode {
            identity,
            addr,
            meta,
        }
    }
}

/// A node's static metadata: fixed for one run (incarnation) of the node, gossiped inside its
/// SWIM identity so every peer has it the moment it learns of the node.
///
/// ```
/// use understudy_cluster::identity::NodeName;
/// use understudy_cluster::membership::NodeMeta;
///
/// let meta = NodeMeta {
///     role: Some("web".into()),
///     failure_domain: Some("rack-1".into()),
///     raft_eligible: true,
///     raft_priority: 10,
///     ..NodeMeta::new(NodeName::new("web-1")?)
/// };
/// assert!(meta.validate().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeMeta {
    /// The node's name, unique in the cluster (also in its certificate).
    pub name: NodeName,
    /// What the node is for (`"web"`, `"worker"`…), at most [`MAX_LABEL_LEN`] bytes.
    pub role: Option<String>,
    /// Where the node fails together with others (a rack, a zone), at most [`MAX_LABEL_LEN`]
    /// bytes. Placement and the Raft reconciler spread over failure domains.
    pub failure_domain: Option<String>,
    /// Whether the node may become a Raft voter or standby.
    pub raft_eligible: bool,
    /// Among eligible nodes, higher is preferred as a voter.
    pub raft_priority: u8,
}

impl NodeMeta {
    /// Metadata with only a name: no role, no failure domain, not Raft-eligible.
    pub fn new(name: NodeName) -> NodeMeta {
        NodeMeta {
            name,
            role: None,
            failure_domain: None,
            raft_eligible: false,
            raft_priority: 0,
        }
    }

    /// Checks the label lengths ([`MAX_LABEL_LEN`]); names are valid by construction.
    pub fn validate(&self) -> Result<(), InvalidMeta> {
        for (field, value) in [
            ("role", &self.role),
            ("failure_domain", &self.failure_domain),
        ] {
            if let Some(v) = value
                && (v.is_empty() || v.len() > MAX_LABEL_LEN)
            {
                return Err(InvalidMeta {
                    field,
                    len: v.len(),
                });
            }
        }
        Ok(())
    }
}

/// A `role` or `failure_domain` that is empty or longer than [`MAX_LABEL_LEN`] bytes.
///
/// ```
/// use understudy_cluster::identity::NodeName;
/// use understudy_cluster::membership::NodeMeta;
/// let meta = NodeMeta { role: Some("x".repeat(33)), ..NodeMeta::new(NodeName::new("a")?) };
/// assert_eq!(meta.validate().unwrap_err().to_string(),
///            "node metadata field `role` must be 1 to 32 bytes, not 33");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("node metadata field `{field}` must be 1 to {MAX_LABEL_LEN} bytes, not {len}")]
pub struct InvalidMeta {
    field: &'static str,
    len: usize,
}

/// A node's dynamic metadata: how loaded it is. Gossiped as a versioned custom broadcast
/// (re-sent periodically and carried by the push-pull sync), surfaced as
/// [`MembershipEvent::NodeUpdated`]. Placement (`LeastLoaded`) reads it.
///
/// ```
/// use understudy_cluster::membership::NodeLoad;
/// let load = NodeLoad { actors: 120, score: 350 };
/// assert!(load.score < NodeLoad { actors: 0, score: 900 }.score);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Actors running on the node.
    pub actors: u32,
    /// An application-defined load score; lower means less loaded (e.g. CPU in per mille).
    pub score: u32,
}

/// One node as membership knows it: identity, static metadata and the latest load.
///
/// The key is [`node_id`](Member::node_id); a node that restarts keeps its id and name but
/// comes back with a larger [`incarnation`](Member::incarnation), and is a different member.
///
/// ```
/// # use understudy_cluster::membership::{Member, NodeMeta};
/// # fn show(member: &Member) {
/// println!("{} at {} (incarnation {})", member.name(), member.addr(), member.incarnation());
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub(crate) node_id: NodeId,
    pub(crate) addr: SocketAddr,
    pub(crate) incarnation: Incarnation,
    pub(crate) meta: NodeMeta,
    pub(crate) load: Option<NodeLoad>,
}

impl Member {
    /// The node's id (derived from cluster and name).
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The node's name.
    pub fn name(&self) -> &NodeName {
        &self.meta.name
    }

    /// The node's mesh address (where its QUIC endpoint listens).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This run of the node.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// Static metadata.
    pub fn meta(&self) -> &NodeMeta {
        &self.meta
    }

    /// The latest load the node published, if any reached us.
    pub fn load(&self) -> Option<NodeLoad> {
        self.load
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, incarnation {})",
            self.meta.name, self.addr, self.incarnation
        )
    }
}

/// Why a member left the view.
///
/// All three mean the same for actors on that incarnation of the node (they are gone: monitors
/// fire with `noconnection`); they differ in what an operator or a placement policy learns.
///
/// ```
/// use understudy_cluster::membership::LeaveReason;
/// assert_eq!(LeaveReason::Left.to_string(), "left");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LeaveReason {
    /// The node said it was leaving (`leave()`), and the cluster heard it.
    Left,
    /// The node stopped answering probes and was declared down (crash, partition, overload),
    /// or left without the cluster hearing it.
    Failed,
    /// A newer incarnation of the node (a restart) appeared while this one was still
    /// considered alive: the old run is gone. A [`NodeJoined`](MembershipEvent::NodeJoined)
    /// of the new incarnation follows immediately.
    Restarted,
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeaveReason::Left => "left",
            LeaveReason::Failed => "failed",
            LeaveReason::Restarted => "restarted",
        })
    }
}

/// A change in the membership view of one node, about another node.
///
/// Per node id the events follow one grammar: `NodeJoined(m)`, then any number of
/// `NodeUpdated(m')` for the same incarnation, then `NodeLeft { member: m, .. }`; then possibly
/// a new `NodeJoined` (a rejoin after a failure, or a restart with a larger incarnation). A
/// node never reports events about itself.
///
/// ```
/// use understudy_cluster::membership::{LeaveReason, MembershipEvent};
/// fn describe(event: &MembershipEvent) -> String {
///     match event {
///         MembershipEvent::NodeJoined(m) => format!("{} joined", m.name()),
///         MembershipEvent::NodeUpdated(m) => format!("{} load {:?}", m.name(), m.load()),
///         MembershipEvent::NodeLeft { member, reason: LeaveReason::Left } => {
///             format!("{} left", member.name())
///         }
///         MembershipEvent::NodeLeft { member, reason } => format!("{} is gone ({reason})", member.name()),
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A node (incarnation) became a live member.
    NodeJoined(Member),
    /// A live member's dynamic metadata changed.
    NodeUpdated(Member),
    /// A member is gone.
    NodeLeft {
        /// The member as it was last known.
        member: Member,
        /// Why it is gone.
        reason: LeaveReason,
    },
}

impl MembershipEvent {
    /// The member the event is about.
    pub fn member(&self) -> &Member {
        match self {
            MembershipEvent::NodeJoined(m) | MembershipEvent::NodeUpdated(m) => m,
            MembershipEvent::NodeLeft { member, .. } => member,
        }
    }
}
