//! The Hello check and the one-connection-per-pair rule, as pure functions.
//!
//! A connection is trusted only after an application-level Hello: TLS proves the peer holds a
//! certificate of this cluster for *some* node, and in TLS 1.3 a client whose certificate the
//! server rejects still sees its `connect()` succeed. The Hello names the node; it must match
//! the certificate, the cluster, the protocol version, and the node id derived from the name.
//!
//! When two nodes dial each other at the same time both handshakes can succeed. Both sides then
//! keep the connection dialed by the node with the lower node id, so they agree without talking.

use crate::identity::{ClusterName, NodeName, node_id};
use crate::wire::{Hello, PROTOCOL_VERSION, Refusal};

/// The largest lane buffer (and frame) a Hello may declare: what `MeshConfig::validate`
/// accepts.
const MAX_LANE_BUFFER: u64 = 1 << 30;

/// Checks a peer's Hello against its certificate's node name. Returns the peer's name.
pub(crate) fn check_hello(
    cluster: &ClusterName,
    me: &NodeName,
    certified: &NodeName,
    hello: &Hello,
) -> Result<NodeName, Refusal> {
    if hello.version != PROTOCOL_VERSION {
        return Err(Refusal::Version {
            theirs: hello.version,
            ours: PROTOCOL_VERSION,
        });
    }
    if hello.cluster != cluster.as_str() {
        return Err(Refusal::Cluster {
            theirs: hello.cluster.clone(),
            ours: cluster.as_str().to_owned(),
        });
    }
    if hello.name != certified.as_str() {
        return Err(Refusal::NameMismatch {
            claimed: hello.name.clone(),
            certified: certified.as_str().to_owned(),
        });
    }
    if hello.node_id != node_id(cluster, certified).get() {
        return Err(Refusal::NodeId {
            claimed: hello.node_id,
            name: hello.name.clone(),
        });
    }
    if certified == me {
        return Err(Refusal::Myself);
    }
    if hello.lanes == 0 || hello.lanes > 64 {
        return Err(Refusal::Lanes(hello.lanes));
    }
    let (buffer, frame) = (hello.lane_buffer, hello.max_frame);
    if !(1024..=MAX_LANE_BUFFER).contains(&frame) || !(frame..=MAX_LANE_BUFFER).contains(&buffer) {
        return Err(Refusal::Buffers {
            lane_buffer: buffer,
            max_frame: frame,
        });
    }
    Ok(certified.clone())
}

/// What the peer table holds for a peer when a new connection's Hello arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Nothing: no connection, no dial in progress.
    None,
    /// Our own dial to the peer is past TLS but not yet acknowledged.
    Dialing,
    /// An acknowledged connection to the peer's `incarnation`.
    Up {
        /// The connected incarnation.
        incarnation: u64,
    },
}

/// What to do with a newly handshaken connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Keep it (it is the only one, or it wins the tie-break).
    Keep,
    /// Keep it and close the existing one (the peer restarted).
    Replace,
    /// Refuse it.
    Refuse(RefuseWhy),
}

/// Why a duplicate was refused (kept small and `Copy` for the pure decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefuseWhy {
    /// A connection is up or wins the tie-break.
    Duplicate,
    /// An older incarnation than the connected one.
    Stale,
}

/// Decides on a connection *accepted* from `peer_id` (so dialed by the peer) that presents
/// `incarnation`, given what already exists. `my_id` is this node's id.
pub(crate) fn decide_accepted(
    my_id: u64,
    peer_id: u64,
    incarnation: u64,
    existing: Existing,
) -> Decision {
    match existing {
        Existing::None => Decision::Keep,
        // Both dialed: keep the connection dialed by the lower id. The peer dialed this one.
        Existing::Dialing if peer_id < my_id => Decision::Keep,
        Existing::Dialing => Decision::Refuse(RefuseWhy::Duplicate),
        Existing::Up {
            incarnation: current,
        } if incarnation > current => Decision::Replace,
        Existing::Up {
            incarnation: current,
        } if incarnation < current => Decision::Refuse(RefuseWhy::Stale),
        Existing::Up { .. } => Decision::Refuse(RefuseWhy::Duplicate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simultaneous_dials_agree_on_one_connection() {
        // A (id 1) and B (id 2) dial each other; each sees the other's Hello while dialing.
        let at_a = decide_accepted(1, 2, 7, Existing::Dialing); // B's dial, seen by A
        let at_b = decide_accepted(2, 1, 7, Existing::Dialing); // A's dial, seen by B
        // Exactly one of the two connections survives: the one A (lower id) dialed.
        assert_eq!(at_a, Decision::Refuse(RefuseWhy::Duplicate));
        assert_eq!(at_b, Decision::Keep);
    }

    #[test]
    fn a_restarted_peer_replaces_its_old_connection_and_a_stale_one_is_refused() {
        assert_eq!(
            decide_accepted(1, 2, 9, Existing::Up { incarnation: 8 }),
            Decision::Replace
        );
        assert_eq!(
            decide_accepted(1, 2, 7, Existing::Up { incarnation: 8 }),
            Decision::Refuse(RefuseWhy::Stale)
        );
        assert_eq!(
            decide_accepted(1, 2, 8, Existing::Up { incarnation: 8 }),
            Decision::Refuse(RefuseWhy::Duplicate)
        );
        assert_eq!(decide_accepted(1, 2, 8, Existing::None), Decision::Keep);
    }

    fn hello(cluster: &str, name: &str, id: u64) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            cluster: cluster.into(),
            name: name.into(),
            node_id: id,
            incarnation: 1,
            mesh_addr: "127.0.0.1:1".parse().expect("addr"),
            lanes: 4,
            lane_buffer: 1 << 20,
            max_frame: 1 << 16,
        }
    }

    #[test]
    fn hello_must_match_certificate_cluster_and_id() {
        let cluster = ClusterName::new("c").expect("name");
        let me = NodeName::new("me").expect("name");
        let b = NodeName::new("b").expect("name");
        let id = node_id(&cluster, &b).get();
        assert_eq!(
            check_hello(&cluster, &me, &b, &hello("c", "b", id)),
            Ok(b.clone())
        );
        assert!(matches!(
            check_hello(&cluster, &me, &b, &hello("d", "b", id)),
            Err(Refusal::Cluster { .. })
        ));
        assert!(matches!(
            check_hello(&cluster, &me, &b, &hello("c", "x", id)),
            Err(Refusal::NameMismatch { .. })
        ));
        assert!(matches!(
            check_hello(&cluster, &me, &b, &hello("c", "b", id + 1)),
            Err(Refusal::NodeId { .. })
        ));
        let mut old = hello("c", "b", id);
        old.version = 0;
        assert!(matches!(
            check_hello(&cluster, &me, &b, &old),
            Err(Refusal::Version { .. })
        ));
        let my_id = node_id(&cluster, &me).get();
        assert_eq!(
            check_hello(&cluster, &me, &me, &hello("c", "me", my_id)),
            Err(Refusal::Myself)
        );
    }
}
