//! Tuning knobs of the mesh, with LAN defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wire::DEFAULT_MAX_FRAME;

/// How the mesh behaves. The defaults suit a LAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshConfig {
    /// Ordered actor lanes per connection direction (1–64). More lanes mean less head-of-line
    /// blocking between actors; each is one QUIC stream.
    pub lanes: usize,
    /// The largest frame accepted or sent, in bytes.
    pub max_frame: usize,
    /// Bytes a lane may hold waiting for the network before sends fail with "overloaded"
    /// (backpressure instead of unbounded memory for a slow peer).
    pub lane_buffer: usize,
    /// A connection with no traffic for this long is closed (keep-alives prevent it while the
    /// peer lives). SWIM, not this, decides that a node failed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Keep-alive interval (a third of the idle timeout by default).
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// How long a dial (QUIC + TLS handshake + Hello) may take.
    #[serde(with = "humantime_serde")]
    pub dial_timeout: Duration,
    /// First delay before redialing a peer that could not be reached; doubles up to
    /// [`MeshConfig::redial_max`].
    #[serde(with = "humantime_serde")]
    pub redial_min: Duration,
    /// Longest delay between redials.
    #[serde(with = "humantime_serde")]
    pub redial_max: Duration,
    /// How long a node waits for a wanted peer with a lower node id to dial it before it
    /// dials itself. Only one side dialing halves the handshakes when many nodes start at
    /// once; the wait keeps a pair from never connecting if the lower one does not want it.
    #[serde(with = "humantime_serde")]
    pub dial_grace: Duration,
    /// TLS handshakes (dials and accepts) in progress at once; more wait their turn, so a
    /// burst of joins does not starve every handshake of CPU at the same time.
    pub max_handshakes: usize,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            lanes: 4,
            max_frame: DEFAULT_MAX_FRAME,
            lane_buffer: 16 * 1024 * 1024,
            idle_timeout: Duration::from_secs(20),
            keep_alive: Duration::from_secs(7),
            dial_timeout: Duration::from_secs(5),
            redial_min: Duration::from_millis(100),
            redial_max: Duration::from_secs(5),
            dial_grace: Duration::from_millis(500),
            max_handshakes: 16,
        }
    }
}

/// A mesh configuration that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mesh configuration: {0}")]
pub struct InvalidMeshConfig(pub String);

/// The longest duration a setting may have: far beyond any sensible value, and small enough
/// that adding it to a clock reading cannot overflow.
pub(crate) const MAX_SETTING: Duration = Duration::from_secs(24 * 60 * 60);

impl MeshConfig {
    /// Checks the values, saying what to change.
    pub fn validate(&self) -> Result<(), InvalidMeshConfig> {
        let bad = |m: &str| Err(InvalidMeshConfig(m.to_owned()));
        if !(1..=64).contains(&self.lanes) {
            return bad("lanes must be between 1 and 64");
        }
        if self.max_frame < 1024 || self.max_frame > 1 << 30 {
            return bad("max_frame must be between 1 KiB and 1 GiB");
        }
        if self.lane_buffer < self.max_frame {
            return bad(
                "lane_buffer must be at least max_frame, or the largest message could never be sent",
            );
        }
        if self.keep_alive.is_zero() || self.keep_alive >= self.idle_timeout {
            return bad("keep_alive must be positive and shorter than idle_timeout");
        }
        if self.dial_timeout.is_zero()
            || self.redial_min.is_zero()
            || self.redial_max < self.redial_min
        {
            return bad(
                "dial_timeout and redial_min must be positive, and redial_max at least redial_min",
            );
        }
        let durations = [
            self.idle_timeout,
            self.keep_alive,
            self.dial_timeout,
            self.redial_min,
            self.redial_max,
            self.dial_grace,
        ];
        if durations.iter().any(|d| *d > MAX_SETTING) {
            return bad("durations must be at most 24 hours");
        }
        if self.max_handshakes == 0 || self.max_handshakes > 4096 {
            return bad("max_handshakes must be between 1 and 4096");
        }
        if self.lane_buffer > 1 << 30 {
            return bad("lane_buffer must be at most 1 GiB");
        }
        Ok(())
    }
}
