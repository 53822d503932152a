//! Process groups across a cluster, watched live.
//!
//! Four nodes in this process. A monitor on `n0` prints every join and leave of the group
//! `workers`, wherever it happens: workers on `n1`..`n3` join (one twice — joins are counted),
//! one leaves, one stops (it leaves by itself), a broadcast reaches every member, and then
//! `n3` is killed without a goodbye: its members leave on every other node, and the monitor
//! says so.
//!
//! Run: `cargo run --example pg_events`

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use understudy::NodeId;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::pg::{Member, Pg, PgEvent, Scope, Subscription};
use understudy::prelude::*;

/// What the members of `workers` receive.
#[derive(Debug, Clone, Serialize, Deserialize, RemoteMessage)]
enum Job {
    /// Say hello (on stdout).
    Hello(String),
}

/// A worker: prints what it is told.
#[derive(Actor)]
struct Worker {
    name: String,
}

impl Handler for Worker {
    type Msg = Job;
    async fn handle(&mut self, _: &Ctx<Self>, job: Job) -> Result<(), ActorError> {
        let Job::Hello(from) = job;
        println!("    {} got hello from {from}", self.name);
        Ok(())
    }
}

const WAIT: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let ca = ClusterCa::ephemeral("pg-demo");
    // One `Pg` per node, registered as an extension; anti-entropy every 500 ms.
    let mut nodes: Vec<Node> = Vec::new();
    let mut pgs = Vec::new();
    for i in 0..4 {
        let pg = Pg::with_anti_entropy(Duration::from_millis(500));
        let mut builder = Node::builder("pg-demo", format!("n{i}"))
            .ephemeral_certs(&ca)
            .extension(pg.clone());
        if let Some(first) = nodes.first() {
            builder = builder.seed(first.local_addr());
        }
        nodes.push(builder.start().await?);
        pgs.push(pg);
    }
    for node in &nodes {
        node.wait_for_members(3, WAIT).await?;
    }
    println!("4 nodes up in {:?}", started.elapsed());
    let roster: Vec<(NodeId, String)> = nodes
        .iter()
        .map(|n| (n.node_id(), n.name().to_string()))
        .collect();
    let scopes: Vec<Scope> = pgs
        .iter()
        .map(|pg| pg.default_scope())
        .collect::<Result<_, _>>()?;

    // The monitor on n0: what is in the group now, then every change, from every node.
    let (now, mut events) = scopes[0].monitor("workers");
    println!("n0 monitors `workers` ({} members now)", now.len());

    // Workers on n1..n3 join.
    let mut workers = Vec::new();
    for (i, (node, scope)) in nodes.iter().zip(&scopes).enumerate().skip(1) {
        let worker = node
            .spawn(Worker {
                name: format!("worker@n{i}"),
            })
            .await?;
        scope.join("workers", &worker)?;
        print_events(&mut events, &roster).await;
        workers.push(worker);
    }
    // Joins are counted: worker@n1 joins again, and is listed twice.
    scopes[1].join("workers", &workers[0])?;
    print_events(&mut events, &roster).await;
    println!(
        "n0 sees {} members; groups: {:?}",
        scopes[0].get_members::<Job>("workers").await?.len(),
        scopes[0].which_groups()
    );

    // A broadcast from n0 reaches every member, on every node (worker@n1 twice).
    let sent = scopes[0]
        .broadcast("workers", Job::Hello("n0".into()))
        .await?;
    println!("n0 broadcast to {sent} members:");
    tokio::time::sleep(Duration::from_millis(200)).await; // only so the output reads in order

    // worker@n1 leaves once (it is still in the group once), worker@n2 stops.
    scopes[1].leave("workers", &workers[0])?;
    print_events(&mut events, &roster).await;
    workers[1].stop(None);
    print_events(&mut events, &roster).await;

    // Leaving a group one is not in is an error value, not a panic.
    if let Err(e) = scopes[2].leave("workers", &workers[1]) {
        println!("n2: leave again -> {e}");
    }

    // n3 stops without a goodbye (its last handle is dropped): its member leaves everywhere
    // once each node sees it gone.
    let killed = Instant::now();
    drop(nodes.remove(3));
    println!("n3 stopped");
    print_events(&mut events, &roster).await;
    println!(
        "  (detected and applied {:?} after the stop)",
        killed.elapsed()
    );
    // Every node applies it when it detects the death itself: wait for the last one.
    let deadline = Instant::now() + WAIT;
    while scopes[..3].iter().any(|s| s.members("workers").len() != 1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (i, scope) in scopes.iter().enumerate().take(3) {
        println!(
            "n{i} sees {} member(s)",
            scope.get_members::<Job>("workers").await?.len()
        );
    }
    println!("done in {:?}", started.elapsed());
    Ok(())
}

/// Prints the monitor's next event, naming nodes from `roster` (node id, name).
async fn print_events(events: &mut Subscription, roster: &[(NodeId, String)]) {
    match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Ok(PgEvent::Join { group, members })) => {
            println!("  monitor: {} joined {group}", names(&members, roster))
        }
        Ok(Ok(PgEvent::Leave { group, members })) => {
            println!("  monitor: {} left {group}", names(&members, roster))
        }
        Ok(Err(e)) => println!("  monitor: ended: {e}"),
        Err(_) => println!("  monitor: nothing within {WAIT:?}"),
    }
}

/// Members as `pid@node`.
fn names(members: &[Member], roster: &[(NodeId, String)]) -> String {
    members
        .iter()
        .map(|m| {
            let addr = m.addr();
            let node = roster
                .iter()
                .find(|(id, _)| *id == addr.node)
                .map_or("?", |(_, name)| name.as_str());
            format!("<{}@{node}>", addr.pid)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
