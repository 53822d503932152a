//! Control signals across real nodes (QUIC + mTLS on loopback) under pressure: a DOWN is
//! never lost to a full lane or a receiver that does not read, nodes with different lane
//! counts interoperate, exit and unlink signals work, and what a peer's signals can make a
//! node hold is de-duplicated and bounded.
#![cfg(feature = "cluster")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::{Node, NodeBuilder};
use understudy::cluster::wire::Signal;
use understudy::prelude::*;
use understudy::{ActorAddr, TellError};

use common::actors::{Sink, SinkMsg, SinkRef, WAIT, Watcher, eventually, next};

#[derive(Actor)]
struct Echo;

#[messages(remote)]
impl Echo {
    #[message]
    fn echo(&self, n: u64) -> u64 {
        n
    }
}

/// One lane and small buffers, so one flooded receiver fills "the" lane quickly.
fn small(_: usize, mut b: NodeBuilder) -> NodeBuilder {
    let cfg = b.config_mut();
    cfg.mesh.lanes = 1;
    cfg.mesh.max_frame = 64 * 1024;
    cfg.mesh.lane_buffer = 1 << 20;
    cfg.remote.lane_backlog = 256 * 1024;
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_is_delivered_while_the_lane_is_full_and_its_receiver_does_not_read() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, 2, None, WAIT, small).await;
    let (a, b) = (&nodes[0], &nodes[1]);

    // On b: a sink that stops reading, and a watcher of 20 actors on a.
    let (sink, gate, got) = Sink::new();
    let sink = b.spawn(sink).await.expect("sink");
    let sink_addr = b.export(&sink);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = b.spawn(Watcher(tx)).await.expect("watcher");
    let mut watched = Vec::new();
    for _ in 0..20 {
        let echo = a.spawn(Echo).await.expect("echo");
        let remote: ActorRef<EchoMsg> = b.actor_ref(a.export(&echo)).await.expect("resolve");
        watcher.get_cell().monitor(remote.get_cell());
        // A round trip after the proxy's Monitor signal: the watch is registered.
        remote.echo(1).timeout(WAIT).await.expect("ask");
        watched.push(echo);
    }

    // The sink blocks; a floods it until its lane refuses (the sender is told to back off).
    sink.hold().expect("hold");
    let sink_on_a: ActorRef<SinkMsg> = a.actor_ref(sink_addr).await.expect("resolve sink");
    let mut sent = 0u64;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match sink_on_a.put(vec![7; 1024]) {
            Ok(()) => sent += 1,
            Err(TellError::Overloaded) => break,
            Err(e) => panic!("unexpected {e}"),
        }
        if sent.is_multiple_of(64) {
            tokio::task::yield_now().await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lane never filled"
        );
    }
    assert!(
        b.remote_stats().backlog_bytes > 0,
        "the sink's mailbox holds a backlog"
    );

    // Every watched actor stops while the lane is full: every DOWN arrives.
    for echo in &watched {
        echo.stop(Some("bye".into()));
    }
    for i in 0..watched.len() {
        let event = next(&mut rx).await;
        assert_eq!(event, "terminated:bye", "DOWN {i} of {}", watched.len());
    }

    // Nothing that was accepted is lost: the sink gets every message once it reads again.
    gate.notify_one();
    eventually("the sink drained", || got.load(Ordering::Relaxed) == sent).await;
    assert_eq!(sink.count().timeout(WAIT).await, Ok(sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_2_and_16_lanes_exchange_messages_asks_and_downs() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, 2, None, WAIT, |i, mut b| {
        b.config_mut().mesh.lanes = if i == 0 { 2 } else { 16 };
        b
    })
    .await;
    for (from, to) in [(0, 1), (1, 0)] {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let watcher = nodes[from].spawn(Watcher(tx)).await.expect("watcher");
        let mut echoes = Vec::new();
        // 32 actors: their pids spread over every lane of the larger side.
        for i in 0..32u64 {
            let echo = nodes[to].spawn(Echo).await.expect("echo");
            let remote: ActorRef<EchoMsg> = nodes[from]
                .actor_ref(nodes[to].export(&echo))
                .await
                .expect("resolve");
            assert_eq!(remote.echo(i).timeout(WAIT).await, Ok(i));
            if i < 12 {
                watcher.get_cell().monitor(remote.get_cell());
                remote.echo(0).timeout(WAIT).await.expect("settled");
                echoes.push(echo);
            }
        }
        for echo in &echoes {
            echo.stop(None);
        }
        for _ in 0..echoes.len() {
            assert_eq!(next(&mut rx).await, "terminated:");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_signals_stop_kill_or_are_ignored_as_in_erlang() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster(&ca, 2, None, WAIT).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = a.spawn(Watcher(tx)).await.expect("watcher");

    let target = a.spawn(Echo).await.expect("echo");
    watcher.get_cell().monitor(target.get_cell());
    let remote: ActorRef<EchoMsg> = b.actor_ref(a.export(&target)).await.expect("resolve");
    // `normal` from another actor is ignored; the actor still answers.
    b.exit(&remote.get_cell(), None).expect("exit normal");
    b.exit(&remote.get_cell(), Some("normal".into()))
        .expect("exit normal");
    assert_eq!(remote.echo(5).timeout(WAIT).await, Ok(5));
    // Any other reason stops it with that reason.
    b.exit(&remote.get_cell(), Some("shutdown".into()))
        .expect("exit");
    assert_eq!(next(&mut rx).await, "terminated:shutdown");

    // `kill` kills it.
    let victim = a.spawn(Echo).await.expect("echo");
    watcher.get_cell().monitor(victim.get_cell());
    let remote: ActorRef<EchoMsg> = b.actor_ref(a.export(&victim)).await.expect("resolve");
    b.exit(&remote.get_cell(), Some("kill".into()))
        .expect("kill");
    let event = next(&mut rx).await;
    assert!(event.starts_with("terminated:"), "{event}");
    eventually("the victim is dead", || {
        matches!(
            victim.get_status(),
            understudy::ractor::ActorStatus::Stopped | understudy::ractor::ActorStatus::Stopping
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_removes_both_halves_of_a_remote_link() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster(&ca, 2, None, WAIT).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let w = b.spawn(Watcher(tx)).await.expect("watcher");
    let linked = a.spawn(Echo).await.expect("linked");
    let linked_on_b: ActorRef<EchoMsg> = b.actor_ref(a.export(&linked)).await.expect("resolve");
    b.link(&w.get_cell(), &linked_on_b.get_cell())
        .await
        .expect("link");
    // Linking twice is linking once.
    b.link(&w.get_cell(), &linked_on_b.get_cell())
        .await
        .expect("link again");
    eventually("a holds the peer's link", || a.remote_stats().links == 1).await;
    b.unlink(&w.get_cell(), &linked_on_b.get_cell())
        .expect("unlink");
    eventually("a dropped the peer's link", || a.remote_stats().links == 0).await;

    // The unlinked actor's exit reaches w no more; a linked one's does (and comes first).
    let fence = a.spawn(Echo).await.expect("fence");
    let fence_on_b: ActorRef<EchoMsg> = b.actor_ref(a.export(&fence)).await.expect("resolve");
    b.link(&w.get_cell(), &fence_on_b.get_cell())
        .await
        .expect("link fence");
    fence_on_b.echo(0).timeout(WAIT).await.expect("settled");
    linked.stop(Some("unlinked".into()));
    fence.stop(Some("fence".into()));
    assert_eq!(next(&mut rx).await, "terminated:fence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_ask_may_wait_without_limit() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster(&ca, 2, None, WAIT).await;
    let echo = nodes[0].spawn(Echo).await.expect("echo");
    let remote: ActorRef<EchoMsg> = nodes[1]
        .actor_ref(nodes[0].export(&echo))
        .await
        .expect("resolve");
    assert_eq!(remote.echo(9).timeout(Duration::MAX).await, Ok(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_ends_when_its_actor_stops() {
    let node = Runtime::new();
    let echoes: Vec<_> = futures_lite_spawn(&node, 100).await;
    for e in &echoes {
        let _ = node.export(e);
    }
    assert_eq!(node.exports().len(), 100);
    for e in &echoes {
        e.stop(None);
    }
    eventually("the exports are gone", || node.exports().is_empty()).await;
}

async fn futures_lite_spawn(node: &Runtime, n: usize) -> Vec<ActorRef<EchoMsg>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(node.spawn(Echo).await.expect("spawn"));
    }
    v
}

/// Raw signals from `from` to `to`, as a hostile or buggy peer would send them.
fn raw_link(from: &Node, to: &Node) -> Arc<understudy::cluster::mesh::PeerLink> {
    from.mesh().link(to.name()).expect("connected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_monitors_are_held_once_and_unknown_downs_hold_nothing() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster(&ca, 2, None, WAIT).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let echo = b.spawn(Echo).await.expect("echo");
    let pid = b.export(&echo).pid;
    let link = raw_link(a, b);
    let base = b.remote_stats().monitors;
    for _ in 0..100 {
        link.send_signal(&Signal::Monitor {
            watcher: 1 << 40,
            target: pid,
        })
        .expect("send");
    }
    // DOWNs for watchers b never made: nothing may wait for them.
    for watcher in 0..10_000u64 {
        link.send_signal(&Signal::Down {
            watcher: (1 << 50) + watcher,
            target: 1,
            reason: None,
            after: vec![u64::MAX; link.lanes()],
        })
        .expect("send");
    }
    // A different monitor last: once it is counted, everything before it was handled.
    link.send_signal(&Signal::Monitor {
        watcher: (1 << 40) + 1,
        target: pid,
    })
    .expect("send");
    eventually("the fence monitor is counted", || {
        b.remote_stats().monitors >= base + 2
    })
    .await;
    let stats = b.remote_stats();
    assert_eq!(stats.monitors, base + 2, "a repeated monitor is held once");
    assert_eq!(stats.waiting_signals, 0, "unknown DOWNs hold nothing");
    assert!(!link.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_past_its_monitor_or_link_limit_is_cut_off() {
    let ca = ClusterCa::ephemeral("test");
    for what in ["monitors", "links"] {
        let nodes = common::cluster_with(&ca, 2, None, WAIT, |i, mut b| {
            if i == 1 {
                b.config_mut().remote.max_monitors_per_peer = 16;
                b.config_mut().remote.max_links_per_peer = 16;
            }
            b
        })
        .await;
        let (a, b) = (&nodes[0], &nodes[1]);
        let echo = b.spawn(Echo).await.expect("echo");
        let pid = b.export(&echo).pid;
        let link = raw_link(a, b);
        for i in 0..17u64 {
            let signal = if what == "monitors" {
                Signal::Monitor {
                    watcher: 1000 + i,
                    target: pid,
                }
            } else {
                Signal::Link {
                    from: 1000 + i,
                    to: pid,
                }
            };
            if link.send_signal(&signal).is_err() {
                break;
            }
        }
        eventually(&format!("the {what} flood closes the connection"), || {
            link.is_closed()
        })
        .await;
        assert!(
            b.remote_stats().monitors <= 16 && b.remote_stats().links <= 16,
            "{:?}",
            b.remote_stats()
        );
        let _ = ActorAddr {
            node: a.node_id(),
            pid,
        };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_send_rides_out_backpressure_and_loses_nothing() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, 2, None, WAIT, small).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (sink, gate, got) = Sink::new();
    let sink = b.spawn(sink).await.expect("sink");
    sink.hold().expect("hold");
    let remote: ActorRef<SinkMsg> = a.actor_ref(b.export(&sink)).await.expect("resolve");
    // Far more than the lane and the backlog hold: plain tells would be refused.
    const N: u64 = 5_000;
    let sender = tokio::spawn(async move {
        for _ in 0..N {
            understudy::send(
                &remote,
                SinkMsg::Put {
                    data: vec![1; 1024],
                },
            )
            .await
            .expect("a waiting send succeeds");
        }
    });
    eventually("the sender is held back", || {
        b.remote_stats().backlog_bytes > 0 && !sender.is_finished()
    })
    .await;
    gate.notify_one();
    tokio::time::timeout(WAIT, sender)
        .await
        .expect("the sender finishes once the sink reads")
        .expect("no panic");
    eventually("every message arrived", || got.load(Ordering::Relaxed) == N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_lane_paused_replies_and_downs_still_arrive() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, 2, None, WAIT, |_, mut b| {
        b.config_mut().remote.lane_backlog = 256 * 1024;
        b
    })
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let link = a.mesh().link(b.name()).expect("a-b");
    // A sink on b for every lane a writes to b, none of them reading.
    let gate = Arc::new(Notify::new());
    let mut sinks: Vec<Option<ActorRef<SinkMsg>>> = vec![None; link.lanes()];
    while sinks.iter().any(Option::is_none) {
        let sink = b
            .spawn(Sink {
                gate: gate.clone(),
                got: Arc::new(AtomicU64::new(0)),
            })
            .await
            .expect("sink");
        let lane = link.lane_of(sink.get_id().pid());
        if sinks[lane].is_none() {
            sink.hold().expect("hold");
            let remote: ActorRef<SinkMsg> = a.actor_ref(b.export(&sink)).await.expect("resolve");
            sinks[lane] = Some(remote);
        }
    }
    // b watches an actor on a, and can ask it.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = b.spawn(Watcher(tx)).await.expect("watcher");
    let echo = a.spawn(Echo).await.expect("echo");
    let echo_on_b: ActorRef<EchoMsg> = b.actor_ref(a.export(&echo)).await.expect("resolve");
    watcher.get_cell().monitor(echo_on_b.get_cell());
    echo_on_b.echo(1).timeout(WAIT).await.expect("settled");

    // Flood every lane until it refuses: each of b's readers is paused with a full window.
    for sink in sinks.iter().flatten() {
        let deadline = tokio::time::Instant::now() + WAIT;
        while sink.put(vec![0; 16 * 1024]) != Err(TellError::Overloaded) {
            tokio::task::yield_now().await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "a lane never filled"
            );
        }
    }
    // The answer and the DOWN travel on the signal stream, which has window to spare.
    assert_eq!(echo_on_b.echo(7).timeout(WAIT).await, Ok(7));
    echo.stop(Some("gone".into()));
    assert_eq!(next(&mut rx).await, "terminated:gone");
    gate.notify_waiters();
}

/// A service that answers every request with its body, or (muted) never reads its inbox.
struct Service {
    name: &'static str,
    muted: bool,
    ctx: mpsc::UnboundedSender<(
        &'static str,
        understudy::cluster::extension::ExtensionContext,
    )>,
}

impl understudy::cluster::extension::Extension for Service {
    fn name(&self) -> &'static str {
        self.name
    }
    fn start(
        &self,
        ctx: understudy::cluster::extension::ExtensionContext,
    ) -> understudy::cluster::extension::Starting {
        let _ = self.ctx.send((self.name, ctx.clone()));
        let mut inbox = ctx.take_inbox().expect("inbox");
        if !self.muted {
            tokio::spawn(async move {
                while let Some(m) = inbox.recv().await {
                    if let understudy::cluster::extension::ExtensionMessage::Request {
                        body,
                        reply,
                        ..
                    } = m
                    {
                        reply.respond(Ok(body));
                    }
                }
            });
        } else {
            // Held, never read.
            std::mem::forget(inbox);
        }
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_does_not_read_does_not_hold_back_other_services_answers() {
    let ca = ClusterCa::ephemeral("test");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let nodes = common::cluster_with(&ca, 2, None, WAIT, |_, b| {
        b.extension(Service {
            name: "echo",
            muted: false,
            ctx: tx.clone(),
        })
        .extension(Service {
            name: "mute",
            muted: true,
            ctx: tx.clone(),
        })
    })
    .await;
    let mut ctxs = Vec::new();
    while ctxs.len() < 4 {
        ctxs.push(rx.recv().await.expect("contexts"));
    }
    let ctx = |node: &Node, service: &str| {
        ctxs.iter()
            .find(|(s, c)| *s == service && c.node().is_some_and(|n| n.name() == node.name()))
            .map(|(_, c)| c.clone())
            .expect("context")
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    // a floods b's mute service until b stops reading a's control stream.
    let a_mute = ctx(a, "mute");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !matches!(
        a_mute.notify(b.name(), vec![0; 16 * 1024]),
        Err(understudy::cluster::extension::ExtensionError::Send(
            understudy::cluster::mesh::SendError::Overloaded
        ))
    ) {
        tokio::task::yield_now().await;
        assert!(tokio::time::Instant::now() < deadline, "never overloaded");
    }
    // b asks a's echo: the answer comes back on a→b, which is not held back.
    let answer = ctx(b, "echo")
        .request(a.name(), b"ping".to_vec(), WAIT)
        .await
        .expect("answered");
    assert_eq!(answer, b"ping");
}

#[derive(Actor)]
struct Big;

#[messages(remote)]
impl Big {
    #[message]
    fn blob(&self, n: usize) -> Vec<u8> {
        vec![7; n]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_or_reason_too_large_for_a_frame_is_never_silently_lost() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, 2, None, WAIT, |_, mut b| {
        b.config_mut().mesh.max_frame = 4096;
        b
    })
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let big = a.spawn(Big).await.expect("big");
    let remote: ActorRef<BigMsg> = b.actor_ref(a.export(&big)).await.expect("resolve");
    assert_eq!(remote.blob(10).timeout(WAIT).await.map(|v| v.len()), Ok(10));
    // An answer larger than a frame: the asker hears at once that none will come.
    assert_eq!(
        remote.blob(10_000).timeout(WAIT).await,
        Err(AskError::ActorStopped)
    );
    // A message larger than a frame is refused with the sizes.
    let echo = a.spawn(Echo).await.expect("echo");
    let sink_on_a = a.spawn(Sink::new().0).await.expect("sink");
    let sink_on_b: ActorRef<SinkMsg> = b.actor_ref(a.export(&sink_on_a)).await.expect("resolve");
    assert!(matches!(
        sink_on_b.put(vec![0; 10_000]),
        Err(TellError::TooLarge { max: 4096, .. })
    ));
    // A DOWN with a long reason arrives, its reason cut.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = b.spawn(Watcher(tx)).await.expect("watcher");
    let echo_on_b: ActorRef<EchoMsg> = b.actor_ref(a.export(&echo)).await.expect("resolve");
    watcher.get_cell().monitor(echo_on_b.get_cell());
    echo_on_b.echo(0).timeout(WAIT).await.expect("settled");
    echo.stop(Some("x".repeat(10_000)));
    let down = next(&mut rx).await;
    assert!(
        down.starts_with("terminated:xxx") && down.ends_with('…'),
        "{down}"
    );
    assert!(down.len() <= "terminated:".len() + 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_signals_are_bounded_in_bytes() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster(&ca, 2, None, WAIT).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let echo = b.spawn(Echo).await.expect("echo");
    let pid = b.export(&echo).pid;
    let link = raw_link(a, b);
    // Exit signals with 1 MiB reasons, waiting on frames that will never come.
    let exit = Signal::Exit {
        from: 1,
        to: pid,
        reason: Some("r".repeat(1 << 20)),
        after: vec![u64::MAX; link.lanes()],
    };
    for _ in 0..32 {
        if link.send_signal(&exit).is_err() {
            break;
        }
    }
    eventually("the connection is cut", || link.is_closed()).await;
    assert!(echo.echo(1).await.is_ok(), "the target was not touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_over_many_tiny_messages_is_not_taken_for_a_lie() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, 2, None, WAIT, small).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (sink, gate, got) = Sink::new();
    let sink = b.spawn(sink).await.expect("sink");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = b.spawn(Watcher(tx)).await.expect("watcher");
    let echo = a.spawn(Echo).await.expect("echo");
    let echo_on_b: ActorRef<EchoMsg> = b.actor_ref(a.export(&echo)).await.expect("resolve");
    watcher.get_cell().monitor(echo_on_b.get_cell());
    echo_on_b.echo(0).timeout(WAIT).await.expect("settled");
    sink.hold().expect("hold");
    let sink_on_a: ActorRef<SinkMsg> = a.actor_ref(b.export(&sink)).await.expect("resolve");
    let link = a.mesh().link(b.name()).expect("a-b");
    // Empty messages: a few bytes each on the wire, far more in memory.
    let mut sent = 0u64;
    let deadline = tokio::time::Instant::now() + WAIT;
    while sink_on_a.put(Vec::new()) != Err(TellError::Overloaded) {
        sent += 1;
        if sent.is_multiple_of(256) {
            tokio::task::yield_now().await;
        }
        assert!(tokio::time::Instant::now() < deadline, "never overloaded");
    }
    // The DOWN's barrier forces b to read every one of them: an honest peer, not cut off.
    echo.stop(Some("bye".into()));
    assert_eq!(next(&mut rx).await, "terminated:bye");
    assert!(!link.is_closed(), "the connection survived");
    gate.notify_one();
    eventually("the sink drained", || got.load(Ordering::Relaxed) == sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_and_unlink_spam_holds_at_most_one_proxy_per_pair() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, 2, None, WAIT, |_, mut b| {
        b.config_mut().remote.max_links_per_peer = 16;
        b
    })
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);
    // Real actors on both sides, so every proxy b makes would stay alive.
    let theirs = a.spawn(Echo).await.expect("a's actor");
    let from = a.export(&theirs).pid;
    let ours = b.spawn(Echo).await.expect("b's actor");
    let to = b.export(&ours).pid;
    let link = raw_link(a, b);
    for _ in 0..2000 {
        link.send_signal(&Signal::Link { from, to }).expect("link");
        link.send_signal(&Signal::Unlink { from, to })
            .expect("unlink");
    }
    link.send_signal(&Signal::Link { from, to }).expect("link");
    eventually("the last link holds", || b.remote_stats().links == 1).await;
    // Let any proxy still being made finish: a round trip on the same streams.
    let fence: ActorRef<EchoMsg> = b.actor_ref(a.export(&theirs)).await.expect("resolve");
    fence.echo(1).timeout(WAIT).await.expect("round trip");
    let stats = b.remote_stats();
    assert!(stats.proxies <= 3, "{stats:?}");
    assert!(!link.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_and_unlinking_again_and_again_releases_the_monitors() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, 2, None, WAIT, |_, mut b| {
        b.config_mut().remote.max_monitors_per_peer = 16;
        b
    })
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (tx, _rx) = mpsc::unbounded_channel();
    let w = b.spawn(Watcher(tx)).await.expect("watcher");
    let target = a.spawn(Echo).await.expect("target");
    let on_b: ActorRef<EchoMsg> = b.actor_ref(a.export(&target)).await.expect("resolve");
    for round in 0..40 {
        b.link(&w.get_cell(), &on_b.get_cell()).await.expect("link");
        b.unlink(&w.get_cell(), &on_b.get_cell()).expect("unlink");
        // Each round trip drains the signals of the round before.
        on_b.echo(round).timeout(WAIT).await.expect("connected");
    }
    eventually("the monitors are released", || {
        a.remote_stats().monitors <= 2 && b.remote_stats().monitors <= 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_does_not_multiply_what_a_peer_may_leave_in_mailboxes() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, 2, None, WAIT, small).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (sink, gate, got) = Sink::new();
    let sink = b.spawn(sink).await.expect("sink");
    sink.hold().expect("hold");
    let addr = b.export(&sink);
    const ROUNDS: usize = 6;
    for _ in 0..ROUNDS {
        let remote: ActorRef<SinkMsg> = a.actor_ref(addr).await.expect("resolve");
        let deadline = tokio::time::Instant::now() + WAIT;
        while remote.put(vec![0; 1024]) != Err(TellError::Overloaded) {
            tokio::task::yield_now().await;
            assert!(tokio::time::Instant::now() < deadline, "never overloaded");
        }
        // A new connection (what a flapping link does): its lane starts with the old charges.
        let old = a.mesh().link(b.name()).expect("a-b").serial();
        a.mesh().disconnect(b.name(), "test");
        eventually("reconnected", || {
            a.mesh().link(b.name()).is_some_and(|l| l.serial() != old)
                && a.is_connected(b.node_id())
                && b.is_connected(a.node_id())
        })
        .await;
    }
    gate.notify_one();
    // Everything that reached the mailbox arrives; per connection only what fit the budget
    // the first time (256 KiB / ~1.1 KiB per message), then barely more.
    let per_budget = 256 * 1024 / (1024 + 128);
    eventually("the sink drained", || {
        let n = got.load(Ordering::Relaxed);
        n > 0 && sink.get_status() == understudy::ractor::ActorStatus::Running
    })
    .await;
    let drained = sink.count().timeout(WAIT).await.expect("count");
    assert!(
        drained < (2 * per_budget) as u64,
        "{drained} messages reached the mailbox over {ROUNDS} connections (budget ~{per_budget})"
    );
}

#[derive(Actor)]
struct Quitter;

#[messages(remote)]
impl Quitter {
    #[message]
    fn quit(&self, ctx: &Ctx<Self>) {
        ctx.stop(Some("quit".into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_set_up_before_a_message_takes_effect_before_it() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster(&ca, 2, None, WAIT).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = b.spawn(Watcher(tx)).await.expect("watcher");
    for round in 0..50 {
        let quitter = a.spawn(Quitter).await.expect("quitter");
        // Resolving sends the owner a Monitor on the signal stream; the tell goes on a lane
        // right after it. The owner must see the Monitor first, or the DOWN says `noproc`.
        let remote: ActorRef<QuitterMsg> = b.actor_ref(a.export(&quitter)).await.expect("resolve");
        watcher.get_cell().monitor(remote.get_cell());
        remote.quit().expect("tell");
        assert_eq!(next(&mut rx).await, "terminated:quit", "round {round}");
    }
}
