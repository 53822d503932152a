//! Signals arriving from a peer, dispatched to the runtime and the remote core.

use std::sync::Arc;
use std::time::Duration;

use ractor::RpcReplyPort;
use ractor::message::SerializedMessage;
use understudy_actor::DeliverError;

use super::{DEAD_LETTERS_METRIC, RemoteCore};
use crate::mesh::PeerLink;
use crate::wire::{ReplyOutcome, Signal};

impl RemoteCore {
    /// Handles one inbound signal. Never blocks; asks are answered from a small task.
    pub fn signal(self: &Arc<Self>, link: &Arc<PeerLink>, signal: Signal) {
        match signal {
            Signal::Tell { to, variant, args } => {
                let message = SerializedMessage::Cast {
                    variant,
                    args,
                    metadata: None,
                };
                if let Err(e) = self.runtime.deliver(to, message) {
                    dead_letter(link, to, &e);
                }
            }
            Signal::Ask {
                to,
                call,
                timeout_ms,
                variant,
                args,
            } => self.ask(link, to, call, timeout_ms, variant, args),
            Signal::Reply { call, outcome } => {
                let route = self
                    .state()
                    .peers
                    .get(&link.info().id)
                    .map(|p| p.route.clone());
                if let Some(route) = route.filter(|r| r.link.serial() == link.serial()) {
                    route.complete(call, outcome);
                }
            }
            Signal::Monitor { watcher, target } => self.watch(link, watcher, target),
            Signal::Demonitor { watcher, target } => self.unwatch(link, watcher, target),
            Signal::Down {
                watcher, reason, ..
            } => self.down_copy(link, watcher, reason),
            Signal::Link { from, to } => {
                let (core, link) = (self.clone(), link.clone());
                tokio::spawn(async move { core.linked(link, from, to).await });
            }
            // Links are carried by proxies and monitors; explicit unlink/exit are reserved.
            Signal::Unlink { .. } | Signal::Exit { .. } => {}
        }
    }

    fn ask(
        &self,
        link: &Arc<PeerLink>,
        to: u64,
        call: u64,
        timeout_ms: u32,
        variant: String,
        args: Vec<u8>,
    ) {
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        let (tx, rx) = ractor::concurrency::oneshot::<Vec<u8>>();
        let reply = RpcReplyPort::from((tx, timeout));
        let message = SerializedMessage::Call {
            variant,
            args,
            reply,
            metadata: None,
        };
        let respond = |outcome| {
            let _ = link.send_signal(to, &Signal::Reply { call, outcome });
        };
        match self.runtime.deliver(to, message) {
            Ok(()) => {
                let link = link.clone();
                tokio::spawn(async move {
                    let outcome = match tokio::time::timeout(timeout, rx).await {
                        Ok(Ok(bytes)) => ReplyOutcome::Ok(bytes),
                        // Timed out or dropped: the asker has (or will have) given up too.
                        _ => ReplyOutcome::ActorStopped,
                    };
                    let _ = link.send_signal(to, &Signal::Reply { call, outcome });
                });
            }
            Err(DeliverError::UnknownActor { .. }) | Err(DeliverError::ActorStopped) => {
                respond(ReplyOutcome::UnknownActor);
            }
            Err(e) => {
                dead_letter(link, to, &e);
                respond(ReplyOutcome::Rejected(e.to_string()));
            }
        }
    }
}

fn dead_letter(link: &PeerLink, to: u64, error: &DeliverError) {
    metrics::counter!(DEAD_LETTERS_METRIC).increment(1);
    tracing::debug!(peer = %link.info().name, to, %error, "inbound message not delivered");
}
