//! loom models of a pg scope's concurrency kernel ([`Kernel`]: the scope core behind one
//! `RwLock`, loom's under `--cfg understudy_loom`).
//!
//! Run with
//! `RUSTFLAGS="--cfg understudy_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//! cargo test -p understudy-pg --profile loom --test loom_kernel`.
//!
//! Promises checked in every interleaving loom explores (2–3 threads, a few operations each):
//! - a monitor registered while members join and leave gets a snapshot and then exactly the
//!   later changes: snapshot + events = the final view, no gap, no duplicate;
//! - once a demonitor has returned, nothing more is delivered to that monitor's sink;
//! - a lookup sees a change whole or not at all (a join of two members is seen as 0 or 2);
//! - the messages for peers are carried out in version order, whoever changes the core.

#![cfg(understudy_loom)]

use std::collections::BTreeMap;

use loom::sync::{Arc, Mutex};
use loom::thread;
use understudy_actor::{ActorAddr, NodeId, Tag};
use understudy_pg::core::{Change, Entry, EventSink, Output};
use understudy_pg::kernel::Kernel;
use understudy_pg::wire::PeerMessage;

/// This node.
const ME: u64 = 1;
/// A peer of this node (model 4).
const PEER: u64 = 2;
/// The message type of every member.
const TAG: Tag = Tag(7);

type TestKernel = Kernel<u64, Sink>;

/// What the kernel carried out, in the order it did (model 4).
type Sent = Arc<Mutex<Vec<(Vec<NodeId>, PeerMessage)>>>;

// The actor crate's loom helpers (the `model` runner with the bound and execution count).
#[path = "../../actor/tests/loom_support/mod.rs"]
mod loom_support;
use loom_support::model;

/// A monitor's sink: records every change it is given, under a loom mutex (delivery happens
/// with the kernel's write lock held, so the mutex is always taken after it).
#[derive(Clone, Debug, Default)]
struct Sink(Arc<Mutex<Vec<Change<u64>>>>);

impl Sink {
    fn events(&self) -> Vec<Change<u64>> {
        self.0.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl EventSink<u64> for Sink {
    fn deliver(&self, change: Change<u64>) {
        self.0.lock().unwrap().push(change);
    }
}

fn node(raw: u64) -> NodeId {
    NodeId::new(raw).expect("non-zero")
}

/// A local member; its handle is its pid.
fn entry(pid: u64) -> Entry<u64> {
    Entry {
        addr: ActorAddr {
            node: node(ME),
            pid,
        },
        tag: TAG,
        handle: pid,
    }
}

/// An update that must not produce outputs (no peers).
fn no_outputs(output: Output) {
    panic!("no peer, yet the core asked to send {output:?}");
}

/// A membership in a canonical order (the view's own order is not part of the promise).
fn sorted(mut members: Vec<Entry<u64>>) -> Vec<Entry<u64>> {
    members.sort_by_key(|e| (e.addr, e.tag.0, e.handle));
    members
}

/// Applies one change to a group's membership, as a monitor's owner would. A leave of a
/// member that is not there means an event was lost or the snapshot already had it.
fn apply(members: &mut Vec<Entry<u64>>, change: Change<u64>) {
    match change {
        Change::Join { members: came, .. } => members.extend(came),
        Change::Leave {
            group,
            members: gone,
        } => {
            for e in gone {
                let i = members.iter().position(|m| *m == e).unwrap_or_else(|| {
                    panic!("{group}: leave of {e:?}, which the monitor never saw join")
                });
                members.swap_remove(i);
            }
        }
    }
}

/// The kernel's whole view, group by group, in canonical order.
fn view(kernel: &TestKernel) -> BTreeMap<String, Vec<Entry<u64>>> {
    kernel.read(|c| {
        c.groups()
            .into_iter()
            .map(|g| {
                let members = sorted(c.members(&g).to_vec());
                (g, members)
            })
            .collect()
    })
}

/// Model 1. Members join and leave two groups while a group monitor and then a scope monitor
/// are registered. Whatever the interleaving, each monitor's snapshot plus its events is
/// exactly the final view: no change missed, none delivered twice, none of another group.
#[test]
fn loom_monitor_snapshot_plus_events_is_exact() {
    model(|| {
        let kernel = Arc::new(TestKernel::new(node(ME)));
        kernel
            .update(|c| c.join("g", vec![entry(1)]), no_outputs)
            .unwrap();

        let k = kernel.clone();
        let changes = thread::spawn(move || {
            k.update(|c| c.join("g", vec![entry(2)]), no_outputs)
                .unwrap();
            k.update(|c| c.leave("g", &[1]), no_outputs).unwrap();
            k.update(|c| c.join("h", vec![entry(3)]), no_outputs)
                .unwrap();
        });

        let group_sink = Sink::default();
        let (_, group_snapshot) =
            kernel.update(|c| c.monitor_group("g", group_sink.clone()), no_outputs);
        let scope_sink = Sink::default();
        let (_, scope_snapshot) =
            kernel.update(|c| c.monitor_scope(scope_sink.clone()), no_outputs);

        changes.join().unwrap();
        let final_view = view(&kernel);

        let mut g = group_snapshot;
        for change in group_sink.events() {
            assert_eq!(
                change.group(),
                "g",
                "a group monitor got another group's event"
            );
            apply(&mut g, change);
        }
        assert_eq!(
            sorted(g),
            final_view.get("g").cloned().unwrap_or_default(),
            "group monitor: snapshot + events differ from the final view"
        );

        let mut scope = scope_snapshot;
        for change in scope_sink.events() {
            let group = change.group().to_owned();
            apply(scope.entry(group).or_default(), change);
        }
        let scope: BTreeMap<String, Vec<Entry<u64>>> = scope
            .into_iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(g, m)| (g, sorted(m)))
            .collect();
        assert_eq!(
            scope, final_view,
            "scope monitor: snapshot + events differ from the final view"
        );
    });
}

/// Model 1b. Two threads race a join and a leave of the same member while a scope monitor is
/// registered. A monitor gets the changes in the order they were applied (never the leave
/// before its join), and snapshot + events is again exactly the final view.
#[test]
fn loom_monitor_events_in_change_order() {
    model(|| {
        let kernel = Arc::new(TestKernel::new(node(ME)));
        let group_sink = Sink::default();
        let (_, group_snapshot) =
            kernel.update(|c| c.monitor_group("g", group_sink.clone()), no_outputs);

        let k = kernel.clone();
        let joiner = thread::spawn(move || {
            k.update(|c| c.join("g", vec![entry(5)]), no_outputs)
                .unwrap();
        });
        let k = kernel.clone();
        // Fails (NotJoined) if it runs before the join: both outcomes are fine.
        let leaver = thread::spawn(move || k.update(|c| c.leave("g", &[5]), no_outputs).is_ok());

        let scope_sink = Sink::default();
        let (_, scope_snapshot) =
            kernel.update(|c| c.monitor_scope(scope_sink.clone()), no_outputs);

        joiner.join().unwrap();
        let left = leaver.join().unwrap();
        let final_view = view(&kernel);
        let expected = if left { Vec::new() } else { vec![entry(5)] };
        assert_eq!(final_view.get("g").cloned().unwrap_or_default(), expected);

        let mut g = group_snapshot;
        for change in group_sink.events() {
            apply(&mut g, change);
        }
        assert_eq!(sorted(g), expected, "group monitor: wrong replay");

        let mut scope = scope_snapshot;
        for change in scope_sink.events() {
            let group = change.group().to_owned();
            apply(scope.entry(group).or_default(), change);
        }
        assert_eq!(
            scope.remove("g").map(sorted).unwrap_or_default(),
            expected,
            "scope monitor: wrong replay"
        );
        assert!(scope.values().all(Vec::is_empty), "{scope:?}");
    });
}

/// Model 2. A monitor is removed while members join and leave. Once the demonitor has
/// returned, its sink gets nothing more; what it got up to then is exactly the view at the
/// moment of the demonitor (snapshot + events, no gap, no duplicate).
#[test]
fn loom_demonitor_stops_delivery() {
    model(|| {
        let kernel = Arc::new(TestKernel::new(node(ME)));
        kernel
            .update(|c| c.join("g", vec![entry(1)]), no_outputs)
            .unwrap();
        let sink = Sink::default();
        let (id, snapshot) = kernel.update(|c| c.monitor_group("g", sink.clone()), no_outputs);

        let k = kernel.clone();
        let changes = thread::spawn(move || {
            k.update(|c| c.join("g", vec![entry(2)]), no_outputs)
                .unwrap();
            k.update(|c| c.leave("g", &[1]), no_outputs).unwrap();
        });

        let (removed, at_demonitor) = kernel.update(
            |c| {
                let removed = c.demonitor(id);
                (removed, sorted(c.members("g").to_vec()))
            },
            no_outputs,
        );
        assert!(removed.is_some(), "the monitor was registered");
        let delivered = sink.len();

        changes.join().unwrap();
        let events = sink.events();
        assert_eq!(
            events.len(),
            delivered,
            "events delivered after demonitor returned: {:?}",
            &events[delivered..]
        );
        let mut g = snapshot;
        for change in events {
            apply(&mut g, change);
        }
        assert_eq!(
            sorted(g),
            at_demonitor,
            "snapshot + events differ from the view at the demonitor"
        );
        assert_eq!(kernel.read(|c| c.monitor_count()), 0);
    });
}

/// Model 3. Two members join in one step and later leave in one step, while two lookups run
/// (concurrent readers share the lock). A lookup sees 0 or 2 members, never 1; the version
/// it sees matches the membership.
#[test]
fn loom_lookups_see_whole_changes() {
    model(|| {
        let kernel = Arc::new(TestKernel::new(node(ME)));

        let k = kernel.clone();
        let changes = thread::spawn(move || {
            k.update(|c| c.join("g", vec![entry(1), entry(2)]), no_outputs)
                .unwrap();
            k.update(|c| c.leave("g", &[1, 2]), no_outputs).unwrap();
        });
        let lookup = |k: &TestKernel| {
            k.read(|c| {
                let (version, _) = c.digest();
                let n = c.members("g").len();
                let expected = if version == 1 { 2 } else { 0 };
                assert_eq!(
                    n, expected,
                    "lookup saw a half-made change (version {version})"
                );
                n
            })
        };
        let k = kernel.clone();
        let reader = thread::spawn(move || lookup(&k));
        let seen = lookup(&kernel);

        changes.join().unwrap();
        let other = reader.join().unwrap();
        assert!(matches!(seen, 0 | 2) && matches!(other, 0 | 2));
        assert_eq!(lookup(&kernel), 0);
    });
}

/// Model 4. Two threads change the core at once (one joins; the other joins and leaves),
/// with one peer. The messages for the peer are carried out inside the update, so the
/// deltas are recorded in strictly increasing version order, each version once.
#[test]
fn loom_outputs_in_version_order() {
    model(|| {
        let kernel = Arc::new(TestKernel::new(node(ME)));
        let sent: Sent = Arc::default();
        let record = |sent: &Sent| {
            let sent = sent.clone();
            move |output: Output| {
                let Output::Send { to, message } = output;
                sent.lock().unwrap().push((to, message));
            }
        };
        kernel.update(|c| c.peer_up(node(PEER)), record(&sent));

        let (k, s) = (kernel.clone(), sent.clone());
        let a = thread::spawn(move || {
            k.update(|c| c.join("g", vec![entry(1)]), record(&s))
                .unwrap();
        });
        let (k, s) = (kernel.clone(), sent.clone());
        let b = thread::spawn(move || {
            k.update(|c| c.join("g", vec![entry(2)]), record(&s))
                .unwrap();
            k.update(|c| c.leave("g", &[2]), record(&s)).unwrap();
        });
        a.join().unwrap();
        b.join().unwrap();

        let sent = sent.lock().unwrap().clone();
        let (first, deltas) = sent.split_first().expect("the Sync for the peer");
        assert!(
            matches!(first, (to, PeerMessage::Sync { version: 0, .. }) if *to == [node(PEER)]),
            "first message: {first:?}"
        );
        let versions: Vec<u64> = deltas
            .iter()
            .map(|(to, message)| {
                assert_eq!(*to, [node(PEER)]);
                match message {
                    PeerMessage::Join { version, .. } | PeerMessage::Leave { version, .. } => {
                        *version
                    }
                    other => panic!("unexpected message {other:?}"),
                }
            })
            .collect();
        assert_eq!(
            versions,
            [1, 2, 3],
            "deltas reached the peer out of version order"
        );
    });
}
