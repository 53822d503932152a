//! Membership over the mesh: SWIM packets as QUIC datagrams, push-pull syncs as frame
//! streams. Nothing here waits inside the SWIM loop: a packet for a peer without a live
//! connection starts a dial and waits in a small per-peer queue that is flushed when the
//! connection comes up (dropping it instead would fail the probe and can declare a healthy
//! node failed just because its connection was still being set up — measured: under CPU
//! starvation that loop made a 50-node start take up to 25 s). The queue is bounded; beyond
//! it packets are dropped, which SWIM tolerates by design.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_bytes::ByteBuf;

use crate::membership::{Inbound, Peer, SyncError, SyncFuture, Transport};
use crate::mesh::{DialError, FrameStream, Mesh, PeerLink, stream_kind};

/// Packets held per peer while its connection is being set up.
const HELD_PER_PEER: usize = 16;
/// Peers with held packets at most (stale SWIM packets are worthless anyway).
const HELD_PEERS: usize = 1024;

/// The mesh as membership's [`Transport`].
pub(crate) struct MeshTransport {
    mesh: Mesh,
    dialing_seeds: Arc<Mutex<HashSet<SocketAddr>>>,
    held: Mutex<HashMap<SocketAddr, Vec<Bytes>>>,
}

impl MeshTransport {
    pub(crate) fn new(mesh: Mesh) -> Self {
        MeshTransport {
            mesh,
            dialing_seeds: Arc::new(Mutex::new(HashSet::new())),
            held: Mutex::new(HashMap::new()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Bytes>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection came up: send what was held for its address.
    pub(crate) fn flush(&self, link: &PeerLink) {
        let packets = self
            .held()
            .remove(&link.info().mesh_addr)
            .unwrap_or_default();
        for packet in packets {
            let _ = link.send_datagram(packet);
        }
    }

    /// Keeps a packet until the connection to `to` is up (bounded; extra ones are dropped).
    fn hold(&self, to: &Peer, packet: Bytes) {
        let mut held = self.held();
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

    /// Starts connecting to `to` in the background (once per seed address at a time).
    fn connect(&self, to: &Peer) {
        match to {
            Peer::Node { name, addr, .. } => self.mesh.want(name.clone(), *addr),
            Peer::Seed(addr) => {
                let addr = *addr;
                let fresh = self
                    .dialing_seeds
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(addr);
                if !fresh {
                    return;
                }
                let (mesh, dialing) = (self.mesh.clone(), self.dialing_seeds.clone());
                tokio::spawn(async move {
                    if let Ok(link) = mesh.dial(addr, None).await {
                        mesh.want(link.info().name.clone(), link.info().mesh_addr);
                    }
                    dialing
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&addr);
                });
            }
        }
    }
}

impl Transport for MeshTransport {
    fn send(&self, to: &Peer, packet: Bytes) {
        match self.link(to) {
            Some(link) => {
                let _ = link.send_datagram(packet);
            }
            None => {
                self.hold(to, packet);
                self.connect(to);
                // The connection may have come up between the lookup and the hold.
                if let Some(link) = self.link(to) {
                    self.flush(&link);
                }
            }
        }
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

/// Answers a peer's push-pull sync stream.
pub(crate) async fn answer_sync(inbound: Inbound, link: Arc<PeerLink>, mut stream: FrameStream) {
    let request = match stream.recv::<ByteBuf>().await {
        Ok(Some(r)) => r,
        _ => return,
    };
    let answer = inbound
        .sync(link.info().id, Bytes::from(request.into_vec()))
        .await
        .map(|b| ByteBuf::from(b.to_vec()))
        .map_err(|e| e.to_string());
    let _ = stream.send(&answer).await;
    stream.finish();
}
