//! Membership tuning, with LAN defaults chosen for the project's targets: a crashed node is
//! reported failed by every other node within 3 s, and a 50-node cluster converges within 1 s
//! of the last join.

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The largest SWIM packet a QUIC datagram carries at the minimum MTU (with a margin).
pub const MAX_DATAGRAM_PACKET: usize = 1140;

/// How membership behaves. Serde-typed (durations as `"300ms"`, `"30s"`), every field
/// optional in a file; the defaults suit a LAN.
///
/// # Why these defaults
///
/// Failure detection in SWIM takes, from the crash, the sum of:
///
/// 1. the wait until some node probes the dead one. Each of the n − 1 others probes one member
///    per `probe_period` P, round-robin over its own shuffled list, so the dead node sits at a
///    uniformly random slot of each prober's cycle of n − 1 periods, and
///    P(not probed by t) = (1 − t/((n − 1)P))^(n−1) ≈ e^(−t/P): a mean of about P and a 99th
///    percentile of about 4.6 P, whatever the cluster size;
/// 2. the rest of that probe period: a probe only counts as failed when the prober's next probe
///    starts, after the direct ping had `probe_rtt` and the indirect probes the remainder;
/// 3. `suspect_to_down`, the suspect's chance to refute;
/// 4. dissemination of the Down: a few `gossip_interval` rounds of fan-out 3 (0.1–0.3 s).
///
/// With P = 300 ms and 1 s of suspicion that is about 0.3 + 0.3 + 1.0 + 0.15 ≈ 1.75 s on
/// average and 1.4 + 0.3 + 1.0 + 0.3 ≈ 3 s at the 99th percentile, for the target of 3 s.
/// Measured (in-memory transport, 12 crashes each at 10 and 50 nodes): median 1.5–1.7 s,
/// worst 2.2 s. With P = 500 ms the worst of the same runs was 3.2 s; the architecture's first
/// sketch, memberlist's LAN profile (probe 1 s, suspicion ≈ 4 s), lands at 5–9 s.
///
/// `probe_rtt` 150 ms is far above a LAN round trip (well under 1 ms, plus one QUIC handshake
/// on first contact) and leaves the indirect probes (four hops) the other 150 ms. A suspicion
/// window of 1 s is three probe periods and ten gossip rounds: long enough for a live node to
/// hear that it is suspected and refute it even at 20 % packet loss (the tests run that),
/// short enough for the target. Probing every 300 ms costs each node about seven small
/// packets a second. Clusters of many hundreds of nodes, or WAN links, should raise all
/// three.
///
/// Convergence relies on the push-pull sync on join (a joiner gets the whole view in one round
/// trip, instead of waiting for round-robin probes or the periodic announce: measured 0.3 s vs
/// 44 s for 40 joins) and on gossip every 100 ms to 3 members (an update reaches n nodes in
/// about log₃ n rounds: 4 rounds, 0.4 s, for 50 nodes). Updates are piggybacked
/// `retransmit_mult · ⌈log₁₀(n + 1)⌉` times (memberlist's rule, recomputed as the cluster
/// grows) with a multiplier of 6 rather than memberlist's 4. With n nodes each relaying an
/// update t times to random members, a given node misses it with probability about
/// (1 − 1/n)^(n·t) ≈ e^(−t). At t = 8 (multiplier 4, 10–99 nodes) that is 3·10⁻⁴ per node and
/// update; a burst of 35 joins has some 1,200 such pairs, enough that a node often misses a
/// member until probing or the 30 s sync repairs it, seconds later. At t = 12 it is
/// e⁴ ≈ 55 times rarer, for a few more bytes per packet during the half second an update is
/// in flight.
///
/// `max_packet_size` 1140 fits a QUIC datagram at the minimum 1200-byte MTU (measured
/// `max_datagram_size()` 1162). It must be equal on all nodes: larger packets are refused.
///
/// ```
/// use std::time::Duration;
/// use understudy_cluster::membership::MembershipConfig;
///
/// let config = MembershipConfig::default();
/// assert_eq!(config.probe_period, Duration::from_millis(300));
/// assert!(config.validate().is_ok());
///
/// // Slower probing for a WAN: set the fields you need, keep the rest.
/// let wan = MembershipConfig {
///     probe_period: Duration::from_secs(2),
///     probe_rtt: Duration::from_secs(1),
///     suspect_to_down: Duration::from_secs(10),
///     ..MembershipConfig::default()
/// };
/// assert!(wan.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MembershipConfig {
    /// Every node probes one member this often.
    #[serde(with = "humantime_serde")]
    pub probe_period: Duration,
    /// How long a direct probe may take before members are asked to probe indirectly. Must be
    /// shorter than `probe_period`.
    #[serde(with = "humantime_serde")]
    pub probe_rtt: Duration,
    /// How many members are asked to probe indirectly (also the gossip fan-out of `leave`).
    pub indirect_probes: usize,
    /// How long a suspected member has to refute the suspicion before it is declared down.
    #[serde(with = "humantime_serde")]
    pub suspect_to_down: Duration,
    /// Updates are piggybacked `retransmit_mult · ⌈log₁₀(n + 1)⌉` times in a cluster of n.
    pub retransmit_mult: u8,
    /// Periodic gossip of pending updates; also the shortest gap between two load changes
    /// sent to every member (changes in between are coalesced).
    #[serde(with = "humantime_serde")]
    pub gossip_interval: Duration,
    /// Members each periodic gossip goes to.
    pub gossip_fanout: usize,
    /// The largest SWIM packet sent or accepted; at most [`MAX_DATAGRAM_PACKET`] and the same
    /// on every node.
    pub max_packet_size: usize,
    /// How often a connected node announces itself to a random member (anti-entropy, beside
    /// the push-pull sync).
    #[serde(with = "humantime_serde")]
    pub announce_interval: Duration,
    /// How often a connected node announces itself to two members it considers down, so that
    /// the two sides of a healed partition find each other.
    #[serde(with = "humantime_serde")]
    pub announce_down_interval: Duration,
    /// How long a down member is remembered (and announced to; after this it can only come
    /// back through seeds or by announcing itself).
    #[serde(with = "humantime_serde")]
    pub remove_down_after: Duration,
    /// Periodic push-pull sync with one random member (one also runs on every join).
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// How long one sync may take, each way: the node that starts a sync gives up on an
    /// answer after this long, and the node that answers gives the requester this long to
    /// send its request and again this long to take the answer, then drops the stream (so a
    /// peer that opens sync streams and stalls cannot hold them).
    #[serde(with = "humantime_serde")]
    pub sync_timeout: Duration,
    /// The most node records a push-pull sync payload may carry. A sync carries the sender's
    /// whole view, so this bounds the cluster size (with the records of recently departed
    /// nodes); a peer's payload beyond it is refused before it is decoded, so no peer can make
    /// this node build an arbitrarily large table in one sync. A node whose own view is larger
    /// sends the live members first and cuts the rest.
    pub max_sync_members: usize,
    /// First delay between announces to the seeds while the node is not connected; doubles
    /// (with ±25 % jitter) up to `seed_retry_max`, and starts over whenever the node becomes
    /// isolated again.
    #[serde(with = "humantime_serde")]
    pub seed_retry_initial: Duration,
    /// Longest delay between announces to the seeds.
    #[serde(with = "humantime_serde")]
    pub seed_retry_max: Duration,
    /// How often the node sends its load to every member again (lost packets), if it set one.
    #[serde(with = "humantime_serde")]
    pub load_refresh: Duration,
    /// Events buffered per subscriber before a slow subscriber misses some (it then gets a
    /// `Lagged` error and should re-read the snapshot).
    pub event_buffer: usize,
    /// Inbound packets and sync requests queued for the membership task before new ones are
    /// dropped (SWIM tolerates loss; a full queue means the task is overloaded).
    pub inbound_queue: usize,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            probe_period: Duration::from_millis(300),
            probe_rtt: Duration::from_millis(150),
            indirect_probes: 3,
            suspect_to_down: Duration::from_secs(1),
            retransmit_mult: 6,
            gossip_interval: Duration::from_millis(100),
            gossip_fanout: 3,
            max_packet_size: MAX_DATAGRAM_PACKET,
            announce_interval: Duration::from_secs(30),
            announce_down_interval: Duration::from_secs(10),
            remove_down_after: Duration::from_secs(3600),
            sync_interval: Duration::from_secs(30),
            sync_timeout: Duration::from_secs(5),
            max_sync_members: DEFAULT_MAX_SYNC_MEMBERS,
            seed_retry_initial: Duration::from_millis(200),
            seed_retry_max: Duration::from_secs(5),
            load_refresh: Duration::from_secs(10),
            event_buffer: 1024,
            inbound_queue: 4096,
        }
    }
}

/// A membership configuration that does not make sense, and what to change.
///
/// ```
/// use std::time::Duration;
/// use understudy_cluster::membership::MembershipConfig;
/// let bad = MembershipConfig { probe_rtt: Duration::from_secs(1), ..Default::default() };
/// assert!(bad.validate().unwrap_err().to_string().contains("probe_rtt"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid membership configuration: {0}")]
pub struct InvalidMembershipConfig(pub(crate) String);

/// The smallest `max_packet_size` that still fits a header (two identities) and some updates.
const MIN_PACKET: usize = 512;

/// The default [`MembershipConfig::max_sync_members`]: far above the clusters this crate aims
/// at (tens to a few hundred nodes), and at about 70 bytes a record still a payload of a few
/// hundred KiB.
const DEFAULT_MAX_SYNC_MEMBERS: usize = 4096;

/// The longest interval or timeout accepted.
const MAX_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest `remove_down_after` accepted.
const MAX_REMOVE_DOWN_AFTER: Duration = Duration::from_secs(30 * 24 * 60 * 60);

impl MembershipConfig {
    /// Checks the values, saying what to change.
    pub fn validate(&self) -> Result<(), InvalidMembershipConfig> {
        let bad = |m: &str| Err(InvalidMembershipConfig(m.to_owned()));
        if self.probe_period.is_zero() || self.probe_rtt.is_zero() {
            return bad("probe_period and probe_rtt must be positive");
        }
        if self.probe_rtt >= self.probe_period {
            return bad("probe_rtt must be shorter than probe_period");
        }
        if self.suspect_to_down.is_zero() {
            return bad("suspect_to_down must be positive");
        }
        if self.indirect_probes == 0 || self.gossip_fanout == 0 || self.retransmit_mult == 0 {
            return bad("indirect_probes, gossip_fanout and retransmit_mult must be at least 1");
        }
        if !(MIN_PACKET..=MAX_DATAGRAM_PACKET).contains(&self.max_packet_size) {
            return bad("max_packet_size must be between 512 and 1140 bytes (a QUIC datagram)");
        }
        let periods = [
            self.gossip_interval,
            self.announce_interval,
            self.announce_down_interval,
            self.remove_down_after,
            self.sync_interval,
            self.sync_timeout,
            self.seed_retry_initial,
            self.load_refresh,
        ];
        if periods.iter().any(Duration::is_zero) {
            return bad("intervals and timeouts must be positive");
        }
        // Timers are set as `now + setting`: bounded settings can never overflow the clock.
        let timers = [
            self.probe_period,
            self.probe_rtt,
            self.suspect_to_down,
            self.gossip_interval,
            self.announce_interval,
            self.announce_down_interval,
            self.sync_interval,
            self.sync_timeout,
            self.seed_retry_initial,
            self.seed_retry_max,
            self.load_refresh,
        ];
        if timers.iter().any(|d| *d > MAX_PERIOD) || self.remove_down_after > MAX_REMOVE_DOWN_AFTER
        {
            return bad(
                "intervals and timeouts must be at most 24 hours (remove_down_after at most 30 days)",
            );
        }
        if self.seed_retry_max < self.seed_retry_initial {
            return bad("seed_retry_max must be at least seed_retry_initial");
        }
        if self.event_buffer == 0 || self.inbound_queue == 0 {
            return bad("event_buffer and inbound_queue must be at least 1");
        }
        if self.max_sync_members < 2 {
            return bad(
                "max_sync_members must be at least 2 (a sync carries its sender and the members \
                 it knows); set it above the cluster size",
            );
        }
        Ok(())
    }

    /// How many times an update is piggybacked in a cluster of `cluster_size` nodes.
    pub(crate) fn max_transmissions(&self, cluster_size: usize) -> NonZeroU8 {
        // ⌈log₁₀(n + 1)⌉ without floats: the number of decimal digits of n.
        let mut digits = 1u32;
        let mut n = cluster_size.max(1);
        while n >= 10 {
            n /= 10;
            digits += 1;
        }
        let tx = u32::from(self.retransmit_mult).saturating_mul(digits);
        NonZeroU8::new(u8::try_from(tx).unwrap_or(u8::MAX)).unwrap_or(NonZeroU8::MIN)
    }

    /// The foca configuration for a cluster of `cluster_size` (only `max_transmissions`
    /// depends on it, and only that may change on a running foca).
    pub(crate) fn foca(&self, cluster_size: usize) -> foca::Config {
        let params = |frequency, num_members: usize| {
            Some(foca::PeriodicParams {
                frequency,
                num_members: NonZeroUsize::new(num_members).unwrap_or(NonZeroUsize::MIN),
            })
        };
        foca::Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_rtt,
            num_indirect_probes: NonZeroUsize::new(self.indirect_probes)
                .unwrap_or(NonZeroUsize::MIN),
            max_transmissions: self.max_transmissions(cluster_size),
            suspect_to_down_after: self.suspect_to_down,
            remove_down_after: Some(self.remove_down_after),
            max_packet_size: NonZeroUsize::new(self.max_packet_size).unwrap_or(NonZeroUsize::MIN),
            notify_down_members: true,
            periodic_announce: params(self.announce_interval, 1),
            periodic_announce_to_down_members: params(self.announce_down_interval, 2),
            periodic_gossip: params(self.gossip_interval, self.gossip_fanout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let config = MembershipConfig::default();
        config.validate().expect("defaults");
        let bytes = postcard::to_stdvec(&config).expect("encode");
        // Durations travel as humantime strings.
        assert!(String::from_utf8_lossy(&bytes).contains("300ms"));
        let back: MembershipConfig = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, config);
    }

    #[test]
    fn max_transmissions_grow_with_log_n() {
        let c = MembershipConfig::default();
        assert_eq!(c.max_transmissions(1).get(), 6);
        assert_eq!(c.max_transmissions(9).get(), 6);
        assert_eq!(c.max_transmissions(10).get(), 12);
        assert_eq!(c.max_transmissions(50).get(), 12);
        assert_eq!(c.max_transmissions(100).get(), 18);
        let huge = MembershipConfig {
            retransmit_mult: 200,
            ..c
        };
        assert_eq!(huge.max_transmissions(1000).get(), 255);
    }

    #[test]
    fn nonsense_is_refused() {
        let base = MembershipConfig::default();
        let cases = [
            MembershipConfig {
                probe_rtt: base.probe_period,
                ..base.clone()
            },
            MembershipConfig {
                max_packet_size: 1400,
                ..base.clone()
            },
            MembershipConfig {
                gossip_fanout: 0,
                ..base.clone()
            },
            MembershipConfig {
                seed_retry_max: Duration::from_millis(1),
                ..base.clone()
            },
            MembershipConfig {
                sync_interval: Duration::ZERO,
                ..base.clone()
            },
            MembershipConfig {
                max_sync_members: 1,
                ..base.clone()
            },
        ];
        for case in cases {
            assert!(case.validate().is_err(), "{case:?}");
        }
    }
}
