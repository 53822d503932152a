//! Backlogs: how many bytes that arrived from the network wait, undelivered to their actor's
//! handler, in actors' mailboxes.
//!
//! ractor's mailboxes are unbounded and say nothing of their length, so a fast peer sending
//! to a slow actor would fill memory. The cluster's readers therefore charge every message
//! they put into a mailbox to a [`Backlog`] (one per connection lane) and stop reading that
//! lane while the backlog is over its budget; QUIC flow control then stops the peer, whose
//! sends fail with `Overloaded`.
//!
//! A message's charge is paid back when the actor takes it out of its mailbox: the message
//! travels as a `SerializedMessage` whose metadata names the backlog ([`Backlog::charge`]),
//! and the type's deserialise hook, which ractor runs in the receiving actor's own task just
//! before the handler, calls [`consumed`]. Messages that never get there (the actor stopped
//! first) are written off with [`Backlog::forget`] or [`Backlog::retain`].
//!
//! ```
//! use understudy_actor::backlog::{consumed, Backlog};
//! let backlog = Backlog::new(1000);
//! let token = backlog.charge(7, 600, 500);
//! assert!(!backlog.is_over_budget());
//! let _second = backlog.charge(7, 600, 500);
//! assert!(backlog.is_over_budget());
//! consumed(&token); // the actor took the first message
//! assert!(!backlog.is_over_budget());
//! assert_eq!(backlog.total(), 600);
//! backlog.forget(7); // the actor stopped with the second one unread
//! assert_eq!(backlog.total(), 0);
//! ```

use crate::id::IdMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};

use tokio::sync::Notify;

/// What the metadata of a charged message starts with.
const MAGIC: [u8; 8] = *b"usbklog2";
/// The length of a charge's token, which starts a delivered message's metadata.
pub(crate) const TOKEN_LEN: usize = 8 + 8 + 8 + 8 + 8;

/// Bytes a message costs besides its payload (mailbox entry, boxing, metadata), so that a
/// flood of empty messages is bounded too.
pub const MESSAGE_OVERHEAD: usize = 128;

type Registry = RwLock<IdMap<Weak<Backlog>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(IdMap::default()))
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What one source owes: in memory (`cost`, what budgets count) and in bytes on the wire
/// (`wire`, what a lying peer is measured by).
#[derive(Default, Clone, Copy)]
struct Owed {
    cost: usize,
    wire: usize,
}

impl Owed {
    fn add(&mut self, o: Owed) {
        self.cost += o.cost;
        self.wire += o.wire;
    }

    fn sub(&mut self, o: Owed) {
        self.cost -= o.cost.min(self.cost);
        self.wire -= o.wire.min(self.wire);
    }
}

#[derive(Default)]
struct Charges {
    total: Owed,
    by_pid: IdMap<Owed>,
}

/// The bytes one source (a connection lane) has put into mailboxes that are not consumed
/// yet, with a budget.
pub struct Backlog {
    id: u64,
    budget: usize,
    charges: Mutex<Charges>,
    wake: Notify,
}

impl std::fmt::Debug for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backlog")
            .field("budget", &self.budget)
            .field("total", &self.total())
            .finish()
    }
}

impl Backlog {
    /// A backlog that is over budget once it holds more than `budget` bytes.
    pub fn new(budget: usize) -> Arc<Backlog> {
        let backlog = Arc::new(Backlog {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            budget,
            charges: Mutex::new(Charges::default()),
            wake: Notify::new(),
        });
        registry()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(backlog.id, Arc::downgrade(&backlog));
        backlog
    }

    fn charges(&self) -> MutexGuard<'_, Charges> {
        self.charges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a message for actor `pid` that costs `cost` bytes of memory and was `wire`
    /// bytes on the wire; returns the metadata to send it with, which pays the charge back
    /// when the actor consumes it.
    pub fn charge(&self, pid: u64, cost: usize, wire: usize) -> Vec<u8> {
        let owed = Owed { cost, wire };
        {
            let mut c = self.charges();
            c.total.add(owed);
            c.by_pid.entry(pid).or_default().add(owed);
        }
        // Room for the tokens a delivery appends (refs, reply), so they need no reallocation.
        let mut token = Vec::with_capacity(TOKEN_LEN + 48);
        token.extend_from_slice(&MAGIC);
        token.extend_from_slice(&self.id.to_le_bytes());
        token.extend_from_slice(&pid.to_le_bytes());
        token.extend_from_slice(&(cost as u64).to_le_bytes());
        token.extend_from_slice(&(wire as u64).to_le_bytes());
        token
    }

    /// Pays back a charge whose message was not delivered after all.
    pub fn refund(&self, pid: u64, cost: usize, wire: usize) {
        self.pay(pid, Owed { cost, wire });
    }

    /// Writes off everything charged for `pid` (the actor stopped; its mailbox is gone).
    pub fn forget(&self, pid: u64) {
        let mut c = self.charges();
        if let Some(owed) = c.by_pid.remove(&pid) {
            c.total.sub(owed);
            drop(c);
            self.wake.notify_waiters();
        }
    }

    /// Writes off the charges of every actor for which `alive(pid)` is false.
    pub fn retain(&self, mut alive: impl FnMut(u64) -> bool) {
        let mut c = self.charges();
        let before = c.total.cost;
        let mut freed = Owed::default();
        c.by_pid.retain(|pid, owed| {
            let keep = alive(*pid);
            if !keep {
                freed.add(*owed);
            }
            keep
        });
        c.total.sub(freed);
        let changed = c.total.cost != before;
        drop(c);
        if changed {
            self.wake.notify_waiters();
        }
    }

    fn pay(&self, pid: u64, paid: Owed) {
        let mut c = self.charges();
        let Some(owed) = c.by_pid.get_mut(&pid) else {
            return;
        };
        let paid = Owed {
            cost: paid.cost.min(owed.cost),
            wire: paid.wire.min(owed.wire),
        };
        owed.sub(paid);
        if owed.cost == 0 {
            c.by_pid.remove(&pid);
        }
        let was_over = c.total.cost > self.budget;
        c.total.sub(paid);
        let now_over = c.total.cost > self.budget;
        drop(c);
        if was_over && !now_over {
            self.wake.notify_waiters();
        }
    }

    /// Bytes (of memory) charged and not paid back.
    pub fn total(&self) -> usize {
        self.charges().total.cost
    }

    /// Bytes on the wire of the messages charged and not paid back.
    pub fn wire_total(&self) -> usize {
        self.charges().total.wire
    }

    /// The budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Whether more than the budget is outstanding.
    pub fn is_over_budget(&self) -> bool {
        self.total() > self.budget
    }

    /// Wakes whoever waits in [`wait_while`](Self::wait_while) (something else they wait for
    /// happened).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Waits while `blocked` says so, re-checking it whenever the backlog drops back to its
    /// budget or [`wake`](Self::wake) is called. The check runs after the waiter is
    /// registered, so a wake-up between the check and the wait is never missed.
    pub async fn wait_while(&self, mut blocked: impl FnMut(&Backlog) -> bool) {
        loop {
            let notified = self.wake.notified();
            if !blocked(self) {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Backlog {
    fn drop(&mut self) {
        let mut registry = registry().write().unwrap_or_else(|p| p.into_inner());
        registry.remove(&self.id);
    }
}

/// Pays back the charge named by a message's metadata (see the module docs). Metadata that
/// is not a backlog token, or names a backlog that is gone, is ignored.
pub fn consumed(metadata: &[u8]) {
    let Some(rest) = metadata.strip_prefix(&MAGIC) else {
        return;
    };
    let field = |i: usize| -> Option<u64> {
        let bytes: [u8; 8] = rest.get(i * 8..i * 8 + 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    };
    let (Some(id), Some(pid), Some(cost), Some(wire)) = (field(0), field(1), field(2), field(3))
    else {
        return;
    };
    let backlog = registry()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .and_then(Weak::upgrade);
    if let Some(backlog) = backlog {
        let owed = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        backlog.pay(
            pid,
            Owed {
                cost: owed(cost),
                wire: owed(wire),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_paid_back_once_and_only_for_live_entries() {
        let b = Backlog::new(10);
        let t1 = b.charge(1, 8, 4);
        let t2 = b.charge(2, 8, 4);
        assert!(b.is_over_budget());
        consumed(&t1);
        consumed(&t1); // a duplicate pays nothing more
        assert_eq!(b.total(), 8);
        assert_eq!(b.wire_total(), 4);
        b.retain(|pid| pid != 2);
        assert_eq!(b.total(), 0);
        consumed(&t2); // written off already
        assert_eq!(b.total(), 0);
    }

    #[test]
    fn foreign_or_stale_metadata_is_ignored() {
        consumed(b"");
        consumed(b"usbklog2short");
        consumed(&[0u8; 64]);
        let token = Backlog::new(1).charge(1, 5, 5);
        // The backlog is dropped: its token pays nothing and does not panic.
        consumed(&token);
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_backlog_drops_to_its_budget() {
        let b = Backlog::new(10);
        let t = b.charge(1, 20, 20);
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.wait_while(Backlog::is_over_budget).await })
        };
        tokio::task::yield_now().await;
        consumed(&t);
        waiter.await.expect("the waiter finishes");
    }
}
