//! Remote actors across real nodes on loopback (QUIC + mTLS): tell, ask (a timeout is a
//! timeout, a stop is a stop, however late the asker looks), refs inside messages, monitors
//! (normal exit, `noconnection`), links, and pairwise order including "messages, then the
//! sender's exit".
#![cfg(feature = "cluster")]

mod common;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use understudy::ActorAddr;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::cluster::remote::NOCONNECTION;
use understudy::prelude::*;

use common::actors::{WAIT, Watcher, eventually, next};

#[derive(Actor)]
struct Counter {
    n: u64,
    seen: Vec<u64>,
    peers: Vec<ActorAddr>,
}

#[messages(remote)]
impl Counter {
    #[message]
    fn add(&mut self, by: u64) {
        self.n += by;
    }

    #[message]
    fn get(&self) -> u64 {
        self.n
    }

    #[message]
    fn record(&mut self, i: u64) {
        self.seen.push(i);
    }

    #[message]
    fn seen(&self) -> Vec<u64> {
        self.seen.clone()
    }

    /// Keeps an address (a ref travelling inside a message).
    #[message]
    fn remember(&mut self, peer: ActorAddr) {
        self.peers.push(peer);
    }

    #[message]
    fn remembered(&self) -> Vec<ActorAddr> {
        self.peers.clone()
    }

    #[message]
    fn crash(&mut self) {
        panic!("crashing on purpose");
    }
}

fn counter() -> Counter {
    Counter {
        n: 0,
        seen: vec![],
        peers: vec![],
    }
}

/// Sends records to a (remote) counter, then stops: the sender in the ordering test.
#[derive(Actor)]
struct Flooder {
    target: ActorRef<CounterMsg>,
}

#[messages(remote)]
impl Flooder {
    #[message]
    fn go(&mut self, ctx: &Ctx<Self>, count: u64) {
        for i in 0..count {
            self.target.record(i).expect("send");
        }
        ctx.stop(Some("flooded".into()));
    }
}

/// Answers `hold_answer` only when its gate opens, staying alive meanwhile.
#[derive(Actor)]
struct Stall {
    gate: Arc<Notify>,
    /// How many `hold_answer`s it has begun.
    entered: Arc<AtomicU64>,
}

#[messages(remote)]
impl Stall {
    #[message]
    async fn hold_answer(&mut self) -> u64 {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.gate.notified().await;
        7
    }

    #[message]
    fn ping(&self) -> u64 {
        1
    }
}

/// A [`Stall`] on `owner` and its ref on `asker`, with its gate and count of holds.
async fn stall_across(
    owner: &Node,
    asker: &Node,
) -> (
    ActorRef<StallMsg>,
    ActorRef<StallMsg>,
    Arc<Notify>,
    Arc<AtomicU64>,
) {
    let (gate, entered) = (Arc::new(Notify::new()), Arc::new(AtomicU64::new(0)));
    let actor = Stall {
        gate: gate.clone(),
        entered: entered.clone(),
    };
    let local = owner.spawn(actor).await.expect("spawn");
    let remote = asker
        .actor_ref(owner.export(&local))
        .await
        .expect("resolve");
    (local, remote, gate, entered)
}

/// Passes asks on to a remote actor with a plain ractor send, whose serialisation bridges
/// the reply port with a task (the path of asks that do not go through `tell`/`ask`).
#[derive(Actor)]
struct Relay {
    to: ActorRef<StallMsg>,
}

#[messages]
impl Relay {
    #[message]
    fn pass(&mut self, port: RpcReplyPort<u64>) {
        let ask = StallMsg::HoldAnswer { reply: port.into() };
        self.to.send_message(ask).expect("the proxy takes it");
    }
}

/// Polls `f` once (a first poll arms an ask's timer).
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

/// The fault of a stalled worker: blocks this thread (as a long blocking call would) until
/// `node` has no ask pending any more, so the asking task is not polled meanwhile.
fn stall_thread_until_no_ask_pends(node: &Node) {
    let start = Instant::now();
    while node.remote_stats().pending_asks > 0 {
        assert!(start.elapsed() < WAIT, "the ask was never settled");
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn cluster(n: usize) -> (ClusterCa, Vec<Node>) {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster(&ca, n, None, WAIT).await;
    (ca, nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tell_and_ask_across_nodes() {
    let (_ca, nodes) = cluster(3).await;
    let c = nodes[0].spawn(counter()).await.expect("spawn");
    let addr = nodes[0].export(&c);
    for node in &nodes[1..] {
        let remote: ActorRef<CounterMsg> = node.actor_ref(addr).await.expect("resolve");
        remote.add(2).expect("tell");
        assert_eq!(
            remote.get().timeout(WAIT).await,
            Ok(if node.name().as_str() == "n1" { 2 } else { 4 })
        );
    }
    // The local address resolves to the actor itself.
    let local: ActorRef<CounterMsg> = nodes[0].actor_ref(addr).await.expect("local");
    assert_eq!(local.get_id(), c.get_id());
}

// The asker's node forgets an unanswered ask a little after its timeout, which closes the
// asker's reply port. An asker whose thread stalled past that sees the closed port and its
// own expired timer at once: that is a timeout, and the actor is still there.
//
// The asking task is the test's own, run by `block_on` on the test thread: stalling that
// thread stops the asker but not the runtime's workers, which go on driving the nodes (a
// stalled worker would also stop the timers and sockets it drives until another worker
// takes them over, which a busy runtime does but an idle test runtime does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_ask_is_a_timeout_however_late_the_asker_looks() {
    let (_ca, nodes) = cluster(2).await;
    let (local, remote, gate, entered) = stall_across(&nodes[0], &nodes[1]).await;
    let relay = nodes[1]
        .spawn(Relay { to: remote.clone() })
        .await
        .expect("relay");
    let timeout = Duration::from_millis(100);
    for round in 1..=4 {
        // Straight to the connection, or bridged by a task (which closes the asker's port
        // just after the node forgets the ask: past the deadline either way).
        let mut asking = if round % 2 == 1 {
            remote.hold_answer().timeout(timeout).into_future()
        } else {
            understudy::ask(&relay, |port| RelayMsg::Pass { port })
                .timeout(timeout)
                .into_future()
        };
        assert!(poll_once(&mut asking).await.is_pending());
        eventually("the actor holds the ask", || {
            entered.load(Ordering::SeqCst) == round
        })
        .await;
        stall_thread_until_no_ask_pends(&nodes[1]);
        assert_eq!(
            asking.await,
            Err(AskError::Timeout(timeout)),
            "round {round}"
        );
        // Still alive: it answers once let go.
        assert_eq!(local.get_status(), understudy::ractor::ActorStatus::Running);
        gate.notify_one();
        assert_eq!(remote.ping().timeout(WAIT).await, Ok(1));
    }
}

// An actor killed while it holds an ask: the asker hears that it stopped, even when it looks
// only after the answering node said so (but before its own deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_to_an_actor_that_stops_mid_ask_is_actor_stopped() {
    let (_ca, nodes) = cluster(2).await;
    let (local, remote, _gate, entered) = stall_across(&nodes[0], &nodes[1]).await;
    let mut asking = remote.hold_answer().timeout(WAIT).into_future();
    assert!(poll_once(&mut asking).await.is_pending());
    eventually("the actor holds the ask", || {
        entered.load(Ordering::SeqCst) == 1
    })
    .await;
    local.kill();
    eventually("the stop reached the asker's node", || {
        nodes[1].remote_stats().pending_asks == 0
    })
    .await;
    assert_eq!(asking.await, Err(AskError::ActorStopped));
    local.wait(Some(WAIT)).await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_travel_inside_messages_and_come_out_working() {
    let (_ca, nodes) = cluster(3).await;
    // A directory on n0 keeps the address of a worker on n2; n1 looks it up and calls it.
    let worker = nodes[2].spawn(counter()).await.expect("worker");
    let worker_addr = nodes[2].export(&worker);
    let directory = nodes[0].spawn(counter()).await.expect("directory");
    let dir_addr = nodes[0].export(&directory);

    let dir_from_n2: ActorRef<CounterMsg> = nodes[2].actor_ref(dir_addr).await.expect("dir");
    dir_from_n2.remember(worker_addr).expect("tell addr");
    // Different senders are not ordered with each other: let n2 see its tell applied first.
    assert_eq!(
        dir_from_n2.remembered().timeout(WAIT).await,
        Ok(vec![worker_addr])
    );

    let dir_from_n1: ActorRef<CounterMsg> = nodes[1].actor_ref(dir_addr).await.expect("dir");
    let found = dir_from_n1.remembered().timeout(WAIT).await.expect("ask");
    assert_eq!(found, vec![worker_addr]);
    let worker_from_n1: ActorRef<CounterMsg> =
        nodes[1].actor_ref(found[0]).await.expect("resolve worker");
    worker_from_n1.add(7).expect("tell");
    // Same sender, same receiver: the ask is answered after the tell.
    assert_eq!(worker_from_n1.get().timeout(WAIT).await, Ok(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_see_a_remote_actor_exit_with_its_reason() {
    let (_ca, nodes) = cluster(2).await;
    let c = nodes[0].spawn(counter()).await.expect("spawn");
    let addr = nodes[0].export(&c);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = nodes[1].spawn(Watcher(tx)).await.expect("watcher");
    let remote: ActorRef<CounterMsg> = nodes[1].actor_ref(addr).await.expect("resolve");
    watcher.get_cell().monitor(remote.get_cell());
    // Make sure the owner registered the watch (an ask round-trip after the Monitor signal).
    remote.get().timeout(WAIT).await.expect("ask");
    c.stop(Some("done".into()));
    assert_eq!(next(&mut rx).await, "terminated:done");
    // A ref to an actor that is not there stops at once with `noproc`.
    let bogus = ActorAddr {
        node: nodes[0].node_id(),
        pid: u64::MAX - 1,
    };
    let ghost: ActorRef<CounterMsg> = nodes[1].actor_ref(bogus).await.expect("resolve");
    watcher.get_cell().monitor(ghost.get_cell());
    assert_eq!(next(&mut rx).await, "terminated:noproc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_remote_actor_is_reported_as_failed_reason() {
    let (_ca, nodes) = cluster(2).await;
    let c = nodes[0].spawn(counter()).await.expect("spawn");
    let addr = nodes[0].export(&c);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = nodes[1].spawn(Watcher(tx)).await.expect("watcher");
    let remote: ActorRef<CounterMsg> = nodes[1].actor_ref(addr).await.expect("resolve");
    watcher.get_cell().monitor(remote.get_cell());
    remote.get().timeout(WAIT).await.expect("ask");
    remote.crash().expect("tell");
    let event = next(&mut rx).await;
    assert!(
        event.starts_with("terminated:") && event.contains("crashing on purpose"),
        "{event}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_node_goes_away_monitors_fire_with_noconnection_and_asks_fail() {
    let (_ca, nodes) = cluster(3).await;
    let c = nodes[0].spawn(counter()).await.expect("spawn");
    let addr = nodes[0].export(&c);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = nodes[1].spawn(Watcher(tx)).await.expect("watcher");
    let remote: ActorRef<CounterMsg> = nodes[1].actor_ref(addr).await.expect("resolve");
    watcher.get_cell().monitor(remote.get_cell());
    remote.get().timeout(WAIT).await.expect("ask");
    nodes[0].crash();
    assert_eq!(next(&mut rx).await, format!("terminated:{NOCONNECTION}"));
    assert!(matches!(
        remote.get().await,
        Err(AskError::MailboxClosed | AskError::ActorStopped)
    ));
    // The third node is unaffected.
    assert!(nodes[1].is_connected(nodes[2].node_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_then_the_senders_exit_arrive_in_that_order() {
    let (_ca, nodes) = cluster(2).await;
    // R on n1 monitors S on n0; S sends R 2,000 records, then stops.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let r = nodes[1].spawn(counter()).await.expect("r");
    let r_addr = nodes[1].export(&r);
    let r_on_n0: ActorRef<CounterMsg> = nodes[0].actor_ref(r_addr).await.expect("resolve r");
    let s = nodes[0]
        .spawn(Flooder { target: r_on_n0 })
        .await
        .expect("s");
    let s_addr = nodes[0].export(&s);
    let watcher = nodes[1].spawn(Watcher(tx)).await.expect("watcher");
    let s_on_n1: ActorRef<FlooderMsg> = nodes[1].actor_ref(s_addr).await.expect("resolve s");
    watcher.get_cell().monitor(s_on_n1.get_cell());
    // An ask round-trip n1 -> n0 -> n1 after the proxy's Monitor: the watch is registered.
    let r_again: ActorRef<CounterMsg> = nodes[0].actor_ref(r_addr).await.expect("r");
    let _ = r_again.get().timeout(WAIT).await;
    let probe: ActorRef<CounterMsg> = nodes[1]
        .actor_ref(nodes[0].export(&nodes[0].spawn(counter()).await.expect("probe")))
        .await
        .expect("probe");
    probe.get().timeout(WAIT).await.expect("round trip");

    let count = 2_000;
    s.go(count).expect("go");
    assert_eq!(next(&mut rx).await, "terminated:flooded");
    // The DOWN was acted on only after every lane delivered what came before it, so all
    // records are already in R's mailbox: the very next ask sees them all, in order.
    let seen = r.seen().await.expect("ask r");
    assert_eq!(seen, (0..count).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_work_both_ways_across_nodes() {
    let (_ca, nodes) = cluster(2).await;
    let (tx0, mut rx0) = mpsc::unbounded_channel();
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    // w0 on n0 is linked with c1 on n1; c1 crashes: w0 hears. Then w1 on n1 linked with c0 on n0.
    let w0 = nodes[0].spawn(Watcher(tx0)).await.expect("w0");
    let c1 = nodes[1].spawn(counter()).await.expect("c1");
    let c1_addr = nodes[1].export(&c1);
    let c1_on_n0: ActorRef<CounterMsg> = nodes[0].actor_ref(c1_addr).await.expect("resolve");
    nodes[0]
        .link(&w0.get_cell(), &c1_on_n0.get_cell())
        .await
        .expect("link");
    c1_on_n0.get().timeout(WAIT).await.expect("link settled");
    c1.crash().expect("tell");
    assert!(next(&mut rx0).await.contains("crashing on purpose"));

    // The other direction: the local side exits, the remote linked actor hears.
    let w1 = nodes[1].spawn(Watcher(tx1)).await.expect("w1");
    let w1_cell = w1.get_cell();
    let c0 = nodes[0].spawn(counter()).await.expect("c0");
    let _ = nodes[0].export(&c0);
    // Link from n1's side: w1 (local there) with c0 (remote there).
    let c0_on_n1: ActorRef<CounterMsg> = nodes[1]
        .actor_ref(nodes[0].export(&c0))
        .await
        .expect("resolve");
    nodes[1]
        .link(&w1_cell, &c0_on_n1.get_cell())
        .await
        .expect("link");
    c0_on_n1.get().timeout(WAIT).await.expect("settled");
    c0.stop(Some("bye".into()));
    assert_eq!(next(&mut rx1).await, "terminated:bye");
}

// An untimed ask whose asker gives up is forgotten: a peer that never answers cannot make
// this node keep its asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untimed_ask_whose_asker_gives_up_is_forgotten() {
    let (_ca, nodes) = cluster(2).await;
    let (_local, remote, gate, entered) = stall_across(&nodes[0], &nodes[1]).await;
    for round in 1..=3 {
        let mut asking = remote.hold_answer().untimed().into_future();
        assert!(poll_once(&mut asking).await.is_pending());
        eventually("the actor holds the ask", || {
            entered.load(Ordering::SeqCst) == round
        })
        .await;
        assert_eq!(nodes[1].remote_stats().pending_asks, 1);
        drop(asking);
        eventually("the ask is forgotten", || {
            nodes[1].remote_stats().pending_asks == 0
        })
        .await;
        gate.notify_one();
    }
}
