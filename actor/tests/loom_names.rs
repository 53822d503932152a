//! loom models of the Local name table ([`NameTable`]).
//!
//! Run with
//! `RUSTFLAGS="--cfg understudy_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//! cargo test -p understudy-actor --profile loom --test loom_names`.
//!
//! Each model races one pair of operations on a single name, with 2–3 threads, and checks
//! the table's promises in every interleaving loom explores:
//! - at most one live owner per name, and the loser of a register race is told the winner;
//! - an unregister only removes its own registration, never a newer one;
//! - a concurrent `whereis` sees either the state before or after an operation, never a mix.

#![cfg(understudy_loom)]

mod loom_support;

use loom::sync::Arc;
use loom::thread;
use loom_support::{Proc, model};
use understudy_actor::names::NameTable;

/// Two live actors register the same name at once, while a third thread looks it up.
/// Exactly one wins; the loser's error names the winner; the lookup sees nobody or the
/// winner, never the loser.
#[test]
fn loom_register_race_has_one_owner() {
    model(|| {
        let table = Arc::new(NameTable::new());
        let spawn_register = |id| {
            let table = table.clone();
            thread::spawn(move || table.register("svc", Proc::alive(id)))
        };
        let a = spawn_register(1);
        let b = spawn_register(2);
        let seen = table.whereis("svc");

        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        let winner = match (&a, &b) {
            (Ok(_), Err(owner)) => {
                assert_eq!(owner.id, 1, "the loser must be told the winner");
                1
            }
            (Err(owner), Ok(_)) => {
                assert_eq!(owner.id, 2, "the loser must be told the winner");
                2
            }
            _ => panic!("exactly one register must win: {a:?} / {b:?}"),
        };
        if let Some(p) = seen {
            assert_eq!(p.id, winner, "whereis saw the loser");
        }
        assert_eq!(table.whereis("svc").map(|p| p.id), Some(winner));
        assert_eq!(table.registered(), ["svc"]);
    });
}

/// The owner A has stopped; its replacement B registers while A's late cleanup unregisters
/// A's registration. B always gets the name and keeps it (a stale unregister never removes a
/// newer registration), and a lookup in the middle sees nobody or B, never the dead A.
#[test]
fn loom_stale_unregister_keeps_new_owner() {
    model(|| {
        let table = Arc::new(NameTable::new());
        let old = table.register("svc", Proc::mortal(1)).unwrap();
        let a = table.whereis("svc").unwrap();
        a.die();

        let t = table.clone();
        let restart = thread::spawn(move || t.register("svc", Proc::alive(2)));
        let t = table.clone();
        let cleanup = thread::spawn(move || t.unregister(&old));
        let seen = table.whereis("svc");

        let registered = restart.join().unwrap();
        assert!(
            registered.is_ok(),
            "a dead owner must not block its successor: {registered:?}"
        );
        cleanup.join().unwrap();
        if let Some(p) = seen {
            assert_eq!(p.id, 2, "whereis returned a dead owner");
        }
        assert_eq!(
            table.whereis("svc").map(|p| p.id),
            Some(2),
            "stale unregister removed B"
        );
        assert_eq!(table.registered(), ["svc"]);
    });
}

/// A live owner unregisters itself while another actor registers the name. Either B comes
/// first and loses to A (then A's unregister leaves the name free), or A's unregister comes
/// first and B gets the name and keeps it. Never both lost, never B removed by A's unregister.
#[test]
fn loom_unregister_vs_register() {
    model(|| {
        let table = Arc::new(NameTable::new());
        let reg_a = table.register("svc", Proc::alive(1)).unwrap();

        let t = table.clone();
        let leave = thread::spawn(move || t.unregister(&reg_a));
        let t = table.clone();
        let join = thread::spawn(move || t.register("svc", Proc::alive(2)));

        let removed = leave.join().unwrap();
        assert!(
            removed,
            "A's own registration was current, so its unregister must succeed"
        );
        match join.join().unwrap() {
            Ok(_) => assert_eq!(table.whereis("svc").map(|p| p.id), Some(2)),
            Err(owner) => {
                assert_eq!(owner.id, 1);
                assert!(
                    table.whereis("svc").is_none(),
                    "A unregistered; nobody may hold the name"
                );
            }
        }
    });
}

/// The owner dies while a successor registers and a lookup runs. The successor either loses
/// to the still-live owner, or takes the name over; whereis never returns the owner after
/// it has died, and at the end the name belongs to the successor or to nobody.
#[test]
fn loom_owner_death_vs_register() {
    model(|| {
        let table = Arc::new(NameTable::new());
        table.register("svc", Proc::mortal(1)).unwrap();
        let a = table.whereis("svc").unwrap();

        let dying = a.clone();
        let death = thread::spawn(move || dying.die());
        let t = table.clone();
        let successor = thread::spawn(move || t.register("svc", Proc::alive(2)));

        death.join().unwrap();
        // A is dead from here on: no lookup may return it.
        let seen = table.whereis("svc");
        let won = successor.join().unwrap();
        match &won {
            Ok(_) => assert_eq!(table.whereis("svc").map(|p| p.id), Some(2)),
            Err(owner) => {
                assert_eq!(owner.id, 1, "B can only lose to A");
                assert!(
                    table.whereis("svc").is_none(),
                    "A is dead; the name must be free"
                );
            }
        }
        if let Some(p) = seen {
            assert_eq!(p.id, 2, "whereis returned an owner that had died: {won:?}");
        }
    });
}
