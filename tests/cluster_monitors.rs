//! Monitors across nodes with Erlang's order: a remote actor's DOWN is handled after every
//! message it sent the watcher before exiting; a node that goes away gives `noconnection`.
#![cfg(feature = "cluster")]

mod common;

use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::prelude::*;

use common::actors::WAIT;

#[derive(Debug, PartialEq)]
enum Seen {
    Result(u32),
    Down(ExitReason),
}

/// Monitors `target` from its start and records results and DOWNs in handling order.
struct Recorder {
    target: ActorCell,
    seen: mpsc::UnboundedSender<Seen>,
}

impl Actor for Recorder {
    async fn on_start(&mut self, ctx: &Ctx<Self>) -> Result<(), ActorError> {
        ctx.monitor(&self.target);
        Ok(())
    }

    async fn on_down(&mut self, _ctx: &Ctx<Self>, down: Down) -> Result<(), ActorError> {
        let _ = self.seen.send(Seen::Down(down.reason));
        Ok(())
    }
}

#[messages(remote)]
impl Recorder {
    #[message]
    fn result(&mut self, n: u32) {
        let _ = self.seen.send(Seen::Result(n));
    }
}

/// Sends `n` results to its recorder (on another node), then stops.
#[derive(Actor)]
struct Worker {
    to: Arc<OnceLock<ActorRef<RecorderMsg>>>,
}

#[messages(remote)]
impl Worker {
    #[message]
    fn work(&mut self, ctx: &Ctx<Self>, n: u32) {
        let to = self
            .to
            .get()
            .expect("the recorder is known before work starts");
        for i in 0..n {
            to.result(i).expect("room in the lane");
        }
        ctx.stop(Some("shutdown: done".into()));
    }
}

async fn pair() -> (ClusterCa, Vec<Node>) {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster(&ca, 2, None, WAIT).await;
    (ca, nodes)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event in time")
        .expect("the recorder is alive")
}

/// `rounds` times: a worker on n1 sends `burst` results to a recorder on n0 that monitors
/// it, then stops; the recorder must handle every result, then the DOWN.
async fn results_then_down(rounds: u32, burst: u32) {
    let (_ca, nodes) = pair().await;
    let (a, b) = (&nodes[0], &nodes[1]);
    for round in 0..rounds {
        let to = Arc::new(OnceLock::new());
        let worker = b.spawn(Worker { to: to.clone() }).await.expect("worker");
        let worker_on_a: ActorRef<WorkerMsg> = a
            .actor_ref(b.export(&worker))
            .await
            .expect("resolve worker");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let recorder = a
            .spawn(Recorder {
                target: worker_on_a.get_cell(),
                seen: tx,
            })
            .await
            .expect("recorder");
        let recorder_on_b = b.actor_ref(a.export(&recorder)).await.expect("resolve");
        to.set(recorder_on_b).expect("set once");
        worker_on_a.work(burst).expect("work");
        for i in 0..burst {
            assert_eq!(next(&mut rx).await, Seen::Result(i), "round {round}");
        }
        assert_eq!(
            next(&mut rx).await,
            Seen::Down(ExitReason::Shutdown(Some("done".into()))),
            "round {round}: the DOWN comes after every result"
        );
        recorder.stop(None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_remote_message_then_exit_arrives_before_the_down() {
    results_then_down(100, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_burst_then_exit_arrives_before_the_down() {
    results_then_down(10, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_goes_away_gives_noconnection_to_monitors_inside_and_outside_actors() {
    let (_ca, nodes) = pair().await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let worker = b
        .spawn(Worker {
            to: Arc::new(OnceLock::new()),
        })
        .await
        .expect("worker");
    let worker_on_a: ActorRef<WorkerMsg> = a
        .actor_ref(b.export(&worker))
        .await
        .expect("resolve worker");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _recorder = a
        .spawn(Recorder {
            target: worker_on_a.get_cell(),
            seen: tx,
        })
        .await
        .expect("recorder");
    let monitor = a.monitor(&worker_on_a).await.expect("monitor");
    b.crash();
    assert_eq!(next(&mut rx).await, Seen::Down(ExitReason::NoConnection));
    let down = tokio::time::timeout(WAIT, monitor).await.expect("in time");
    assert_eq!(down.reason, ExitReason::NoConnection);
    // Monitored again once its node is gone: still `noconnection`, as Erlang says of a pid
    // on a node it cannot reach.
    let again = a.monitor(&worker_on_a).await.expect("monitor");
    let down = tokio::time::timeout(WAIT, again).await.expect("in time");
    assert_eq!(down.reason, ExitReason::NoConnection);
}
