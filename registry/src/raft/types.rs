//! The registry's Raft type configuration.

use serde::{Deserialize, Serialize};

use crate::core::command::{Outcome, Request};

openraft::declare_raft_types!(
    /// The registry's Raft types: commands on the name table in, outcomes out; one leader per
    /// term (`leader_id_std`), which is what the pre-vote and lease logic assume.
    pub(crate) Tc:
        D = Request,
        R = Outcome,
        NodeId = u64,
        Node = RaftNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<Self::Term, Self::NodeId>,
);

/// What the Raft configuration records about a member: only its node's name. Addresses come
/// from SWIM, never from the log, so a stale entry cannot point traffic at the wrong node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct RaftNode {
    pub(crate) name: String,
}

pub(crate) type LogId = openraft::type_config::alias::LogIdOf<Tc>;
pub(crate) type Vote = openraft::type_config::alias::VoteOf<Tc>;
pub(crate) type Entry = openraft::type_config::alias::EntryOf<Tc>;
pub(crate) type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<Tc>;
pub(crate) type StoredMembership = openraft::type_config::alias::StoredMembershipOf<Tc>;
pub(crate) type Snapshot = openraft::type_config::alias::SnapshotOf<Tc, Vec<u8>>;
