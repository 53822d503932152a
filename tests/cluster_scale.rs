//! 32 nodes over real QUIC + mTLS in one process converge to full membership and full mesh.
//! Its own test binary: cargo runs test binaries one at a time, so this CPU-heavy test never
//! starves the failure detectors of the other cluster tests.
#![cfg(feature = "cluster")]

use std::time::Duration;

use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_nodes_converge_in_one_process() {
    let ca = ClusterCa::ephemeral("test");
    let first = Node::builder("test", "n0")
        .ephemeral_certs(&ca)
        .start()
        .await
        .expect("n0");
    let mut nodes = vec![first];
    for i in 1..32 {
        let node = Node::builder("test", format!("n{i}"))
            .ephemeral_certs(&ca)
            .seed(nodes[0].local_addr())
            .start()
            .await
            .expect("node");
        nodes.push(node);
    }
    for node in &nodes {
        node.wait_for_members(31, Duration::from_secs(30))
            .await
            .expect("full membership");
    }
    // `wait_for_members` returned for every node: each saw all 31 others as members and had a
    // live connection to each at that moment.
}
