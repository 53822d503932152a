//! A session: the remote-actor state of one connection, kept on the link itself so that the
//! per-frame paths take no node-wide lock.
//!
//! It holds the route that carries this node's sends (and their pending asks), the proxies of
//! the peer's actors, the links the peer made to this node's actors, and, per incoming data
//! lane, the frames read so far (for barriers) and the backlog the lane has put into
//! mailboxes (for backpressure).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use ractor::ActorCell;
use understudy_actor::AskerGone;
use understudy_actor::backlog::Backlog;
use understudy_actor::remote_reply::{ReplySink, SinkRegistration, Unanswered, register_sink};
use understudy_actor::route::RouteRegistration;

use super::barrier::BarrierError;
use super::gate::BarrierGate;
use super::route::LinkRoute;
use super::tables::LinkedPairs;
use crate::mesh::{PeerLink, SendError};
use crate::wire::{ExitReason, ReplyOutcome, Signal};

/// A signal held until the messages before it are delivered (see `barrier.rs`).
#[derive(Debug)]
pub(crate) enum Deferred {
    /// The peer's actor that proxy `watcher` stands for exited.
    Down { watcher: u64, reason: ExitReason },
    /// An exit signal to this node's actor `to`.
    Exit { to: u64, reason: ExitReason },
}

impl Deferred {
    fn reason_len(&self) -> usize {
        match self {
            Deferred::Down { reason, .. } | Deferred::Exit { reason, .. } => {
                reason.as_ref().map_or(0, String::len)
            }
        }
    }
}

/// One incoming data lane.
pub(crate) struct InLane {
    /// What this lane has put into mailboxes and not seen consumed.
    pub(crate) backlog: Arc<Backlog>,
}

/// A proxy of one of the peer's actors.
pub(crate) struct ProxyEntry {
    pub(crate) pid: u64,
    pub(crate) cell: ActorCell,
}

#[derive(Default)]
pub(crate) struct Proxies {
    /// Proxy key → proxy.
    pub(crate) by_key: HashMap<u64, ProxyEntry>,
    /// The peer's pid → key of the shared proxy that `resolve` hands out.
    pub(crate) shared: HashMap<u64, u64>,
    /// Links this node made: (our pid, their pid) → key of the proxy our actor supervises.
    pub(crate) own_links: HashMap<(u64, u64), u64>,
}

/// Where the answers to the peer's asks go: its signal stream. Holds the link weakly, so an
/// answer still owed by an actor does not keep a closed connection alive.
struct Replies {
    link: Weak<PeerLink>,
    refs: Option<understudy_actor::wire_ref::ResolverId>,
}

impl ReplySink for Replies {
    fn refs(&self) -> Option<understudy_actor::wire_ref::ResolverId> {
        self.refs
    }

    fn reply(&self, call: u64, answer: Result<Vec<u8>, Unanswered>) -> Result<(), AskerGone> {
        let link = self.link.upgrade().ok_or(AskerGone)?;
        let outcome = match answer {
            Ok(bytes) => ReplyOutcome::Ok(bytes),
            Err(Unanswered::Rejected(why)) => ReplyOutcome::Rejected(why),
            Err(_) => ReplyOutcome::ActorStopped,
        };
        match link.send_signal(&Signal::Reply { call, outcome }) {
            Ok(()) => Ok(()),
            // An answer larger than a frame: the asker hears that there is none, at once.
            Err(SendError::Frame(e)) => {
                let outcome = ReplyOutcome::Rejected(format!("the answer does not fit: {e}"));
                link.send_signal(&Signal::Reply { call, outcome })
                    .map_err(|_| AskerGone)
            }
            Err(_) => Err(AskerGone),
        }
    }
}

/// The remote-actor state of one connection.
pub(crate) struct Session {
    pub(crate) link: Arc<PeerLink>,
    pub(crate) route: Arc<LinkRoute>,
    pub(crate) route_id: u64,
    _registration: RouteRegistration,
    pub(crate) lanes: Box<[InLane]>,
    gate: BarrierGate<Deferred>,
    proxies: Mutex<Proxies>,
    /// Links the peer made to this node's actors.
    pub(crate) linked: Mutex<LinkedPairs>,
    /// Past this backlog a lane's peer is not just fast but lying about its barriers.
    pub(crate) hard_limit: usize,
    /// Routes the answers to the peer's asks back to it (see `inbound.rs`).
    pub(crate) replies: SinkRegistration,
    _sink: Arc<dyn ReplySink>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bytes of signals that may wait on their barriers at once, per connection: a DOWN costs
/// about a hundred bytes (reasons are cut to `MAX_REASON`), so far above what the peer's
/// actors dying at once produce, and a bound on what a lying peer can make us hold.
const MAX_HELD: usize = 16 << 20;

impl Session {
    /// A session for `link`, whose lanes charge `backlogs` (the peer's, kept across its
    /// connections: what an earlier connection put into mailboxes still counts).
    pub(crate) fn new(
        link: Arc<PeerLink>,
        backlogs: Vec<Arc<Backlog>>,
        hard_limit: usize,
        max_links: usize,
        refs: Option<understudy_actor::wire_ref::ResolverId>,
    ) -> Arc<Session> {
        let route = LinkRoute::new(link.clone(), refs);
        let registration = understudy_actor::route::register(route.clone());
        let lanes = link.lanes();
        let sink: Arc<dyn ReplySink> = Arc::new(Replies {
            link: Arc::downgrade(&link),
            refs,
        });
        Arc::new(Session {
            replies: register_sink(&sink),
            _sink: sink,
            route_id: registration.id(),
            _registration: registration,
            route,
            lanes: backlogs
                .into_iter()
                .map(|backlog| InLane { backlog })
                .collect(),
            gate: BarrierGate::new(lanes, MAX_HELD),
            proxies: Mutex::new(Proxies::default()),
            linked: Mutex::new(LinkedPairs::new(max_links)),
            hard_limit,
            link,
        })
    }

    pub(crate) fn serial(&self) -> u64 {
        self.link.serial()
    }

    pub(crate) fn proxies(&self) -> MutexGuard<'_, Proxies> {
        lock(&self.proxies)
    }

    /// Holds `action` until its barrier is met, then hands it (with any others now ready) to
    /// `act`, in arrival order.
    pub(crate) fn defer(
        &self,
        after: Vec<u64>,
        action: Deferred,
        act: impl FnMut(Deferred),
    ) -> Result<(), BarrierError> {
        let cost = 64 + after.len() * 8 + action.reason_len();
        for lane in self.gate.defer(after, action, cost, act)? {
            // A backlogged lane must be read on for this signal.
            self.lanes[lane].backlog.wake();
        }
        Ok(())
    }

    /// Called after lane `lane` delivered a frame: hands the signals whose barriers are now
    /// met to `act`.
    pub(crate) fn delivered(&self, lane: usize, act: impl FnMut(Deferred)) {
        self.gate.delivered(lane, act);
    }

    /// How many signals wait on their barriers.
    pub(crate) fn waiting(&self) -> usize {
        self.gate.waiting()
    }

    /// Whether lane `lane` must be read on although it is backlogged (a signal waits on it).
    pub(crate) fn must_read(&self, lane: usize) -> bool {
        self.gate.must_read(lane)
    }

    /// Takes the proxy `key` out of the table (it is stopping).
    pub(crate) fn take_proxy(&self, key: u64) -> Option<ProxyEntry> {
        let mut p = self.proxies();
        let entry = p.by_key.remove(&key)?;
        if p.shared.get(&entry.pid) == Some(&key) {
            p.shared.remove(&entry.pid);
        }
        p.own_links.retain(|_, k| *k != key);
        drop(p);
        lock(&self.linked).remove_proxy(key);
        Some(entry)
    }

    /// Whether `key` names a live proxy of this session.
    pub(crate) fn has_proxy(&self, key: u64) -> bool {
        self.proxies().by_key.contains_key(&key)
    }

    /// Takes every proxy out of the table (the connection is gone).
    pub(crate) fn take_all_proxies(&self) -> Vec<ActorCell> {
        let mut p = self.proxies();
        p.shared.clear();
        p.own_links.clear();
        p.by_key.drain().map(|(_, e)| e.cell).collect()
    }
}
