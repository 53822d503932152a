//! Unit tests of the Eventual core: local registration, partitions and their heal, peers
//! going down, the exchange's repairs, and what a peer's bad messages cost.

mod props;
mod sim;

use sim::{RUN, Sim, claim, node, owner};

use super::core::{
    DEFAULT_MAX_NAMES, EventualCore, EventualError, EventualMessage, Output, Registered, Version,
};

fn version(counter: u64) -> Version {
    Version {
        incarnation: RUN,
        counter,
    }
}

/// A `Sync` from node `i` with `names`, each held by its actor 1 and stamped at 0.
fn sync_of(i: usize, counter: u64, names: &[&str]) -> EventualMessage {
    EventualMessage::Sync {
        version: version(counter),
        entries: names
            .iter()
            .enumerate()
            .map(|(seq, name)| (name.to_string(), claim(i, 1, 0, seq as u64).to_wire()))
            .collect(),
        reply: false,
    }
}

/// Node 0 with node 1 up and synced empty.
fn with_peer(max_names: usize) -> EventualCore {
    let mut core = EventualCore::new(node(0), RUN, max_names);
    core.peer_up(node(1));
    core.receive(node(1), sync_of(1, 0, &[]));
    core.take_outputs();
    core
}

#[test]
fn first_writer_wins_locally() {
    let mut core = EventualCore::new(node(0), RUN, 2);
    let (a, b) = (owner(0, 1), owner(0, 2));
    assert_eq!(core.register("x", a, 5).unwrap(), Registered::Now);
    assert_eq!(
        core.take_outputs(),
        vec![Output::Changed {
            name: "x".into(),
            old: None,
            new: Some(a)
        }]
    );
    assert_eq!(core.owner("x"), Some(a));
    assert_eq!(core.register("x", a, 9).unwrap(), Registered::Already);
    assert!(core.take_outputs().is_empty());
    let err = core.register("x", b, 6).unwrap_err();
    assert!(matches!(err, EventualError::AlreadyRegistered { holder, .. } if holder == a));
    let err = core.unregister("x", b).unwrap_err();
    assert!(matches!(err, EventualError::NotOwner { holder, .. } if holder == a));
    core.register("y", b, 6).unwrap();
    let err = core.register("z", b, 6).unwrap_err();
    assert!(matches!(err, EventualError::Full { limit: 2 }), "{err}");
    core.unregister("x", a).unwrap();
    assert_eq!(core.owner("x"), None);
    let err = core.unregister("x", a).unwrap_err();
    assert!(matches!(err, EventualError::NotRegistered { .. }));
    assert_eq!(core.names(), vec!["y".to_owned()]);
}

#[test]
fn only_valid_names_of_local_actors_of_this_run_register() {
    let mut core = EventualCore::new(node(0), RUN, 8);
    for bad in ["", "tab\there", &"x".repeat(256)] {
        let err = core.register(bad, owner(0, 1), 0).unwrap_err();
        assert!(
            matches!(err, EventualError::InvalidName(_)),
            "{bad:?}: {err}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
    let remote = owner(1, 1);
    let err = core.register("x", remote, 0).unwrap_err();
    assert!(matches!(err, EventualError::NotLocal(o) if o == remote));
    let old_run = crate::core::command::Owner {
        incarnation: RUN - 1,
        ..owner(0, 1)
    };
    assert!(matches!(
        core.register("x", old_run, 0),
        Err(EventualError::NotLocal(_))
    ));
    assert!(core.names().is_empty());
}

#[test]
fn a_stopped_actor_releases_every_name_with_one_delta_each() {
    let mut core = with_peer(8);
    core.register("x", owner(0, 1), 0).unwrap();
    core.register("y", owner(0, 1), 0).unwrap();
    core.register("z", owner(0, 2), 0).unwrap();
    core.take_outputs();
    assert_eq!(core.actor_stopped(owner(0, 1).addr), 2);
    let removes: Vec<_> = core
        .take_outputs()
        .into_iter()
        .filter_map(|o| match o {
            Output::Broadcast(EventualMessage::Remove { version, name }) => Some((version, name)),
            _ => None,
        })
        .collect();
    assert_eq!(
        removes,
        vec![(version(4), "x".to_owned()), (version(5), "y".to_owned())]
    );
    assert_eq!(core.names(), vec!["z".to_owned()]);
}

/// Node 0 at 100 ms and node 1 at 90 ms both take "x" while apart: after the heal, in
/// either order, both resolve it to node 1's actor, and node 0 alone revokes its own, once.
#[test]
fn a_partition_heals_to_one_winner_and_the_loser_is_revoked_once() {
    for first in [0, 1] {
        let mut sim = Sim::new(2, 8);
        sim.on(0, |c| c.register("x", owner(0, 1), 100)).unwrap();
        sim.on(1, |c| c.register("x", owner(1, 1), 90)).unwrap();
        sim.on(first, |c| c.peer_up(node(1 - first)));
        sim.on(1 - first, |c| c.peer_up(node(first)));
        sim.deliver(0, true); // the first Sync, twice
        sim.drain();
        for i in 0..2 {
            assert_eq!(sim.nodes[i].owner("x"), Some(owner(1, 1)), "node {i}");
        }
        assert_eq!(sim.revoked.len(), 1);
        let (i, name, lost) = &sim.revoked[0];
        assert_eq!((*i, name.as_str(), lost.owner), (0, "x", owner(0, 1)));
        sim.settle();
        sim.assert_converged();
        assert_eq!(sim.revoked.len(), 1, "revoked again");
        // The loser may not take the name back while the winner holds it.
        let err = sim.on(0, |c| c.register("x", owner(0, 1), 0)).unwrap_err();
        assert!(matches!(err, EventualError::AlreadyRegistered { .. }));
    }
}

#[test]
fn a_tie_on_the_clock_goes_to_the_lower_node_id() {
    let mut sim = Sim::new(3, 8);
    for i in [2, 1] {
        sim.on(i, |c| c.register("x", owner(i, 1), 50)).unwrap();
    }
    sim.connect_all();
    sim.drain();
    sim.settle();
    sim.assert_converged();
    assert_eq!(sim.nodes[0].owner("x"), Some(owner(1, 1)));
    assert_eq!(sim.revoked.len(), 1);
    assert_eq!(sim.revoked[0].0, 2);
}

/// A node going down releases its names; the next-ranked claim still held takes over, and
/// a late message of the gone node does not bring its names back.
#[test]
fn a_peer_going_down_releases_its_names() {
    let mut core = EventualCore::new(node(0), RUN, 8);
    for p in [1, 2] {
        core.peer_up(node(p));
    }
    // Nodes 1 and 2 took "x" apart from each other; node 1's claim ranks first.
    let entries = |i: usize, names: &[&str], at_ms: u64| EventualMessage::Sync {
        version: version(1),
        entries: names
            .iter()
            .map(|name| (name.to_string(), claim(i, 1, at_ms, 1).to_wire()))
            .collect(),
        reply: false,
    };
    core.receive(node(1), entries(1, &["x", "y"], 10));
    core.receive(node(2), entries(2, &["x"], 20));
    assert_eq!(core.owner("y"), Some(owner(1, 1)));
    core.take_outputs();
    core.peer_down(node(1));
    let x = Output::Changed {
        name: "x".into(),
        old: Some(owner(1, 1)),
        new: Some(owner(2, 1)),
    };
    let y = Output::Changed {
        name: "y".into(),
        old: Some(owner(1, 1)),
        new: None,
    };
    assert_eq!(core.take_outputs(), vec![x, y]);
    assert_eq!(core.names(), vec!["x".to_owned()]);
    core.receive(node(1), sync_of(1, 3, &["y"]));
    let put = EventualMessage::Put {
        version: version(3),
        name: "w".into(),
        claim: claim(1, 1, 0, 3).to_wire(),
    };
    core.receive(node(1), put);
    assert_eq!(core.names(), vec!["x".to_owned()]);
    assert!(core.take_outputs().is_empty());
    assert_eq!(core.rejected(), 0);
}

/// A `Sync` overtaken by later messages is not applied; a newer run of the peer replaces
/// the view, and its earlier run's deltas are dropped.
#[test]
fn stale_syncs_and_earlier_runs_are_not_applied() {
    let mut core = with_peer(8);
    core.receive(node(1), sync_of(1, 2, &["x"]));
    core.receive(node(1), sync_of(1, 1, &["x", "old"]));
    assert_eq!(core.names(), vec!["x".to_owned()]);
    let next_run = EventualMessage::Sync {
        version: Version {
            incarnation: RUN + 1,
            counter: 0,
        },
        entries: vec![("y".into(), claim(1, 1, 0, 1).to_wire())],
        reply: false,
    };
    core.receive(node(1), next_run);
    assert_eq!(core.names(), vec!["y".to_owned()]);
    let y = core.resolve("y").unwrap();
    assert_eq!(y.owner.incarnation, RUN + 1);
    core.take_outputs();
    let late = EventualMessage::Put {
        version: version(3),
        name: "z".into(),
        claim: claim(1, 1, 0, 3).to_wire(),
    };
    core.receive(node(1), late);
    assert_eq!(core.names(), vec!["y".to_owned()]);
    assert!(
        core.take_outputs().is_empty(),
        "asked for a Sync on a past run's delta"
    );
}

/// A gap asks for a `Sync`, once per period; a digest that differs, or one from a peer
/// never synced, asks too; a matching one asks nothing.
#[test]
fn gaps_and_digests_ask_for_a_sync_once_per_period() {
    let asks = |core: &mut EventualCore| {
        core.take_outputs()
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Send {
                        message: EventualMessage::Sync { reply: true, .. },
                        ..
                    }
                )
            })
            .count()
    };
    let mut core = EventualCore::new(node(0), RUN, 8);
    core.peer_up(node(1));
    core.take_outputs();
    core.tick();
    core.take_outputs();
    let digest = EventualMessage::Digest {
        version: version(0),
        hash: 0,
    };
    core.receive(node(1), digest.clone());
    assert_eq!(asks(&mut core), 1, "never synced");
    core.receive(node(1), sync_of(1, 1, &["x"]));
    core.take_outputs();
    let gap = |counter| EventualMessage::Remove {
        version: version(counter),
        name: "x".into(),
    };
    core.receive(node(1), gap(3));
    core.receive(node(1), gap(4));
    assert_eq!(asks(&mut core), 1);
    assert_eq!(
        core.names(),
        vec!["x".to_owned()],
        "a delta past a gap was applied"
    );
    core.tick();
    core.take_outputs();
    let (v, h) = core.view_digest(node(1)).unwrap();
    core.receive(
        node(1),
        EventualMessage::Digest {
            version: v,
            hash: h,
        },
    );
    assert_eq!(asks(&mut core), 0);
    core.receive(
        node(1),
        EventualMessage::Digest {
            version: v,
            hash: h ^ 1,
        },
    );
    assert_eq!(asks(&mut core), 1, "same version, other entries");
    core.receive(node(1), gap(2));
    assert!(core.names().is_empty(), "the next delta applies");
}

/// Bad messages are dropped whole and counted: over the limit, an invalid or repeated name,
/// and bytes that do not decode.
#[test]
fn a_bad_message_is_rejected_whole_and_counted() {
    let mut core = with_peer(4);
    let too_many = sync_of(1, 1, &["a", "b", "c", "d", "e"]);
    let long = "x".repeat(256);
    let bad_names = sync_of(1, 1, &["a", "b\u{7}"]);
    let too_long = sync_of(1, 1, &["a", &long]);
    let twice = sync_of(1, 1, &["a", "a"]);
    let bad_put = EventualMessage::Put {
        version: version(1),
        name: String::new(),
        claim: claim(1, 1, 0, 1).to_wire(),
    };
    let bad_remove = EventualMessage::Remove {
        version: version(1),
        name: long.clone(),
    };
    for (n, message) in [too_many, bad_names, too_long, twice, bad_put, bad_remove]
        .into_iter()
        .enumerate()
    {
        core.receive(node(1), message);
        assert_eq!(core.rejected(), n as u64 + 1);
        assert!(core.names().is_empty());
        assert!(core.take_outputs().is_empty());
    }
    let good = sync_of(1, 1, &["a"]);
    let mut bytes = good.encode();
    assert_eq!(EventualMessage::decode(&bytes).unwrap(), good);
    bytes.push(0);
    assert!(EventualMessage::decode(&bytes).is_err(), "trailing bytes");
    assert!(EventualMessage::decode(&[]).is_err());
    assert!(EventualMessage::decode(&[9, 0xff, 0xff, 0xff]).is_err());
    // Every cut of a valid message fails to decode; none panics.
    for cut in 0..bytes.len() - 1 {
        assert!(
            EventualMessage::decode(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

/// A peer streaming fresh names can make this node hold `max_names` of them, no more.
#[test]
fn a_flood_of_names_is_bounded() {
    let max = 64;
    let mut core = with_peer(max);
    for i in 1..=10 * max as u64 {
        let put = EventualMessage::Put {
            version: version(i),
            name: format!("n{i}"),
            claim: claim(1, 1, 0, i).to_wire(),
        };
        core.receive(node(1), put);
    }
    assert_eq!(core.names().len(), max);
    assert_eq!(core.rejected(), 9 * max as u64);
    let sent = core
        .take_outputs()
        .into_iter()
        .filter(|o| !matches!(o, Output::Changed { .. }));
    assert_eq!(sent.count(), 0, "a rejected delta was answered");
    // A rejected delta is not applied, so the next valid one is past a gap: it asks for a
    // `Sync` rather than apply it.
    let next = EventualMessage::Remove {
        version: version(10 * max as u64 + 1),
        name: "n1".into(),
    };
    core.receive(node(1), next);
    assert_eq!(core.names().len(), max);
    let asked = core.take_outputs();
    assert!(matches!(asked[..], [Output::Send { .. }]), "{asked:?}");
}

/// A full `Sync` of the default limit, longest names and widest numbers, fits the mesh's
/// default frame with room for the registry's envelope.
#[test]
fn a_full_sync_fits_a_frame() {
    let mut core = EventualCore::new(node(0), RUN, DEFAULT_MAX_NAMES);
    let big = crate::core::command::Owner {
        addr: understudy_actor::ActorAddr {
            node: node(0),
            pid: u64::MAX,
        },
        tag: understudy_actor::Tag(u64::MAX),
        incarnation: RUN,
    };
    for i in 0..DEFAULT_MAX_NAMES {
        core.register(&format!("{i:0>255}"), big, u64::MAX).unwrap();
    }
    let bytes = core.sync_message(true).encode();
    assert!(bytes.len() < 6 << 20, "{} bytes", bytes.len());
    assert!(bytes.len() < understudy_cluster::wire::DEFAULT_MAX_FRAME);
}

#[test]
fn digests_go_round_the_peers_a_few_at_a_time() {
    let mut core = EventualCore::new(node(0), RUN, DEFAULT_MAX_NAMES);
    for p in 1..=5 {
        core.peer_up(node(p));
    }
    core.take_outputs();
    let round = |core: &mut EventualCore| -> Vec<u64> {
        core.tick_fanout(2);
        core.take_outputs()
            .into_iter()
            .map(|o| match o {
                Output::Send {
                    to,
                    message: EventualMessage::Digest { .. },
                } => to.get(),
                other => panic!("only digests: {other:?}"),
            })
            .collect()
    };
    let ids: Vec<u64> = (1..=5).map(|p| node(p).get()).collect();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let sent = round(&mut core);
        assert_eq!(sent.len(), 2, "two peers a round");
        seen.extend(sent);
    }
    // Three rounds of two cover all five peers, in turn.
    let mut covered = seen[..5].to_vec();
    covered.sort();
    let mut all = ids.clone();
    all.sort();
    assert_eq!(covered, all);
    // A fan-out as large as the peers is every peer at once.
    core.tick_fanout(5);
    assert!(matches!(
        core.take_outputs().as_slice(),
        [Output::Broadcast(EventualMessage::Digest { .. })]
    ));
}
