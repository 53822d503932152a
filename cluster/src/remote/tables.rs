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
/// proxy that stands for their actor here. At most one proxy per pair is ever being made, and
/// pairs whose proxy is still being made count against the limit, so Link/Unlink spam cannot
/// start unbounded work.
#[derive(Debug)]
pub(crate) struct LinkedPairs {
    pairs: HashMap<(u64, u64), Pair>,
    limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pair {
    /// Its proxy is being made; `unlinked` if an Unlink came meanwhile.
    Pending { unlinked: bool },
    /// Linked through the proxy with this key.
    Linked(u64),
}

impl LinkedPairs {
    /// A table of at most `limit` links.
    pub(crate) fn new(limit: usize) -> Self {
        LinkedPairs {
            pairs: HashMap::new(),
            limit,
        }
    }

    /// Reserves the pair (their `from`, our `to`). `Ok(true)`: make its proxy now;
    /// `Ok(false)`: it is linked (or being linked) already.
    pub(crate) fn reserve(&mut self, from: u64, to: u64) -> Result<bool, TooMany> {
        let full = self.pairs.len() >= self.limit;
        match self.pairs.get_mut(&(from, to)) {
            // Linked again while the proxy of an unlinked one is being made: keep it.
            Some(Pair::Pending { unlinked }) => {
                *unlinked = false;
                Ok(false)
            }
            Some(Pair::Linked(_)) => Ok(false),
            None if full => Err(TooMany {
                what: "links",
                limit: self.limit,
            }),
            None => {
                self.pairs
                    .insert((from, to), Pair::Pending { unlinked: false });
                Ok(true)
            }
        }
    }

    /// The proxy of a reserved pair is made. `false` if the pair was unlinked meanwhile (the
    /// caller undoes the proxy).
    pub(crate) fn set_proxy(&mut self, from: u64, to: u64, key: u64) -> bool {
        match self.pairs.get(&(from, to)) {
            Some(Pair::Pending { unlinked: false }) => {
                self.pairs.insert((from, to), Pair::Linked(key));
                true
            }
            Some(Pair::Pending { unlinked: true }) => {
                self.pairs.remove(&(from, to));
                false
            }
            _ => false,
        }
    }

    /// Making the proxy failed: forget the pair.
    pub(crate) fn abandon(&mut self, from: u64, to: u64) {
        if matches!(self.pairs.get(&(from, to)), Some(Pair::Pending { .. })) {
            self.pairs.remove(&(from, to));
        }
    }

    /// Unlinks a pair; returns its proxy key if it had one (a pair whose proxy is still being
    /// made is marked, and `set_proxy` reports it).
    pub(crate) fn remove(&mut self, from: u64, to: u64) -> Option<u64> {
        match self.pairs.get_mut(&(from, to))? {
            Pair::Pending { unlinked } => {
                *unlinked = true;
                None
            }
            Pair::Linked(key) => {
                let key = *key;
                self.pairs.remove(&(from, to));
                Some(key)
            }
        }
    }

    /// Removes the pair whose proxy is `key` (the proxy stopped).
    pub(crate) fn remove_proxy(&mut self, key: u64) {
        self.pairs.retain(|_, p| *p != Pair::Linked(key));
    }

    /// How many links are held (made or being made).
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
        assert!(l.set_proxy(1, 2, 9));
        assert_eq!(l.remove(1, 2), Some(9));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn link_unlink_spam_makes_one_proxy_at_a_time() {
        let mut l = LinkedPairs::new(1);
        assert_eq!(l.reserve(1, 2), Ok(true));
        // Unlink and link again while the proxy is being made: no second proxy.
        for _ in 0..100 {
            assert_eq!(l.remove(1, 2), None);
            assert_eq!(l.reserve(1, 2), Ok(false));
        }
        assert_eq!(l.len(), 1);
        assert!(l.set_proxy(1, 2, 7), "still wanted: kept");
        // Unlinked while being made: the proxy is undone and the pair forgotten.
        assert_eq!(l.remove(1, 2), Some(7));
        assert_eq!(l.reserve(1, 2), Ok(true));
        assert_eq!(l.remove(1, 2), None);
        assert!(!l.set_proxy(1, 2, 8));
        assert_eq!(l.len(), 0);
    }
}
