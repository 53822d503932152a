//! # understudy-cluster
//!
//! The cluster extension of [understudy](https://github.com/understudy-rs/understudy): nodes
//! that find each other, talk over a mutually authenticated mesh, and host actors that other
//! nodes address as if they were local.
//!
//! This crate grows in layers. Here now:
//!
//! - [`identity`]: who a node is — [`NodeName`], [`ClusterName`], the [`NodeId`] derived from
//!   them, and the [`Incarnation`] that tells restarts apart.
//! - [`certs`]: the cluster CA, node certificates, and the check that a TLS peer is the node it
//!   claims to be. The `understudy certs init|issue` commands are built on it.
//! - [`membership`]: SWIM membership (foca) behind a small transport trait — who is alive,
//!   joins through seeds, graceful leave vs failure, `NodeJoined`/`NodeLeft`/`NodeUpdated`
//!   events — with an in-memory transport for tests.
//!
//! Next: the QUIC mesh, remote actors and the extension API (see the
//! architecture notes, §4).
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
pub mod wire;

pub use certs::{CertError, ClusterCa, ClusterTrust, IdentityMismatch, NodeCert};
pub use identity::{ClusterName, Incarnation, InvalidName, NodeIdentity, NodeName};
pub use understudy_actor::NodeId;
