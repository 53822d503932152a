//! The tables peers fill: which remote proxies watch which local actors, and which remote
//! actors are linked to which local ones. Pure and bounded: a peer's signals can add at most
//! a configured number of entries per connection, and asking twice adds nothing.

use std::collections::{HashMap, HashSet};

/// A peer tried to add more entries than its connection may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a peer asked for more than {limit} {what} on one connection")]
pub(crate) struct TooMany {
    pub(crate) what: &'static str,
    pub(crate) limit: usize,
}

/// Who, on which connection, watches a local actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Interest {
    /// The connection (link serial) the watcher is on.
    pub(crate) serial: u64,
    /// The watching proxy's key on the peer.
    pub(crate) watcher: u64,
}

/// Local actor pid → the remote proxies that want its DOWN.
#[derive(Debug)]
pub(crate) struct Interests {
    by_target: HashMap<u64, HashSet<Interest>>,
    per_link: HashMap<u64, usize>,
    limit: usize,
}

impl Interests {
    /// A table that holds at most `limit` interests per connection.
    pub(crate) fn new(limit: usize) -> Self {
        Interests {
            by_target: HashMap::new(),
            per_link: HashMap::new(),
            limit,
        }
    }

    /// Records that `watcher` on connection `serial` watches `target`. Returns whether it is
    /// new (a repeated monitor is recorded once, and gets one DOWN).
    pub(crate) fn add(&mut self, serial: u64, target: u64, watcher: u64) -> Result<bool, TooMany> {
        let interest = Interest { serial, watcher };
        if self
            .by_target
            .get(&target)
            .is_some_and(|s| s.contains(&interest))
        {
            return Ok(false);
        }
        let count = self.per_link.entry(serial).or_insert(0);
        if *count >= self.limit {
            return Err(TooMany {
                what: "monitors",
                limit: self.limit,
            });
        }
        *count += 1;
        self.by_target.entry(target).or_default().insert(interest);
        Ok(true)
    }

    /// Forgets one interest. Returns whether it was there.
    pub(crate) fn remove(&mut self, serial: u64, target: u64, watcher: u64) -> bool {
        let Some(set) = self.by_target.get_mut(&target) else {
            return false;
        };
        if !set.remove(&Interest { serial, watcher }) {
            return false;
        }
        if set.is_empty() {
            self.by_target.remove(&target);
        }
        self.uncount(serial, 1);
        true
    }

    /// Takes every interest in `target` (it exited).
    pub(crate) fn take(&mut self, target: u64) -> Vec<Interest> {
        let taken: Vec<Interest> = self
            .by_target
            .remove(&target)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        for i in &taken {
            self.uncount(i.serial, 1);
        }
        taken
    }

    /// Forgets everything connection `serial` asked for (it closed).
    pub(crate) fn drop_link(&mut self, serial: u64) {
        if self.per_link.remove(&serial).is_none() {
            return;
        }
        self.by_target.retain(|_, set| {
            set.retain(|i| i.serial != serial);
            !set.is_empty()
        });
    }

    /// Whether anyone watches `target`.
    pub(crate) fn is_watched(&self, target: u64) -> bool {
        self.by_target.contains_key(&target)
    }

    /// How many interests are held, all connections together.
    pub(crate) fn len(&self) -> usize {
        self.per_link.values().sum()
    }

    /// How many interests connection `serial` holds.
    #[cfg(test)]
    pub(crate) fn count(&self, serial: u64) -> usize {
        self.per_link.get(&serial).copied().unwrap_or(0)
    }

    fn uncount(&mut self, serial: u64, n: usize) {
        if let Some(c) = self.per_link.get_mut(&serial) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                self.per_link.remove(&serial);
            }
        }
    }
}

/// Links a peer made from its actors to ours on one connection: (their pid, our pid) → the
/// key of the proxy that stands for their actor here.
#[derive(Debug)]
pub(crate) struct LinkedPairs {
    pairs: HashMap<(u64, u64), u64>,
    limit: usize,
}

impl LinkedPairs {
    /// A table of at most `limit` links.
    pub(crate) fn new(limit: usize) -> Self {
        LinkedPairs {
            pairs: HashMap::new(),
            limit,
        }
    }

    /// Reserves the pair (their `from`, our `to`). `Ok(false)` if it is linked already.
    pub(crate) fn reserve(&mut self, from: u64, to: u64) -> Result<bool, TooMany> {
        if self.pairs.contains_key(&(from, to)) {
            return Ok(false);
        }
        if self.pairs.len() >= self.limit {
            return Err(TooMany {
                what: "links",
                limit: self.limit,
            });
        }
        // Key 0 until the proxy exists; no proxy key is 0.
        self.pairs.insert((from, to), 0);
        Ok(true)
    }

    /// Records the proxy of a reserved pair. `false` if the pair was removed meanwhile
    /// (unlinked before its proxy existed).
    pub(crate) fn set_proxy(&mut self, from: u64, to: u64, key: u64) -> bool {
        match self.pairs.get_mut(&(from, to)) {
            Some(k) => {
                *k = key;
                true
            }
            None => false,
        }
    }

    /// Removes a pair; returns its proxy key if it had one.
    pub(crate) fn remove(&mut self, from: u64, to: u64) -> Option<u64> {
        self.pairs.remove(&(from, to)).filter(|k| *k != 0)
    }

    /// Removes every pair whose proxy is `key` (the proxy stopped).
    pub(crate) fn remove_proxy(&mut self, key: u64) {
        self.pairs.retain(|_, k| *k != key);
    }

    /// How many links are held.
    pub(crate) fn len(&self) -> usize {
        self.pairs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_monitor_is_held_once_and_a_link_limit_holds() {
        let mut t = Interests::new(2);
        assert_eq!(t.add(1, 10, 100), Ok(true));
        assert_eq!(t.add(1, 10, 100), Ok(false));
        assert_eq!(t.count(1), 1);
        assert_eq!(t.add(1, 11, 100), Ok(true));
        assert!(t.add(1, 12, 100).is_err());
        // Another connection has its own budget.
        assert_eq!(t.add(2, 12, 100), Ok(true));
        assert_eq!(
            t.take(10),
            vec![Interest {
                serial: 1,
                watcher: 100
            }]
        );
        assert_eq!(t.count(1), 1);
        t.drop_link(1);
        assert!(!t.is_watched(11));
        assert!(t.is_watched(12));
        assert!(t.remove(2, 12, 100));
        assert!(!t.remove(2, 12, 100));
        assert_eq!(t.count(2), 0);
    }

    #[test]
    fn links_are_unique_per_pair_and_bounded() {
        let mut l = LinkedPairs::new(1);
        assert_eq!(l.reserve(1, 2), Ok(true));
        assert_eq!(l.reserve(1, 2), Ok(false));
        assert!(l.reserve(3, 4).is_err());
        l.set_proxy(1, 2, 9);
        assert_eq!(l.remove(1, 2), Some(9));
        assert_eq!(l.len(), 0);
    }
}
