//! One live connection to a peer: its lanes, its control stream, and the tasks that read them.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::lane::{Lane, SendError};
use super::{Mesh, MeshHandler};
use crate::identity::NodeName;
use crate::wire::{Control, FrameDecoder, Signal, WireError};
use understudy_actor::NodeId;

/// Metric counting connections closed for protocol violations.
pub const PROTOCOL_ERRORS_METRIC: &str = "understudy_mesh_protocol_errors_total";

/// QUIC close codes the mesh uses.
pub(crate) mod close_code {
    /// A graceful close (leaving, or a duplicate).
    pub(crate) const NORMAL: u32 = 0;
    /// The peer sent bytes that are not the protocol.
    pub(crate) const PROTOCOL: u32 = 1;
    /// The Hello was refused.
    pub(crate) const REFUSED: u32 = 2;
}

/// Who is at the other end of a link (as proven by certificate and Hello).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's node name.
    pub name: NodeName,
    /// The peer's node id.
    pub id: NodeId,
    /// The peer's incarnation.
    pub incarnation: u64,
    /// Where the peer's mesh endpoint listens.
    pub mesh_addr: SocketAddr,
    /// How many lanes the peer writes to us.
    pub lanes: u16,
}

/// The sending side of one connection to a peer.
pub struct PeerLink {
    info: PeerInfo,
    conn: quinn::Connection,
    lanes: Box<[Lane]>,
    control: Lane,
    serial: u64,
}

impl std::fmt::Debug for PeerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLink")
            .field("peer", &self.info.name)
            .field("incarnation", &self.info.incarnation)
            .field("serial", &self.serial)
            .finish()
    }
}

impl PeerLink {
    pub(crate) fn new(
        info: PeerInfo,
        conn: quinn::Connection,
        lanes: usize,
        lane_buffer: usize,
        max_frame: usize,
        serial: u64,
    ) -> Self {
        PeerLink {
            info,
            conn,
            lanes: (0..lanes)
                .map(|_| Lane::new(lane_buffer, max_frame))
                .collect(),
            control: Lane::new(lane_buffer, max_frame),
            serial,
        }
    }

    /// Who the peer is.
    pub fn info(&self) -> &PeerInfo {
        &self.info
    }

    /// A number unique to this link object (a reconnect makes a new one).
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// How many lanes the link has.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The lane that carries signals keyed by `key` (an actor pid).
    pub fn lane_of(&self, key: u64) -> usize {
        // Pids are sequential; a multiplicative mix spreads neighbours across lanes.
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % self.lanes.len()
    }

    /// Queues a signal on the lane of `key`.
    pub fn send_signal(&self, key: u64, signal: &Signal) -> Result<(), SendError> {
        self.lanes[self.lane_of(key)].push(signal)
    }

    /// Queues a signal on lane `lane` (`lane < lanes()`).
    pub fn send_signal_on(&self, lane: usize, signal: &Signal) -> Result<(), SendError> {
        self.lanes
            .get(lane)
            .ok_or(SendError::Disconnected)?
            .push(signal)
    }

    /// Queues a control frame.
    pub fn send_control(&self, control: &Control) -> Result<(), SendError> {
        self.control.push(control)
    }

    /// Sends an unreliable datagram (SWIM). Never waits; may be dropped.
    pub fn send_datagram(&self, data: Bytes) -> Result<(), SendError> {
        self.conn
            .send_datagram(data)
            .map_err(|_| SendError::Disconnected)
    }

    /// The largest datagram the connection carries now.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.conn.max_datagram_size()
    }

    /// Opens a bi-directional stream of the given kind (see [`super::stream_kind`]).
    pub async fn open_stream(&self, kind: u8) -> Result<FrameStream, SendError> {
        let (mut send, recv) = self
            .conn
            .open_bi()
            .await
            .map_err(|_| SendError::Disconnected)?;
        send.write_all(&[kind])
            .await
            .map_err(|_| SendError::Disconnected)?;
        Ok(FrameStream::new(send, recv, self.lanes[0].max_frame()))
    }

    /// Bytes queued on all lanes, waiting for the network.
    pub fn queued(&self) -> usize {
        self.lanes.iter().map(Lane::queued).sum::<usize>() + self.control.queued()
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }

    /// Closes the connection.
    pub(crate) fn close(&self, code: u32, reason: &str) {
        self.shut_lanes();
        self.conn
            .close(quinn::VarInt::from_u32(code), reason.as_bytes());
    }

    fn shut_lanes(&self) {
        for lane in self.lanes.iter() {
            lane.close();
        }
        self.control.close();
    }

    /// Writes raw bytes on a new uni stream, bypassing framing — only for tests that play a
    /// hostile peer.
    #[doc(hidden)]
    pub async fn write_raw_uni_for_tests(&self, bytes: &[u8]) -> Result<(), SendError> {
        let mut s = self
            .conn
            .open_uni()
            .await
            .map_err(|_| SendError::Disconnected)?;
        s.write_all(bytes)
            .await
            .map_err(|_| SendError::Disconnected)?;
        s.finish().map_err(|_| SendError::Disconnected)
    }
}

/// Starts the tasks of a link that just came up: lane writers, readers, datagrams, streams,
/// and the watcher that reports the connection's end.
pub(crate) fn start(
    mesh: &Mesh,
    link: Arc<PeerLink>,
    handler: Arc<dyn MeshHandler>,
    control: (quinn::SendStream, quinn::RecvStream),
) {
    let max_frame = mesh.config().max_frame;
    let (control_send, control_recv) = control;
    for i in 0..link.lanes.len() {
        let link = link.clone();
        tokio::spawn(async move {
            let Ok(stream) = link.conn.open_uni().await else {
                link.shut_lanes();
                return;
            };
            link.lanes[i].run_writer(stream).await;
        });
    }
    {
        let link = link.clone();
        tokio::spawn(async move {
            let _ = control_send.set_priority(10);
            link.control.run_writer(control_send).await;
        });
    }
    {
        let (link, handler) = (link.clone(), handler.clone());
        tokio::spawn(async move {
            read_frames::<Control>(&link, control_recv, max_frame, |c| {
                handler.control(&link, c)
            })
            .await;
        });
    }
    {
        let (link, handler) = (link.clone(), handler.clone());
        tokio::spawn(async move {
            while let Ok(recv) = link.conn.accept_uni().await {
                let (link, handler) = (link.clone(), handler.clone());
                tokio::spawn(async move {
                    read_frames::<Signal>(&link, recv, max_frame, |s| handler.signal(&link, s))
                        .await;
                });
            }
        });
    }
    {
        let (link, handler) = (link.clone(), handler.clone());
        tokio::spawn(async move {
            while let Ok(data) = link.conn.read_datagram().await {
                handler.datagram(&link, data);
            }
        });
    }
    {
        let (link, handler) = (link.clone(), handler.clone());
        tokio::spawn(async move {
            while let Ok((send, mut recv)) = link.conn.accept_bi().await {
                let (link, handler) = (link.clone(), handler.clone());
                tokio::spawn(async move {
                    let mut kind = [0u8; 1];
                    if recv.read_exact(&mut kind).await.is_ok() {
                        let stream = FrameStream::new(send, recv, max_frame);
                        handler.stream(link, kind[0], stream);
                    }
                });
            }
        });
    }
    let mesh = mesh.clone();
    tokio::spawn(async move {
        let reason = link.conn.closed().await;
        link.shut_lanes();
        mesh.link_closed(&link, &reason.to_string());
    });
}

/// Reads frames of `T` from `recv` until it ends, handing each to `deliver`. A protocol
/// violation closes the whole connection (and is logged and counted); nothing else is touched.
pub(crate) async fn read_frames<T: DeserializeOwned>(
    link: &PeerLink,
    mut recv: quinn::RecvStream,
    max_frame: usize,
    mut deliver: impl FnMut(T),
) {
    let mut dec = FrameDecoder::<T>::new(max_frame);
    loop {
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => {
                dec.push(&chunk.bytes);
                loop {
                    match dec.next_frame() {
                        Ok(Some(frame)) => deliver(frame),
                        Ok(None) => break,
                        Err(e) => return violation(link, &e),
                    }
                }
            }
            Ok(None) => {
                if let Err(e) = dec.finish() {
                    violation(link, &e);
                }
                return;
            }
            Err(_) => return,
        }
    }
}

fn violation(link: &PeerLink, error: &WireError) {
    metrics::counter!(PROTOCOL_ERRORS_METRIC).increment(1);
    tracing::warn!(peer = %link.info.name, %error, "protocol violation; closing the connection");
    link.close(close_code::PROTOCOL, "protocol violation");
}

/// A bi-directional stream of frames (e.g. one membership sync): send frames, receive frames.
pub struct FrameStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    buf: Vec<u8>,
    max_frame: usize,
}

impl std::fmt::Debug for FrameStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameStream").finish_non_exhaustive()
    }
}

impl FrameStream {
    fn new(send: quinn::SendStream, recv: quinn::RecvStream, max_frame: usize) -> Self {
        FrameStream {
            send,
            recv,
            buf: Vec::new(),
            max_frame,
        }
    }

    /// Sends one frame.
    pub async fn send<T: serde::Serialize>(&mut self, frame: &T) -> Result<(), SendError> {
        let bytes = crate::wire::encode_frame(frame, self.max_frame)?;
        self.send
            .write_all(&bytes)
            .await
            .map_err(|_| SendError::Disconnected)
    }

    /// Says that no more frames will be sent.
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }

    /// Abandons the stream both ways: resets our sending side (dropping what the peer has not
    /// taken) and asks the peer to stop sending. For a peer that stalls, so that neither the
    /// buffers nor the stream (a slot of the peer's stream limit) stay held for it.
    pub fn abort(&mut self) {
        let _ = self.send.reset(quinn::VarInt::from_u32(0));
        let _ = self.recv.stop(quinn::VarInt::from_u32(0));
    }

    /// Receives one frame; `None` when the peer finished the stream cleanly.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        loop {
            let mut dec = FrameDecoder::<T>::new(self.max_frame);
            dec.push(&self.buf);
            if let Some(frame) = dec.next_frame()? {
                let used = self.buf.len() - dec.buffered();
                self.buf.drain(..used);
                return Ok(Some(frame));
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.recv.read(&mut chunk).await {
                Ok(Some(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(None) if self.buf.is_empty() => return Ok(None),
                Ok(None) => {
                    return Err(WireError::Truncated {
                        have: self.buf.len(),
                        need: self.buf.len() + 1,
                    });
                }
                Err(e) => return Err(WireError::Malformed(format!("stream failed: {e}"))),
            }
        }
    }
}
