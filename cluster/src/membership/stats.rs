//! What membership counts: [`MembershipStats`], the refusals of [`PacketError`], and the
//! metrics they feed.

use understudy_actor::NodeId;

use super::wire::WireError;
use crate::identity::NodeName;

/// Metric: SWIM packets refused, labelled by `reason` (`identity`, `forged`, `malformed`,
/// `protocol`).
pub const REJECTED_PACKETS_METRIC: &str = "understudy_membership_packets_rejected_total";
/// Metric: push-pull syncs that failed or were refused, labelled by `side`.
pub const FAILED_SYNCS_METRIC: &str = "understudy_membership_syncs_failed_total";

/// Counters of one node's membership. Monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MembershipStats {
    /// SWIM packets handed to [`Swim::handle_packet`](super::Swim::handle_packet).
    pub packets_received: u64,
    /// SWIM packets produced for the transport.
    pub packets_sent: u64,
    /// Packets whose header identity did not match the transport's verified peer.
    pub rejected_identity: u64,
    /// Packets and sync payloads refused because a node record in them carries an id that is
    /// not its name's (it would take over another node's slot).
    pub rejected_records: u64,
    /// Packets that were oversize or did not decode.
    pub rejected_malformed: u64,
    /// Packets foca refused for protocol reasons (e.g. claiming to come from ourselves).
    pub protocol_errors: u64,
    /// Custom broadcast items that did not decode (ignored).
    pub broadcasts_rejected: u64,
    /// Load reports refused because they came from another node than the one they describe
    /// (a node's load is accepted only from that node).
    pub loads_refused: u64,
    /// Announces sent while joining or isolated.
    pub announces: u64,
    /// Times this node was declared down and rejoined with a renewed identity.
    pub rejoins: u64,
    /// Push-pull syncs started by this node.
    pub syncs_started: u64,
    /// … that completed and were applied.
    pub syncs_completed: u64,
    /// … that failed (unreachable, timeout, bad response).
    pub syncs_failed: u64,
    /// Peers' syncs answered.
    pub syncs_served: u64,
    /// Peers' syncs refused (malformed, a foreign record, more than `max_sync_members`).
    pub syncs_refused: u64,
    /// Inbound packets dropped before reaching the state machine (queue full).
    pub inbound_dropped: u64,
}

/// Why [`Swim::handle_packet`](super::Swim::handle_packet) refused a packet. Each is counted in [`MembershipStats`] and
/// the [`REJECTED_PACKETS_METRIC`]. Refusals decided before foca parses the body (too large,
/// identity mismatch, bad header) leave the state machine untouched, and so does a foreign
/// record (foca decodes every update before it applies any); a body foca rejects partway may
/// already have applied the valid updates before the bad part (found by the `swim_packets`
/// fuzzer) — they come from the verified sender, so no one can speak for another node this
/// way.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// Larger than `max_packet_size`.
    #[error("packet of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The packet's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a SWIM packet of this protocol.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// The packet carries a node record whose id is not the id of its name in this cluster:
    /// it would take over another node's slot.
    #[error("packet names node {name} with id {node_id}, which is not that name's id")]
    ForeignRecord {
        /// The id the record claims.
        node_id: NodeId,
        /// The name it claims it for.
        name: NodeName,
    },
    /// The packet's sender identity is not the peer the transport verified.
    #[error("packet from verified peer {verified} claims to come from {claimed}")]
    IdentityMismatch {
        /// Who the transport says sent it.
        verified: NodeId,
        /// Who the header says sent it.
        claimed: String,
    },
    /// A well-formed packet SWIM refused (e.g. one that claims to come from this node).
    #[error("refused by SWIM: {0}")]
    Protocol(String),
}

/// Maps a refusal of our wire layer to a packet error.
pub(crate) fn wire_refusal(error: WireError) -> PacketError {
    match error {
        WireError::ForeignId { node_id, name } => PacketError::ForeignRecord { node_id, name },
        other => PacketError::Malformed(other.to_string()),
    }
}

/// Maps a foca refusal to ours.
pub(crate) fn classify(error: foca::Error) -> PacketError {
    if let foca::Error::Decode(inner) = &error
        && let Some(WireError::ForeignId { node_id, name }) = inner.downcast_ref::<WireError>()
    {
        return PacketError::ForeignRecord {
            node_id: *node_id,
            name: name.clone(),
        };
    }
    match error {
        foca::Error::DataTooBig => PacketError::Malformed("too big for SWIM".into()),
        foca::Error::MalformedPacket | foca::Error::Decode(_) | foca::Error::CustomBroadcast(_) => {
            PacketError::Malformed(error.to_string())
        }
        other => PacketError::Protocol(other.to_string()),
    }
}
