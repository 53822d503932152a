//! One live connection to a peer: its lanes, its signal and control streams, and the tasks
//! that read them.
//!
//! A link's readers hand frames to the [`MeshHandler`](super::MeshHandler) one at a time, in
//! stream order. The handler may answer [`Admit::After`] to make a data lane or the control
//! stream wait before the next frame (the receiver is backlogged): the stream is then not
//! read, QUIC flow control stops the peer's writer, and the peer's lane fills until its sends
//! fail with `Overloaded`. The signal stream is never paused.
//!
//! The link is reported down only after every reader has finished, so a handler sees
//! `peer_up`, then the link's frames, then `peer_down`, and nothing of the link after that.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::lane::{Kind, Lane, PushError, SendError};
use super::{Mesh, MeshHandler, uni_kind};
use crate::identity::NodeName;
use crate::wire::{Barrier, Control, Delivery, RawFrames, Signal, WireError};
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
    /// The peer stopped reading: a signal found no room.
    pub(crate) const STALLED: u32 = 3;
}

/// Stream priorities: signals before control before data.
const SIGNAL_PRIORITY: i32 = 20;
const CONTROL_PRIORITY: i32 = 10;

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
    /// How many data lanes the connection uses in each direction (the smaller of the two
    /// sides' configured counts).
    pub lanes: u16,
    /// How much the peer may queue per lane (its `mesh.lane_buffer`).
    pub lane_buffer: usize,
    /// The largest frame the peer writes (its `mesh.max_frame`).
    pub max_frame: usize,
}

/// What a reader does after handing a frame to the handler.
pub enum Admit {
    /// Read the next frame.
    Next,
    /// Wait for this first (the receiver is backlogged). The wait ends early if the
    /// connection closes.
    After(Pin<Box<dyn Future<Output = ()> + Send>>),
}

impl std::fmt::Debug for Admit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Admit::Next => f.write_str("Next"),
            Admit::After(_) => f.write_str("After(..)"),
        }
    }
}

/// Counts a link's running tasks of one kind, so that the link can wait for the last one
/// (its end is reported after the last reader; a graceful close waits for the writers).
#[derive(Default)]
struct Tasks {
    running: AtomicUsize,
    done: Notify,
}

impl Tasks {
    async fn all_done(&self) {
        loop {
            let notified = self.done.notified();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One running task of a link; the count drops when it is dropped.
struct TaskGuard {
    link: Arc<PeerLink>,
    writer: bool,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let tasks = if self.writer {
            &self.link.writers
        } else {
            &self.link.readers
        };
        if tasks.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            tasks.done.notify_waiters();
        }
    }
}

/// The sending side of one connection to a peer.
pub struct PeerLink {
    info: PeerInfo,
    conn: quinn::Connection,
    lanes: Box<[Lane]>,
    signals: Lane,
    control: Lane,
    serial: u64,
    readers: Tasks,
    writers: Tasks,
    down: Notify,
    reported_down: AtomicBool,
    session: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
    lane_streams: Mutex<Vec<bool>>,
    signals_claimed: AtomicBool,
    /// Signals from the peer handled so far (messages stamped with more wait for them).
    signals_handled: AtomicU64,
    /// The peer's streams that ended cleanly (see `stream_ended`).
    streams_ended: AtomicUsize,
    signal_handled: Notify,
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
        lane_buffer: usize,
        max_frame: usize,
        serial: u64,
    ) -> Self {
        let lanes = usize::from(info.lanes.max(1));
        PeerLink {
            conn,
            lanes: (0..lanes)
                .map(|_| Lane::new(lane_buffer, max_frame))
                .collect(),
            signals: Lane::new(lane_buffer, max_frame),
            control: Lane::new(lane_buffer, max_frame),
            serial,
            readers: Tasks::default(),
            writers: Tasks::default(),
            down: Notify::new(),
            reported_down: AtomicBool::new(false),
            session: Mutex::new(None),
            lane_streams: Mutex::new(vec![false; lanes]),
            signals_claimed: AtomicBool::new(false),
            signals_handled: AtomicU64::new(0),
            streams_ended: AtomicUsize::new(0),
            signal_handled: Notify::new(),
            info,
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

    /// How many data lanes the link has.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The lane that carries messages keyed by `key` (the target actor's pid).
    pub fn lane_of(&self, key: u64) -> usize {
        // Pids are sequential; a multiplicative mix spreads neighbours across lanes.
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % self.lanes.len()
    }

    /// Queues a message on the lane of `key`. Fails with [`SendError::Overloaded`] while that
    /// lane is full.
    ///
    /// The message is stamped with the number of signals sent before it, and the peer holds
    /// it until it has handled that many: a monitor or link set up before a message takes
    /// effect before it, as Erlang orders all signals between two processes.
    pub fn send(&self, key: u64, delivery: &Delivery) -> Result<(), SendError> {
        let stamped = (self.signals.frames(), delivery);
        self.push(&self.lanes[self.lane_of(key)], &stamped, Kind::Data)
    }

    /// Queues a message on the lane of `key`, waiting while that lane is full (as tokio's
    /// `Sender::send().await`) instead of failing with [`SendError::Overloaded`].
    pub async fn send_waiting(&self, key: u64, delivery: &Delivery) -> Result<(), SendError> {
        let lane = &self.lanes[self.lane_of(key)];
        lane.push_waiting(|| (self.signals.frames(), delivery))
            .await
    }

    /// Queues a signal on the signal stream. A signal is never refused for lack of room: if
    /// the peer has stopped reading so long that even the reserve is full, the connection
    /// fails instead (and the error is [`SendError::Disconnected`]).
    pub fn send_signal(&self, signal: &Signal) -> Result<(), SendError> {
        self.push(&self.signals, signal, Kind::Signal)
    }

    /// The barrier for a signal that must not overtake the messages queued so far: how many
    /// frames each lane has carried.
    pub fn barrier(&self) -> Barrier {
        self.lanes.iter().map(Lane::frames).collect()
    }

    /// Queues a control frame that may be refused when the control stream is full
    /// (extension notices and requests).
    pub fn send_control(&self, control: &Control) -> Result<(), SendError> {
        self.push(&self.control, control, Kind::Data)
    }

    fn push<T: serde::Serialize>(
        &self,
        lane: &Lane,
        frame: &T,
        kind: Kind,
    ) -> Result<(), SendError> {
        match lane.push(frame, kind) {
            Ok(()) => Ok(()),
            Err(PushError::Send(e)) => Err(e),
            Err(PushError::Full(_)) => {
                tracing::warn!(peer = %self.info.name, "the peer stopped reading signals; closing the connection");
                self.close(close_code::STALLED, "peer stopped reading");
                Err(SendError::Disconnected)
            }
        }
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
        Ok(FrameStream::new(send, recv, self.control.max_frame()))
    }

    /// Bytes queued on all lanes and streams, waiting for the network.
    pub fn queued(&self) -> usize {
        self.lanes.iter().map(Lane::queued).sum::<usize>()
            + self.signals.queued()
            + self.control.queued()
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }

    /// Keeps the layer above's state for this link until the link is reported down (the
    /// state usually refers back to the link; dropping it then breaks that cycle).
    pub fn set_session(&self, session: Arc<dyn Any + Send + Sync>) {
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
    }

    /// The state kept with [`set_session`](Self::set_session), if it is a `T`.
    pub fn session<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?
            .downcast::<T>()
            .ok()
    }

    /// Waits until the link has been reported down (all its readers done).
    pub(crate) async fn reported_down(&self) {
        loop {
            let notified = self.down.notified();
            if self.reported_down.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn mark_reported_down(&self) {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.reported_down.store(true, Ordering::Release);
        self.down.notify_waiters();
    }

    /// Closes the connection because the peer broke the protocol (counted and logged).
    pub fn close_for_violation(&self, what: &str) {
        violation(self, &WireError::Malformed(what.to_owned()));
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
        self.signals.close();
        self.control.close();
    }

    /// Writes raw bytes on a new uni stream, bypassing framing — only for tests that play a
    /// hostile peer.
    #[cfg(any(test, feature = "testing"))]
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

    /// Opens a raw bi-directional stream and writes `bytes` on it, bypassing framing — only
    /// for tests that play a hostile peer. The stream stays open while the returned handle
    /// lives.
    #[cfg(any(test, feature = "testing"))]
    pub async fn open_raw_bi_for_tests(
        &self,
        bytes: &[u8],
    ) -> Result<(quinn::SendStream, quinn::RecvStream), SendError> {
        let (mut send, recv) = self
            .conn
            .open_bi()
            .await
            .map_err(|_| SendError::Disconnected)?;
        send.write_all(bytes)
            .await
            .map_err(|_| SendError::Disconnected)?;
        Ok((send, recv))
    }

    fn reader(self: &Arc<Self>) -> TaskGuard {
        self.readers.running.fetch_add(1, Ordering::AcqRel);
        TaskGuard {
            link: self.clone(),
            writer: false,
        }
    }

    fn writer(self: &Arc<Self>) -> TaskGuard {
        self.writers.running.fetch_add(1, Ordering::AcqRel);
        TaskGuard {
            link: self.clone(),
            writer: true,
        }
    }

    /// Closes gracefully: takes no more frames, lets every stream deliver what is queued
    /// (waiting at most `timeout` for the peer to acknowledge it), then closes the
    /// connection.
    ///
    /// "Acknowledged" by QUIC only means the peer's stack has the bytes, not that its
    /// readers have taken them, and closing a connection discards what is unread. So the peer
    /// closes the connection itself once every stream this side writes has ended and been
    /// read to its end (see `stream_ended`), and this side waits for that.
    pub(crate) async fn finish(&self, timeout: Duration, reason: &str) {
        self.shut_lanes();
        let _ = tokio::time::timeout(timeout, async {
            self.writers.all_done().await;
            self.conn.closed().await;
        })
        .await;
        self.close(close_code::NORMAL, reason);
    }

    /// One of the peer's streams to us ended cleanly, read to its end. When all have (its
    /// lanes, its signals, its control stream), the peer is leaving and waits for us to close:
    /// everything it sent has been handed on.
    fn stream_ended(&self) {
        let ended = self.streams_ended.fetch_add(1, Ordering::AcqRel) + 1;
        if ended == self.lanes.len() + 2 {
            self.close(close_code::NORMAL, "the peer finished");
        }
    }

    /// Counts a handled signal from the peer.
    fn signal_done(&self) {
        self.signals_handled.fetch_add(1, Ordering::AcqRel);
        self.signal_handled.notify_waiters();
    }

    /// Waits until `count` signals from the peer have been handled.
    async fn signals_handled(&self, count: u64) {
        loop {
            let notified = self.signal_handled.notified();
            if self.signals_handled.load(Ordering::Acquire) >= count {
                return;
            }
            notified.await;
        }
    }

    /// Claims the incoming signal stream (exactly once).
    fn claim_signals(&self) -> bool {
        !self.signals_claimed.swap(true, Ordering::AcqRel)
    }

    /// Claims data lane `index` for an incoming stream (each exactly once).
    fn claim_lane(&self, index: usize) -> bool {
        let mut seen = self.lane_streams.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get_mut(index) {
            Some(taken) if !*taken => {
                *taken = true;
                true
            }
            _ => false,
        }
    }
}

/// Starts the writers of a link that just came up. They run until the link closes.
pub(crate) fn start_writers(link: &Arc<PeerLink>, control_send: quinn::SendStream) {
    for i in 0..link.lanes.len() {
        let guard = link.writer();
        tokio::spawn(async move {
            let link = &guard.link;
            let Ok(stream) = link.conn.open_uni().await else {
                link.shut_lanes();
                return;
            };
            // `i < lanes <= 64`, so the header is the lane index itself.
            link.lanes[i].run_writer(stream, Some(i as u8)).await;
        });
    }
    {
        let guard = link.writer();
        tokio::spawn(async move {
            let link = &guard.link;
            let Ok(stream) = link.conn.open_uni().await else {
                link.shut_lanes();
                return;
            };
            let _ = stream.set_priority(SIGNAL_PRIORITY);
            link.signals
                .run_writer(stream, Some(uni_kind::SIGNALS))
                .await;
        });
    }
    {
        let guard = link.writer();
        tokio::spawn(async move {
            let _ = control_send.set_priority(CONTROL_PRIORITY);
            guard.link.control.run_writer(control_send, None).await;
        });
    }
}

/// Starts the readers of a link and the watcher that reports its end once they are done.
pub(crate) fn start_readers(
    mesh: &Mesh,
    link: Arc<PeerLink>,
    handler: Arc<dyn MeshHandler>,
    control_recv: quinn::RecvStream,
) {
    let max_frame = mesh.config().max_frame;
    let first_byte = mesh.config().dial_timeout;
    {
        let (guard, handler) = (link.reader(), handler.clone());
        tokio::spawn(async move {
            let link = guard.link.clone();
            read_frames::<Control>(&link, control_recv, max_frame, |c, _| {
                handler.control(&link, c)
            })
            .await;
            drop(guard);
        });
    }
    {
        let (guard, handler) = (link.reader(), handler.clone());
        tokio::spawn(async move {
            let link = guard.link.clone();
            while let Ok(recv) = link.conn.accept_uni().await {
                let (reader, handler) = (link.reader(), handler.clone());
                tokio::spawn(read_uni(reader, handler, recv, max_frame, first_byte));
            }
            drop(guard);
        });
    }
    {
        let (guard, handler) = (link.reader(), handler.clone());
        tokio::spawn(async move {
            let link = guard.link.clone();
            while let Ok(data) = link.conn.read_datagram().await {
                handler.datagram(&link, data);
            }
            drop(guard);
        });
    }
    {
        let (guard, handler) = (link.reader(), handler.clone());
        tokio::spawn(async move {
            let link = guard.link.clone();
            while let Ok((send, recv)) = link.conn.accept_bi().await {
                let (link, handler) = (link.clone(), handler.clone());
                tokio::spawn(accept_stream(
                    link, handler, send, recv, max_frame, first_byte,
                ));
            }
            drop(guard);
        });
    }
    let mesh = mesh.clone();
    tokio::spawn(async move {
        let reason = link.conn.closed().await;
        link.shut_lanes();
        link.readers.all_done().await;
        mesh.link_closed(&link, &reason.to_string(), &handler);
    });
}

/// Reads an incoming uni stream: its first byte names it (a data lane or the signals).
async fn read_uni(
    guard: TaskGuard,
    handler: Arc<dyn MeshHandler>,
    mut recv: quinn::RecvStream,
    max_frame: usize,
    first_byte: Duration,
) {
    let link = guard.link.clone();
    let mut header = [0u8; 1];
    match tokio::time::timeout(first_byte, recv.read_exact(&mut header)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return,
        Err(_) => {
            return violation(
                &link,
                &WireError::Malformed("a stream sent no header in time".into()),
            );
        }
    }
    match header[0] {
        uni_kind::SIGNALS if link.claim_signals() => {
            read_frames::<Signal>(&link, recv, max_frame, |s, _| {
                handler.signal(&link, s);
                link.signal_done();
                Admit::Next
            })
            .await;
        }
        lane if usize::from(lane) < link.lanes() && link.claim_lane(usize::from(lane)) => {
            let lane = usize::from(lane);
            read_lane(&link, &handler, lane, recv, max_frame).await;
        }
        other => violation(
            &link,
            &WireError::Malformed(format!("unexpected or repeated stream {other:#04x}")),
        ),
    }
    drop(guard);
}

/// Reads a data lane: each message waits for the signals sent before it (see
/// [`PeerLink::send`]), then goes to the handler.
async fn read_lane(
    link: &Arc<PeerLink>,
    handler: &Arc<dyn MeshHandler>,
    lane: usize,
    recv: quinn::RecvStream,
    max_frame: usize,
) {
    read_frames::<(u64, Delivery)>(link, recv, max_frame, |(signals, d), size| {
        if link.signals_handled.load(Ordering::Acquire) >= signals {
            return handler.delivery(link, lane, d, size);
        }
        // Held until the signal stream catches up (it is never paused, so soon).
        let (link, handler) = (link.clone(), handler.clone());
        Admit::After(Box::pin(async move {
            link.signals_handled(signals).await;
            if let Admit::After(wait) = handler.delivery(&link, lane, d, size) {
                wait.await;
            }
        }))
    })
    .await;
}

/// Accepts a bi-directional stream the peer opened: its first byte names its kind.
async fn accept_stream(
    link: Arc<PeerLink>,
    handler: Arc<dyn MeshHandler>,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    max_frame: usize,
    first_byte: Duration,
) {
    let mut kind = [0u8; 1];
    match tokio::time::timeout(first_byte, recv.read_exact(&mut kind)).await {
        Ok(Ok(())) if kind[0] == super::stream_kind::CONTROL => violation(
            &link,
            &WireError::Malformed("a second control stream".into()),
        ),
        Ok(Ok(())) => handler.stream(link, kind[0], FrameStream::new(send, recv, max_frame)),
        Ok(Err(_)) => {}
        // A stream that names no kind in time is dropped (its peer may be slow or hostile);
        // dropping resets it, so it holds nothing here.
        Err(_) => tracing::debug!(peer = %link.info.name, "a stream sent no kind in time; dropped"),
    }
}

/// Reads frames of `T` from `recv` until it ends, handing each to `deliver` and waiting when
/// it says so. A protocol violation closes the whole connection (and is logged and counted);
/// nothing else is touched.
pub(crate) async fn read_frames<T: DeserializeOwned>(
    link: &PeerLink,
    mut recv: quinn::RecvStream,
    max_frame: usize,
    mut deliver: impl FnMut(T, usize) -> Admit,
) {
    let mut frames = RawFrames::new(max_frame);
    loop {
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => {
                frames.push(&chunk.bytes);
                loop {
                    let before = frames.buffered();
                    match frames.next_frame::<T>() {
                        Ok(Some(frame)) => {
                            let size = before - frames.buffered();
                            let admit = deliver(frame, size);
                            // Closed (a violation, or by us): what quinn still buffers is not
                            // the peer's to deliver any more.
                            if link.is_closed() {
                                return;
                            }
                            if let Admit::After(wait) = admit {
                                tokio::select! {
                                    () = wait => {}
                                    _ = link.conn.closed() => return,
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return violation(link, &e),
                    }
                }
            }
            Ok(None) => {
                match frames.finish() {
                    Ok(()) => link.stream_ended(),
                    Err(e) => violation(link, &e),
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
    frames: RawFrames,
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
            frames: RawFrames::new(max_frame),
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
            if let Some(frame) = self.frames.next_frame::<T>()? {
                return Ok(Some(frame));
            }
            match self.recv.read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => self.frames.push(&chunk.bytes),
                Ok(None) => return self.frames.finish().map(|()| None),
                Err(e) => return Err(WireError::Malformed(format!("stream failed: {e}"))),
            }
        }
    }
}
