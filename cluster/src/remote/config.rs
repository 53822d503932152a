//! Limits on what peers can make this node hold for remote actors.

use serde::{Deserialize, Serialize};

/// How much remote-actor state one peer may make this node hold. The defaults suit a LAN.
///
/// ```
/// use understudy_cluster::remote::RemoteConfig;
/// let cfg: RemoteConfig = toml::from_str("lane_backlog = 4194304")?;
/// assert_eq!(cfg.lane_backlog, 4 << 20);
/// assert!(cfg.validate().is_ok());
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// Bytes of messages one incoming lane may have waiting in actors' mailboxes. Past it the
    /// lane is not read until the actors catch up, and the sender's lane fills until its
    /// sends fail with `Overloaded`. Each message counts its payload plus a fixed overhead.
    pub lane_backlog: usize,
    /// Monitors one peer may hold on this node's actors (one per remote ref it resolves).
    pub max_monitors_per_peer: usize,
    /// Links one peer may make to this node's actors.
    pub max_links_per_peer: usize,
    /// Proxies of one node's actors that refs arriving inside messages may make this node
    /// hold (a proxy lives until its actor exits). A message whose refs would pass it is
    /// rejected. Refs resolved by the application itself (`Node::actor_ref`) are not capped.
    pub max_proxies_per_peer: usize,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            lane_backlog: 8 << 20,
            max_monitors_per_peer: 1 << 20,
            max_links_per_peer: 1 << 16,
            max_proxies_per_peer: 1 << 16,
        }
    }
}

/// A remote configuration that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid remote configuration: {0}")]
pub struct InvalidRemoteConfig(pub String);

impl RemoteConfig {
    /// Checks the values, saying what to change.
    pub fn validate(&self) -> Result<(), InvalidRemoteConfig> {
        let bad = |m: &str| Err(InvalidRemoteConfig(m.to_owned()));
        if !(64 * 1024..=1 << 30).contains(&self.lane_backlog) {
            return bad("lane_backlog must be between 64 KiB and 1 GiB");
        }
        if self.max_monitors_per_peer == 0
            || self.max_links_per_peer == 0
            || self.max_proxies_per_peer == 0
        {
            return bad(
                "max_monitors_per_peer, max_links_per_peer and max_proxies_per_peer must be positive",
            );
        }
        Ok(())
    }
}
