//! The sync answerer against a peer that opens sync streams and stalls, on real nodes (QUIC
//! and TLS on loopback).

use std::net::SocketAddr;
use std::time::Duration;

use serde_bytes::ByteBuf;

use crate::certs::ClusterCa;
use crate::membership::MembershipStats;
use crate::mesh::{FrameStream, stream_kind};
use crate::node::Node;

const WAIT: Duration = Duration::from_secs(30);
const SYNC_TIMEOUT: Duration = Duration::from_secs(1);
/// Stalled streams per round: two rounds are more than the 16 bidirectional streams a peer
/// may have open on a connection, so the second round opens only if the first was released.
const STALLED: usize = 12;

async fn node(ca: &ClusterCa, name: &str, seed: Option<SocketAddr>) -> Node {
    let mut b = Node::builder("test", name).ephemeral_certs(ca);
    if let Some(seed) = seed {
        b = b.seed(seed);
    }
    let membership = &mut b.config_mut().membership;
    membership.sync_timeout = SYNC_TIMEOUT;
    membership.sync_interval = Duration::from_millis(200);
    b.start().await.expect("node starts")
}

fn stats(node: &Node) -> MembershipStats {
    node.inner.membership.stats()
}

/// Opens `n` sync streams from `from` to `to` and sends nothing on them (opening one sends its
/// kind byte, so `to` sees it and starts answering).
async fn stalled_streams(from: &Node, to: &Node, n: usize) -> Vec<FrameStream> {
    let link = from.inner.mesh.link(to.name()).expect("connected");
    let mut streams = Vec::new();
    for _ in 0..n {
        let open = tokio::time::timeout(WAIT, link.open_stream(stream_kind::MEMBERSHIP_SYNC));
        streams.push(open.await.expect("stream credit").expect("open"));
    }
    streams
}

/// Whether the other side ends `stream` (resets or finishes it) in time.
async fn released(stream: &mut FrameStream) -> bool {
    tokio::time::timeout(WAIT, stream.recv::<ByteBuf>())
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_sync_streams_are_released_while_real_syncs_go_on() {
    let ca = ClusterCa::ephemeral("test");
    let a = node(&ca, "a", None).await;
    let b = node(&ca, "b", Some(a.local_addr())).await;
    b.wait_for_members(1, WAIT).await.expect("b joined");
    a.wait_for_members(1, WAIT).await.expect("a sees b");
    for round in 0..2 {
        let stalled = stalled_streams(&b, &a, STALLED).await;
        // b's own periodic syncs with a still complete beside them.
        let (completed, served) = (stats(&b).syncs_completed, stats(&a).syncs_served);
        let deadline = tokio::time::Instant::now() + WAIT;
        while stats(&b).syncs_completed < completed + 2 || stats(&a).syncs_served < served + 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: real syncs stopped"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut waits = tokio::task::JoinSet::new();
        for mut stream in stalled {
            waits.spawn(async move { released(&mut stream).await });
        }
        let ended = waits.join_all().await.into_iter().filter(|r| *r).count();
        assert_eq!(
            ended, STALLED,
            "round {round}: stalled sync streams a did not release"
        );
    }
}
