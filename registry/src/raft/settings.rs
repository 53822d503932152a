//! The registry's settings as openraft's.

use std::sync::Arc;

use openraft::{Config, SnapshotPolicy};

use crate::config::RegistryConfig;
use crate::error::RegistryError;

/// openraft's configuration for `cfg`, tuned for a LAN: a heartbeat each `heartbeat`
/// (100 ms; it is also the AppendEntries timeout), elections after 250–350 ms of silence,
/// pre-vote on.
pub(crate) fn raft_config(cfg: &RegistryConfig) -> Result<Arc<Config>, RegistryError> {
    let ms = |d: std::time::Duration| d.as_millis().max(1) as u64;
    let config = Config {
        cluster_name: "understudy-registry".into(),
        heartbeat_interval: ms(cfg.heartbeat),
        election_timeout_min: ms(cfg.election_timeout_min),
        election_timeout_max: ms(cfg.election_timeout_max),
        // A node that hears no leader asks first whether it could win, so a node back from a
        // partition does not bump the term and depose a working leader.
        enable_pre_vote: Some(true),
        // Real snapshots take longer than openraft's 200 ms default to send.
        install_snapshot_timeout: 10_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every),
        purge_batch_size: 64,
        // Above the snapshot interval, as openraft asks; catch-up is judged from the
        // replication metrics instead.
        replication_lag_threshold: cfg.snapshot_every.saturating_mul(2),
        max_payload_entries: 300,
        backoff: "50ms".into(),
        ..Default::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| RegistryError::Config(format!("the Raft settings do not hold together: {e}")))
}
