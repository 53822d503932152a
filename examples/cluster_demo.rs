//! The main demo: a cluster of four nodes on this machine, no setup.
//!
//! It shows, in order: nodes finding each other (SWIM over an mTLS QUIC mesh), a supervision
//! tree on one node whose worker is called from every other node, a worker crash the
//! supervisor repairs, a node crash the cluster detects (and the monitors that fire), and a
//! graceful leave. It grows as understudy does.
//!
//! Run: `cargo run --example cluster_demo`

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::membership::MembershipEvent;
use understudy::cluster::node::Node;
use understudy::prelude::*;
use understudy::supervisor::{ChildSpec, SupervisorSpec};
use understudy::{ActorAddr, SupervisionEvent};

/// A worker that counts the jobs it did.
#[derive(Actor)]
struct Worker {
    jobs: u64,
}

#[messages(remote)]
impl Worker {
    /// Does a job and says who did it.
    #[message]
    fn work(&mut self, ctx: &Ctx<Self>, job: String) -> String {
        self.jobs += 1;
        format!(
            "{job} done by worker {} (job #{})",
            ctx.cell().get_id(),
            self.jobs
        )
    }

    /// Fails (the supervisor restarts it).
    #[message]
    fn fail(&mut self) {
        panic!("worker hit a bug");
    }
}

/// Reports the exits of the actors it monitors.
struct Watch(&'static str, mpsc::UnboundedSender<String>);
impl understudy::Actor for Watch {
    async fn on_supervision(
        &mut self,
        _: &Ctx<Self>,
        e: SupervisionEvent,
    ) -> Result<(), ActorError> {
        if let SupervisionEvent::ActorTerminated(_, _, reason) = e {
            let _ = self.1.send(format!(
                "{}'s monitor: worker gone ({})",
                self.0,
                reason.unwrap_or_default()
            ));
        }
        Ok(())
    }
}
#[messages]
impl Watch {
    #[message]
    fn noop(&self) {}
}

fn show(event: &MembershipEvent) -> String {
    match event {
        MembershipEvent::NodeJoined(m) => format!("+ {} joined ({})", m.name(), m.addr()),
        MembershipEvent::NodeUpdated(m) => format!("~ {} updated", m.name()),
        MembershipEvent::NodeLeft { member, reason } => {
            format!("- {} left: {reason}", member.name())
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Actors crash by panicking ("let it crash"); keep the story readable: one line each.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .unwrap_or("?");
        eprintln!("   (panic in an actor: {what})");
    }));
    let wait = Duration::from_secs(15);
    let ca = ClusterCa::ephemeral("demo"); // production: `understudy certs init|issue`

    println!("== 1. Four nodes find each other (seed: the first) ==");
    let names = ["atlas", "boreas", "calypso", "dione"];
    let first = Node::builder("demo", names[0])
        .ephemeral_certs(&ca)
        .start()
        .await?;
    let mut events = first.subscribe();
    let mut nodes = vec![first];
    for name in &names[1..] {
        let node = Node::builder("demo", *name)
            .ephemeral_certs(&ca)
            .seed(nodes[0].local_addr())
            .start()
            .await?;
        nodes.push(node);
    }
    for n in &nodes {
        n.wait_for_members(3, wait).await?;
    }
    while let Ok(e) = events.try_recv() {
        println!("   atlas sees: {}", show(&e));
    }

    println!("\n== 2. A supervision tree on calypso; every node calls its worker ==");
    let calypso = &nodes[2];
    let tree = SupervisorSpec::one_for_one()
        .child(ChildSpec::new("worker", || Worker { jobs: 0 }).name("worker"));
    let _supervisor = calypso.start_supervisor(tree).await?;
    let worker = calypso
        .whereis::<WorkerMsg>("worker")
        .ok_or("worker not registered")?;
    let addr: ActorAddr = calypso.export(&worker);
    println!("   worker registered as \"worker\" on calypso, address {addr}");
    for n in &nodes {
        let remote: ActorRef<WorkerMsg> = n.actor_ref(addr).await?;
        println!(
            "   {:>8} -> {}",
            n.name().as_str(),
            remote.work(format!("job from {}", n.name())).await?
        );
    }

    println!("\n== 3. The worker crashes; its supervisor restarts it, callers go by name ==");
    let (tx, mut heard) = mpsc::unbounded_channel();
    let watch = nodes[0].spawn(Watch("atlas", tx.clone())).await?;
    let from_atlas: ActorRef<WorkerMsg> = nodes[0].actor_ref(addr).await?;
    watch.get_cell().monitor(from_atlas.get_cell());
    from_atlas.fail()?;
    println!(
        "   {}",
        tokio::time::timeout(wait, heard.recv())
            .await?
            .unwrap_or_default()
    );
    let restarted = loop {
        match calypso.whereis::<WorkerMsg>("worker") {
            Some(w) if w.get_id() != worker.get_id() => break w,
            _ => tokio::task::yield_now().await,
        }
    };
    let new_addr = calypso.export(&restarted);
    let again: ActorRef<WorkerMsg> = nodes[0].actor_ref(new_addr).await?;
    println!(
        "   restarted as {new_addr}: {}",
        again.work("job after the crash".into()).await?
    );

    println!("\n== 4. calypso stops without a goodbye; the cluster detects it ==");
    let watch2 = nodes[1].spawn(Watch("boreas", tx)).await?;
    let from_boreas: ActorRef<WorkerMsg> = nodes[1].actor_ref(new_addr).await?;
    watch2.get_cell().monitor(from_boreas.get_cell());
    let mut atlas_events = nodes[0].subscribe();
    let crashed_at = Instant::now();
    // Its last handle goes: endpoint, connections and membership stop at once, no leave.
    drop(nodes.remove(2));
    loop {
        let e = tokio::time::timeout(wait, atlas_events.recv()).await??;
        if matches!(&e, MembershipEvent::NodeLeft { member, .. } if member.name().as_str() == "calypso")
        {
            println!(
                "   atlas sees: {} after {:.1?}",
                show(&e),
                crashed_at.elapsed()
            );
            break;
        }
    }
    println!(
        "   {}",
        tokio::time::timeout(wait, heard.recv())
            .await?
            .unwrap_or_default()
    );

    println!("\n== 5. dione leaves gracefully: reported as left, not failed ==");
    nodes[2].leave().await;
    loop {
        let e = tokio::time::timeout(wait, atlas_events.recv()).await??;
        if matches!(&e, MembershipEvent::NodeLeft { member, .. } if member.name().as_str() == "dione")
        {
            println!("   atlas sees: {}", show(&e));
            break;
        }
    }
    let members: Vec<String> = nodes[0]
        .members()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    println!("\natlas's members now: {members:?}");
    nodes[1].leave().await;
    nodes[0].leave().await;
    Ok(())
}
