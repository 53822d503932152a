//! Remote tell throughput and remote ask round trips between two nodes on loopback:
//! understudy (QUIC + mTLS mesh) and ractor_cluster (plain TCP, no TLS).
//!
//! Topology (the same for both frameworks): **two processes**, each one node with its own
//! tokio runtime of 2 workers. The measuring process (the "client" node) starts its peer as a
//! child process of the same binary (`--cluster-serve F`), which hosts the counter actor,
//! prints `READY ...` with what the client needs to reach it, and exits when its stdin closes.
//!
//! Why two processes: ractor_cluster cannot run two nodes in one process cleanly (pid
//! registry, pg groups and the advertised-actor set are process-global: each node advertises
//! the other's actors back to it, see shared/research/ractor.md §10.2), and two nodes are
//! normally two OS processes anyway. understudy has no such globals, so the variant
//! `understudy-1proc` also runs both of its nodes in one process on one 2-worker runtime.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::Metrics;

use super::{Stopwatch, latency_metrics};

/// The cluster (and ractor_cluster cookie) name.
const CLUSTER: &str = "bench";
/// How long connecting and resolving may take before the run fails.
const SETUP: Duration = Duration::from_secs(20);

/// What a measurement does with a remote counter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RemoteTest {
    /// `n` tells of a `u64`, then one ask; msgs/s.
    Tell,
    /// `n` sequential asks; latency percentiles.
    Ask,
}

/// Sizes of the remote measurements.
#[derive(Clone, Copy, Debug)]
pub struct RemoteSizes {
    pub msgs: u64,
    pub asks: u64,
}

// ------------------------------------------------------------------------------------------
// The peer process.

/// The peer process, started by the measuring one: hosts a counter, prints `READY ..`, and
/// exits when stdin reaches EOF (the measuring process ended or dropped it).
pub fn serve(fw: &str) {
    super::runtime().block_on(async move {
        let ready = match fw {
            "understudy" => understudy_side::serve().await,
            "ractor_cluster" => ractor_side::serve().await,
            other => panic!("--cluster-serve: unknown framework {other:?}"),
        };
        ready_until_stdin_closes(&ready).await;
    });
    // Skip the graceful shutdown of the node: the parent is gone.
    std::process::exit(0);
}

/// A peer process's last step: prints `READY <ready>` for [`Peer::spawn`] and waits until
/// its stdin closes (the parent ended or dropped it).
pub(crate) async fn ready_until_stdin_closes(ready: &str) {
    println!("READY {ready}");
    std::io::stdout().flush().expect("stdout");
    // Block a thread (not a worker) on stdin until the parent goes away.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await
    .expect("stdin");
}

/// The peer process, if the measurement has one: its CPU time counts with ours.
static PEER_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// CPU time (ns) of the peer process's threads so far (0 without a peer).
fn peer_cpu_ns() -> u64 {
    let pid = PEER_PID.load(std::sync::atomic::Ordering::Relaxed);
    if pid == 0 {
        return 0;
    }
    crate::bench::process_cpu_ns(pid)
}

/// Replaces the CPU-per-op metric `cpu` (this process only) by this process's plus the
/// peer's, over `n` ops.
fn add_peer_cpu(m: &mut Metrics, cpu: &str, peer_ns: u64, n: u64) {
    for (k, v) in m.iter_mut() {
        if *k == cpu {
            *v += peer_ns as f64 / n as f64;
        }
    }
}

/// A running peer process; killed when dropped.
pub(crate) struct Peer {
    child: Child,
    pub(crate) ready: String,
}

impl Peer {
    fn start(fw: &str, env: &[(&str, String)]) -> Peer {
        Peer::spawn(&["--cluster-serve", fw], env)
    }

    /// Starts this binary with `args` and `env` and waits for its `READY ...` line.
    pub(crate) fn spawn(args: &[&str], env: &[(&str, String)]) -> Peer {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the peer process");
        let stdout = child.stdout.take().expect("peer stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the peer's READY line");
        PEER_PID.store(child.id(), std::sync::atomic::Ordering::Relaxed);
        let ready = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("peer did not start: {line:?}"))
            .trim()
            .to_owned();
        Peer { child, ready }
    }

    /// The peer's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        PEER_PID.store(0, std::sync::atomic::Ordering::Relaxed);
        drop(self.child.stdin.take());
        // It exits on EOF; make sure.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------------------
// The measurement, written once over a tell/ask pair.

/// A remote counter as the measuring side sees it.
trait RemoteCounter {
    /// One tell; returns how many times it was refused with backpressure before it went in.
    fn tell(&self) -> impl std::future::Future<Output = u64> + Send;
    fn get(&self) -> impl std::future::Future<Output = u64> + Send;
}

async fn measure<C: RemoteCounter + Sync>(c: &C, test: RemoteTest, sizes: RemoteSizes) -> Metrics {
    match test {
        RemoteTest::Tell => {
            tell_run(c, (sizes.msgs / 10).max(1)).await;
            tell_run(c, sizes.msgs).await
        }
        RemoteTest::Ask => {
            ask_run(c, (sizes.asks / 10).max(1)).await;
            ask_run(c, sizes.asks).await
        }
    }
}

/// `n` tells, then one ask (the flush); the clock covers both. The counter is read before
/// (off the clock) and checked after.
async fn tell_run<C: RemoteCounter + Sync>(c: &C, n: u64) -> Metrics {
    let before = c.get().await;
    let peer0 = peer_cpu_ns();
    let clock = Stopwatch::start();
    let mut refused = 0;
    for _ in 0..n {
        refused += c.tell().await;
    }
    let after = c.get().await;
    let span = clock.stop();
    let peer = peer_cpu_ns().saturating_sub(peer0);
    assert_eq!(after - before, n, "every tell must have been processed");
    let mut m = span.metrics("msgs_per_s", "cpu_ns_per_msg", n);
    add_peer_cpu(&mut m, "cpu_ns_per_msg", peer, n);
    m.push(("overloaded", refused as f64));
    m
}

/// `n` sequential asks, each timed.
async fn ask_run<C: RemoteCounter + Sync>(c: &C, n: u64) -> Metrics {
    let mut lat = Vec::with_capacity(n as usize);
    let peer0 = peer_cpu_ns();
    let clock = Stopwatch::start();
    for _ in 0..n {
        let s = Instant::now();
        std::hint::black_box(c.get().await);
        lat.push(s.elapsed());
    }
    let span = clock.stop();
    let peer = peer_cpu_ns().saturating_sub(peer0);
    let mut m = span.metrics("asks_per_s", "cpu_ns_per_ask", n);
    add_peer_cpu(&mut m, "cpu_ns_per_ask", peer, n);
    m.extend(latency_metrics(lat));
    m
}

/// One remote measurement, in this process (the client node; the peer is a child process,
/// or for `understudy-1proc` a second node in this process).
pub fn run(fw: &str, test: RemoteTest, sizes: RemoteSizes) -> Metrics {
    match fw {
        "understudy" => {
            let ca = understudy::cluster::certs::ClusterCa::ephemeral(CLUSTER);
            let pem = ca.to_pem();
            let peer = Peer::start(
                fw,
                &[
                    ("UNDERSTUDY_BENCH_CA_CERT", pem.cert.clone()),
                    ("UNDERSTUDY_BENCH_CA_KEY", pem.key.clone()),
                ],
            );
            let ready = peer.ready.clone();
            let m = super::runtime()
                .block_on(async move { understudy_side::client(ca, &ready, test, sizes).await });
            drop(peer);
            m
        }
        "understudy-1proc" => {
            super::runtime().block_on(async move { understudy_side::in_process(test, sizes).await })
        }
        "ractor_cluster" => {
            let peer = Peer::start(fw, &[]);
            let ready = peer.ready.clone();
            let m = super::runtime()
                .block_on(async move { ractor_side::client(&ready, test, sizes).await });
            drop(peer);
            m
        }
        other => panic!("unknown cluster framework {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// understudy: QUIC + mTLS mesh, `#[messages(remote)]` counter.

mod understudy_side {
    use std::net::SocketAddr;

    use understudy::cluster::certs::ClusterCa;
    use understudy::cluster::node::Node;
    use understudy::prelude::*;
    use understudy::{ActorAddr, NodeId};

    use super::{CLUSTER, RemoteCounter, RemoteSizes, RemoteTest, SETUP};
    use crate::bench::Metrics;

    #[derive(Actor)]
    pub struct Counter {
        n: u64,
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
    }

    struct Remote(ActorRef<CounterMsg>);

    impl RemoteCounter for Remote {
        #[inline]
        async fn tell(&self) -> u64 {
            let mut refused = 0;
            loop {
                match self.0.add(1) {
                    Ok(()) => return refused,
                    // The lane's buffer is full: let the writer drain it, then retry.
                    Err(TellError::Overloaded) => {
                        refused += 1;
                        tokio::task::yield_now().await;
                    }
                    Err(e) => panic!("remote tell: {e}"),
                }
            }
        }

        async fn get(&self) -> u64 {
            self.0.get().await.expect("remote ask")
        }
    }

    async fn host(node: &Node) -> ActorAddr {
        let c = node.spawn(Counter { n: 0 }).await.expect("spawn counter");
        node.export(&c)
    }

    /// The peer: node "server" with the counter. `READY addr node_id pid`.
    pub(super) async fn serve() -> String {
        let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
        let ca = ClusterCa::from_pem(
            &env("UNDERSTUDY_BENCH_CA_CERT"),
            &env("UNDERSTUDY_BENCH_CA_KEY"),
        )
        .expect("CA from PEM");
        let node = Node::builder(CLUSTER, "server")
            .ephemeral_certs(&ca)
            .start()
            .await
            .expect("server node");
        let addr = host(&node).await;
        let ready = format!("{} {} {}", node.local_addr(), addr.node.get(), addr.pid);
        // Keep the node alive for the life of the process.
        std::mem::forget(node);
        ready
    }

    pub(super) async fn client(
        ca: ClusterCa,
        ready: &str,
        test: RemoteTest,
        sizes: RemoteSizes,
    ) -> Metrics {
        let mut f = ready.split_whitespace();
        let seed: SocketAddr = f.next().expect("addr").parse().expect("addr");
        let node_id: u64 = f.next().expect("node id").parse().expect("node id");
        let pid: u64 = f.next().expect("pid").parse().expect("pid");
        let node = Node::builder(CLUSTER, "client")
            .ephemeral_certs(&ca)
            .seed(seed)
            .start()
            .await
            .expect("client node");
        node.wait_for_members(1, SETUP).await.expect("joined");
        let addr = ActorAddr {
            node: NodeId::new(node_id).expect("non-zero node id"),
            pid,
        };
        let remote: ActorRef<CounterMsg> = node.actor_ref(addr).await.expect("resolve");
        let m = super::measure(&Remote(remote), test, sizes).await;
        node.leave().await;
        m
    }

    /// Both nodes in this process, on this process's one runtime.
    pub(super) async fn in_process(test: RemoteTest, sizes: RemoteSizes) -> Metrics {
        let ca = ClusterCa::ephemeral(CLUSTER);
        let a = Node::builder(CLUSTER, "server")
            .ephemeral_certs(&ca)
            .start()
            .await
            .expect("a");
        let b = Node::builder(CLUSTER, "client")
            .ephemeral_certs(&ca)
            .seed(a.local_addr())
            .start()
            .await
            .expect("b");
        b.wait_for_members(1, SETUP).await.expect("joined");
        let addr = host(&a).await;
        let remote: ActorRef<CounterMsg> = b.actor_ref(addr).await.expect("resolve");
        super::measure(&Remote(remote), test, sizes).await
    }
}

// ------------------------------------------------------------------------------------------
// ractor_cluster: NodeServer over plain TCP, `RactorClusterMessage` counter found via pg.

mod ractor_side {
    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
    use ractor_cluster::{NodeServer, RactorClusterMessage};

    use super::{CLUSTER, RemoteCounter, RemoteSizes, RemoteTest, SETUP};
    use crate::bench::{ASK_TIMEOUT, Metrics};

    /// The pg group the counter joins (synced to the peer, which gets a proxy for it).
    const GROUP: &str = "bench-counter";

    #[derive(RactorClusterMessage)]
    pub enum RcMsg {
        Add(u64),
        #[rpc]
        Get(RpcReplyPort<u64>),
    }

    pub struct RcCounter;

    impl Actor for RcCounter {
        type Msg = RcMsg;
        type State = u64;
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<RcMsg>,
            _args: (),
        ) -> Result<u64, ActorProcessingErr> {
            Ok(0)
        }

        async fn handle(
            &self,
            _myself: ActorRef<RcMsg>,
            msg: RcMsg,
            n: &mut u64,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                RcMsg::Add(by) => *n += by,
                RcMsg::Get(reply) => {
                    let _ = reply.send(*n);
                }
            }
            Ok(())
        }
    }

    struct Remote(ActorRef<RcMsg>);

    impl RemoteCounter for Remote {
        #[inline]
        async fn tell(&self) -> u64 {
            self.0.cast(RcMsg::Add(1)).expect("remote cast");
            0
        }

        async fn get(&self) -> u64 {
            ractor::call_t!(self.0, RcMsg::Get, ASK_TIMEOUT.as_millis() as u64)
                .expect("remote call")
        }
    }

    /// A free TCP port on 127.0.0.1 (NodeServer takes a port and does not report the one it
    /// got for port 0).
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    }

    async fn node_server(name: &str) -> (ActorRef<ractor_cluster::NodeServerMessage>, u16) {
        let port = free_port();
        let server = NodeServer::new(
            port,
            CLUSTER.to_owned(),
            name.to_owned(),
            "localhost".to_owned(),
            None, // IncomingEncryptionMode::Raw: plain TCP
            None, // NodeConnectionMode::Isolated
        )
        .with_listen_addr(std::net::Ipv4Addr::LOCALHOST.into());
        let (r, _) = Actor::spawn(None, server, ()).await.expect("NodeServer");
        (r, port)
    }

    /// The peer: a NodeServer and the counter in a pg group. `READY port`.
    pub(super) async fn serve() -> String {
        let (server, port) = node_server("server").await;
        std::mem::forget(server);
        let (counter, _) = Actor::spawn(None, RcCounter, ()).await.expect("counter");
        ractor::pg::join(GROUP.to_owned(), vec![counter.get_cell()]);
        std::mem::forget(counter);
        format!("{port}")
    }

    pub(super) async fn client(ready: &str, test: RemoteTest, sizes: RemoteSizes) -> Metrics {
        let port: u16 = ready.trim().parse().expect("port");
        let (server, _) = node_server("client").await;
        // The listener binds asynchronously in the peer's NodeServer: retry until it accepts.
        let deadline = tokio::time::Instant::now() + SETUP;
        while let Err(e) = ractor_cluster::client_connect(&server, ("127.0.0.1", port)).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "cannot connect: {e}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // After authentication the sessions sync pg: the counter shows up as a remote member.
        let cell = loop {
            let members = ractor::pg::get_members(&GROUP.to_owned());
            if let Some(c) = members.into_iter().find(|c| !c.get_id().is_local()) {
                break c;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the remote counter never appeared in pg"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        let remote: ActorRef<RcMsg> = cell.into();
        super::measure(&Remote(remote), test, sizes).await
    }
}
