//! 32 nodes over real QUIC + mTLS in one process converge to full membership and full mesh.
//! Its own test binary: cargo runs test binaries one at a time, so this CPU-heavy test never
//! starves the failure detectors of the other cluster tests.
#![cfg(feature = "cluster")]

mod common;

use std::time::Duration;

use understudy::cluster::certs::ClusterCa;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_nodes_converge_in_one_process() {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster(&ca, 32, None, Duration::from_secs(30)).await;
    assert_eq!(nodes.len(), 32);
    // `wait_for_members` returned for every node: each saw all 31 others as members and had a
    // live connection to each at that moment.
}
