//! The registry's settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::RegistryError;

/// How the registry forms, how many nodes vote, and how long writes wait.
///
/// The node-level keys it also reads live in the node's configuration: `data_dir` (where the
/// Raft log goes; none keeps it in memory), `failure_domain`, `raft_eligible` and
/// `raft_priority`.
///
/// ```
/// use understudy_registry::RegistryConfig;
/// let cfg: RegistryConfig = toml::from_str(r#"
///     bootstrap_expect = 3
///     max_voters = 5
///     max_standbys = 2
///     write_deadline = "2s"
/// "#)?;
/// cfg.validate()?;
/// assert_eq!(cfg.bootstrap_expect, Some(3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// How many eligible nodes must see each other before the registry forms: 1 forms a
    /// single-node registry at once, 0 only joins an existing one. Unset: 1 for a node started
    /// without seeds (it starts a new cluster), 0 for one with seeds.
    pub bootstrap_expect: Option<usize>,
    /// The most voters (odd, 1 to 7). More voters survive more failures and make every write
    /// wait for more acknowledgements.
    pub max_voters: usize,
    /// Fully replicated non-voters kept ready to take a departed voter's seat.
    pub max_standbys: usize,
    /// How long a write waits for a quorum before it fails with `NoQuorum`.
    #[serde(with = "humantime_serde")]
    pub write_deadline: Duration,
    /// How often the leader tells followers it is alive.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in this range starts an election.
    #[serde(with = "humantime_serde")]
    pub election_timeout_min: Duration,
    /// See `election_timeout_min`.
    #[serde(with = "humantime_serde")]
    pub election_timeout_max: Duration,
    /// The voter set changes only after the membership view held still this long (so a
    /// flapping node does not churn the configuration).
    #[serde(with = "humantime_serde")]
    pub reconcile_debounce: Duration,
    /// A snapshot is taken every this many log entries; the log before it is dropped.
    pub snapshot_every: u64,
    /// The most names the registry holds.
    pub max_names: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            bootstrap_expect: None,
            max_voters: 5,
            max_standbys: 4,
            write_deadline: Duration::from_secs(5),
            heartbeat: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(250),
            election_timeout_max: Duration::from_millis(350),
            reconcile_debounce: Duration::from_millis(500),
            snapshot_every: 50_000,
            max_names: 1_000_000,
        }
    }
}

impl RegistryConfig {
    /// Checks every value, saying what to change.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let bad = |what: &str| Err(RegistryError::Config(what.to_owned()));
        if self.max_voters == 0 || self.max_voters > 7 || self.max_voters.is_multiple_of(2) {
            return bad("max_voters must be odd, from 1 to 7");
        }
        if self.max_standbys > 16 {
            return bad("max_standbys must be at most 16");
        }
        if self.heartbeat < Duration::from_millis(10) {
            return bad("heartbeat must be at least 10ms");
        }
        if self.election_timeout_min <= self.heartbeat * 2 {
            return bad("election_timeout_min must be more than twice the heartbeat");
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return bad("election_timeout_max must be more than election_timeout_min");
        }
        if self.write_deadline < self.election_timeout_max {
            return bad("write_deadline must be at least election_timeout_max");
        }
        if self.snapshot_every < 16 {
            return bad("snapshot_every must be at least 16");
        }
        if self.max_names == 0 {
            return bad("max_names must be at least 1");
        }
        Ok(())
    }
}
