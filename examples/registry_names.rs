//! Cluster-wide names on the registry's bounded Raft core.
//!
//! Five nodes in this process form one registry with `bootstrap_expect = 3` (three form it,
//! the leader adds the other two). Workers on several nodes register names; every node calls
//! every worker by name. Then the leader is killed: a new leader takes over, and names keep
//! resolving and registering. Last, a node holding a name crashes, and the name is released.
//!
//! Run: `cargo run --example registry_names`

use std::time::{Duration, Instant};

use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::prelude::*;
use understudy::registry::{Registry, RegistryConfig};

/// A billing worker: answers each charge with where it ran.
#[derive(Actor)]
struct Worker {
    node: String,
}

#[messages(remote)]
impl Worker {
    /// Charges an amount; answers the worker's node.
    #[message]
    fn charge(&mut self, amount: u64) -> String {
        format!("{} charged {amount}", self.node)
    }
}

const WAIT: Duration = Duration::from_secs(20);

/// Waits until `check` holds (polling; a demo, not a test).
async fn until(what: &str, mut check: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    while !check() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let ca = ClusterCa::ephemeral("names-demo");
    let config = RegistryConfig {
        bootstrap_expect: Some(3),
        ..RegistryConfig::default()
    };
    let mut nodes: Vec<Node> = Vec::new();
    let mut registries: Vec<Registry> = Vec::new();
    for i in 0..5 {
        let registry = Registry::with_config(config.clone());
        let mut builder = Node::builder("names-demo", format!("n{i}"))
            .ephemeral_certs(&ca)
            .extension(registry.clone());
        if let Some(first) = nodes.first() {
            builder = builder.seed(first.local_addr());
        }
        nodes.push(builder.start().await?);
        registries.push(registry);
    }
    until("five voters", || {
        registries
            .iter()
            .any(|r| r.status().leader && r.status().voters.len() == 5 && !r.status().changing)
    })
    .await?;
    let status = registries[0].status();
    println!(
        "[{:>5} ms] formed: leader {}, voters {:?}",
        started.elapsed().as_millis(),
        status.leader_name.as_deref().unwrap_or("?"),
        status.voters
    );

    // Workers on n1, n2 and n3 take names.
    for i in 1..=3 {
        let worker = nodes[i]
            .spawn(Worker {
                node: format!("n{i}"),
            })
            .await?;
        let name = format!("billing/{i}");
        registries[i].consistent()?.register(&name, &worker).await?;
        println!(
            "[{:>5} ms] n{i} registered {name}",
            started.elapsed().as_millis()
        );
    }

    // Every node calls every worker by name.
    for (i, registry) in registries.iter().enumerate() {
        let names = registry.consistent()?;
        for w in 1..=3 {
            let worker = names
                .whereis_linearizable::<WorkerMsg>(&format!("billing/{w}"))
                .await?;
            let answer = worker.charge(10 * w as u64).await?;
            println!("    from n{i}: {answer}");
        }
    }

    // Kill the leader: dropping a node's last handle stops it at once, as a crashed process
    // would (no goodbye, no leadership handover).
    let mut nodes: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let leader = registries[0].status().leader_name.unwrap_or_default();
    let dead = (0..5)
        .find(|i| format!("n{i}") == leader)
        .ok_or("no leader")?;
    let killed = Instant::now();
    drop(nodes[dead].take());
    println!(
        "[{:>5} ms] killed the leader {leader}",
        started.elapsed().as_millis()
    );
    let alive: Vec<usize> = (0..5).filter(|i| *i != dead).collect();
    let writer = alive[0];
    let late = nodes[writer]
        .as_ref()
        .ok_or("alive")?
        .spawn(Worker {
            node: format!("n{writer}"),
        })
        .await?;
    registries[writer]
        .consistent()?
        .register("billing/late", &late)
        .await?;
    println!(
        "[{:>5} ms] new leader {}; billing/late registered {} ms after the kill",
        started.elapsed().as_millis(),
        registries[writer].status().leader_name.unwrap_or_default(),
        killed.elapsed().as_millis()
    );
    for i in &alive {
        let names = registries[*i].consistent()?;
        for w in (1..=3).filter(|w| *w != dead) {
            let worker = names
                .whereis_linearizable::<WorkerMsg>(&format!("billing/{w}"))
                .await?;
            worker.charge(1).await?;
        }
        let late = names
            .whereis_linearizable::<WorkerMsg>("billing/late")
            .await?;
        late.charge(1).await?;
    }
    println!("    every surviving node still calls every surviving name");

    // A node holding a name dies: the leader releases its names.
    let holder = (1..=3)
        .find(|i| *i != dead && *i != writer)
        .ok_or("no holder")?;
    drop(nodes[holder].take());
    let name = format!("billing/{holder}");
    println!(
        "[{:>5} ms] killed n{holder}, which holds {name}",
        started.elapsed().as_millis()
    );
    let names = registries[writer].consistent()?;
    until("the dead node's name to be released", || {
        names.owner(&name).is_none()
    })
    .await?;
    println!(
        "[{:>5} ms] {name} released; the names are now {:?}",
        started.elapsed().as_millis(),
        names.names()
    );
    Ok(())
}
