//! Property tests of the Eventual map: random registrations on 2–4 nodes over a network
//! that reorders, duplicates and loses messages converge to one winner per name everywhere;
//! the merge gives the same view whatever the delivery order (commutative) and duplicates
//! change nothing (idempotent).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;

use super::sim::{Sim, claim, node, owner, revoked_set, winners};
use crate::eventual::core::{EventualCore, EventualError, EventualMessage, Output, Version};

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

/// Fixed seeds, so a run is repeatable (`PROPTEST_RNG_SEED` still overrides it).
fn fixed_seed(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::with_cases(cases);
    match default.rng_seed {
        RngSeed::Random => ProptestConfig {
            rng_seed: RngSeed::Fixed(0xe7e7),
            ..default
        },
        _ => default,
    }
}

/// A local change on one node. The clock is small so that stamps tie often.
#[derive(Clone, Debug)]
enum Local {
    Register { name: usize, pid: u64, at_ms: u64 },
    Unregister { name: usize, pid: u64 },
    Stop { pid: u64 },
}

/// One step of a run on a connected cluster.
#[derive(Clone, Debug)]
enum Step {
    Local(usize, Local),
    Deliver {
        pick: Index,
        duplicate: bool,
    },
    Lose(Index),
    Tick(usize),
    /// A node sees a peer go down and come back (its names leave, then sync again).
    Flap(usize, usize),
}

fn any_local() -> impl Strategy<Value = Local> {
    prop_oneof![
        3 => (0..NAMES.len(), 1u64..4, 0u64..8)
            .prop_map(|(name, pid, at_ms)| Local::Register { name, pid, at_ms }),
        1 => (0..NAMES.len(), 1u64..4).prop_map(|(name, pid)| Local::Unregister { name, pid }),
        1 => (1u64..4).prop_map(|pid| Local::Stop { pid }),
    ]
}

fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..4, any_local()).prop_map(|(i, l)| Step::Local(i, l)),
        5 => (any::<Index>(), proptest::bool::weighted(0.2))
            .prop_map(|(pick, duplicate)| Step::Deliver { pick, duplicate }),
        1 => any::<Index>().prop_map(Step::Lose),
        1 => (0usize..4).prop_map(Step::Tick),
        1 => (0usize..4, 0usize..4).prop_map(|(i, j)| Step::Flap(i, j)),
    ]
}

/// Applies a local change to node `i`, checking what a refusal says.
fn apply(sim: &mut Sim, i: usize, local: &Local) {
    match *local {
        Local::Register { name, pid, at_ms } => {
            let name = NAMES[name];
            let held = sim.nodes[i].owner(name);
            let result = sim.on(i, |core| core.register(name, owner(i, pid), at_ms));
            match result {
                Ok(_) => assert!(held.is_none() || held == Some(owner(i, pid))),
                Err(EventualError::AlreadyRegistered { holder, .. }) => {
                    assert_eq!(Some(holder), held);
                    assert_ne!(holder, owner(i, pid));
                }
                Err(e) => panic!("register refused: {e}"),
            }
        }
        Local::Unregister { name, pid } => {
            let _ = sim.on(i, |core| core.unregister(NAMES[name], owner(i, pid)));
        }
        Local::Stop { pid } => {
            sim.on(i, |core| core.actor_stopped(owner(i, pid).addr));
        }
    }
}

/// Delivers every delivered message again, in an order picked by `picks`: nothing changes.
fn replay(sim: &mut Sim, picks: &[Index]) {
    let views: Vec<_> = (0..sim.nodes.len()).map(|i| sim.view(i)).collect();
    let revoked = sim.revoked.len();
    let mut again = std::mem::take(&mut sim.delivered);
    for pick in picks.iter().cycle().take(again.len()) {
        let packet = again.remove(pick.index(again.len()));
        sim.net.push(packet);
        let last = sim.net.len() - 1;
        sim.deliver(last, false);
    }
    sim.drain();
    for (i, view) in views.iter().enumerate() {
        assert_eq!(&sim.view(i), view, "node {i} changed on old messages");
    }
    assert_eq!(sim.revoked.len(), revoked, "old messages revoked a name");
}

proptest! {
    #![proptest_config(fixed_seed(256))]

    /// A connected cluster with a faulty network: after anti-entropy every node resolves
    /// every name alike, one claim per name is left, and every revocation was of a claim of
    /// the revoking node, once (checked at each step by the simulation).
    #[test]
    fn a_faulty_network_converges_to_one_winner(
        n in 2usize..=4,
        steps in proptest::collection::vec(any_step(), 0..120),
        picks in proptest::collection::vec(any::<Index>(), 1..8),
    ) {
        let mut sim = Sim::new(n, 16);
        sim.connect_all();
        for step in &steps {
            match step {
                Step::Local(i, local) => apply(&mut sim, i % n, local),
                Step::Deliver { pick, duplicate } if !sim.net.is_empty() => {
                    let at = pick.index(sim.net.len());
                    sim.deliver(at, *duplicate);
                }
                Step::Lose(pick) if !sim.net.is_empty() => {
                    sim.net.remove(pick.index(sim.net.len()));
                }
                Step::Tick(i) => sim.on(i % n, EventualCore::tick),
                Step::Flap(i, j) if i % n != j % n => {
                    let peer = node(j % n);
                    sim.on(i % n, |core| core.peer_down(peer));
                    sim.on(i % n, |core| core.peer_up(peer));
                }
                _ => {}
            }
        }
        sim.settle();
        sim.assert_converged();
        replay(&mut sim, &picks);
        sim.settle();
        sim.assert_converged();
    }

    /// Registrations made on every side of a full partition, then healed with the syncs
    /// delivered in any order, some twice: the view is the lowest-stamped claim per name on
    /// every node, whatever the order, and exactly the other claims are revoked, each once,
    /// by their own node.
    #[test]
    fn a_healed_partition_resolves_the_same_in_any_order(
        n in 2usize..=4,
        locals in proptest::collection::vec((0usize..4, any_local()), 0..40),
        orders in proptest::collection::vec(
            proptest::collection::vec((any::<Index>(), proptest::bool::weighted(0.3)), 0..40),
            2,
        ),
    ) {
        let mut views = Vec::new();
        for order in &orders {
            let mut sim = Sim::new(n, 16);
            for (i, local) in &locals {
                apply(&mut sim, i % n, local);
            }
            let claims = sim.claims();
            let expected = winners(&claims);
            let losers: std::collections::BTreeSet<_> = claims
                .iter()
                .flat_map(|(name, held)| held.iter().map(move |c| (name, c)))
                .filter(|(name, c)| expected[*name] != **c)
                .map(|(name, c)| (c.owner.addr.node.get() as usize - 1, name.clone(), c.stamp))
                .collect();
            sim.connect_all();
            for (pick, duplicate) in order {
                if !sim.net.is_empty() {
                    let at = pick.index(sim.net.len());
                    sim.deliver(at, *duplicate);
                }
            }
            sim.drain();
            sim.settle();
            sim.assert_converged();
            prop_assert_eq!(sim.view(0), expected.clone());
            prop_assert_eq!(revoked_set(&sim), losers);
            views.push(sim.view(0));
        }
        prop_assert_eq!(&views[0], &views[1]);
    }

    /// The merge itself: one node with claims of its own takes peers' whole entries, each
    /// `Sync` maybe twice, in two orders: the same view both times, the lowest stamp per
    /// name; the node's own claims that lose are revoked once each, and a duplicate changes
    /// nothing.
    #[test]
    fn merging_is_commutative_and_idempotent(
        mine in proptest::collection::btree_map(0..NAMES.len(), (1u64..4, 0u64..1000), 0..5),
        peers in proptest::collection::vec(
            proptest::collection::btree_map(0..NAMES.len(), (1u64..4, 0u64..1000), 0..5),
            1..4,
        ),
        orders in proptest::collection::vec(
            proptest::collection::vec((any::<Index>(), any::<bool>()), 0..8),
            2,
        ),
    ) {
        let mut all: BTreeMap<String, Vec<_>> = BTreeMap::new();
        let syncs: Vec<EventualMessage> = peers
            .iter()
            .enumerate()
            .map(|(p, entries)| EventualMessage::Sync {
                version: Version { incarnation: 1, counter: entries.len() as u64 },
                entries: entries
                    .iter()
                    .enumerate()
                    .map(|(seq, (name, (pid, at)))| {
                        let c = claim(p + 1, *pid, *at, seq as u64 + 1);
                        all.entry(NAMES[*name].to_owned()).or_default().push(c);
                        (NAMES[*name].to_owned(), c.to_wire())
                    })
                    .collect(),
                reply: false,
            })
            .collect();
        let mut views = Vec::new();
        for order in &orders {
            let mut core = EventualCore::new(node(0), 1, 16);
            let mut expected = all.clone();
            for (name, (pid, at)) in &mine {
                let name = NAMES[*name];
                core.register(name, owner(0, *pid), *at).expect("free");
                let c = *core.resolve(name).expect("registered");
                expected.entry(name.to_owned()).or_default().push(c);
            }
            let expected = winners(&expected);
            let local: BTreeMap<String, _> =
                core.local().map(|(n, c)| (n.to_owned(), *c)).collect();
            for p in 0..peers.len() {
                core.peer_up(node(p + 1));
            }
            let mut pending: Vec<usize> = (0..syncs.len()).collect();
            let mut picks = order.iter().copied();
            core.take_outputs();
            let mut revoked = Vec::new();
            while !pending.is_empty() {
                let (at, twice) = picks
                    .next()
                    .map_or((0, false), |(pick, twice)| (pick.index(pending.len()), twice));
                let p = pending.remove(at);
                for round in 0..if twice { 2 } else { 1 } {
                    core.receive(node(p + 1), syncs[p].clone());
                    let outputs = core.take_outputs();
                    if round == 1 {
                        prop_assert!(outputs.is_empty(), "a duplicate did {:?}", outputs);
                    }
                    for out in outputs {
                        if let Output::Revoked { name, loser, .. } = out {
                            prop_assert_eq!(local[&name].owner, loser);
                            revoked.push(name);
                        }
                    }
                }
            }
            let view: BTreeMap<String, _> =
                core.iter().map(|(n, c)| (n.to_owned(), *c)).collect();
            prop_assert_eq!(&view, &expected);
            let mut beaten: Vec<String> = local
                .iter()
                .filter(|(name, c)| expected[*name] != **c)
                .map(|(name, _)| name.clone())
                .collect();
            revoked.sort();
            beaten.sort();
            prop_assert_eq!(revoked, beaten);
            views.push(view);
        }
        prop_assert_eq!(&views[0], &views[1]);
    }
}
