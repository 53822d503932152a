//! A node's lifecycle against real peers: a dropped node leaves nothing running, a start
//! that fails leaves nothing bound and can be retried, and an extension sees a restarted
//! peer's connections strictly one after the other.
#![cfg(feature = "cluster")]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use tokio::sync::mpsc;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::extension::{Extension, ExtensionContext, ExtensionMessage, Starting};
use understudy::cluster::identity::Incarnation;
use understudy::cluster::membership::{LeaveReason, MembershipEvent};
use understudy::cluster::node::{Node, NodeError};

use common::actors::{WAIT, eventually};

fn free_addr() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr")
}

fn bindable(addr: SocketAddr) -> bool {
    UdpSocket::bind(addr).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_node_frees_its_port_and_its_peers_see_it_fail() {
    let ca = ClusterCa::ephemeral("test");
    let mut nodes = common::cluster(&ca, 3, None, WAIT).await;
    let gone = nodes.pop().expect("n2");
    let (addr, id) = (gone.local_addr(), gone.node_id());
    let mut events = nodes[0].subscribe();
    drop(gone);
    eventually("the dropped node's port is free", || bindable(addr)).await;
    eventually("the peers dropped the connection", || {
        nodes.iter().all(|n| !n.is_connected(id))
    })
    .await;
    let left = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(MembershipEvent::NodeLeft { member, reason }) = events.recv().await
                && member.node_id() == id
            {
                return reason;
            }
        }
    })
    .await
    .expect("membership reports the dropped node");
    assert_eq!(left, LeaveReason::Failed, "no goodbye was said");
}

/// An extension whose start fails.
struct Broken;

impl Extension for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn start(&self, _ctx: ExtensionContext) -> Starting {
        Box::pin(async { Err("refusing to start".into()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_leaves_nothing_bound_and_can_be_retried() {
    let ca = ClusterCa::ephemeral("test");
    let addr = free_addr();

    // Fails after binding: the extension refuses.
    let err = Node::builder("test", "a")
        .ephemeral_certs(&ca)
        .bind(addr)
        .extension(Broken)
        .start()
        .await
        .expect_err("the extension fails the start");
    assert!(
        matches!(err, NodeError::ExtensionStart { name: "broken", .. }),
        "{err}"
    );
    eventually("the address is free again", || bindable(addr)).await;

    // Fails before binding: two extensions with one name, a bad membership setting.
    let err = Node::builder("test", "a")
        .ephemeral_certs(&ca)
        .bind(addr)
        .extension(Broken)
        .extension(Broken)
        .start()
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, NodeError::DuplicateExtension("broken")),
        "{err}"
    );
    assert!(bindable(addr));
    let mut bad = Node::builder("test", "a").ephemeral_certs(&ca).bind(addr);
    bad.config_mut().membership.probe_rtt = bad.config_mut().membership.probe_period;
    let err = bad.start().await.expect_err("bad config");
    assert!(matches!(err, NodeError::Config(_)), "{err}");
    assert!(bindable(addr));

    // The same address works for a proper start.
    let node = Node::builder("test", "a")
        .ephemeral_certs(&ca)
        .bind(addr)
        .start()
        .await
        .expect("retry starts");
    assert_eq!(node.local_addr(), addr);
}

/// Records the connection events and notices it gets, in order.
struct Recorder(mpsc::UnboundedSender<String>);

impl Extension for Recorder {
    fn name(&self) -> &'static str {
        "order"
    }
    fn start(&self, ctx: ExtensionContext) -> Starting {
        let tx = self.0.clone();
        let mut inbox = ctx.take_inbox().expect("inbox");
        tokio::spawn(async move {
            while let Some(m) = inbox.recv().await {
                let text = match m {
                    ExtensionMessage::PeerUp { node, .. } => format!("up {node}"),
                    ExtensionMessage::PeerDown { node, .. } => format!("down {node}"),
                    ExtensionMessage::Notice { body, .. } => {
                        format!("notice {}", String::from_utf8_lossy(&body))
                    }
                    _ => continue,
                };
                let _ = tx.send(text);
            }
        });
        Box::pin(async { Ok(()) })
    }
}

/// Broadcasts `<generation>:<seq>` notices as fast as its peers take them.
struct Chatter(u64);

impl Extension for Chatter {
    fn name(&self) -> &'static str {
        "order"
    }
    fn start(&self, ctx: ExtensionContext) -> Starting {
        let generation = self.0;
        tokio::spawn(async move {
            let mut seq = 0u64;
            loop {
                if ctx.node().is_none() {
                    return;
                }
                if ctx.broadcast(format!("{generation}:{seq}").into_bytes()) > 0 {
                    seq += 1;
                }
                tokio::task::yield_now().await;
            }
        });
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_under_traffic_is_seen_down_before_it_is_seen_up_again() {
    let ca = ClusterCa::ephemeral("test");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let a = Node::builder("test", "a")
        .ephemeral_certs(&ca)
        .extension(Recorder(tx))
        .start()
        .await
        .expect("a");
    let start_b = |generation: u64| {
        Node::builder("test", "b")
            .ephemeral_certs(&ca)
            .incarnation(Incarnation::new(generation))
            .seed(a.local_addr())
            .extension(Chatter(generation))
            .start()
    };
    let mut log = Vec::new();
    let mut next = async || {
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("an event in time")
            .expect("open");
        log.push(e.clone());
        e
    };
    // Each run restarts while the one before is still talking; its connection replaces the
    // old one at a.
    const RUNS: u64 = 8;
    let mut previous = None;
    for generation in 1..=RUNS {
        let b = start_b(generation).await.expect("b");
        let tag = format!("notice {generation}:");
        while !next().await.starts_with(&tag) {}
        drop(previous.replace(b));
    }
    drop(previous);
    // Per peer: up, its notices in order, down, and only then the next connection.
    let mut connected = false;
    let mut ups = 0;
    let mut last: Option<(u64, u64)> = None;
    for e in &log {
        if let Some(rest) = e.strip_prefix("notice ") {
            assert!(connected, "a notice outside a connection: {log:?}");
            let (g, s) = rest.split_once(':').expect("generation:seq");
            let (g, s): (u64, u64) = (g.parse().expect("g"), s.parse().expect("s"));
            assert_eq!(g, ups, "a notice of run {g} on connection {ups}: {log:?}");
            if let Some((lg, ls)) = last
                && lg == g
            {
                assert!(s > ls, "notices out of order: {log:?}");
            }
            last = Some((g, s));
        } else if e == "up b" {
            assert!(!connected, "up twice without a down: {log:?}");
            connected = true;
            ups += 1;
        } else if e == "down b" {
            assert!(connected, "down without an up: {log:?}");
            connected = false;
        }
    }
    assert_eq!(ups, RUNS, "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_says_goodbye_reliably_and_does_not_sit_out_its_linger() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, 3, None, WAIT, |i, mut b| {
        if i == 2 {
            // The longest wait for queued traffic to drain: never reached when nothing is
            // stuck, so leave() returns as soon as the goodbye is delivered.
            b.config_mut().leave_linger = Duration::from_secs(60);
        }
        b
    })
    .await;
    let leaver = nodes[2].node_id();
    let mut events: Vec<_> = nodes[..2].iter().map(|n| n.subscribe()).collect();
    let started = tokio::time::Instant::now();
    nodes[2].leave().await;
    assert!(
        started.elapsed() < WAIT,
        "leave() sat out its linger: {:?}",
        started.elapsed()
    );
    for rx in &mut events {
        let reason = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(MembershipEvent::NodeLeft { member, reason }) = rx.recv().await
                    && member.node_id() == leaver
                {
                    return reason;
                }
            }
        })
        .await
        .expect("the leave is reported");
        assert_eq!(reason, LeaveReason::Left);
    }
}
