//! Membership over the mesh: SWIM packets as QUIC datagrams, push-pull syncs as frame
//! streams. Nothing here waits inside the SWIM loop: a packet for a peer without a live
//! connection starts a dial and waits in a small per-peer queue that is flushed when the
//! connection comes up (dropping it instead would fail the probe and can declare a healthy
//! node failed just because its connection was still being set up — measured: under CPU
//! starvation that loop made a 50-node start take up to 25 s). The queue is bounded; beyond
//! it packets are dropped, which SWIM tolerates by design.
//!
//! For a live member ([`Transport::send`]) the dial is [`Mesh::want`]: the mesh keeps a
//! connection to it until the node's membership follower unwants it when it leaves the view.
//! For anyone else ([`Transport::send_once`]: nodes membership considers gone, which it still
//! announces to so that the two sides of a healed partition find each other; seeds; nodes not
//! reported joined yet) it is a single attempt that leaves nothing behind — wanting those
//! would redial every node that ever left, for ever. A failed attempt drops what was held for
//! that address.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde_bytes::ByteBuf;

use crate::membership::{Inbound, Peer, SyncError, SyncFuture, Transport};
use crate::mesh::{DialError, FrameStream, Mesh, PeerLink, SendError, stream_kind};
use crate::wire::WireError;

/// Packets held per peer while its connection is being set up.
const HELD_PER_PEER: usize = 16;
/// Peers with held packets at most (stale SWIM packets are worthless anyway).
const HELD_PEERS: usize = 1024;

type Held = Arc<Mutex<HashMap<SocketAddr, Vec<Bytes>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The mesh as membership's [`Transport`].
pub(crate) struct MeshTransport {
    mesh: Mesh,
    /// Addresses with a dial in flight (one at a time per address).
    dialing: Arc<Mutex<HashSet<SocketAddr>>>,
    held: Held,
    /// How long a peer gets to send its sync request, and again to take our answer
    /// ([`MembershipConfig::sync_timeout`](crate::membership::MembershipConfig::sync_timeout)).
    sync_timeout: Duration,
}

impl MeshTransport {
    pub(crate) fn new(mesh: Mesh, sync_timeout: Duration) -> Self {
        MeshTransport {
            mesh,
            dialing: Arc::new(Mutex::new(HashSet::new())),
            held: Arc::new(Mutex::new(HashMap::new())),
            sync_timeout,
        }
    }

    /// Answers a peer's push-pull sync stream, within deadlines: the request must arrive
    /// within `sync_timeout`, and our answer must be computed and taken within another. A
    /// peer that stalls (opens sync streams and sends nothing, trickles its request, or never
    /// reads the answer) has the stream aborted, so it cannot hold streams or buffers here.
    pub(crate) fn answer_sync(
        &self,
        inbound: Inbound,
        link: Arc<PeerLink>,
        mut stream: FrameStream,
    ) -> impl Future<Output = ()> + Send + 'static {
        let deadline = self.sync_timeout;
        async move {
            match answer(&inbound, &link, &mut stream, deadline).await {
                Ok(()) => stream.finish(),
                Err(error) => {
                    tracing::debug!(peer = %link.info().name, %error, "membership sync not answered");
                    stream.abort();
                }
            }
        }
    }

    /// A connection came up: send what was held for its address.
    pub(crate) fn flush(&self, link: &PeerLink) {
        let packets = lock(&self.held)
            .remove(&link.info().mesh_addr)
            .unwrap_or_default();
        for packet in packets {
            let _ = link.send_datagram(packet);
        }
    }

    /// Keeps a packet until the connection to `to` is up (bounded; extra ones are dropped).
    fn hold(&self, to: &Peer, packet: Bytes) {
        let mut held = lock(&self.held);
        // Peers that never answer would keep their packets forever: start over past a bound.
        if held.len() >= HELD_PEERS && !held.contains_key(&to.addr()) {
            held.clear();
        }
        let queue = held.entry(to.addr()).or_default();
        if queue.len() < HELD_PER_PEER {
            queue.push(packet);
        }
    }

    fn link(&self, to: &Peer) -> Option<Arc<PeerLink>> {
        match to {
            Peer::Node {
                name, incarnation, ..
            } => self
                .mesh
                .link(name)
                .filter(|l| l.info().incarnation >= incarnation.get()),
            Peer::Seed(addr) => self.mesh.link_at(*addr),
        }
    }

    /// Sends `packet` over the live link to `to`, or holds it and has `connect` start one.
    fn deliver(&self, to: &Peer, packet: Bytes, connect: impl FnOnce()) {
        match self.link(to) {
            Some(link) => {
                let _ = link.send_datagram(packet);
            }
            None => {
                self.hold(to, packet);
                connect();
                // The connection may have come up between the lookup and the hold.
                if let Some(link) = self.link(to) {
                    self.flush(&link);
                }
            }
        }
    }

    /// Tries once, in the background, to connect to `to` (one attempt at a time per
    /// address); the link's `peer_up` flushes what was held for it.
    fn dial_once(&self, to: &Peer) {
        let addr = to.addr();
        let expected = match to {
            Peer::Node { name, .. } => Some(name.clone()),
            Peer::Seed(_) => None,
        };
        if !lock(&self.dialing).insert(addr) {
            return;
        }
        let (mesh, dialing, held) = (self.mesh.clone(), self.dialing.clone(), self.held.clone());
        tokio::spawn(async move {
            let outcome = mesh.dial(addr, expected).await;
            lock(&dialing).remove(&addr);
            match outcome {
                // Connected (by us, or by a crossing dial): its `peer_up` flushed the packets.
                Ok(_) | Err(DialError::Duplicate) => {}
                Err(error) => {
                    tracing::debug!(%addr, %error, "SWIM peer not reachable");
                    lock(&held).remove(&addr);
                }
            }
        });
    }
}

impl Transport for MeshTransport {
    fn send(&self, to: &Peer, packet: Bytes) {
        self.deliver(to, packet, || match to {
            Peer::Node { name, addr, .. } => self.mesh.want(name.clone(), *addr),
            Peer::Seed(_) => self.dial_once(to),
        });
    }

    fn send_once(&self, to: &Peer, packet: Bytes) {
        self.deliver(to, packet, || self.dial_once(to));
    }

    fn sync(&self, to: &Peer, request: Bytes) -> SyncFuture {
        let (mesh, to, existing) = (self.mesh.clone(), to.clone(), self.link(&to.clone()));
        Box::pin(async move {
            let link = match existing {
                Some(l) => l,
                None => {
                    let expected = match &to {
                        Peer::Node { name, .. } => Some(name.clone()),
                        Peer::Seed(_) => None,
                    };
                    match mesh.dial(to.addr(), expected).await {
                        Ok(l) => l,
                        Err(DialError::Duplicate) => match &to {
                            Peer::Node { name, .. } => mesh.link(name),
                            Peer::Seed(addr) => mesh.link_at(*addr),
                        }
                        .ok_or_else(|| SyncError::Unreachable(to.to_string()))?,
                        Err(e) => return Err(SyncError::Unreachable(e.to_string())),
                    }
                }
            };
            let mut stream = link
                .open_stream(stream_kind::MEMBERSHIP_SYNC)
                .await
                .map_err(|e| SyncError::Unreachable(e.to_string()))?;
            stream
                .send(&ByteBuf::from(request.to_vec()))
                .await
                .map_err(|e| SyncError::Unreachable(e.to_string()))?;
            stream.finish();
            match stream.recv::<Result<ByteBuf, String>>().await {
                Ok(Some(Ok(bytes))) => Ok(Bytes::from(bytes.into_vec())),
                Ok(Some(Err(refused))) => Err(SyncError::Refused(refused)),
                Ok(None) => Err(SyncError::Refused("stream closed without an answer".into())),
                Err(e) => Err(SyncError::Refused(e.to_string())),
            }
        })
    }
}

/// Why a peer's sync stream was not answered.
#[derive(Debug, thiserror::Error)]
enum AnswerError {
    #[error("no request within {0:?}")]
    RequestTimedOut(Duration),
    #[error("the request did not arrive")]
    Request(#[source] WireError),
    #[error("the stream ended without a request")]
    NoRequest,
    #[error("the answer was not taken within {0:?}")]
    AnswerTimedOut(Duration),
    #[error("the answer could not be sent")]
    Answer(#[source] SendError),
}

/// Reads one sync request from `stream` and writes membership's answer, each within
/// `deadline`.
async fn answer(
    inbound: &Inbound,
    link: &PeerLink,
    stream: &mut FrameStream,
    deadline: Duration,
) -> Result<(), AnswerError> {
    let request = tokio::time::timeout(deadline, stream.recv::<ByteBuf>())
        .await
        .map_err(|_| AnswerError::RequestTimedOut(deadline))?
        .map_err(AnswerError::Request)?
        .ok_or(AnswerError::NoRequest)?;
    let respond = async {
        let answer = inbound
            .sync(link.info().id, Bytes::from(request.into_vec()))
            .await
            .map(|b| ByteBuf::from(b.to_vec()))
            .map_err(|e| e.to_string());
        stream.send(&answer).await
    };
    tokio::time::timeout(deadline, respond)
        .await
        .map_err(|_| AnswerError::AnswerTimedOut(deadline))?
        .map_err(AnswerError::Answer)
}

#[cfg(test)]
mod tests;
