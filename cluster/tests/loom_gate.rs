//! loom models of the barrier gate ([`BarrierGate`]: lane readers counting frames, the
//! signal reader holding DOWNs until the counts reach their barriers).
//!
//! Run with
//! `RUSTFLAGS="--cfg understudy_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//! cargo test -p understudy-cluster --profile loom --test loom_gate`.
//!
//! Promises checked in every interleaving loom explores:
//! - a held signal takes effect exactly once, never before its lanes delivered what it
//!   waits for, and never stays stuck once they have (the waiting/count handshake);
//! - held signals take effect in arrival order, whichever thread makes them ready.

#![cfg(understudy_loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;
use understudy_cluster::remote::gate::BarrierGate;

#[path = "../../actor/tests/loom_support/mod.rs"]
mod loom_support;
use loom_support::model;

/// What took effect: the signal and lane 0's count when it did.
type Fired = Arc<Mutex<Vec<(&'static str, u64)>>>;

/// Records a signal taking effect, with the count of lane 0 at that moment.
fn record(gate: &Arc<BarrierGate<&'static str>>, fired: &Fired) -> impl FnMut(&'static str) {
    let (gate, fired) = (gate.clone(), fired.clone());
    move |s| fired.lock().unwrap().push((s, gate.delivered_on(0)))
}

#[test]
fn a_down_waiting_on_a_lane_fires_once_after_its_frames_never_stuck() {
    model(|| {
        let gate = Arc::new(BarrierGate::new(1, 64));
        let fired: Fired = Arc::default();
        let reader = {
            let (gate, fired) = (gate.clone(), fired.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    gate.delivered(0, record(&gate, &fired));
                }
            })
        };
        gate.defer(vec![2], "down", 1, record(&gate, &fired))
            .expect("valid");
        reader.join().unwrap();
        let fired = fired.lock().unwrap();
        assert_eq!(fired.len(), 1, "fired exactly once: {fired:?}");
        assert_eq!(fired[0].0, "down");
        assert!(fired[0].1 >= 2, "fired before its frames: {fired:?}");
        assert_eq!(gate.waiting(), 0, "nothing is left waiting");
        assert_eq!(gate.delivered_on(0), 2);
    });
}

#[test]
fn signals_fire_in_arrival_order_across_two_lanes() {
    model(|| {
        let gate = Arc::new(BarrierGate::new(2, 64));
        let fired: Arc<Mutex<Vec<&'static str>>> = Arc::default();
        let readers: Vec<_> = (0..2)
            .map(|lane| {
                let (gate, fired) = (gate.clone(), fired.clone());
                thread::spawn(move || gate.delivered(lane, |s| fired.lock().unwrap().push(s)))
            })
            .collect();
        // The first waits for lane 0, the second for lane 1: whichever lane comes first,
        // "first" takes effect before "second".
        let push = |s| fired.lock().unwrap().push(s);
        gate.defer(vec![1, 0], "first", 1, push).expect("valid");
        let push = |s| fired.lock().unwrap().push(s);
        gate.defer(vec![0, 1], "second", 1, push).expect("valid");
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(*fired.lock().unwrap(), vec!["first", "second"]);
        assert_eq!(gate.waiting(), 0);
    });
}
