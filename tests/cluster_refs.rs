//! `ActorRef`s inside remote messages: a ref travels as its address and arrives as a working
//! ref (a local one if it points home), across three nodes; a ref forwarded A → B → C
//! reaches A's actor directly; refs per message are bounded; `ctx.node()` in a handler.
#![cfg(feature = "cluster")]

mod common;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::prelude::*;
use understudy::remote::actor_ref;

use common::actors::WAIT;

/// Records what it is told.
#[derive(Actor)]
struct Client {
    got: mpsc::UnboundedSender<(u64, bool)>,
}

#[messages(remote)]
impl Client {
    /// An answer; `home` says whether `from` resolved to a local actor here.
    #[message]
    fn answer(&mut self, n: u64, from: ActorRef<ServerMsg>) {
        let _ = self.got.send((n, from.get_id().is_local()));
    }
}

/// Answers requests to the ref they carry, or forwards them.
#[derive(Actor)]
struct Server;

#[messages(remote)]
impl Server {
    /// Answers `n * 2` to `reply_to`.
    #[message]
    fn request(&mut self, ctx: &Ctx<Self>, n: u64, reply_to: ActorRef<ClientMsg>) {
        reply_to.answer(n * 2, ctx.myself()).expect("room");
    }

    /// Passes the request on to `next`, with the same `reply_to`.
    #[message]
    fn forward(&mut self, n: u64, next: ActorRef<ServerMsg>, reply_to: ActorRef<ClientMsg>) {
        next.request(n, reply_to).expect("room");
    }

    /// An answer that carries refs: this server, and the client it was given (home again).
    #[message]
    fn introduce(&self, ctx: &Ctx<Self>, client: ActorRef<ClientMsg>) -> Intro {
        Intro {
            server: ctx.myself(),
            client: Carried(client),
        }
    }

    /// The node this server runs on, from inside its handler.
    #[message]
    fn node_name(&self, ctx: &Ctx<Self>) -> String {
        ctx.node().map(|n| n.name().to_string()).unwrap_or_default()
    }
}

/// A serde message with refs (the `#[derive(RemoteMessage)]` way).
#[derive(Serialize, Deserialize, RemoteMessage)]
struct Many {
    refs: Vec<Carried>,
}

#[derive(Serialize, Deserialize)]
/// An answer with refs in it.
pub struct Intro {
    #[serde(with = "actor_ref")]
    server: ActorRef<ServerMsg>,
    client: Carried,
}

#[derive(Serialize, Deserialize)]
/// One ref, as a serde type carries it.
pub struct Carried(#[serde(with = "actor_ref")] pub ActorRef<ClientMsg>);

/// Counts the refs it receives.
struct Counter(mpsc::UnboundedSender<usize>);
impl Actor for Counter {}
impl Handler for Counter {
    type Msg = Many;
    async fn handle(&mut self, _: &Ctx<Self>, many: Many) -> Result<(), ActorError> {
        let _ = self.0.send(many.refs.len());
        Ok(())
    }
}

async fn three() -> (ClusterCa, Vec<Node>) {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster(&ca, 3, None, WAIT).await;
    (ca, nodes)
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_with_a_reply_to_ref_across_three_nodes() {
    let (_ca, nodes) = three().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = nodes[0].spawn(Client { got: tx }).await.unwrap();
    for (i, server_node) in nodes.iter().enumerate().skip(1) {
        let server = server_node.spawn(Server).await.unwrap();
        let server_on_a: ActorRef<ServerMsg> = nodes[0]
            .actor_ref(server_node.export(&server))
            .await
            .unwrap();
        // The client's own ref goes in the message; nobody exported it by hand.
        server_on_a.request(i as u64, client.clone()).unwrap();
        assert_eq!(next(&mut rx).await, (i as u64 * 2, false));
        assert_eq!(
            server_on_a.node_name().await.unwrap(),
            server_node.name().to_string(),
            "ctx.node() in a handler"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ref_forwarded_a_to_b_to_c_reaches_a_directly_and_a_ref_home_is_local() {
    let (_ca, nodes) = three().await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = a.spawn(Client { got: tx }).await.unwrap();
    let on_b = b.spawn(Server).await.unwrap();
    let on_c = c.spawn(Server).await.unwrap();
    let b_from_a: ActorRef<ServerMsg> = a.actor_ref(b.export(&on_b)).await.unwrap();
    let c_from_a: ActorRef<ServerMsg> = a.actor_ref(c.export(&on_c)).await.unwrap();
    // A asks B to forward to C (C's ref travels A → B as C's own address), C answers the
    // client on A.
    b_from_a
        .forward(5, c_from_a.clone(), client.clone())
        .unwrap();
    assert_eq!(next(&mut rx).await, (10, false));

    // A server on A itself: the ref to it comes back home, and resolves to the local actor.
    let on_a = a.spawn(Server).await.unwrap();
    let home = a.export(&on_a);
    let a_from_b: ActorRef<ServerMsg> = b.actor_ref(home).await.unwrap();
    let client_from_b: ActorRef<ClientMsg> = b.actor_ref(a.export(&client)).await.unwrap();
    a_from_b.request(1, client_from_b).unwrap();
    assert_eq!(next(&mut rx).await, (2, true), "from A's own server: local");

    // C's answer reached A without B: with B gone, C still answers A's client directly.
    b.crash();
    c_from_a.request(21, client.clone()).unwrap();
    assert_eq!(next(&mut rx).await, (42, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_carries_refs_too() {
    let (_ca, nodes) = three().await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = a.spawn(Client { got: tx }).await.unwrap();
    let server = b.spawn(Server).await.unwrap();
    let server_from_a: ActorRef<ServerMsg> = a.actor_ref(b.export(&server)).await.unwrap();
    let intro = server_from_a.introduce(client.clone()).await.unwrap();
    assert!(
        !intro.server.get_id().is_local(),
        "B's server, from A: a proxy"
    );
    assert_eq!(
        intro.client.0.get_id(),
        client.get_id(),
        "A's client, home: itself"
    );
    assert_eq!(
        intro.server.node_name().await.unwrap(),
        b.name().to_string()
    );
    intro.server.request(3, intro.client.0.clone()).unwrap();
    assert_eq!(next(&mut rx).await, (6, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_per_message_are_bounded_and_resolved_once_per_address() {
    let (_ca, nodes) = three().await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let counter = b.spawn(Counter(tx)).await.unwrap();
    let counter_from_a: ActorRef<Many> = a.actor_ref(b.export(&counter)).await.unwrap();
    let (ctx, _crx) = mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for _ in 0..65 {
        clients.push(a.spawn(Client { got: ctx.clone() }).await.unwrap());
    }
    let carried = |cs: &[ActorRef<ClientMsg>]| -> Many {
        Many {
            refs: cs.iter().map(|c| Carried(c.clone())).collect(),
        }
    };
    // Sent by a raw ractor send, a ref to a local actor has no node to be exported by.
    assert!(counter_from_a.send_message(carried(&clients[..1])).is_err());
    // 64 distinct refs, each twice: delivered.
    let twice: Vec<_> = clients[..64]
        .iter()
        .chain(&clients[..64])
        .cloned()
        .collect();
    understudy::tell(&counter_from_a, carried(&twice)).unwrap();
    assert_eq!(next(&mut rx).await, 128);
    // 65: rejected (counted in `understudy_decode_errors_total`), and the connection lives
    // on: the next message is the one after it.
    understudy::tell(&counter_from_a, carried(&clients)).unwrap();
    understudy::tell(&counter_from_a, carried(&[])).unwrap();
    assert_eq!(next(&mut rx).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_from_a_peer_make_no_more_proxies_than_the_cap() {
    const CAP: usize = 100;
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, 2, None, WAIT, |_, mut b| {
        b.config_mut().remote.max_proxies_per_peer = CAP;
        b
    })
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let counter = b.spawn(Counter(tx)).await.unwrap();
    let counter_from_a: ActorRef<Many> = a.actor_ref(b.export(&counter)).await.unwrap();
    // 150 live actors on A, sent to B 50 at a time: each ref needs a proxy on B, which lives
    // as long as its actor does.
    let (ctx, _crx) = mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for _ in 0..150 {
        clients.push(a.spawn(Client { got: ctx.clone() }).await.unwrap());
    }
    for chunk in clients.chunks(50) {
        let refs = chunk.iter().map(|c| Carried(c.clone())).collect();
        understudy::tell(&counter_from_a, Many { refs }).unwrap();
    }
    understudy::tell(&counter_from_a, Many { refs: Vec::new() }).unwrap();
    // The first two fit (100 proxies); the third would pass the cap and is rejected.
    assert_eq!(next(&mut rx).await, 50);
    assert_eq!(next(&mut rx).await, 50);
    assert_eq!(next(&mut rx).await, 0);
    assert!(
        b.remote_stats().proxies <= CAP + 1,
        "{:?}",
        b.remote_stats()
    );
    // Refs already held still resolve: the cap is on new proxies.
    let refs = clients[..50].iter().map(|c| Carried(c.clone())).collect();
    understudy::tell(&counter_from_a, Many { refs }).unwrap();
    assert_eq!(next(&mut rx).await, 50);
}
