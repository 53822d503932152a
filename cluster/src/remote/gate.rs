//! The barrier gate: the concurrency kernel between a connection's lane readers and its
//! signal reader.
//!
//! Lane readers count the frames they deliver; the signal reader holds DOWNs and exit
//! signals until the counts reach their barriers (`Barriers`, pure). The two sides run on
//! different tasks, and the handshake between them is what makes a held signal never stuck:
//! the signal side announces that something waits (`waiting`) *before* it reads the counts,
//! and a lane reader bumps its count *before* it looks at `waiting`; with sequentially
//! consistent atomics, either the signal side sees the new count or the lane reader sees the
//! announcement and makes progress itself. Every read in the handshake is a read-modify-write
//! (`fetch_add(0)`), which always reads the latest value of its atomic: the argument then
//! holds with acquire/release alone, which is also all that loom models of `SeqCst`. Public
//! so that its loom models
//! (`cluster/tests/loom_gate.rs`) can drive it; the remote layer is its only other user.

use super::barrier::{BarrierError, Barriers};
use crate::sync::{AtomicU64, AtomicUsize, Mutex, Ordering, lock};

/// Signals of type `A` held until the lanes deliver what came before them.
pub struct BarrierGate<A> {
    read: Box<[AtomicU64]>,
    waiting: AtomicUsize,
    barriers: Mutex<Barriers<A>>,
}

impl<A> std::fmt::Debug for BarrierGate<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BarrierGate")
            .field("waiting", &self.waiting())
            .finish_non_exhaustive()
    }
}

impl<A> BarrierGate<A> {
    /// A gate for `lanes` lanes that holds signals of at most `limit` bytes together.
    pub fn new(lanes: usize, limit: usize) -> Self {
        BarrierGate {
            read: (0..lanes).map(|_| AtomicU64::new(0)).collect(),
            waiting: AtomicUsize::new(0),
            barriers: Mutex::new(Barriers::new(lanes, limit)),
        }
    }

    fn read_counts(&self) -> Vec<u64> {
        self.read
            .iter()
            .map(|r| r.fetch_add(0, Ordering::SeqCst))
            .collect()
    }

    /// Holds `action` until every lane `i` has delivered `after[i]` frames, then hands it
    /// (with any others now ready) to `act`, in arrival order. Returns the lanes that must
    /// now be read on even if backlogged (to wake their readers), or why the signal is
    /// refused (the connection should then be failed).
    pub fn defer(
        &self,
        after: Vec<u64>,
        action: A,
        cost: usize,
        act: impl FnMut(A),
    ) -> Result<Vec<usize>, BarrierError> {
        let mut barriers = lock(&self.barriers);
        // Announce the wait before reading the counts (see the module docs).
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let read = self.read_counts();
        let pushed = barriers.push(after, action, cost, &read);
        self.waiting.store(barriers.len(), Ordering::SeqCst);
        let ready = pushed?;
        let behind = (0..read.len())
            .filter(|&i| barriers.needed(i) > read[i])
            .collect();
        ready.into_iter().for_each(act);
        Ok(behind)
    }

    /// A lane delivered one more frame: hands the signals whose barriers are now met to
    /// `act`.
    pub fn delivered(&self, lane: usize, act: impl FnMut(A)) {
        if let Some(r) = self.read.get(lane) {
            r.fetch_add(1, Ordering::SeqCst);
        }
        if self.waiting.fetch_add(0, Ordering::SeqCst) == 0 {
            return;
        }
        let mut barriers = lock(&self.barriers);
        let read = self.read_counts();
        let ready = barriers.progress(&read);
        self.waiting.store(barriers.len(), Ordering::SeqCst);
        ready.into_iter().for_each(act);
    }

    /// Whether `lane` must be read on although its receivers are backlogged (a signal waits
    /// for frames on it).
    pub fn must_read(&self, lane: usize) -> bool {
        if self.waiting.fetch_add(0, Ordering::SeqCst) == 0 {
            return false;
        }
        let needed = lock(&self.barriers).needed(lane);
        self.read
            .get(lane)
            .is_some_and(|r| r.fetch_add(0, Ordering::SeqCst) < needed)
    }

    /// How many signals wait.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// How many frames `lane` has delivered.
    pub fn delivered_on(&self, lane: usize) -> u64 {
        self.read.get(lane).map_or(0, |r| r.load(Ordering::SeqCst))
    }
}

#[cfg(all(test, not(understudy_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_held_signal_fires_when_its_lane_catches_up() {
        let gate = BarrierGate::new(1, 64);
        let mut fired = Vec::new();
        assert_eq!(
            gate.defer(vec![2], "down", 1, |s| fired.push(s)),
            Ok(vec![0])
        );
        assert!(gate.must_read(0));
        gate.delivered(0, |s| fired.push(s));
        assert!(fired.is_empty());
        gate.delivered(0, |s| fired.push(s));
        assert_eq!(fired, vec!["down"]);
        assert_eq!(gate.waiting(), 0);
        assert!(!gate.must_read(0));
    }
}
