//! Barriers: signals that wait until the messages sent before them have been delivered.
//!
//! A DOWN (or an exit signal) travels on the signal stream, which is never paused, while the
//! messages the dead actor sent before it travel on the data lanes, which the receiver may
//! pause. So the sender stamps the signal with its lane counts ([`Barrier`]) and the receiver
//! holds it here until it has read that many frames from every lane. Held signals take
//! effect in the order they arrived: a later one never overtakes an earlier one, so two DOWNs
//! from one node are seen in the order their actors died.
//!
//! While a signal waits, the lanes it waits on are read even if their receivers are
//! backlogged ([`Barriers::needed`]): a stuck receiver on one lane must not hold a DOWN back
//! for ever. This module is pure; the session drives it.

use std::collections::VecDeque;

use crate::wire::Barrier;

/// Why a barrier signal was refused (the connection that sent it is failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierError {
    /// The barrier does not have one count per lane.
    #[error("a barrier with {got} lane counts on a connection with {lanes} lanes")]
    Shape {
        /// Counts in the barrier.
        got: usize,
        /// Lanes of the connection.
        lanes: usize,
    },
    /// More signals (in bytes) wait than any honest peer could make wait.
    #[error("signals of more than {0} bytes wait on their barriers")]
    TooMany(usize),
}

/// Signals waiting on their barriers, and how far each lane must be read for them.
#[derive(Debug)]
pub(crate) struct Barriers<A> {
    waiting: VecDeque<(Barrier, A, usize)>,
    needed: Vec<u64>,
    /// Bytes the waiting signals cost, and the most they may.
    held: usize,
    limit: usize,
}

impl<A> Barriers<A> {
    /// Barriers for a connection with `lanes` lanes, holding signals of at most `limit`
    /// bytes together.
    pub(crate) fn new(lanes: usize, limit: usize) -> Self {
        Barriers {
            waiting: VecDeque::new(),
            needed: vec![0; lanes],
            held: 0,
            limit,
        }
    }

    /// Takes a signal (of `cost` bytes) that must wait until every lane `i` has been read
    /// `after[i]` frames. Returns the signals that may take effect now (this one, if nothing
    /// waits before it and its barrier is met), in order.
    pub(crate) fn push(
        &mut self,
        after: Barrier,
        action: A,
        cost: usize,
        read: &[u64],
    ) -> Result<Vec<A>, BarrierError> {
        if after.len() != self.needed.len() {
            return Err(BarrierError::Shape {
                got: after.len(),
                lanes: self.needed.len(),
            });
        }
        if self.held.saturating_add(cost) > self.limit {
            return Err(BarrierError::TooMany(self.limit));
        }
        for (need, a) in self.needed.iter_mut().zip(&after) {
            *need = (*need).max(*a);
        }
        self.held += cost;
        self.waiting.push_back((after, action, cost));
        Ok(self.progress(read))
    }

    /// The signals whose barriers are met now that the lanes have been read `read[i]`
    /// frames, in order (stopping at the first that must still wait).
    pub(crate) fn progress(&mut self, read: &[u64]) -> Vec<A> {
        let mut ready = Vec::new();
        while let Some((after, _, _)) = self.waiting.front() {
            if after.iter().zip(read).any(|(a, r)| r < a) {
                break;
            }
            if let Some((_, action, cost)) = self.waiting.pop_front() {
                self.held -= cost;
                ready.push(action);
            }
        }
        ready
    }

    /// How many frames lane `lane` must be read for the waiting signals (read it even when
    /// its receivers are backlogged until then).
    pub(crate) fn needed(&self, lane: usize) -> u64 {
        self.needed.get(lane).copied().unwrap_or(0)
    }

    /// Whether any signal waits.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How many signals wait.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_met_barrier_takes_effect_at_once() {
        let mut b = Barriers::new(2, 10);
        assert_eq!(b.push(vec![3, 0], "down", 1, &[3, 5]), Ok(vec!["down"]));
        assert!(b.is_empty());
    }

    #[test]
    fn a_signal_waits_for_its_lanes_and_later_ones_wait_behind_it() {
        let mut b = Barriers::new(2, 10);
        assert_eq!(b.push(vec![4, 0], "first", 1, &[1, 0]), Ok(vec![]));
        // Met already, but the first one still waits.
        assert_eq!(b.push(vec![0, 1], "second", 1, &[1, 1]), Ok(vec![]));
        assert_eq!(b.needed(0), 4);
        assert_eq!(b.progress(&[3, 1]), Vec::<&str>::new());
        assert_eq!(b.progress(&[4, 1]), vec!["first", "second"]);
        assert!(b.is_empty());
    }

    #[test]
    fn malformed_or_too_many_barriers_are_refused() {
        let mut b = Barriers::new(2, 100);
        assert_eq!(
            b.push(vec![1], "x", 1, &[0, 0]),
            Err(BarrierError::Shape { got: 1, lanes: 2 })
        );
        assert_eq!(b.push(vec![9, 9], "y", 60, &[0, 0]), Ok(vec![]));
        assert_eq!(
            b.push(vec![9, 9], "z", 60, &[0, 0]),
            Err(BarrierError::TooMany(100))
        );
        // What took effect no longer counts.
        assert_eq!(b.progress(&[9, 9]), vec!["y"]);
        assert_eq!(b.push(vec![9, 9], "z", 60, &[0, 0]), Ok(vec![]));
    }

    proptest! {
        /// Whatever the interleaving of lane progress, signals take effect exactly once, in
        /// arrival order, and only once their barrier is met.
        #[test]
        fn signals_take_effect_once_in_order_and_never_early(
            afters in prop::collection::vec(prop::collection::vec(0u64..20, 3), 1..20),
            steps in prop::collection::vec((0usize..3, 1u64..4), 0..60),
        ) {
            let mut b = Barriers::new(3, 1000);
            let mut read = [0u64; 3];
            let mut fired = Vec::new();
            let check = |ready: Vec<usize>, read: &[u64; 3], fired: &mut Vec<usize>| {
                for i in ready {
                    prop_assert!(afters[i].iter().zip(read).all(|(a, r)| r >= a));
                    fired.push(i);
                }
                Ok(())
            };
            for (i, after) in afters.iter().enumerate() {
                let ready = b.push(after.clone(), i, 1, &read).expect("valid");
                check(ready, &read, &mut fired)?;
            }
            for (lane, n) in steps {
                read[lane] += n;
                let ready = b.progress(&read);
                check(ready, &read, &mut fired)?;
            }
            read = [20, 20, 20];
            let ready = b.progress(&read);
            check(ready, &read, &mut fired)?;
            prop_assert_eq!(fired, (0..afters.len()).collect::<Vec<_>>());
        }
    }
}
