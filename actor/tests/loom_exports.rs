//! loom models of the exported-actor table's kernel ([`LiveTable`], which `ExportTable`
//! wraps with ractor cells).
//!
//! Run with
//! `RUSTFLAGS="--cfg understudy_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//! cargo test -p understudy-actor --profile loom --test loom_exports`.
//!
//! Promises checked in every interleaving loom explores:
//! - a lookup that starts after an unexport returned never sees the entry;
//! - concurrent export, unexport and lookup lose no entry and duplicate none;
//! - pruning a dead entry during lookup never removes an entry exported in between.

#![cfg(understudy_loom)]

mod loom_support;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use loom_support::{Proc, model};
use understudy_actor::exported::LiveTable;

/// An unexport races a lookup. If the lookup started after the unexport completed (the
/// flag is only set once `remove` has returned), it must miss; otherwise it may see the
/// entry. Afterwards the table is empty.
#[test]
fn loom_lookup_after_unexport_misses() {
    model(|| {
        let table = Arc::new(LiveTable::new());
        table.insert(7, Proc::alive(1));
        let done = Arc::new(AtomicBool::new(false));

        let (t, d) = (table.clone(), done.clone());
        let unexport = thread::spawn(move || {
            let removed = t.remove(7);
            d.store(true, Ordering::SeqCst);
            removed
        });
        let after_unexport = done.load(Ordering::SeqCst);
        let seen = table.live(7);
        if after_unexport {
            assert!(
                seen.is_none(),
                "lookup returned an entry after its unexport completed"
            );
        }

        assert!(
            unexport.join().unwrap(),
            "the entry was exported, so unexport must find it"
        );
        assert!(table.live(7).is_none());
        assert!(table.is_empty());
    });
}

/// Export of one actor, unexport of another and lookups of both run at once. Nothing is
/// lost (the new export is there afterwards), nothing lingers (the unexported one is gone),
/// and each lookup sees either the old or the new state of its pid.
#[test]
fn loom_export_unexport_lookup_lose_nothing() {
    model(|| {
        let table = Arc::new(LiveTable::new());
        table.insert(1, Proc::alive(1));

        let t = table.clone();
        let export = thread::spawn(move || t.insert(2, Proc::alive(2)));
        let t = table.clone();
        let unexport = thread::spawn(move || t.remove(1));
        let seen_new = table.live(2);
        let seen_old = table.live(1);

        assert!(!export.join().unwrap(), "pid 2 was not exported before");
        assert!(
            unexport.join().unwrap(),
            "pid 1 was exported, so unexport must find it"
        );
        assert!(seen_new.is_none_or(|p| p.id == 2));
        assert!(seen_old.is_none_or(|p| p.id == 1));
        assert_eq!(table.live(2).map(|p| p.id), Some(2), "the export was lost");
        assert!(table.live(1).is_none(), "the unexport was lost");
        assert_eq!(table.len(), 1);
    });
}

/// The same actor is exported twice at once while a third thread unexports it: afterwards
/// there is at most one entry, exactly as many unexports reported success as there were
/// entries to remove, and a present entry is live.
#[test]
fn loom_double_export_vs_unexport_no_duplicates() {
    model(|| {
        let table = Arc::new(LiveTable::new());

        let spawn_export = || {
            let t = table.clone();
            thread::spawn(move || t.insert(3, Proc::alive(3)))
        };
        let first = spawn_export();
        let second = spawn_export();
        let removed = table.remove(3);

        let replaced = first.join().unwrap() as usize + second.join().unwrap() as usize;
        let present = table.len();
        assert!(present <= 1, "one pid, at most one entry: {present}");
        // Two inserts each either created the entry or replaced it; the remove took one away
        // if it found one. What is left is exactly the balance of that bookkeeping.
        let created = 2 - replaced;
        assert_eq!(
            created,
            present + removed as usize,
            "an entry was lost or duplicated"
        );
        assert_eq!(table.live(3).is_some(), present == 1);
    });
}

/// A stopped actor's entry is pruned by a lookup while the pid is exported afresh (as the
/// exported-table code must tolerate, even though ractor never reuses a pid). The prune must
/// not remove the fresh entry: afterwards the fresh entry is there, and the lookup saw
/// nothing or the fresh entry, never the dead one.
#[test]
fn loom_prune_never_removes_fresh_export() {
    model(|| {
        let table = Arc::new(LiveTable::new());
        table.insert(5, Proc::dead(1));

        let t = table.clone();
        let export = thread::spawn(move || t.insert(5, Proc::alive(2)));
        let seen = table.live(5);

        export.join().unwrap();
        assert!(
            seen.is_none_or(|p| p.id == 2),
            "lookup returned a dead entry"
        );
        assert_eq!(
            table.live(5).map(|p| p.id),
            Some(2),
            "the prune removed the fresh export"
        );
        assert_eq!(table.len(), 1);
    });
}
