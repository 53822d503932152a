//! Monitors with Erlang's semantics, on one node: a DOWN is handled after every message the
//! watched actor sent before exiting; reasons are typed; a monitor never stops its watcher;
//! monitoring a dead actor gives `noproc`; `demonitor` means no DOWN; `Runtime::monitor`
//! works outside actors.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use understudy::prelude::*;
use understudy::ractor::ActorStatus;

const WAIT: Duration = Duration::from_secs(30);

/// What a watcher saw, in the order its handlers ran.
#[derive(Debug, PartialEq)]
enum Seen {
    Result(u32),
    Down(ExitReason),
}

/// A watcher with every default hook (`#[derive(Actor)]`).
#[derive(Actor)]
struct Watcher;

#[messages]
impl Watcher {
    #[message]
    fn watch(&mut self, ctx: &Ctx<Self>, actor: ActorCell) -> MonitorRef {
        ctx.monitor(&actor)
    }

    #[message]
    fn alive(&self) -> bool {
        true
    }
}

#[derive(Actor)]
struct Worker;

#[messages]
impl Worker {
    /// Sends `n` results to `to`, then stops (the DOWN must come after all of them).
    #[message]
    fn work(&mut self, ctx: &Ctx<Self>, to: ActorRef<RecorderMsg>, n: u32) {
        for i in 0..n {
            to.result(i).expect("the watcher is alive");
        }
        ctx.stop(Some("shutdown: done".into()));
    }

    #[message]
    fn fail(&mut self) {
        panic!("boom");
    }
}

/// A watcher that records its DOWNs.
struct Recorder {
    seen: mpsc::UnboundedSender<Seen>,
}

impl Actor for Recorder {
    async fn on_down(&mut self, _ctx: &Ctx<Self>, down: Down) -> Result<(), ActorError> {
        let _ = self.seen.send(Seen::Down(down.reason));
        Ok(())
    }
}

#[messages]
impl Recorder {
    #[message]
    fn watch(&mut self, ctx: &Ctx<Self>, actor: ActorCell) -> MonitorRef {
        ctx.monitor(&actor)
    }

    #[message]
    fn unwatch(&mut self, ctx: &Ctx<Self>, monitor: MonitorRef) -> bool {
        ctx.demonitor(monitor)
    }

    #[message]
    fn result(&mut self, n: u32) {
        let _ = self.seen.send(Seen::Result(n));
    }

    #[message]
    fn ping(&self) -> bool {
        true
    }
}

async fn recorder(node: &Runtime) -> (ActorRef<RecorderMsg>, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let r = node.spawn(Recorder { seen: tx }).await.expect("spawn");
    (r, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event in time")
        .expect("the watcher is alive")
}

/// Runs `rounds` rounds of: monitor a fresh worker, it sends `burst` results and stops; the
/// watcher must see every result, then the DOWN.
async fn results_then_down(node: &Runtime, rounds: u32, burst: u32) {
    let (rec, mut rx) = recorder(node).await;
    for round in 0..rounds {
        let worker = node.spawn(Worker).await.expect("spawn");
        rec.watch(worker.get_cell()).await.expect("watch");
        worker.work(rec.clone(), burst).expect("work");
        for i in 0..burst {
            assert_eq!(next(&mut rx).await, Seen::Result(i), "round {round}");
        }
        assert_eq!(
            next(&mut rx).await,
            Seen::Down(ExitReason::Shutdown(Some("done".into()))),
            "round {round}: the DOWN comes after every result"
        );
    }
    assert!(
        rec.ping().await.is_ok(),
        "a monitor never stops its watcher"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_then_exit_arrives_before_the_down() {
    results_then_down(&Runtime::new(), 300, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_then_exit_arrives_before_the_down() {
    results_then_down(&Runtime::new(), 30, 200).await;
}

#[tokio::test]
async fn reasons_are_typed() {
    let node = Runtime::new();
    let (rec, mut rx) = recorder(&node).await;

    let killed = node.spawn(Worker).await.unwrap();
    rec.watch(killed.get_cell()).await.unwrap();
    killed.kill();
    assert_eq!(next(&mut rx).await, Seen::Down(ExitReason::Killed));

    let failed = node.spawn(Worker).await.unwrap();
    rec.watch(failed.get_cell()).await.unwrap();
    failed.fail().unwrap();
    match next(&mut rx).await {
        Seen::Down(ExitReason::Error(e)) => assert!(e.contains("boom"), "{e}"),
        other => panic!("expected an error exit, got {other:?}"),
    }

    let normal = node.spawn(Worker).await.unwrap();
    rec.watch(normal.get_cell()).await.unwrap();
    normal.stop(None);
    assert_eq!(next(&mut rx).await, Seen::Down(ExitReason::Normal));
}

#[tokio::test]
async fn monitoring_a_dead_actor_gives_noproc_and_each_monitor_its_own_down() {
    let node = Runtime::new();
    let (rec, mut rx) = recorder(&node).await;
    let worker = node.spawn(Worker).await.unwrap();
    let cell = worker.get_cell();
    worker.stop_and_wait(None, None).await.unwrap();
    rec.watch(cell).await.unwrap();
    assert_eq!(next(&mut rx).await, Seen::Down(ExitReason::NoProc));

    let worker = node.spawn(Worker).await.unwrap();
    let a = rec.watch(worker.get_cell()).await.unwrap();
    let b = rec.watch(worker.get_cell()).await.unwrap();
    assert_ne!(a, b);
    worker.stop(None);
    assert_eq!(next(&mut rx).await, Seen::Down(ExitReason::Normal));
    assert_eq!(next(&mut rx).await, Seen::Down(ExitReason::Normal));
}

#[tokio::test]
async fn after_demonitor_no_down_comes() {
    let node = Runtime::new();
    let (rec, mut rx) = recorder(&node).await;
    let worker = node.spawn(Worker).await.unwrap();
    let kept = node.spawn(Worker).await.unwrap();
    let m = rec.watch(worker.get_cell()).await.unwrap();
    let k = rec.watch(kept.get_cell()).await.unwrap();
    assert!(rec.unwatch(m).await.unwrap(), "was active");
    assert!(!rec.unwatch(m).await.unwrap(), "already removed");
    worker.stop_and_wait(None, None).await.unwrap();
    kept.stop_and_wait(None, None).await.unwrap();
    // Both exits have reached the watcher's supervision port; two round trips later every
    // DOWN they caused has been handled. Only `kept`'s may be there.
    rec.ping().await.unwrap();
    rec.ping().await.unwrap();
    assert_eq!(rx.try_recv().ok(), Some(Seen::Down(ExitReason::Normal)));
    assert!(rx.try_recv().is_err(), "no DOWN after demonitor");
    assert!(!rec.unwatch(k).await.unwrap(), "already fired");
    assert!(rec.ping().await.is_ok(), "the watcher is alive");
}

#[tokio::test]
async fn derived_actors_survive_the_exit_of_what_they_monitor() {
    let node = Runtime::new();
    let watcher = node.spawn(Watcher).await.unwrap();
    let worker = node.spawn(Worker).await.unwrap();
    watcher.watch(worker.get_cell()).await.unwrap();
    worker.kill();
    worker.wait(Some(WAIT)).await.unwrap();
    // The exit reached the watcher's supervision port before these asks; its DOWN went to
    // the default `on_down`, which ignores it: the watcher runs on.
    assert!(watcher.alive().await.unwrap());
    assert!(watcher.alive().await.unwrap());
}

#[tokio::test]
async fn a_monitor_outside_actors_is_a_future_of_the_down() {
    let node = Runtime::new();
    let worker = node.spawn(Worker).await.unwrap();
    let monitor = node.monitor(&worker).await.unwrap();
    assert_eq!(monitor.actor(), worker.get_id());
    worker.stop(Some("shutdown".into()));
    let down = tokio::time::timeout(WAIT, monitor).await.expect("in time");
    assert_eq!(down.actor, worker.get_id());
    assert_eq!(down.reason, ExitReason::Shutdown(None));

    // Of an actor already gone: noproc.
    let down = tokio::time::timeout(WAIT, node.monitor(&worker).await.unwrap())
        .await
        .expect("in time");
    assert_eq!(down.reason, ExitReason::NoProc);
}

/// An actor whose start (or stop) waits for its gate: to catch it `Starting` (or
/// `Stopping`).
struct Slow {
    gate: Arc<Notify>,
    fail_start: bool,
}

impl Actor for Slow {
    async fn on_start(&mut self, _: &Ctx<Self>) -> Result<(), ActorError> {
        if self.fail_start {
            self.gate.notified().await;
            return Err("refused to start".into());
        }
        Ok(())
    }

    async fn on_stop(&mut self, _: &Ctx<Self>) -> Result<(), ActorError> {
        if !self.fail_start {
            self.gate.notified().await;
        }
        Ok(())
    }
}

#[messages]
impl Slow {
    #[message]
    fn nop(&self) {}
}

/// A running [`Slow`] whose stop waits for the returned gate.
async fn slow_to_stop(node: &Runtime) -> (ActorRef<SlowMsg>, Arc<Notify>) {
    let gate = Arc::new(Notify::new());
    let slow = Slow {
        gate: gate.clone(),
        fail_start: false,
    };
    (node.spawn(slow).await.unwrap(), gate)
}

async fn until(actor: &ActorCell, status: ActorStatus) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while actor.get_status() != status {
        assert!(tokio::time::Instant::now() < deadline, "never {status:?}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_set_while_the_actor_stops_fires_once_with_its_reason() {
    let node = Runtime::new();
    let (rec, mut rx) = recorder(&node).await;
    let (slow, gate) = slow_to_stop(&node).await;
    slow.stop(Some("shutdown: late".into()));
    until(&slow.get_cell(), ActorStatus::Stopping).await;
    rec.watch(slow.get_cell()).await.unwrap();
    gate.notify_one();
    assert_eq!(
        next(&mut rx).await,
        Seen::Down(ExitReason::Shutdown(Some("late".into())))
    );
    assert!(rec.ping().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_removed_while_the_actor_stops_neither_fires_nor_stops_the_watcher() {
    let node = Runtime::new();
    let (rec, mut rx) = recorder(&node).await;
    let (slow, gate) = slow_to_stop(&node).await;
    let m = rec.watch(slow.get_cell()).await.unwrap();
    slow.stop(None);
    until(&slow.get_cell(), ActorStatus::Stopping).await;
    assert!(rec.unwatch(m).await.unwrap());
    gate.notify_one();
    slow.wait(Some(WAIT)).await.unwrap();
    // Its exit reached the watcher's supervision port before these asks: had it been
    // taken for a link's, the watcher would have stopped (the default `on_supervision`).
    assert!(rec.ping().await.unwrap());
    assert!(rec.ping().await.unwrap());
    assert!(rx.try_recv().is_err(), "no DOWN after demonitor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitored_actor_whose_start_fails_gives_noproc() {
    let node = Runtime::new();
    let (rec, mut rx) = recorder(&node).await;
    let gate = Arc::new(Notify::new());
    let spawner = {
        let (node, gate) = (node.clone(), gate.clone());
        tokio::spawn(async move {
            let slow = Slow {
                gate,
                fail_start: true,
            };
            node.spawn_named("slow", slow).await
        })
    };
    // Its name is taken before its `on_start` runs: found while it is starting.
    let deadline = tokio::time::Instant::now() + WAIT;
    let cell = loop {
        if let Some(cell) = node.whereis_cell("slow") {
            break cell;
        }
        assert!(tokio::time::Instant::now() < deadline, "never registered");
        tokio::task::yield_now().await;
    };
    rec.watch(cell).await.unwrap();
    gate.notify_one();
    assert!(spawner.await.unwrap().is_err(), "its start fails");
    assert_eq!(next(&mut rx).await, Seen::Down(ExitReason::NoProc));
}
