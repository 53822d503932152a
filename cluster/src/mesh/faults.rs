//! A fault-injecting UDP socket for tests: partitions and packet loss for real QUIC, in one
//! process, with no root and no network namespace.
//!
//! All nodes of a test share one [`FaultPlan`]. Each node's socket consults it on every
//! outgoing datagram: a datagram to a blocked destination, or one picked by the seeded loss
//! roll, is silently dropped (`Ok(())` to quinn, exactly like a lossy network). Transmits are
//! limited to one datagram each so loss applies per packet, not per GSO batch.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// The faults in force, shared by all sockets of a test.
///
/// ```
/// use understudy_cluster::mesh::FaultPlan;
/// let plan = FaultPlan::new(42);
/// let (a, b) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
/// plan.partition(a, b);
/// assert!(plan.is_blocked(a, b) && plan.is_blocked(b, a));
/// plan.heal_all();
/// assert!(!plan.is_blocked(a, b));
/// ```
#[derive(Clone)]
pub struct FaultPlan {
    inner: Arc<Mutex<Plan>>,
    dropped: Arc<AtomicU64>,
}

struct Plan {
    blocked: HashSet<(SocketAddr, SocketAddr)>,
    isolated: HashSet<SocketAddr>,
    loss_per_mille: u32,
    rng: u64,
}

impl fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultPlan")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl FaultPlan {
    /// No faults yet; `seed` drives the loss roll.
    pub fn new(seed: u64) -> Self {
        FaultPlan {
            inner: Arc::new(Mutex::new(Plan {
                blocked: HashSet::new(),
                isolated: HashSet::new(),
                loss_per_mille: 0,
                rng: seed | 1,
            })),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts both directions between `a` and `b`.
    pub fn partition(&self, a: SocketAddr, b: SocketAddr) {
        let mut p = self.plan();
        p.blocked.insert((a, b));
        p.blocked.insert((b, a));
    }

    /// Cuts every pair across the two groups.
    pub fn split(&self, left: &[SocketAddr], right: &[SocketAddr]) {
        for &a in left {
            for &b in right {
                self.partition(a, b);
            }
        }
    }

    /// Cuts `addr` off from everyone.
    pub fn isolate(&self, addr: SocketAddr) {
        self.plan().isolated.insert(addr);
    }

    /// Removes every partition and isolation (loss stays).
    pub fn heal_all(&self) {
        let mut p = self.plan();
        p.blocked.clear();
        p.isolated.clear();
    }

    /// Drops this share of all datagrams (in thousandths: 200 = 20 %).
    pub fn set_loss(&self, per_mille: u32) {
        self.plan().loss_per_mille = per_mille.min(1000);
    }

    /// Whether datagrams from `from` to `to` are cut.
    pub fn is_blocked(&self, from: SocketAddr, to: SocketAddr) -> bool {
        let p = self.plan();
        p.isolated.contains(&from) || p.isolated.contains(&to) || p.blocked.contains(&(from, to))
    }

    /// How many datagrams were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn should_drop(&self, from: SocketAddr, to: SocketAddr) -> bool {
        let mut p = self.plan();
        let drop = p.isolated.contains(&from)
            || p.isolated.contains(&to)
            || p.blocked.contains(&(from, to))
            || (p.loss_per_mille > 0 && {
                // xorshift64: deterministic for a seed, cheap, good enough for a loss roll.
                let mut x = p.rng;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p.rng = x;
                (x % 1000) < u64::from(p.loss_per_mille)
            });
        if drop {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop
    }
}

/// quinn's socket with an optional [`FaultPlan`] and a kill switch.
///
/// The kill switch makes a node fall silent at once, as a crashed process does: nothing goes
/// out and nothing comes in, so peers learn of the death only from SWIM (a clean `close`
/// would tell them at once, which no real crash does).
#[derive(Debug)]
pub(crate) struct FaultySocket {
    inner: Arc<dyn AsyncUdpSocket>,
    local: SocketAddr,
    plan: Option<FaultPlan>,
    silenced: Arc<std::sync::atomic::AtomicBool>,
}

impl FaultySocket {
    pub(crate) fn new(
        inner: Arc<dyn AsyncUdpSocket>,
        plan: Option<FaultPlan>,
        silenced: Arc<std::sync::atomic::AtomicBool>,
    ) -> io::Result<Self> {
        let local = inner.local_addr()?;
        Ok(FaultySocket {
            inner,
            local,
            plan,
            silenced,
        })
    }

    fn is_silenced(&self) -> bool {
        self.silenced.load(Ordering::Relaxed)
    }
}

impl AsyncUdpSocket for FaultySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        if self.is_silenced()
            || self
                .plan
                .as_ref()
                .is_some_and(|p| p.should_drop(self.local, transmit.destination))
        {
            return Ok(());
        }
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        // A silenced node swallows what arrives (and keeps polling so quinn stays quiet).
        loop {
            match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(_)) if self.is_silenced() => continue,
                other => return other,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        // Per-packet loss needs one datagram per transmit; without a plan, keep GSO.
        if self.plan.is_some() {
            1
        } else {
            self.inner.max_transmit_segments()
        }
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}
