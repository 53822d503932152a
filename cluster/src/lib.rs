//! # understudy-cluster
//!
//! The cluster extension of [understudy](https://github.com/understudy-rs/understudy): nodes
//! that find each other, talk over a mutually authenticated mesh, and host actors that other
//! nodes address as if they were local.
//!
//! What is here:
//!
//! - [`identity`]: who a node is — [`NodeName`], [`ClusterName`], the [`NodeId`] derived from
//!   them, and the [`Incarnation`] that tells restarts apart.
//! - [`certs`]: the cluster CA, node certificates, and the check that a TLS peer is the node it
//!   claims to be. The `understudy certs init|issue` commands are built on it.
//! - [`mesh`]: the mTLS QUIC mesh — one connection per pair of nodes, ordered lanes, a control
//!   stream, datagrams — and a fault-injecting socket for tests.
//! - [`membership`]: SWIM membership (foca) behind a small transport trait — who is alive,
//!   joins through seeds, graceful leave vs failure, `NodeJoined`/`NodeLeft`/`NodeUpdated`
//!   events — with an in-memory transport for tests.
//! - [`remote`]: remote actors as ordinary `ActorRef`s, with monitors and links that fire
//!   with `noconnection` when a node goes away.
//! - [`extension`]: services that run on every node (process groups, the registry, locks,
//!   yours), with their own channel to their peers.
//! - [`node`]: the [`Node`](node::Node) handle that puts it all together.
//!
//! Applications normally use this crate through the facade: `understudy::cluster`.
//!
//! ```
//! use understudy_cluster::certs::ClusterCa;
//! use understudy_cluster::identity::{Incarnation, NodeName};
//!
//! // A cluster for a test: an in-memory CA and one node.
//! let ca = ClusterCa::ephemeral("demo");
//! let cert = ca.issue(&NodeName::new("alpha")?)?;
//! let me = cert.identity(Incarnation::fresh(None));
//! assert_eq!(me.name().as_str(), "alpha");
//! assert!(ca.trust().verify_node_cert(&cert).is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod certs;
pub mod extension;
pub mod identity;
pub mod membership;
pub mod mesh;
pub mod node;
pub mod remote;
pub(crate) mod sync;
pub mod wire;

pub use certs::{CertError, ClusterCa, ClusterTrust, IdentityMismatch, NodeCert};
pub use identity::{ClusterName, Incarnation, InvalidName, NodeIdentity, NodeName};
pub use understudy_actor::NodeId;
