//! What arrives from a peer: messages from the data lanes (into mailboxes, charged to the
//! lane's backlog) and signals from the signal stream.

use std::sync::Arc;

use ractor::RpcReplyPort;
use ractor::message::SerializedMessage;
use understudy_actor::DeliverError;
use understudy_actor::backlog::MESSAGE_OVERHEAD;
use understudy_actor::names::Owner;

use super::session::{Deferred, Session};
use super::{ActorAddr, DEAD_LETTERS_METRIC, NOPROC, Proxied, RemoteDriver, apply_exit, send_down};
use crate::mesh::{Admit, PeerLink};
use crate::wire::{Delivery, ReplyOutcome, Signal};

/// How often a paused lane looks for actors that stopped with its messages unread.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl RemoteDriver {
    /// A message arrived on data lane `lane`: into its actor's mailbox, charged to the lane.
    /// Says to wait before the next frame while the lane's backlog is over budget (unless a
    /// DOWN waits on this lane).
    pub fn delivery(
        &self,
        link: &Arc<PeerLink>,
        lane: usize,
        delivery: Delivery,
        size: usize,
    ) -> Admit {
        let Some(session) = link.session::<Session>() else {
            return Admit::Next;
        };
        let session = &session;
        let Some(inlane) = session.lanes.get(lane) else {
            return Admit::Next;
        };
        let backlog = &inlane.backlog;
        match delivery {
            Delivery::Tell { to, variant, args } => {
                let cost = args.len() + MESSAGE_OVERHEAD;
                let mut metadata = backlog.charge(to, cost, size);
                if let Some(token) = self.refs_token() {
                    metadata.extend_from_slice(&token);
                }
                let message = SerializedMessage::Cast {
                    variant,
                    args,
                    metadata: Some(metadata),
                };
                if let Err(e) = self.runtime.exports().deliver_encoded(to, message) {
                    backlog.refund(to, cost, size);
                    dead_letter(link, to, &e);
                }
            }
            Delivery::Ask {
                to,
                call,
                variant,
                args,
                ..
            } => self.ask(session, lane, to, call, variant, args, size),
        }
        session.delivered(lane, |d| self.act(session, d));
        self.admit(session, lane)
    }

    /// Whether the lane may be read on now.
    fn admit(&self, session: &Arc<Session>, lane: usize) -> Admit {
        let backlog = &session.lanes[lane].backlog;
        if backlog.total() <= backlog.budget() {
            return Admit::Next;
        }
        // In bytes on the wire: what the peer could have had queued or in flight.
        let wire = backlog.wire_total();
        if wire > session.hard_limit {
            tracing::warn!(peer = %session.link.info().name, wire, "a lane's backlog is past what any barrier allows; closing the connection");
            session
                .link
                .close_for_violation("backlog past every barrier");
            return Admit::Next;
        }
        if session.must_read(lane) {
            return Admit::Next;
        }
        // Charges of actors that stopped with messages unread are written off first.
        let exports = self.runtime.exports();
        backlog.retain(|pid| exports.cell_of(pid).is_some());
        if !backlog.is_over_budget() {
            return Admit::Next;
        }
        let (session, runtime) = (session.clone(), self.runtime.clone());
        Admit::After(Box::pin(async move {
            let backlog = session.lanes[lane].backlog.clone();
            let blocked = |b: &understudy_actor::backlog::Backlog| {
                b.is_over_budget() && !session.must_read(lane)
            };
            // Re-check now and then: an actor that stopped with messages unread (and that no
            // peer watches, so no exit is reported here) must not keep the lane paused.
            while tokio::time::timeout(RECHECK, backlog.wait_while(blocked))
                .await
                .is_err()
            {
                let exports = runtime.exports();
                backlog.retain(|pid| exports.cell_of(pid).is_some());
            }
        }))
    }

    /// An ask: delivered still encoded, with a token that lets the answering actor's
    /// `reply.send(..)` queue the answer on this connection itself (no task in between).
    #[allow(clippy::too_many_arguments)]
    fn ask(
        &self,
        session: &Arc<Session>,
        lane: usize,
        to: u64,
        call: u64,
        variant: String,
        args: Vec<u8>,
        size: usize,
    ) {
        let link = &session.link;
        let backlog = &session.lanes[lane].backlog;
        let cost = args.len() + MESSAGE_OVERHEAD;
        let mut metadata = backlog.charge(to, cost, size);
        if let Some(token) = self.refs_token() {
            metadata.extend_from_slice(&token);
        }
        // Last: the reply token is read from the end.
        metadata.extend_from_slice(&session.replies.token(call));
        // The decoded message answers through the token; this port only marks it an ask.
        let (port, _) = ractor::concurrency::oneshot::<Vec<u8>>();
        let message = SerializedMessage::Call {
            variant,
            args,
            reply: RpcReplyPort::from(port),
            metadata: Some(metadata),
        };
        let outcome = match self.runtime.exports().deliver_encoded(to, message) {
            Ok(()) => return,
            Err(DeliverError::UnknownActor { .. } | DeliverError::ActorStopped) => {
                ReplyOutcome::UnknownActor
            }
            Err(e) => ReplyOutcome::Rejected(e.to_string()),
        };
        backlog.refund(to, cost, size);
        metrics::counter!(DEAD_LETTERS_METRIC).increment(1);
        tracing::debug!(peer = %link.info().name, to, ?outcome, "inbound ask not delivered");
        let _ = link.send_signal(&Signal::Reply { call, outcome });
    }

    /// A signal arrived on the signal stream.
    pub fn signal(self: &Arc<Self>, link: &Arc<PeerLink>, signal: Signal) {
        let Some(session) = link.session::<Session>() else {
            return;
        };
        let session = &session;
        match signal {
            Signal::Reply { call, outcome } => session.route.complete(call, outcome),
            Signal::Monitor { watcher, target } => self.watched_by(session, watcher, target),
            Signal::Demonitor { watcher, target } => {
                self.state()
                    .interests
                    .remove(session.serial(), target, watcher);
            }
            Signal::Down {
                watcher,
                reason,
                after,
                ..
            } => {
                // Only for a proxy of ours: a DOWN for anything else holds nothing.
                if session.has_proxy(watcher) {
                    self.defer(session, after, Deferred::Down { watcher, reason });
                }
            }
            Signal::Link { from, to } => self.linked(session, from, to),
            Signal::Unlink { from, to } => self.unlinked(session, from, to),
            Signal::Exit {
                to, reason, after, ..
            } => {
                if self.local_cell(to).is_some() {
                    self.defer(session, after, Deferred::Exit { to, reason });
                }
            }
            // Node-level signals are the node's (it does not hand them here).
            Signal::ExtensionResponse { .. } | Signal::Leaving => {}
        }
    }

    fn defer(&self, session: &Arc<Session>, after: Vec<u64>, action: Deferred) {
        if let Err(e) = session.defer(after, action, |d| self.act(session, d)) {
            tracing::warn!(peer = %session.link.info().name, error = %e, "bad barrier; closing the connection");
            session.link.close_for_violation("bad barrier");
        }
    }

    /// A deferred signal's barrier is met: it takes effect.
    fn act(&self, session: &Session, deferred: Deferred) {
        match deferred {
            Deferred::Down { watcher, reason } => {
                if let Some(entry) = session.take_proxy(watcher) {
                    entry.cell.stop(reason);
                }
            }
            Deferred::Exit { to, reason } => {
                if let Some(cell) = self.local_cell(to) {
                    apply_exit(&cell, reason);
                }
            }
        }
    }

    /// The peer's proxy `watcher` wants a DOWN when our actor `target` exits.
    fn watched_by(&self, session: &Session, watcher: u64, target: u64) {
        let serial = session.serial();
        let cell = self.local_cell(target).filter(Owner::is_alive);
        let Some(cell) = cell else {
            send_down(&session.link, watcher, target, Some(NOPROC.to_owned()));
            return;
        };
        if let Err(e) = self.state().interests.add(serial, target, watcher) {
            tracing::warn!(peer = %session.link.info().name, error = %e, "closing the connection");
            session.link.close_for_violation("too many monitors");
            return;
        }
        self.watch_local(target, &cell);
        if cell.is_alive() {
            return;
        }
        // It exited before the agent's monitor took hold, so no exit event will come: answer
        // here, unless the event came after all and took the interest.
        let still_there = {
            let mut st = self.state();
            let there = st.interests.remove(serial, target, watcher);
            if !st.interests.is_watched(target) {
                st.watched.remove(&target);
            }
            there
        };
        if still_there {
            send_down(&session.link, watcher, target, Some(NOPROC.to_owned()));
        }
    }

    /// The peer linked its actor `from` to our actor `to`.
    fn linked(self: &Arc<Self>, session: &Arc<Session>, from: u64, to: u64) {
        // Without our actor, their proxy of it gets `noproc` and they learn it that way.
        let Some(local) = self.local_cell(to) else {
            return;
        };
        let reserved = session
            .linked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reserve(from, to);
        match reserved {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(peer = %session.link.info().name, error = %e, "closing the connection");
                session.link.close_for_violation("too many links");
                return;
            }
        }
        let (driver, session) = (self.clone(), session.clone());
        let addr = ActorAddr {
            node: session.link.info().id,
            pid: from,
        };
        tokio::spawn(async move {
            match driver
                .spawn_proxy(&session, addr, local.clone(), Proxied::TheirLink)
                .await
            {
                Ok((_, key)) => {
                    let kept = session
                        .linked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .set_proxy(from, to, key);
                    // Unlinked while the proxy was starting: undo it quietly.
                    if !kept {
                        driver.drop_proxy(&session, key, Some(&local));
                    }
                }
                Err(e) => {
                    session
                        .linked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .abandon(from, to);
                    tracing::debug!(error = %e, "remote link not established");
                }
            }
        });
    }

    /// The peer unlinked its actor `from` from our actor `to`.
    fn unlinked(&self, session: &Session, from: u64, to: u64) {
        let key = session
            .linked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(from, to);
        if let Some(key) = key {
            let local = self.local_cell(to);
            self.drop_proxy(session, key, local.as_ref());
        }
    }
}

fn dead_letter(link: &PeerLink, to: u64, error: &DeliverError) {
    metrics::counter!(DEAD_LETTERS_METRIC).increment(1);
    tracing::debug!(peer = %link.info().name, to, %error, "inbound message not delivered");
}
