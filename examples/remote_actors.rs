//! Remote actors: an actor spawned on one node, called from another, and a monitor that
//! fires when its node leaves.
//!
//! Run: `cargo run --example remote_actors`

use std::time::Duration;

use tokio::sync::mpsc;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::prelude::*;
use understudy::{ActorAddr, SupervisionEvent};

/// A key-value store; `#[messages(remote)]` makes its messages cross the network.
#[derive(Actor)]
struct Store {
    entries: std::collections::BTreeMap<String, String>,
}

#[messages(remote)]
impl Store {
    #[message]
    fn put(&mut self, key: String, value: String) {
        self.entries.insert(key, value);
    }

    #[message]
    fn get(&self, key: String) -> Option<String> {
        self.entries.get(&key).cloned()
    }

    #[message]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Prints what it hears about the actors it monitors.
struct Watcher(mpsc::UnboundedSender<String>);

impl understudy::Actor for Watcher {
    async fn on_supervision(
        &mut self,
        _: &Ctx<Self>,
        event: SupervisionEvent,
    ) -> Result<(), ActorError> {
        if let SupervisionEvent::ActorTerminated(_, _, reason) = event {
            let _ = self.0.send(format!(
                "the store stopped, reason {:?}",
                reason.unwrap_or_default()
            ));
        }
        Ok(())
    }
}

#[messages]
impl Watcher {
    #[message]
    fn ping(&self) {}
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let timeout = Duration::from_secs(10);
    // Three nodes on this machine, one in-memory CA: mTLS QUIC on loopback, no setup.
    let ca = ClusterCa::ephemeral("demo");
    let alpha = Node::builder("demo", "alpha")
        .ephemeral_certs(&ca)
        .start()
        .await?;
    let beta = Node::builder("demo", "beta")
        .ephemeral_certs(&ca)
        .seed(alpha.local_addr())
        .start()
        .await?;
    let gamma = Node::builder("demo", "gamma")
        .ephemeral_certs(&ca)
        .seed(alpha.local_addr())
        .start()
        .await?;
    for n in [&alpha, &beta, &gamma] {
        n.wait_for_members(2, timeout).await?;
    }
    println!(
        "cluster up: alpha {}, beta {}, gamma {}",
        alpha.local_addr(),
        beta.local_addr(),
        gamma.local_addr()
    );

    println!("\n1. beta spawns a Store and exports it; its address is plain data:");
    let store = beta
        .spawn(Store {
            entries: Default::default(),
        })
        .await?;
    let addr: ActorAddr = beta.export(&store);
    println!("   store lives at {addr}");

    println!("\n2. gamma turns the address into an ordinary ActorRef and uses it:");
    let remote: ActorRef<StoreMsg> = gamma.actor_ref(addr).await?;
    remote.put("greeting".into(), "hello from gamma".into())?; // tell
    println!(
        "   get(greeting) -> {:?}",
        remote.get("greeting".into()).await?
    ); // ask
    println!("   len()         -> {}", remote.len().await?);

    println!("\n3. alpha watches the store through a monitor, like any local actor:");
    let (tx, mut heard) = mpsc::unbounded_channel();
    let watcher = alpha.spawn(Watcher(tx)).await?;
    let from_alpha: ActorRef<StoreMsg> = alpha.actor_ref(addr).await?;
    watcher.get_cell().monitor(from_alpha.get_cell());
    println!("   alpha sees len() = {}", from_alpha.len().await?);

    println!("\n4. beta leaves the cluster; alpha's monitor fires with `noconnection`:");
    beta.leave().await;
    let news = tokio::time::timeout(timeout, heard.recv())
        .await?
        .unwrap_or_default();
    println!("   watcher: {news}");
    println!("   asking the store now -> {:?}", from_alpha.len().await);
    println!(
        "   alpha's members now: {:?}",
        alpha
            .members()
            .iter()
            .map(|m| m.name().to_string())
            .collect::<Vec<_>>()
    );

    gamma.leave().await;
    alpha.leave().await;
    Ok(())
}
