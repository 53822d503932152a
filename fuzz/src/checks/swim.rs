//! SWIM membership: `membership::Swim::handle_packet` (datagrams: the header identity check,
//! foca's postcard codec with our identity checks, the load broadcasts) and
//! `Swim::handle_sync_request` (push-pull sync payloads), on the pure state machine.
//!
//! The subject is node `a` of a three-node cluster `fuzz` (`a`, `b`, `c`). Because `Swim` is
//! deterministic (seeded RNG, time passed in), a short lock-step simulation of the three
//! nodes is run once per process and every input `a` received in it is recorded; a "warm"
//! input first replays that record into a fresh `a`, which then knows `b` and `c` and their
//! loads, so the fuzzed packet meets a joined node instead of a lonely one.
//!
//! Input: a mode byte, a sender byte, then the bytes.
//! - mode bit 0: the bytes are a sync request (else a SWIM packet);
//! - mode bit 1: warm (replay the join first; else a fresh node);
//! - sender byte % 4: the verified peer the transport says sent it: `b`, `c`, `a` itself, or
//!   a node that is not a member.
//!
//! Checks: nothing panics, including the timers and outputs after the input; a packet refused
//! before anything in it is applied (too large, malformed, wrong sender, a record whose id is
//! not its name's) changes nothing but its counter; a sync answer is our own state and decodes
//! at a fresh node; and no input leaves `a` with a member whose id is not its name's.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use understudy::cluster::NodeId;
use understudy::cluster::identity::{ClusterName, NodeName, node_id};
use understudy::cluster::membership::{
    LocalNode, MembershipConfig, MembershipStats, NodeLoad, PacketError, Swim, SyncError,
    testing::local_node,
};

/// The simulated cluster's names; `a` is the node under test.
const NAMES: [&str; 3] = ["a", "b", "c"];
const STEP: Duration = Duration::from_millis(50);
/// Lock-step rounds simulated (the three nodes converge in well under this).
const ROUNDS: u32 = 40;

/// An input of node `a` in the simulation.
#[derive(Clone, Debug)]
enum Input {
    Timeout(Duration),
    Packet(Duration, NodeId, Vec<u8>),
    SyncRequest(Duration, NodeId, Vec<u8>),
    SyncResponse(Duration, u64, Result<Vec<u8>, SyncError>),
}

struct Fixture {
    base: Instant,
    config: MembershipConfig,
    locals: Vec<LocalNode>,
    ids: Vec<NodeId>,
    cluster: ClusterName,
    stranger: NodeId,
    /// Everything `a` received, in order, until the end of the simulation.
    record: Vec<Input>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = MembershipConfig::default();
        let locals: Vec<LocalNode> = NAMES
            .iter()
            .zip(7001u16..)
            .map(|(name, port)| local_node("fuzz", name, port, 1).expect("valid names"))
            .collect();
        let ids = locals.iter().map(|l| l.identity.node_id()).collect();
        let cluster = ClusterName::new("fuzz").expect("valid");
        let stranger = node_id(&cluster, &NodeName::new("zed").expect("valid"));
        let base = Instant::now();
        let record = simulate(base, &config, &locals);
        Fixture {
            base,
            config,
            locals,
            ids,
            cluster,
            stranger,
            record,
        }
    })
}

fn node(f: &Fixture, i: usize, now: Instant) -> Swim {
    new_node(&f.config, &f.locals, i, now)
}

/// Node `i`, seeded with `a`'s address, RNG seed `i + 1`.
fn new_node(config: &MembershipConfig, locals: &[LocalNode], i: usize, now: Instant) -> Swim {
    let seeds = vec![locals[0].addr];
    Swim::new(locals[i].clone(), config, seeds, i as u64 + 1, now).expect("valid config")
}

/// Runs `a`, `b` and `c` in lock step, delivering every packet and sync at once; returns
/// `a`'s inputs.
fn simulate(base: Instant, config: &MembershipConfig, locals: &[LocalNode]) -> Vec<Input> {
    let ids: Vec<NodeId> = locals.iter().map(|l| l.identity.node_id()).collect();
    let mut nodes: Vec<Swim> = (0..locals.len())
        .map(|i| new_node(config, locals, i, base))
        .collect();
    let index_of = |addr| locals.iter().position(|l| l.addr == addr);
    let mut record = Vec::new();
    for round in 0..ROUNDS {
        let at = STEP * round;
        let now = base + at;
        for (i, n) in nodes.iter_mut().enumerate() {
            if round == 2 && i > 0 {
                // Loads ride on the gossip as custom broadcasts.
                n.set_load(
                    now,
                    NodeLoad {
                        actors: 10 * i as u32,
                        score: 500,
                    },
                );
            }
            n.handle_timeout(now);
        }
        record.push(Input::Timeout(at));
        for i in 0..nodes.len() {
            while let Some(t) = nodes[i].poll_transmit() {
                let Some(j) = index_of(t.to.addr()) else {
                    continue;
                };
                if j == 0 {
                    record.push(Input::Packet(at, ids[i], t.packet.to_vec()));
                }
                let _ = nodes[j].handle_packet(now, ids[i], &t.packet);
            }
            while let Some(sync) = nodes[i].poll_sync() {
                let Some(j) = index_of(sync.to.addr()) else {
                    continue;
                };
                if j == 0 {
                    record.push(Input::SyncRequest(at, ids[i], sync.payload.to_vec()));
                }
                let response = nodes[j]
                    .handle_sync_request(now, ids[i], &sync.payload)
                    .map(|b| b.to_vec());
                if i == 0 {
                    record.push(Input::SyncResponse(at, sync.id, response.clone()));
                }
                nodes[i].handle_sync_response(
                    now,
                    sync.id,
                    response.as_deref().map_err(Clone::clone),
                );
            }
        }
        for n in &mut nodes {
            while n.poll_event().is_some() {}
        }
    }
    record
}

/// Feeds `input` to `a` and drops its outputs.
fn apply(a: &mut Swim, base: Instant, input: &Input) {
    match input {
        Input::Timeout(at) => a.handle_timeout(base + *at),
        Input::Packet(at, from, bytes) => {
            let _ = a.handle_packet(base + *at, *from, bytes);
        }
        Input::SyncRequest(at, from, bytes) => {
            let _ = a.handle_sync_request(base + *at, *from, bytes);
        }
        Input::SyncResponse(at, id, response) => {
            a.handle_sync_response(base + *at, *id, response.as_deref().map_err(Clone::clone));
        }
    }
    drain(a);
}

fn drain(a: &mut Swim) {
    while a.poll_transmit().is_some() {}
    while a.poll_sync().is_some() {}
    while a.poll_event().is_some() {}
}

/// Everything observable about `a` that a refused packet must not change.
fn observable(a: &Swim) -> String {
    let members: Vec<_> = a.members().collect();
    format!("{members:?} {:?} {}", a.local(), a.is_connected())
}

/// The `swim_packets` target.
pub fn swim_packets(data: &[u8]) -> bool {
    let [mode, sender, bytes @ ..] = data else {
        return false;
    };
    let f = fixture();
    let warm = mode & 2 != 0;
    let mut a = node(f, 0, f.base);
    if warm {
        for input in &f.record {
            apply(&mut a, f.base, input);
        }
    }
    let now = f.base + STEP * ROUNDS;
    let from = match sender % 4 {
        0 => f.ids[1],
        1 => f.ids[2],
        2 => f.ids[0],
        _ => f.stranger,
    };
    let forged_before = a.stats().rejected_records;
    // "Accepted": decoded all the way, whether the node then took it or refused a record in
    // it whose id is not its name's (the fuzzer's favourite mutation).
    let accepted = if mode & 1 == 0 {
        let (before, stats) = (observable(&a), a.stats());
        let result = a.handle_packet(now, from, bytes);
        if let Err(e) = result.as_ref()
            && refused_before_foca(e)
        {
            assert_eq!(
                observable(&a),
                before,
                "a refused packet ({e}) changed the membership"
            );
            assert_eq!(
                only_counters(a.stats()),
                only_counters(stats),
                "a refused packet ({e}) changed more than its counters"
            );
        }
        result.is_ok() || matches!(result, Err(PacketError::ForeignRecord { .. }))
    } else {
        match a.handle_sync_request(now, from, bytes) {
            Ok(answer) => {
                // Our own state decodes at a fresh node.
                let mut other = node(f, 1, now);
                if let Err(e) = other.handle_sync_request(now, f.ids[0], &answer) {
                    panic!("a's sync answer does not decode at b: {e}");
                }
                true
            }
            Err(_) => a.stats().rejected_records > forged_before,
        }
    };
    // The node keeps working: outputs, then every timer for a while.
    drain(&mut a);
    for round in 1..=40 {
        a.handle_timeout(now + STEP * round * 5);
        drain(&mut a);
    }
    // Whatever got in, no member holds a slot (id) that is not its name's (found in the
    // corpus once ids were bound to names; regression input
    // `swim_packets/regression-foreign-id-takes-a-slot`).
    for member in a.members() {
        assert_eq!(
            member.node_id(),
            node_id(&f.cluster, member.name()),
            "a member whose id is not its name's: {member}"
        );
    }
    accepted
}

/// Whether `Swim` refused the packet before anything in it was applied: too large, a header
/// that does not decode or names invalid identities (our wire layer's messages), a sender
/// that is not the verified peer, or a record whose id is not its name's. Those must change
/// nothing but a counter.
///
/// Not asserted for foca's own `Malformed` refusals: foca applies the sender and the updates
/// before it decodes the custom broadcasts that follow them, so a packet whose trailing
/// broadcast bytes are bad is refused *after* it changed the membership (found by this target;
/// regression input `swim_packets/regression-malformed-trailer-applies-updates`).
fn refused_before_foca(error: &PacketError) -> bool {
    match error {
        // A foreign record is found while foca decodes the updates, before it applies any.
        PacketError::TooLarge { .. }
        | PacketError::IdentityMismatch { .. }
        | PacketError::ForeignRecord { .. } => true,
        PacketError::Malformed(reason) => [
            "undecodable",
            "a seed placeholder",
            "invalid metadata",
            "placeholder sender",
        ]
        .iter()
        .any(|ours| reason.starts_with(ours)),
        _ => false,
    }
}

/// How many members `a` knows after the warm-up replay (the simulation is meant to join all
/// three nodes; the replay test checks that it still does).
pub fn warm_members() -> usize {
    let f = fixture();
    let mut a = node(f, 0, f.base);
    for input in &f.record {
        apply(&mut a, f.base, input);
    }
    a.members().count()
}

/// Stats with the rejection counters cleared.
fn only_counters(mut stats: MembershipStats) -> MembershipStats {
    stats.packets_received = 0;
    stats.rejected_identity = 0;
    stats.rejected_malformed = 0;
    stats.rejected_records = 0;
    stats
}

// ---- seeds ----

/// Seeds of the `swim_packets` target: every packet and sync request `a` received in the
/// simulation, cold (only the first ones make sense to a fresh node) and warm.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let f = fixture();
    // The sender byte of each simulated node (see the input format).
    let sender = |from: &NodeId| match f.ids.iter().position(|id| id == from) {
        Some(1) => 0u8,
        Some(2) => 1,
        Some(0) => 2,
        _ => 3,
    };
    let mut out = Vec::new();
    let (mut packets, mut syncs) = (0, 0);
    for input in &f.record {
        let (kind, from, bytes) = match input {
            Input::Packet(_, from, bytes) => (0u8, from, bytes),
            Input::SyncRequest(_, from, bytes) => (1, from, bytes),
            _ => continue,
        };
        let s = sender(from);
        let n = if kind == 0 { &mut packets } else { &mut syncs };
        *n += 1;
        if *n > 6 {
            continue;
        }
        let what = if kind == 0 { "packet" } else { "sync" };
        for (warmth, bit) in [("cold", 0u8), ("warm", 2)] {
            let mut v = vec![kind | bit, s];
            v.extend_from_slice(bytes);
            out.push((format!("{what}-{n}-{warmth}"), v));
        }
    }
    if let Some((_, v)) = out.iter().find(|(n, _)| n.starts_with("packet")).cloned() {
        let mut wrong_sender = v.clone();
        wrong_sender[1] = 3;
        out.push(("packet-wrong-sender".into(), wrong_sender));
        let mut truncated = v.clone();
        truncated.truncate(v.len() / 2);
        out.push(("packet-truncated".into(), truncated));
    }
    out.push((
        "too-large".into(),
        [vec![0, 0], vec![0; f.config.max_packet_size + 1]].concat(),
    ));
    out.push(("empty-packet".into(), vec![2, 0]));
    out.push(("empty-sync".into(), vec![3, 0]));
    out
}
