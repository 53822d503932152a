//! Remote actors: an actor spawned on one node, called from another, a request whose
//! `reply_to` ref crosses the network, and a one-line monitor that fires when a node leaves.
//!
//! Run: `cargo run --example remote_actors`

use std::time::Duration;

use tokio::sync::mpsc;
use understudy::ActorAddr;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::prelude::*;

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

/// Asks a store for a key and reports the answer to whoever the request names.
#[derive(Actor)]
struct Lookup;

#[messages(remote)]
impl Lookup {
    /// Looks `key` up in `store` and tells `reply_to`: both refs arrived in this message.
    #[message]
    async fn lookup(
        &mut self,
        store: ActorRef<StoreMsg>,
        key: String,
        reply_to: ActorRef<PrinterMsg>,
    ) {
        let value = store.get(key.clone()).await.ok().flatten();
        let _ = reply_to.print(format!("{key} = {value:?}"));
    }
}

/// Prints what it is told, and the exits of the actors it monitors.
struct Printer(mpsc::UnboundedSender<String>);

impl Actor for Printer {
    async fn on_down(&mut self, _: &Ctx<Self>, down: Down) -> Result<(), ActorError> {
        let _ = self
            .0
            .send(format!("{} is down: {}", down.actor, down.reason));
        Ok(())
    }
}

#[messages(remote)]
impl Printer {
    #[message]
    fn print(&mut self, line: String) {
        let _ = self.0.send(line);
    }
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

    println!("\n3. a request carries refs: alpha asks gamma's Lookup to read beta's store");
    println!("   and to answer alpha's Printer (`reply_to: ActorRef<PrinterMsg>`):");
    let (tx, mut heard) = mpsc::unbounded_channel();
    let printer = alpha.spawn(Printer(tx)).await?;
    let lookup = gamma.spawn(Lookup).await?;
    let lookup_from_alpha: ActorRef<LookupMsg> = alpha.actor_ref(gamma.export(&lookup)).await?;
    let store_from_alpha: ActorRef<StoreMsg> = alpha.actor_ref(addr).await?;
    lookup_from_alpha.lookup(store_from_alpha.clone(), "greeting".into(), printer.clone())?;
    let line = tokio::time::timeout(timeout, heard.recv())
        .await?
        .unwrap_or_default();
    println!("   printer on alpha: {line}");

    println!(
        "\n4. alpha monitors the store in one line; beta leaves; the DOWN says `noconnection`:"
    );
    let monitor = alpha.monitor(&store_from_alpha).await?;
    beta.leave().await;
    let down = tokio::time::timeout(timeout, monitor).await?;
    println!("   the store is down: {}", down.reason);
    let from_alpha = store_from_alpha;
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
