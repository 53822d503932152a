//! What a member with a valid certificate can make another node believe about *other* nodes:
//! records whose id is not their name's, oversized sync payloads, and load reports for nodes
//! other than the sender. Each is crafted as bytes, the way a hostile peer would send them.

use bytes::BufMut;
use foca::{Codec, Header, Message, PostcardCodec};

use super::*;
use crate::identity::{ClusterName, Incarnation, NodeName, node_id};
use crate::membership::wire::{
    BroadcastItem, LoadUpdate, NodeRecord, SYNC_VERSION, SwimId, SyncPayload,
};

fn cluster_name() -> ClusterName {
    ClusterName::new(CLUSTER).expect("valid")
}

/// Node `i`'s SWIM identity as it starts (what `Swim::new` gossips).
fn record(i: usize) -> NodeRecord {
    let name = NodeName::new(name(i)).expect("valid");
    NodeRecord {
        node_id: node_id(&cluster_name(), &name),
        addr: addr(i),
        incarnation: Incarnation::new(1),
        generation: 0,
        leaving: false,
        meta: NodeMeta::new(name),
    }
}

/// A record that claims `victim`'s id under another name and address.
fn forged(victim: usize) -> NodeRecord {
    let name = NodeName::new("evil").expect("valid");
    NodeRecord {
        node_id: record(victim).node_id,
        addr: SocketAddr::from(([127, 0, 0, 1], 6666)),
        incarnation: Incarnation::new(99),
        meta: NodeMeta::new(name),
        ..record(victim)
    }
}

/// A SWIM packet from `src` to `dst`: `message`, its piggybacked `updates`, then the custom
/// broadcast `items`, laid out as foca lays them out.
fn packet(
    src: &NodeRecord,
    dst: &NodeRecord,
    message: Message<SwimId>,
    updates: &[foca::Member<SwimId>],
    items: &[Vec<u8>],
) -> Vec<u8> {
    let header = Header {
        src: SwimId::Node(src.clone()),
        src_incarnation: 0,
        dst: SwimId::Node(dst.clone()),
        message,
    };
    let mut buf = Vec::new();
    PostcardCodec
        .encode_header(&header, &mut buf)
        .expect("header");
    if header.message != Message::Broadcast {
        buf.put_u16(u16::try_from(updates.len()).expect("few"));
        for update in updates {
            PostcardCodec
                .encode_member(update, &mut buf)
                .expect("member");
        }
    }
    for item in items {
        buf.put_u16(u16::try_from(item.len()).expect("small"));
        buf.extend_from_slice(item);
    }
    buf
}

/// A packet from n1 to n0 that carries only a load report about node `of`.
fn load_report(of: usize, version: u64, score: u32) -> Vec<u8> {
    let item = BroadcastItem::Load(load(of, version, score));
    let item = postcard::to_stdvec(&item).expect("encode");
    packet(&record(1), &record(0), Message::Broadcast, &[], &[item])
}

fn load(of: usize, version: u64, score: u32) -> LoadUpdate {
    LoadUpdate {
        node_id: record(of).node_id,
        incarnation: Incarnation::new(1),
        version,
        load: NodeLoad { actors: 1, score },
    }
}

/// A push-pull sync payload carrying `members` (the sender should be among them) and `load`.
fn sync_payload(members: Vec<foca::Member<SwimId>>, load: Option<LoadUpdate>) -> Vec<u8> {
    SyncPayload {
        version: SYNC_VERSION,
        members,
        loads: load.into_iter().collect(),
    }
    .encode()
}

fn id_of(sim: &Sim, i: usize) -> NodeId {
    sim.nodes[&i].swim.local().node_id()
}

/// What node 0 believes about node 2.
fn n2_seen_by_n0(sim: &Sim) -> Option<Member> {
    sim.nodes[&0].swim.member(id_of(sim, 2))
}

#[test]
fn gossip_of_a_record_whose_id_is_not_its_names_is_refused_and_counted() {
    let mut sim = cluster(3, 21);
    let now = sim.now;
    let before = n2_seen_by_n0(&sim).expect("n0 knows n2");
    let n1 = id_of(&sim, 1);
    // n1 tells n0 that n2's id now belongs to "evil" at another address, with a larger
    // incarnation so that foca would prefer it.
    let bad = packet(
        &record(1),
        &record(0),
        Message::Gossip,
        &[foca::Member::alive(SwimId::Node(forged(2)))],
        &[],
    );
    let n0 = &mut sim.nodes.get_mut(&0).expect("node").swim;
    let stats = n0.stats();
    let err = n0.handle_packet(now, n1, &bad).expect_err("forged record");
    assert!(matches!(err, PacketError::ForeignRecord { .. }), "{err}");
    assert_eq!(n0.stats().rejected_records, stats.rejected_records + 1);
    // Also as the target of an indirect probe request (a header identity).
    let bad = packet(
        &record(1),
        &record(0),
        Message::PingReq {
            target: SwimId::Node(forged(2)),
            probe_number: 1,
        },
        &[],
        &[],
    );
    let err = n0.handle_packet(now, n1, &bad).expect_err("forged target");
    assert!(matches!(err, PacketError::ForeignRecord { .. }), "{err}");
    assert_eq!(n0.stats().rejected_records, stats.rejected_records + 2);
    sim.run(Duration::from_secs(2));
    assert_eq!(n2_seen_by_n0(&sim), Some(before));
}

#[test]
fn a_sync_payload_with_a_foreign_record_is_refused_and_counted() {
    let mut sim = cluster(3, 22);
    let now = sim.now;
    let before = n2_seen_by_n0(&sim).expect("n0 knows n2");
    let n1 = id_of(&sim, 1);
    let payload = sync_payload(
        vec![
            foca::Member::alive(SwimId::Node(record(1))),
            foca::Member::alive(SwimId::Node(forged(2))),
        ],
        None,
    );
    let n0 = &mut sim.nodes.get_mut(&0).expect("node").swim;
    let stats = n0.stats();
    assert!(n0.handle_sync_request(now, n1, &payload).is_err());
    assert_eq!(n0.stats().rejected_records, stats.rejected_records + 1);
    assert_eq!(n0.stats().syncs_refused, stats.syncs_refused + 1);
    sim.run(Duration::from_secs(2));
    assert_eq!(n2_seen_by_n0(&sim), Some(before));
}

#[test]
fn a_sync_payload_beyond_the_member_cap_is_refused_before_it_is_built() {
    let mut sim = cluster(3, 23);
    let now = sim.now;
    let n1 = id_of(&sim, 1);
    let cap = sim.config.max_sync_members;
    // Valid records, each bound to its name: one more than the cap.
    let members: Vec<_> = std::iter::once(record(1))
        .chain((0..cap).map(|k| {
            let name = NodeName::new(format!("x{k}")).expect("valid");
            NodeRecord {
                node_id: node_id(&cluster_name(), &name),
                addr: SocketAddr::from(([10, 0, (k / 250) as u8, (k % 250) as u8], 7000)),
                meta: NodeMeta::new(name),
                ..record(1)
            }
        }))
        .map(|r| foca::Member::alive(SwimId::Node(r)))
        .collect();
    assert_eq!(members.len(), cap + 1);
    let payload = sync_payload(members.clone(), None);
    let n0 = &mut sim.nodes.get_mut(&0).expect("node").swim;
    let stats = n0.stats();
    assert!(n0.handle_sync_request(now, n1, &payload).is_err());
    assert_eq!(n0.stats().syncs_refused, stats.syncs_refused + 1);
    assert_eq!(n0.members().count(), 2);
    // At the cap it is accepted.
    let payload = sync_payload(members[..cap].to_vec(), None);
    assert!(n0.handle_sync_request(now, n1, &payload).is_ok());
    assert!(n0.members().count() > 2);
}

#[test]
fn a_load_report_is_accepted_only_from_the_node_it_describes() {
    let mut sim = cluster(3, 24);
    let now = sim.now;
    let (n1, n2) = (id_of(&sim, 1), id_of(&sim, 2));
    // n1 reports a load for n2, with the largest version there is: if believed, n2's own
    // reports would all look older, freezing n2's load at n0.
    let bad = load_report(2, u64::MAX, 999);
    let n0 = &mut sim.nodes.get_mut(&0).expect("node").swim;
    let stats = n0.stats();
    let _ = n0.handle_packet(now, n1, &bad);
    assert_eq!(n0.stats().loads_refused, stats.loads_refused + 1);
    // And in a sync payload.
    let payload = sync_payload(
        vec![foca::Member::alive(SwimId::Node(record(1)))],
        Some(load(2, u64::MAX, 998)),
    );
    assert!(n0.handle_sync_request(now, n1, &payload).is_ok());
    assert_eq!(n0.stats().loads_refused, stats.loads_refused + 2);
    assert_eq!(n0.member(n2).and_then(|m| m.load()), None);
    // n2's own report gets through and is the one n0 reports.
    let real = NodeLoad {
        actors: 7,
        score: 70,
    };
    sim.nodes
        .get_mut(&2)
        .expect("node")
        .swim
        .set_load(now, real);
    let seen = sim.run_until(Duration::from_secs(5), |s| {
        s.nodes[&0].swim.member(n2).and_then(|m| m.load()) == Some(real)
    });
    assert!(seen.is_some(), "n2's own load never reached n0");
    let forged_reported = sim.nodes[&0].events.iter().any(|e| {
        matches!(e, MembershipEvent::NodeUpdated(m) if m.load().is_some_and(|l| l.score >= 998))
    });
    assert!(!forged_reported);
}

#[test]
fn a_load_report_from_the_node_itself_is_accepted_directly_and_by_sync() {
    let mut sim = cluster(3, 25);
    let now = sim.now;
    let n1 = id_of(&sim, 1);
    let direct = load_report(1, 3, 30);
    let n0 = &mut sim.nodes.get_mut(&0).expect("node").swim;
    n0.handle_packet(now, n1, &direct).expect("accepted");
    assert_eq!(
        n0.member(n1).and_then(|m| m.load()).map(|l| l.score),
        Some(30)
    );
    let payload = sync_payload(
        vec![foca::Member::alive(SwimId::Node(record(1)))],
        Some(load(1, 4, 40)),
    );
    n0.handle_sync_request(now, n1, &payload).expect("accepted");
    assert_eq!(
        n0.member(n1).and_then(|m| m.load()).map(|l| l.score),
        Some(40)
    );
    // An older report (a datagram that arrives late) does not roll it back.
    let late = load_report(1, 2, 20);
    n0.handle_packet(now, n1, &late).expect("accepted");
    assert_eq!(
        n0.member(n1).and_then(|m| m.load()).map(|l| l.score),
        Some(40)
    );
}

proptest! {
    #![proptest_config(seeded(64))]

    /// Any (id, name) pair in a sync payload: accepted exactly when the id is the name's.
    #[test]
    fn sync_records_are_accepted_iff_their_id_is_their_names(
        raw_id in 1u64..,
        suffix in 0u32..1000,
        bind in any::<bool>(),
    ) {
        let mut swim = lone_node();
        let now = Instant::now();
        let name = NodeName::new(format!("p{suffix}")).expect("valid");
        let bound = node_id(&cluster_name(), &name);
        let id = if bind { bound } else { NodeId::new(raw_id).expect("non-zero") };
        let peer = NodeRecord { node_id: id, meta: NodeMeta::new(name), ..record(1) };
        let sender = record(2);
        let payload = sync_payload(
            vec![
                foca::Member::alive(SwimId::Node(sender.clone())),
                foca::Member::alive(SwimId::Node(peer)),
            ],
            None,
        );
        let accepted = swim.handle_sync_request(now, sender.node_id, &payload).is_ok();
        prop_assert_eq!(accepted, id == bound);
        prop_assert_eq!(swim.stats().rejected_records, u64::from(id != bound));
    }
}
