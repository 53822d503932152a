//! The extension API across real nodes: notices, broadcasts, request/response, unknown
//! services, requests to nodes that go away, and membership events seen by an extension.
#![cfg(feature = "cluster")]

use std::time::Duration;

use tokio::sync::mpsc;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::extension::{
    Extension, ExtensionContext, ExtensionError, ExtensionMessage, Starting,
};
use understudy::cluster::identity::NodeName;
use understudy::cluster::membership::MembershipEvent;
use understudy::cluster::node::Node;

const WAIT: Duration = Duration::from_secs(10);

/// Upper-cases requests; reports notices and membership events to the test; hands its context
/// out so the test can send.
struct Shout {
    events: mpsc::UnboundedSender<String>,
    ctx: mpsc::UnboundedSender<ExtensionContext>,
}

impl Extension for Shout {
    fn name(&self) -> &'static str {
        "shout"
    }

    fn start(&self, ctx: ExtensionContext) -> Starting {
        let _ = self.ctx.send(ctx.clone());
        let mut inbox = ctx.take_inbox().expect("inbox");
        assert!(ctx.take_inbox().is_none(), "the inbox is handed out once");
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(message) = inbox.recv().await {
                match message {
                    ExtensionMessage::Request { body, reply, .. } if body == b"ignore" => {
                        drop(reply)
                    }
                    ExtensionMessage::Request { body, reply, .. } => {
                        reply.respond(Ok(body.to_ascii_uppercase()))
                    }
                    ExtensionMessage::Notice { from, body } => {
                        let _ = events.send(format!(
                            "notice from {from}: {}",
                            String::from_utf8_lossy(&body)
                        ));
                    }
                    ExtensionMessage::PeerUp { node, .. } => {
                        let _ = events.send(format!("connected {node}"));
                    }
                    _ => {}
                }
            }
        });
        let node = ctx.node().expect("node");
        let (_, mut membership) = node.subscribe_with_snapshot();
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Ok(e) = membership.recv().await {
                if let MembershipEvent::NodeJoined(m) = e {
                    let _ = events.send(format!("joined {}", m.name()));
                }
            }
        });
        Box::pin(async { Ok(()) })
    }
}

struct Started {
    node: Node,
    ctx: ExtensionContext,
    events: mpsc::UnboundedReceiver<String>,
}

async fn start(ca: &ClusterCa, name: &str, seed: Option<&Node>) -> Started {
    let (tx, events) = mpsc::unbounded_channel();
    let (ctx_tx, mut ctx_rx) = mpsc::unbounded_channel();
    let mut b = Node::builder("test", name)
        .ephemeral_certs(ca)
        .extension(Shout {
            events: tx,
            ctx: ctx_tx,
        });
    if let Some(s) = seed {
        b = b.seed(s.local_addr());
    }
    let node = b.start().await.expect("start");
    let ctx = ctx_rx.recv().await.expect("started");
    Started { node, ctx, events }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>, pred: impl Fn(&str) -> bool) -> String {
    loop {
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("event in time")
            .expect("open");
        if pred(&e) {
            return e;
        }
    }
}

fn name(s: &str) -> NodeName {
    NodeName::new(s).expect("name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_talk_to_their_peers() {
    let ca = ClusterCa::ephemeral("test");
    let mut a = start(&ca, "a", None).await;
    let mut b = start(&ca, "b", Some(&a.node)).await;
    let mut c = start(&ca, "c", Some(&a.node)).await;
    for n in [&a.node, &b.node, &c.node] {
        n.wait_for_members(2, WAIT).await.expect("cluster");
    }
    // Membership events reach the extension.
    // ... and so do connections (in order with the peers' notices).
    let mut seen: Vec<String> = Vec::new();
    let done = |seen: &[String]| {
        let has = |x: &str| seen.iter().any(|e| e == x);
        has("joined b") && has("joined c") && (has("connected b") || has("connected c"))
    };
    while !done(&seen) {
        let e = next(&mut a.events, |e| {
            e.starts_with("joined") || e.starts_with("connected")
        })
        .await;
        seen.push(e);
    }

    // Request/response.
    assert_eq!(
        a.ctx.request(&name("b"), b"hello".to_vec(), WAIT).await,
        Ok(b"HELLO".to_vec())
    );
    // A request the service drops unanswered is refused, not left hanging.
    assert!(matches!(
        a.ctx.request(&name("b"), b"ignore".to_vec(), WAIT).await,
        Err(ExtensionError::Refused(_))
    ));

    // Notices, one to one and to everyone.
    a.ctx.notify(&name("c"), b"psst".to_vec()).expect("notify");
    next(&mut c.events, |e| e == "notice from a: psst").await;
    assert_eq!(a.ctx.broadcast(b"all".to_vec()), 2);
    next(&mut b.events, |e| e == "notice from a: all").await;
    next(&mut c.events, |e| e == "notice from a: all").await;

    // Not connected: a clear error, at once.
    assert!(matches!(
        a.ctx.request(&name("zz"), vec![], WAIT).await,
        Err(ExtensionError::NotConnected(_))
    ));
}

/// A node that runs no `shout` service answers requests for it with an error.
struct Other;
impl Extension for Other {
    fn name(&self) -> &'static str {
        "other"
    }
    fn start(&self, _ctx: ExtensionContext) -> Starting {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_services_and_vanishing_peers_are_errors() {
    let ca = ClusterCa::ephemeral("test");
    let a = start(&ca, "a", None).await;
    let plain = Node::builder("test", "p")
        .ephemeral_certs(&ca)
        .extension(Other)
        .seed(a.node.local_addr())
        .start()
        .await
        .expect("p");
    a.node.wait_for_members(1, WAIT).await.expect("cluster");
    plain.wait_for_members(1, WAIT).await.expect("cluster");
    match a.ctx.request(&name("p"), b"x".to_vec(), WAIT).await {
        Err(ExtensionError::Refused(why)) => assert!(why.contains("no service"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A peer that dies while we wait: the request fails (no hang until the timeout).
    let b = start(&ca, "b", Some(&a.node)).await;
    a.node.wait_for_members(2, WAIT).await.expect("b joined");
    b.node.crash();
    let r = a
        .ctx
        .request(
            &name("b"),
            b"ignore-me-not".to_vec(),
            Duration::from_secs(30),
        )
        .await;
    assert!(
        r.is_ok()
            || matches!(
                r,
                Err(ExtensionError::Disconnected | ExtensionError::NotConnected(_))
            ),
        "{r:?}"
    );
    // Duplicate names are refused at start.
    let dup = Node::builder("test", "d")
        .ephemeral_certs(&ca)
        .extension(Other)
        .extension(Other)
        .start()
        .await;
    assert!(dup.is_err());
}
