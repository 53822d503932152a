//! Placed names through the name table: assignment, binding, failover and its limits.

use understudy_actor::supervisor::Restart;
use understudy_actor::{ActorAddr, NodeId, Tag};

use super::*;
use crate::core::command::{Command, Outcome, Owner};
use crate::core::table::{NameTable, TableImage};

fn node(n: u64) -> NodeId {
    NodeId::new(n).expect("non-zero")
}

fn owner(n: u64, pid: u64) -> Owner {
    Owner {
        addr: ActorAddr { node: node(n), pid },
        tag: Tag(7),
        incarnation: 1,
    }
}

fn target(n: u64) -> Target {
    Target {
        node: node(n),
        incarnation: 1,
    }
}

fn spec(restart: Restart) -> Spec {
    Spec {
        kind: "billing".into(),
        args: vec![1, 2, 3],
        placement: Placement::Hash,
        restart,
        intensity: Intensity {
            max_restarts: 2,
            within_ms: 5_000,
        },
    }
}

struct Table {
    table: NameTable,
    revision: u64,
}

impl Table {
    fn new() -> Table {
        Table {
            table: NameTable::new(100),
            revision: 0,
        }
    }

    fn apply(&mut self, command: Command) -> Outcome {
        self.revision += 1;
        self.table.apply(&command, self.revision, &mut Vec::new())
    }

    fn place(&mut self, on: u64, restart: Restart, replaces: Option<u64>, at_ms: u64) -> Outcome {
        self.apply(Command::Place {
            name: "s".into(),
            spec: spec(restart),
            target: target(on),
            replaces,
            at_ms,
        })
    }

    fn bind(&mut self, owner: Owner, epoch: u64) -> Outcome {
        self.apply(Command::Bind {
            name: "s".into(),
            owner,
            epoch,
        })
    }

    fn node_gone(&mut self, n: u64) -> Outcome {
        self.apply(Command::ReleaseNode {
            node: node(n),
            incarnation: 1,
        })
    }

    fn register(&mut self, owner: Owner) -> Outcome {
        self.apply(Command::Register {
            name: "s".into(),
            owner,
        })
    }

    fn stage(&self) -> Option<Stage> {
        self.table.placements().get("s").map(|p| p.stage.clone())
    }

    fn epoch(&self) -> u64 {
        self.table.placements().get("s").expect("placed").epoch
    }
}

fn placed_epoch(outcome: &Outcome) -> u64 {
    match outcome {
        Outcome::Placed { epoch, .. } => *epoch,
        other => panic!("not placed: {other:?}"),
    }
}

#[test]
fn one_assignment_at_a_time_and_only_its_start_takes_the_name() {
    let mut t = Table::new();
    let epoch = placed_epoch(&t.place(2, Restart::Permanent, None, 0));
    let starting = Outcome::Starting {
        target: target(2),
        epoch,
    };
    assert_eq!(
        t.place(3, Restart::Permanent, None, 0),
        starting,
        "a second spawn waits for the first"
    );
    assert_eq!(
        t.register(owner(3, 9)),
        starting,
        "a plain register does not take a name being started"
    );
    assert_eq!(t.bind(owner(3, 1), epoch), Outcome::Stale, "another node");
    assert_eq!(
        t.bind(owner(2, 1), epoch + 1),
        Outcome::Stale,
        "another epoch"
    );
    assert_eq!(t.bind(owner(2, 1), epoch), Outcome::Registered);
    assert_eq!(t.table.get("s").map(|s| s.owner), Some(owner(2, 1)));
    assert_eq!(t.bind(owner(2, 5), epoch), Outcome::Stale, "bound once");
    assert_eq!(
        t.place(3, Restart::Permanent, None, 0),
        Outcome::AlreadyRegistered(owner(2, 1))
    );
}

#[test]
fn a_failed_node_orphans_its_permanent_name_and_exactly_one_re_place_wins() {
    let mut t = Table::new();
    let epoch = placed_epoch(&t.place(2, Restart::Permanent, None, 0));
    t.bind(owner(2, 1), epoch);
    t.node_gone(2);
    assert!(t.table.get("s").is_none(), "the name is free");
    assert_eq!(t.stage(), Some(Stage::Orphaned { last: node(2) }));
    assert_eq!(t.register(owner(4, 1)), Outcome::Reserved);
    assert_eq!(t.place(3, Restart::Permanent, None, 10), Outcome::Stale);
    assert_eq!(
        t.place(3, Restart::Permanent, Some(epoch + 100), 10),
        Outcome::Stale
    );
    let again = placed_epoch(&t.place(3, Restart::Permanent, Some(epoch), 10));
    assert_eq!(
        t.place(4, Restart::Permanent, Some(epoch), 10),
        Outcome::Stale,
        "a second node noticing the same failure"
    );
    assert_eq!(t.bind(owner(3, 1), again), Outcome::Registered);
}

#[test]
fn a_node_that_dies_while_starting_the_name_orphans_it() {
    let mut t = Table::new();
    let epoch = placed_epoch(&t.place(2, Restart::Permanent, None, 0));
    t.node_gone(3);
    assert!(
        matches!(t.stage(), Some(Stage::Starting { .. })),
        "another node"
    );
    t.node_gone(2);
    assert_eq!(t.stage(), Some(Stage::Orphaned { last: node(2) }));
    assert_eq!(t.bind(owner(2, 1), epoch), Outcome::Stale);
}

#[test]
fn restart_policies_follow_the_supervisor() {
    let stop = |abnormal: bool| Command::ReleaseActor {
        actor: owner(2, 1).addr,
        incarnation: 1,
        abnormal,
    };
    for (restart, abnormal, orphaned) in [
        (Restart::Permanent, false, true),
        (Restart::Permanent, true, true),
        (Restart::Transient, false, false),
        (Restart::Transient, true, true),
        (Restart::Temporary, true, false),
    ] {
        let mut t = Table::new();
        let epoch = placed_epoch(&t.place(2, restart, None, 0));
        t.bind(owner(2, 1), epoch);
        t.apply(stop(abnormal));
        assert!(t.table.get("s").is_none());
        assert_eq!(
            t.stage().is_some(),
            orphaned,
            "{restart:?}, abnormal {abnormal}"
        );
    }
    let mut t = Table::new();
    placed_epoch(&t.place(2, Restart::Temporary, None, 0));
    t.node_gone(2);
    assert_eq!(t.stage(), None, "a temporary name is not restarted");
}

#[test]
fn restarts_beyond_the_intensity_give_up_and_free_the_name() {
    let mut t = Table::new();
    let mut epoch = placed_epoch(&t.place(2, Restart::Permanent, None, 0));
    // Two restarts within 5 s are allowed, a third is not.
    for (n, at) in [(3, 1_000), (4, 2_000)] {
        t.bind(owner(n - 1, 1), epoch);
        t.node_gone(n - 1);
        let replaces = t.epoch();
        epoch = placed_epoch(&t.place(n, Restart::Permanent, Some(replaces), at));
    }
    t.bind(owner(4, 1), epoch);
    t.node_gone(4);
    let replaces = t.epoch();
    assert_eq!(
        t.place(5, Restart::Permanent, Some(replaces), 3_000),
        Outcome::GaveUp
    );
    assert_eq!(t.stage(), None);
    assert_eq!(
        t.register(owner(5, 1)),
        Outcome::Registered,
        "the name is free again"
    );

    // Restarts spaced wider than the window go on.
    let mut t = Table::new();
    let mut epoch = placed_epoch(&t.place(2, Restart::Permanent, None, 0));
    for (i, at) in [10_000u64, 20_000, 30_000, 40_000].into_iter().enumerate() {
        let n = 2 + i as u64;
        t.bind(owner(n, 1), epoch);
        t.node_gone(n);
        let replaces = t.epoch();
        epoch = placed_epoch(&t.place(n + 1, Restart::Permanent, Some(replaces), at));
    }
}

#[test]
fn an_abandoned_first_start_frees_the_name_and_a_restart_waits_again() {
    let mut t = Table::new();
    let epoch = placed_epoch(&t.place(2, Restart::Permanent, None, 0));
    let abandon = |epoch| Command::Abandon {
        name: "s".into(),
        epoch,
    };
    assert_eq!(t.apply(abandon(epoch + 1)), Outcome::Stale);
    assert_eq!(t.apply(abandon(epoch)), Outcome::Abandoned);
    assert_eq!(t.stage(), None);

    let epoch = placed_epoch(&t.place(2, Restart::Permanent, None, 0));
    t.bind(owner(2, 1), epoch);
    t.node_gone(2);
    let replaces = t.epoch();
    let again = placed_epoch(&t.place(3, Restart::Permanent, Some(replaces), 10));
    t.apply(abandon(again));
    assert_eq!(t.stage(), Some(Stage::Orphaned { last: node(3) }));
}

#[test]
fn unregister_ends_the_placement() {
    let mut t = Table::new();
    let epoch = placed_epoch(&t.place(2, Restart::Permanent, None, 0));
    t.bind(owner(2, 1), epoch);
    t.apply(Command::Unregister {
        name: "s".into(),
        owner: owner(2, 1),
    });
    assert_eq!(t.stage(), None);
}

#[test]
fn records_travel_in_the_image() {
    let mut t = Table::new();
    let epoch = placed_epoch(&t.place(2, Restart::Transient, None, 0));
    t.bind(owner(2, 1), epoch);
    let image = t.table.image();
    let bytes = postcard::to_stdvec(&image).expect("encode");
    let back: TableImage = postcard::from_bytes(&bytes).expect("decode");
    let mut copy: NameTable = NameTable::new(100);
    copy.restore(&back, &mut Vec::new());
    assert_eq!(copy.placements(), t.table.placements());
    assert_eq!(copy.get("s").map(|s| s.owner), Some(owner(2, 1)));
}

#[test]
fn a_move_keeps_the_name_held_until_the_successor_binds() {
    let mut t = Table::new();
    let epoch = placed_epoch(&t.place(2, Restart::Permanent, None, 0));
    t.bind(owner(2, 1), epoch);
    let move_to = |t: &mut Table, from: Owner, to: u64| {
        t.apply(Command::Move {
            name: "s".into(),
            owner: from,
            target: target(to),
        })
    };
    assert_eq!(
        move_to(&mut t, owner(9, 9), 3),
        Outcome::Stale,
        "not the holder"
    );
    let moving = placed_epoch(&move_to(&mut t, owner(2, 1), 3));
    assert_eq!(t.table.get("s").map(|s| s.owner), Some(owner(2, 1)));
    assert_eq!(t.bind(owner(4, 1), moving), Outcome::Stale, "another node");
    t.revision += 1;
    let mut changes = Vec::new();
    let bind = Command::Bind {
        name: "s".into(),
        owner: owner(3, 1),
        epoch: moving,
    };
    assert_eq!(
        t.table.apply(&bind, t.revision, &mut changes),
        Outcome::Registered
    );
    assert_eq!(changes.len(), 1, "one change: the holder replaced");
    assert_eq!(changes[0].old, Some(owner(2, 1)));
    assert_eq!(changes[0].new, Some(owner(3, 1)));
    assert_eq!(t.stage(), Some(Stage::Running { owner: owner(3, 1) }));
}

#[test]
fn a_move_that_fails_leaves_the_holder_and_one_whose_holder_stops_goes_on() {
    let setup = || {
        let mut t = Table::new();
        let epoch = placed_epoch(&t.place(2, Restart::Permanent, None, 0));
        t.bind(owner(2, 1), epoch);
        let moving = placed_epoch(&t.apply(Command::Move {
            name: "s".into(),
            owner: owner(2, 1),
            target: target(3),
        }));
        (t, moving)
    };
    let held = Some(Stage::Running { owner: owner(2, 1) });

    let (mut t, _) = setup();
    t.node_gone(3);
    assert_eq!(t.stage(), held, "the successor's node died");

    let (mut t, moving) = setup();
    t.apply(Command::Abandon {
        name: "s".into(),
        epoch: moving,
    });
    assert_eq!(t.stage(), held, "the successor did not start");

    let (mut t, moving) = setup();
    t.apply(Command::ReleaseActor {
        actor: owner(2, 1).addr,
        incarnation: 1,
        abnormal: false,
    });
    assert!(t.table.get("s").is_none());
    assert_eq!(
        t.stage(),
        Some(Stage::Starting { target: target(3) }),
        "the holder stopped first"
    );
    assert_eq!(t.bind(owner(3, 1), moving), Outcome::Registered);
}

#[test]
fn a_spec_beyond_the_limits_is_refused_and_leaves_nothing() {
    let mut t = Table::new();
    let mut big = spec(Restart::Permanent);
    big.args = vec![0; MAX_ARGS_BYTES + 1];
    let place = Command::Place {
        name: "s".into(),
        spec: big,
        target: target(2),
        replaces: None,
        at_ms: 0,
    };
    assert_eq!(t.apply(place), Outcome::Stale);
    assert_eq!(t.stage(), None);
}
