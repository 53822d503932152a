//! Named actors the registry places and keeps running: a cluster-wide singleton and a pool.
//!
//! Five nodes in this process, each able to start a `ledger` and a `worker`. One `ledger`
//! singleton is spawned by name (every node asks for it at once: one actor results), and
//! ten workers are placed on the least-loaded nodes. Every node calls the ledger through a
//! name-addressed ref. Then the ledger's node crashes: the registry starts the ledger again
//! on another node, and the callers' refs reach it there without being looked up again.
//!
//! Run: `cargo run --example spawn_named`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::prelude::*;
use understudy::registry::{Placement, Registry, Scope};

/// The singleton: a running total, and the node it runs on.
#[derive(Actor)]
struct Ledger {
    node: String,
    total: u64,
}

#[messages(remote)]
impl Ledger {
    /// Adds `amount`; answers the total and where it ran.
    #[message]
    fn record(&mut self, amount: u64) -> (u64, String) {
        self.total += amount;
        (self.total, self.node.clone())
    }
}

/// A pooled worker.
#[derive(Actor)]
struct Worker {
    node: String,
}

#[messages(remote)]
impl Worker {
    /// Answers where it runs.
    #[message]
    fn whereabouts(&self) -> String {
        self.node.clone()
    }
}

const WAIT: Duration = Duration::from_secs(20);

fn registry(node: &str) -> Registry {
    let (a, b) = (node.to_owned(), node.to_owned());
    Registry::new()
        .kind("ledger", move |total: u64| {
            Ok::<_, String>(Ledger {
                node: a.clone(),
                total,
            })
        })
        .kind("worker", move |_: ()| {
            Ok::<_, String>(Worker { node: b.clone() })
        })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let at = || started.elapsed().as_millis();
    let ca = ClusterCa::ephemeral("spawn-demo");
    let mut nodes: Vec<Option<Node>> = Vec::new();
    let mut registries: Vec<Registry> = Vec::new();
    for i in 0..5 {
        let name = format!("n{i}");
        let registry = registry(&name);
        let mut builder = Node::builder("spawn-demo", name)
            .ephemeral_certs(&ca)
            .extension(registry.clone());
        if let Some(Some(first)) = nodes.first() {
            builder = builder.seed(first.local_addr());
        }
        nodes.push(Some(builder.start().await?));
        registries.push(registry);
    }
    for r in &registries {
        r.wait_ready(WAIT).await?;
    }
    println!("[{:>5} ms] five nodes, one registry", at());

    // Every node asks for the singleton at once: the log lets one placement through.
    let asks = registries.iter().map(|r| {
        let r = r.clone();
        tokio::spawn(async move {
            r.spawn_named::<LedgerMsg, _>(
                "ledger",
                Scope::Consistent,
                Placement::Hash,
                "ledger",
                &0u64,
            )
            .await
        })
    });
    for ask in asks {
        ask.await??;
    }
    let names = registries[0].consistent()?;
    let holder = names
        .owner("ledger")
        .ok_or("the ledger has a holder")?
        .node();
    let holder_index = (0..5)
        .find(|i| {
            nodes[*i]
                .as_ref()
                .is_some_and(|n| n.runtime().node_id() == holder)
        })
        .ok_or("the holder is one of ours")?;
    println!(
        "[{:>5} ms] five nodes spawned \"ledger\" at once: one actor, on n{holder_index}",
        at()
    );

    // A pool, placed on the least-loaded nodes (by their named actors, then gossiped load).
    for w in 0..10 {
        let from = &registries[w % 5];
        let worker = from
            .spawn_named::<WorkerMsg, _>(
                &format!("worker/{w}"),
                Scope::Consistent,
                Placement::LeastLoaded,
                "worker",
                &(),
            )
            .await?;
        print!("worker/{w} on {}  ", worker.whereabouts().await?);
    }
    println!();

    // Every node calls the ledger by name, over and over.
    let calls = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for (i, r) in registries.iter().enumerate() {
        let ledger = r.named::<LedgerMsg>("ledger")?;
        let calls = calls.clone();
        callers.push(tokio::spawn(async move {
            let mut failed_since: Option<Instant> = None;
            loop {
                match ledger.record(1).timeout(Duration::from_secs(5)).await {
                    Ok((_, node)) => {
                        calls.fetch_add(1, Ordering::Relaxed);
                        if let Some(since) = failed_since.take() {
                            println!(
                                "    n{i} reaches the ledger again, on {node}, after {} ms",
                                since.elapsed().as_millis()
                            );
                        }
                    }
                    Err(e) => {
                        if failed_since.is_none() {
                            println!("    n{i}: a call failed ({e}); retrying");
                            failed_since = Some(Instant::now());
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "[{:>5} ms] {} calls to the ledger by name so far",
        at(),
        calls.load(Ordering::Relaxed)
    );

    // The ledger's node crashes (its last handle dropped: no goodbye).
    let crashed = Instant::now();
    drop(nodes[holder_index].take());
    println!(
        "[{:>5} ms] crashed n{holder_index}, the ledger's node",
        at()
    );
    let survivor = &registries[(holder_index + 1) % 5];
    let names = survivor.consistent()?;
    let deadline = Instant::now() + WAIT;
    while names.owner("ledger").is_none_or(|o| o.node() == holder) {
        if Instant::now() > deadline {
            for r in &registries {
                eprintln!(
                    "{:?} ledger={:?}",
                    r.status(),
                    r.consistent().map(|c| c.owner("ledger"))
                );
            }
            return Err("the ledger was not restarted in time".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "[{:>5} ms] the ledger runs again, {} ms after the crash",
        at(),
        crashed.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "[{:>5} ms] {} calls in all; the callers never looked the ledger up again",
        at(),
        calls.load(Ordering::Relaxed)
    );
    for caller in callers {
        caller.abort();
    }
    Ok(())
}
