//! Flood tests: a peer sends as fast as it can to a receiver that does not read, and the
//! process's memory stays under a stated bound while the sender is told to back off
//! (`Overloaded`); once the receiver reads again, everything that was accepted arrives.
//!
//! One test in its own binary, so the process's peak resident set (`VmHWM`) is this test's.
//! Two nodes with default settings, in one process: the bound covers both.
#![cfg(feature = "cluster")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, mpsc};
use understudy::TellError;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::extension::{
    Extension, ExtensionContext, ExtensionError, ExtensionMessage, Starting,
};
use understudy::cluster::mesh::SendError;
use understudy::prelude::*;

use common::actors::{Sink, SinkMsg, SinkRef, WAIT, eventually};
/// The whole two-node process, flooded: lane buffers, QUIC windows, backlogs, inboxes.
const BOUND_MIB: u64 = 200;
/// Refusals to see before the flood stops: the sender has been told to back off for a while.
const REFUSALS: u64 = 10_000;

/// The process's peak resident set, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024
}

/// A service whose inbox is not read until the gate opens; it counts notices after that.
struct Mute {
    gate: Arc<Notify>,
    got: Arc<AtomicU64>,
    ctx: mpsc::UnboundedSender<ExtensionContext>,
}

impl Extension for Mute {
    fn name(&self) -> &'static str {
        "mute"
    }
    fn start(&self, ctx: ExtensionContext) -> Starting {
        let (gate, got) = (self.gate.clone(), self.got.clone());
        let mut inbox = ctx.take_inbox().expect("inbox");
        let _ = self.ctx.send(ctx);
        tokio::spawn(async move {
            gate.notified().await;
            while let Some(m) = inbox.recv().await {
                if let ExtensionMessage::Notice { .. } = m {
                    got.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Box::pin(async { Ok(()) })
    }
}

/// Calls `send` until it has been refused `REFUSALS` times (yielding after each refusal, as
/// a sender backing off would); returns how many it accepted.
async fn flood(mut send: impl FnMut() -> Result<(), bool>) -> u64 {
    let (mut sent, mut refused) = (0u64, 0u64);
    let deadline = tokio::time::Instant::now() + WAIT;
    while refused < REFUSALS {
        match send() {
            Ok(()) => sent += 1,
            Err(true) => {
                refused += 1;
                tokio::task::yield_now().await;
            }
            Err(false) => panic!("a send failed for another reason than backpressure"),
        }
        if sent.is_multiple_of(256) {
            tokio::task::yield_now().await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sender was never told to back off ({sent} sent)"
        );
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_at_receivers_that_do_not_read_stay_bounded_and_lose_nothing() {
    let ca = ClusterCa::ephemeral("test");
    let (gate, got) = (Arc::new(Notify::new()), Arc::new(AtomicU64::new(0)));
    let (ctx_tx, mut ctx_rx) = mpsc::unbounded_channel();
    let nodes = common::cluster_with(&ca, 2, None, WAIT, |_, b| {
        b.extension(Mute {
            gate: gate.clone(),
            got: got.clone(),
            ctx: ctx_tx.clone(),
        })
    })
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let a_ctx = ctx_rx.recv().await.expect("a's service");
    let baseline = peak_rss_mib();

    // 1 KiB tells at an actor that does not read.
    let (sink, sink_gate, sink_got) = Sink::new();
    let sink = b.spawn(sink).await.expect("sink");
    sink.hold().expect("hold");
    let remote: ActorRef<SinkMsg> = a.actor_ref(b.export(&sink)).await.expect("resolve");
    let payload = vec![7u8; 1024];
    let sent = flood(|| match remote.put(payload.clone()) {
        Ok(()) => Ok(()),
        Err(TellError::Overloaded) => Err(true),
        Err(_) => Err(false),
    })
    .await;
    let after_tells = peak_rss_mib();
    println!(
        "tells: {sent} accepted before backpressure; peak RSS {after_tells} MiB (baseline {baseline} MiB)"
    );
    assert!(
        after_tells < BOUND_MIB,
        "peak RSS {after_tells} MiB under a tell flood"
    );
    sink_gate.notify_one();
    eventually("the sink got every accepted tell", || {
        sink_got.load(Ordering::Relaxed) == sent
    })
    .await;

    // 1 KiB extension notices at a service that does not read its inbox.
    let notice = vec![9u8; 1024];
    let sent = flood(|| match a_ctx.notify(b.name(), notice.clone()) {
        Ok(()) => Ok(()),
        Err(ExtensionError::Send(SendError::Overloaded)) => Err(true),
        Err(_) => Err(false),
    })
    .await;
    let after_notices = peak_rss_mib();
    println!("notices: {sent} accepted before backpressure; peak RSS {after_notices} MiB");
    assert!(
        after_notices < BOUND_MIB,
        "peak RSS {after_notices} MiB under a notice flood"
    );
    gate.notify_waiters();
    eventually("the service got every accepted notice", || {
        got.load(Ordering::Relaxed) == sent
    })
    .await;
}
