//! Membership over the real QUIC mesh: joins, graceful leave vs crash, restarts, partitions
//! and their healing. (The 32-node cluster is in `cluster_scale.rs`, its own test binary, so
//! it never competes for the CPU with these.)
#![cfg(feature = "cluster")]

mod common;

use std::time::Duration;

use tokio::sync::broadcast;
use tokio::sync::mpsc;
use understudy::SupervisionEvent;
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::identity::Incarnation;
use understudy::cluster::membership::{LeaveReason, MembershipEvent};
use understudy::cluster::mesh::FaultPlan;
use understudy::cluster::node::{Node, NodeBuilder};
use understudy::cluster::remote::NOCONNECTION;
use understudy::prelude::*;

const WAIT: Duration = Duration::from_secs(20);

async fn start(builder: NodeBuilder) -> Node {
    builder.start().await.expect("node starts")
}

async fn cluster(ca: &ClusterCa, n: usize, plan: Option<&FaultPlan>) -> Vec<Node> {
    common::cluster(ca, n, plan, WAIT).await
}

/// Waits for a membership event about `name` matching `pred`.
async fn event(
    rx: &mut broadcast::Receiver<MembershipEvent>,
    what: &str,
    mut pred: impl FnMut(&MembershipEvent) -> bool,
) -> MembershipEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) if pred(&e) => return e,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => panic!("events closed waiting for {what}: {e}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

fn left(name: &str, reason: LeaveReason) -> impl FnMut(&MembershipEvent) -> bool + '_ {
    move |e| matches!(e, MembershipEvent::NodeLeft { member, reason: r } if member.name().as_str() == name && *r == reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_is_left_and_a_crash_is_failed() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = cluster(&ca, 5, None).await;
    let mut watchers: Vec<_> = nodes[..3].iter().map(|n| n.subscribe()).collect();

    nodes[4].leave().await;
    for rx in &mut watchers {
        event(rx, "n4 left", left("n4", LeaveReason::Left)).await;
    }
    nodes[3].crash();
    for rx in &mut watchers {
        event(rx, "n3 failed", left("n3", LeaveReason::Failed)).await;
    }
    for n in &nodes[..3] {
        let mut names: Vec<String> = n.members().iter().map(|m| m.name().to_string()).collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(!names.contains(&"n3".to_string()) && !names.contains(&"n4".to_string()));
    }
}

#[derive(Actor)]
struct Echo;

#[messages(remote)]
impl Echo {
    #[message]
    fn echo(&self, text: String) -> String {
        text
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rejoins_with_a_new_incarnation() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = cluster(&ca, 3, None).await;
    let mut rx = nodes[0].subscribe();
    let old_incarnation = nodes[2]
        .members()
        .iter()
        .find(|m| m.name().as_str() == "n0")
        .map(|m| m.incarnation());
    assert!(old_incarnation.is_some());
    let n2_incarnation = nodes[0]
        .members()
        .iter()
        .find(|m| m.name().as_str() == "n2")
        .expect("n2")
        .incarnation();
    nodes[2].crash();
    let again = start(
        Node::builder("test", "n2")
            .ephemeral_certs(&ca)
            .seed(nodes[0].local_addr())
            .incarnation(Incarnation::new(n2_incarnation.get() + 1)),
    )
    .await;
    let joined = event(
        &mut rx,
        "new n2",
        |e| matches!(e, MembershipEvent::NodeJoined(m) if m.name().as_str() == "n2"),
    )
    .await;
    assert!(joined.member().incarnation() > n2_incarnation);
    again.wait_for_members(2, WAIT).await.expect("rejoined");
    // Its actors are reachable from the old members.
    let echo = again.spawn(Echo).await.expect("spawn");
    let addr = again.export(&echo);
    nodes[0]
        .wait_for_peer(again.node_id(), WAIT)
        .await
        .expect("connected");
    let remote: ActorRef<EchoMsg> = nodes[0].actor_ref(addr).await.expect("resolve");
    assert_eq!(
        remote.echo("hi".into()).timeout(WAIT).await,
        Ok("hi".to_string())
    );
}

/// Forwards supervision events (monitor DOWNs) to a channel.
struct Watch(mpsc::UnboundedSender<String>);
impl understudy::Actor for Watch {
    async fn on_supervision(
        &mut self,
        _: &Ctx<Self>,
        e: SupervisionEvent,
    ) -> Result<(), ActorError> {
        if let SupervisionEvent::ActorTerminated(_, _, reason) = e {
            let _ = self.0.send(reason.unwrap_or_default());
        }
        Ok(())
    }
}
#[messages]
impl Watch {
    #[message]
    fn noop(&self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_fails_the_other_side_fires_monitors_and_heals() {
    let plan = FaultPlan::new(3);
    let ca = ClusterCa::ephemeral("test");
    let nodes = cluster(&ca, 4, Some(&plan)).await;
    // A monitor from n0 on an actor on n2.
    let echo = nodes[2].spawn(Echo).await.expect("spawn");
    let addr = nodes[2].export(&echo);
    let remote: ActorRef<EchoMsg> = nodes[0].actor_ref(addr).await.expect("resolve");
    assert_eq!(
        remote.echo("x".into()).timeout(WAIT).await,
        Ok("x".to_string())
    );
    let (tx, mut downs) = mpsc::unbounded_channel();
    let watch = nodes[0].spawn(Watch(tx)).await.expect("watch");
    watch.get_cell().monitor(remote.get_cell());

    let mut rx0 = nodes[0].subscribe();
    let left_side: Vec<_> = nodes[..2].iter().map(|n| n.local_addr()).collect();
    let right_side: Vec<_> = nodes[2..].iter().map(|n| n.local_addr()).collect();
    plan.split(&left_side, &right_side);
    event(&mut rx0, "n2 failed", left("n2", LeaveReason::Failed)).await;
    let reason = tokio::time::timeout(WAIT, downs.recv())
        .await
        .expect("DOWN in time")
        .expect("open");
    assert_eq!(reason, NOCONNECTION);
    // Each side still has its own half.
    nodes[0]
        .wait_for_peer(nodes[1].node_id(), WAIT)
        .await
        .expect("n0-n1 intact");

    plan.heal_all();
    for node in &nodes {
        node.wait_for_members(3, WAIT).await.expect("healed");
    }
    // A fresh ref works again.
    let again: ActorRef<EchoMsg> = nodes[0].actor_ref(addr).await.expect("resolve again");
    assert_eq!(
        again.echo("y".into()).timeout(WAIT).await,
        Ok("y".to_string())
    );
}
