//! A node's configuration: serde-typed (TOML file, environment, code), with LAN defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::extension::{ExtensionConfig, InvalidExtensionConfig};
use crate::identity::{ClusterName, InvalidName, NodeName};
use crate::membership::{InvalidMembershipConfig, MembershipConfig};
use crate::mesh::{InvalidMeshConfig, MeshConfig};
use crate::remote::{InvalidRemoteConfig, RemoteConfig};

/// Everything a node needs to start, apart from its certificates' contents.
///
/// ```
/// use understudy_cluster::node::NodeConfig;
/// let cfg: NodeConfig = toml::from_str(r#"
///     name = "alpha"
///     cluster = "prod"
///     bind = "0.0.0.0:7400"
///     seeds = ["10.0.0.2:7400", "10.0.0.3:7400"]
///     certs_dir = "/etc/understudy/certs"
///     [mesh]
///     lanes = 8
/// "#)?;
/// assert_eq!(cfg.mesh.lanes, 8);
/// assert_eq!(cfg.seeds.len(), 2);
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's name (unique in the cluster; must match its certificate).
    pub name: String,
    /// The cluster's name (must match the CA).
    pub cluster: String,
    /// Where the mesh listens (UDP). Port 0 picks a free one.
    #[serde(default = "default_bind")]
    pub bind: SocketAddr,
    /// Addresses of nodes to join through. Empty: start a new cluster.
    #[serde(default)]
    pub seeds: Vec<SocketAddr>,
    /// Directory with `ca.pem`, `<name>.pem` and `<name>.key` (see `understudy certs`).
    #[serde(default)]
    pub certs_dir: Option<PathBuf>,
    /// What the node is for (`"web"`, `"worker"`…), gossiped to every member.
    #[serde(default)]
    pub role: Option<String>,
    /// Where the node fails together with others (rack, zone); placement spreads over these.
    #[serde(default)]
    pub failure_domain: Option<String>,
    /// Whether the node may hold a Raft vote or stand by for one (the registry picks its
    /// voters and standbys among these). On by default; set it off for nodes that should
    /// only ever be registry clients (short-lived, or on weak hardware).
    #[serde(default = "default_true")]
    pub raft_eligible: bool,
    /// Among eligible nodes, higher is preferred as a voter.
    #[serde(default)]
    pub raft_priority: u8,
    /// Where the node keeps its durable state (the registry's Raft log under
    /// `<data_dir>/registry`). None: in memory, lost when the node stops.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// How long `leave()` waits at most for its goodbye and queued traffic to reach the
    /// peers before it closes the connections.
    #[serde(default = "default_leave_linger", with = "humantime_serde")]
    pub leave_linger: std::time::Duration,
    /// Mesh tuning.
    #[serde(default)]
    pub mesh: MeshConfig,
    /// Membership (SWIM) tuning.
    #[serde(default)]
    pub membership: MembershipConfig,
    /// Limits on remote-actor state a peer can make this node hold.
    #[serde(default)]
    pub remote: RemoteConfig,
    /// Limits on extension traffic a peer can make this node hold.
    #[serde(default)]
    pub extensions: ExtensionConfig,
}

/// Longest `leave_linger` accepted.
const MAX_LEAVE_LINGER: std::time::Duration = std::time::Duration::from_secs(60);

/// A node configuration that does not make sense; the variant says which part.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidConfig {
    /// The node or cluster name.
    #[error(transparent)]
    Name(#[from] InvalidName),
    /// The `[mesh]` section.
    #[error(transparent)]
    Mesh(#[from] InvalidMeshConfig),
    /// The `[membership]` section.
    #[error(transparent)]
    Membership(#[from] InvalidMembershipConfig),
    /// The `[remote]` section.
    #[error(transparent)]
    Remote(#[from] InvalidRemoteConfig),
    /// The `[extensions]` section.
    #[error(transparent)]
    Extensions(#[from] InvalidExtensionConfig),
    /// `leave_linger` is longer than a minute.
    #[error("leave_linger {0:?} is longer than the 60 s allowed")]
    LeaveLinger(std::time::Duration),
}

fn default_leave_linger() -> std::time::Duration {
    std::time::Duration::from_millis(500)
}

fn default_true() -> bool {
    true
}

fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

impl NodeConfig {
    /// A config with defaults for everything but the names.
    pub fn new(cluster: impl Into<String>, name: impl Into<String>) -> Self {
        NodeConfig {
            name: name.into(),
            cluster: cluster.into(),
            bind: default_bind(),
            seeds: Vec::new(),
            certs_dir: None,
            role: None,
            failure_domain: None,
            raft_eligible: true,
            raft_priority: 0,
            data_dir: None,
            leave_linger: default_leave_linger(),
            mesh: MeshConfig::default(),
            membership: MembershipConfig::default(),
            remote: RemoteConfig::default(),
            extensions: ExtensionConfig::default(),
        }
    }

    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks every value, saying what to change. [`NodeBuilder::start`](super::NodeBuilder::start)
    /// calls it before it binds anything.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        ClusterName::new(self.cluster.clone())?;
        NodeName::new(self.name.clone())?;
        self.mesh.validate()?;
        self.membership.validate()?;
        self.remote.validate()?;
        self.extensions.validate()?;
        if self.leave_linger > MAX_LEAVE_LINGER {
            return Err(InvalidConfig::LeaveLinger(self.leave_linger));
        }
        Ok(())
    }
}
