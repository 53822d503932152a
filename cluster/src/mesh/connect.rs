//! Making connections: dialing a peer, accepting one, and the Hello exchange on both sides.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::handshake::{Decision, Existing, RefuseWhy, check_hello, decide_accepted};
use super::link::close_code;
use super::{Mesh, PeerLink, Slot, lock, stream_kind};
use crate::certs::{IdentityMismatch, cluster_san, node_name_of, node_san};
use crate::identity::NodeName;
use crate::wire::{Control, FrameDecoder, Hello, Refusal, WireError, encode_frame};

/// The underlying QUIC or TLS failure of a connection attempt.
pub type ConnectFailure = Box<dyn std::error::Error + Send + Sync>;

/// Why a dial (or an accept) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// QUIC or TLS failed (unreachable, refused certificate, reset).
    #[error("the connection could not be established")]
    Connect(#[source] ConnectFailure),
    /// The handshake did not complete in time.
    #[error("the handshake did not complete within {0:?}; is the peer up and reachable?")]
    TimedOut(Duration),
    /// The peer's certificate does not name a node of this cluster.
    #[error("the peer's certificate is not acceptable")]
    Identity(#[source] IdentityMismatch),
    /// The peer's certificate names another node than the one dialed.
    #[error("dialed {expected}, but the peer is {reached}")]
    UnexpectedPeer {
        /// The node that was dialed.
        expected: NodeName,
        /// The node the certificate names.
        reached: NodeName,
    },
    /// The peer refused our Hello (or we refused its Hello).
    #[error("the handshake was refused")]
    Refused(#[source] Refusal),
    /// The peer broke the handshake protocol (a frame that does not decode, or another
    /// frame than expected).
    #[error("the peer broke the handshake protocol")]
    Protocol(#[source] WireError),
    /// A connection to this peer already exists (this one was dropped).
    #[error("already connected")]
    Duplicate,
    /// The mesh is shutting down.
    #[error("the mesh is shut down")]
    Shutdown,
    /// The mesh has not been started ([`Mesh::start`]) yet.
    #[error("the mesh is not started yet")]
    NotStarted,
    /// (Accepting.) Busy: the client was asked to prove its address and try again.
    #[error("busy; the client was asked to retry")]
    Retried,
}

fn connect_failure(e: impl std::error::Error + Send + Sync + 'static) -> DialError {
    DialError::Connect(Box::new(e))
}

/// A peer slot reserved by an accept in progress, released if the accept fails, times out
/// or is dropped before installing the connection — otherwise a stale reservation would
/// block the pair for good.
struct Reservation<'a> {
    mesh: &'a Mesh,
    name: NodeName,
    armed: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.mesh.release_dialing(&self.name);
        }
    }
}

impl Mesh {
    /// Dials `addr`. With `expected`, the peer must be that node (its node SAN is the TLS
    /// server name); without, any node of the cluster (a seed known only by address).
    pub async fn dial(
        &self,
        addr: SocketAddr,
        expected: Option<NodeName>,
    ) -> Result<Arc<PeerLink>, DialError> {
        if self.is_closing() {
            return Err(DialError::Shutdown);
        }
        if self.handler().is_none() {
            return Err(DialError::NotStarted);
        }
        let timeout = self.inner.cfg.dial_timeout;
        let _permit = tokio::time::timeout(timeout, self.inner.dials.acquire())
            .await
            .map_err(|_| DialError::TimedOut(timeout))?
            .map_err(|_| DialError::Shutdown)?;
        let server_name = match &expected {
            Some(n) => node_san(&self.inner.cluster, n),
            None => cluster_san(&self.inner.cluster),
        };
        let conn = tokio::time::timeout(timeout, async {
            self.inner
                .endpoint
                .connect(addr, &server_name)
                .map_err(connect_failure)?
                .await
                .map_err(connect_failure)
        })
        .await
        .map_err(|_| DialError::TimedOut(timeout))??;
        let certified = self.certified_name(&conn)?;
        if let Some(expected) = expected.filter(|e| e != &certified) {
            conn.close(close_code::REFUSED.into(), b"unexpected peer");
            return Err(DialError::UnexpectedPeer {
                expected,
                reached: certified,
            });
        }
        // Claim the peer before the Hello so a crossing dial from it sees us dialing.
        {
            let mut peers = lock(&self.inner.peers);
            if peers.contains_key(&certified) {
                conn.close(close_code::NORMAL.into(), b"duplicate");
                return Err(DialError::Duplicate);
            }
            peers.insert(certified.clone(), Slot::Dialing);
        }
        let result = tokio::time::timeout(timeout, self.hello_as_dialer(&conn, &certified)).await;
        let (hello, control) = match result {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.release_dialing(&certified);
                conn.close(close_code::REFUSED.into(), b"handshake failed");
                return Err(e);
            }
            Err(_) => {
                self.release_dialing(&certified);
                conn.close(close_code::REFUSED.into(), b"handshake timed out");
                return Err(DialError::TimedOut(timeout));
            }
        };
        Ok(self.install(conn, &certified, &hello, control))
    }

    async fn hello_as_dialer(
        &self,
        conn: &quinn::Connection,
        certified: &NodeName,
    ) -> Result<(Hello, (quinn::SendStream, quinn::RecvStream)), DialError> {
        let (mut send, mut recv) = conn.open_bi().await.map_err(connect_failure)?;
        let mut out = vec![stream_kind::CONTROL];
        out.extend(
            encode_frame(
                &Control::Hello(self.inner.hello.clone()),
                self.inner.cfg.max_frame,
            )
            .map_err(DialError::Protocol)?,
        );
        send.write_all(&out).await.map_err(connect_failure)?;
        match read_one_control(&mut recv, self.inner.cfg.max_frame).await? {
            Control::HelloAck(h) => {
                check_hello(&self.inner.cluster, &self.inner.me, certified, &h)
                    .map_err(DialError::Refused)?;
                Ok((h, (send, recv)))
            }
            Control::Refuse(Refusal::Duplicate) => Err(DialError::Duplicate),
            Control::Refuse(refusal) => Err(DialError::Refused(refusal)),
            other => Err(DialError::Protocol(WireError::Malformed(format!(
                "expected HelloAck, got {}",
                control_name(&other)
            )))),
        }
    }

    pub(super) async fn accept(&self, incoming: quinn::Incoming) -> Result<(), DialError> {
        let timeout = self.inner.cfg.dial_timeout;
        // Every slot busy: a client that has not proven its address yet does so first (a
        // stateless retry costs us nothing), so a flood of spoofed or stalled handshakes
        // cannot hold the slots. A validated one waits for a slot; its client retries its
        // Initial meanwhile, so a burst of dials is served a few at a time.
        let _permit = match self.inner.accepts.try_acquire() {
            Ok(permit) => permit,
            Err(_) if !incoming.remote_address_validated() && incoming.may_retry() => {
                let _ = incoming.retry();
                return Err(DialError::Retried);
            }
            Err(_) => {
                let Ok(Ok(permit)) =
                    tokio::time::timeout(timeout, self.inner.accepts.acquire()).await
                else {
                    incoming.ignore();
                    return Err(DialError::TimedOut(timeout));
                };
                permit
            }
        };
        let conn = tokio::time::timeout(timeout, incoming)
            .await
            .map_err(|_| DialError::TimedOut(timeout))?
            .map_err(connect_failure)?;
        let certified = self.certified_name(&conn)?;
        let mut reservation = Reservation {
            mesh: self,
            name: certified.clone(),
            armed: false,
        };
        let max_frame = self.inner.cfg.max_frame;
        let step = async {
            let (mut send, mut recv) = conn.accept_bi().await.map_err(connect_failure)?;
            let mut kind = [0u8; 1];
            recv.read_exact(&mut kind).await.map_err(connect_failure)?;
            if kind[0] != stream_kind::CONTROL {
                return Err(DialError::Protocol(WireError::Malformed(
                    "the first stream is not the control stream".into(),
                )));
            }
            let hello = match read_one_control(&mut recv, max_frame).await? {
                Control::Hello(h) => h,
                other => {
                    return Err(DialError::Protocol(WireError::Malformed(format!(
                        "expected Hello, got {}",
                        control_name(&other)
                    ))));
                }
            };
            if let Err(r) = check_hello(&self.inner.cluster, &self.inner.me, &certified, &hello) {
                let _ = write_control(&mut send, &Control::Refuse(r.clone()), max_frame).await;
                return Err(DialError::Refused(r));
            }
            // Decide and reserve atomically, so two inbound connections cannot both win.
            let (decision, current) = {
                let mut peers = lock(&self.inner.peers);
                let existing = match peers.get(&certified) {
                    None => Existing::None,
                    Some(Slot::Dialing) => Existing::Dialing,
                    Some(Slot::Up(l)) => Existing::Up {
                        incarnation: l.info().incarnation,
                    },
                };
                let d = decide_accepted(
                    self.inner.my_id.get(),
                    hello.node_id,
                    hello.incarnation,
                    existing,
                );
                if matches!(d, Decision::Keep | Decision::Replace)
                    && !matches!(existing, Existing::Up { .. })
                {
                    peers.insert(certified.clone(), Slot::Dialing);
                    reservation.armed = true;
                }
                let current = match existing {
                    Existing::Up { incarnation } => incarnation,
                    _ => 0,
                };
                (d, current)
            };
            match decision {
                Decision::Refuse(why) => {
                    let refusal = match why {
                        RefuseWhy::Duplicate => Refusal::Duplicate,
                        RefuseWhy::Stale => Refusal::Stale {
                            theirs: hello.incarnation,
                            current,
                        },
                    };
                    let _ = write_control(&mut send, &Control::Refuse(refusal), max_frame).await;
                    Err(DialError::Duplicate)
                }
                Decision::Keep | Decision::Replace => {
                    write_control(
                        &mut send,
                        &Control::HelloAck(self.inner.hello.clone()),
                        max_frame,
                    )
                    .await?;
                    Ok((hello, (send, recv)))
                }
            }
        };
        match tokio::time::timeout(timeout, step).await {
            Ok(Ok((hello, control))) => {
                reservation.armed = false;
                self.install(conn, &certified, &hello, control);
                Ok(())
            }
            Ok(Err(e)) => {
                // Give the Refuse frame a moment to leave before closing.
                let conn2 = conn.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    conn2.close(close_code::REFUSED.into(), b"refused");
                });
                if !matches!(e, DialError::Duplicate) {
                    tracing::warn!(peer = %certified, error = %e, "refused an inbound connection");
                }
                Err(e)
            }
            Err(_) => {
                conn.close(close_code::REFUSED.into(), b"handshake timed out");
                Err(DialError::TimedOut(timeout))
            }
        }
    }

    fn certified_name(&self, conn: &quinn::Connection) -> Result<NodeName, DialError> {
        let certs = conn
            .peer_identity()
            .and_then(|any| {
                any.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                    .ok()
            })
            .ok_or(DialError::Identity(IdentityMismatch::Malformed(
                "the peer presented no certificate".into(),
            )))?;
        let leaf = certs
            .first()
            .ok_or(DialError::Identity(IdentityMismatch::Malformed(
                "empty certificate chain".into(),
            )))?;
        node_name_of(&self.inner.cluster, leaf.as_ref()).map_err(DialError::Identity)
    }
}

/// A control frame's name, for errors (never its contents, which the peer chose).
fn control_name(c: &Control) -> &'static str {
    match c {
        Control::Hello(_) => "Hello",
        Control::HelloAck(_) => "HelloAck",
        Control::Refuse(_) => "Refuse",
        Control::Extension { .. } => "Extension",
    }
}

/// Reads exactly one control frame, and not a byte more: what follows it on the stream
/// belongs to the link's reader.
async fn read_one_control(
    recv: &mut quinn::RecvStream,
    max_frame: usize,
) -> Result<Control, DialError> {
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix)
        .await
        .map_err(connect_failure)?;
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max_frame {
        return Err(DialError::Protocol(WireError::TooLarge {
            len,
            max: max_frame,
        }));
    }
    let mut frame = prefix.to_vec();
    frame.resize(4 + len, 0);
    recv.read_exact(&mut frame[4..])
        .await
        .map_err(connect_failure)?;
    let mut dec = FrameDecoder::<Control>::new(max_frame);
    dec.push(&frame);
    dec.next_frame()
        .map_err(DialError::Protocol)?
        .ok_or(DialError::Protocol(WireError::Truncated {
            have: frame.len(),
            need: frame.len() + 1,
        }))
}

async fn write_control(
    send: &mut quinn::SendStream,
    frame: &Control,
    max_frame: usize,
) -> Result<(), DialError> {
    let bytes = encode_frame(frame, max_frame).map_err(DialError::Protocol)?;
    send.write_all(&bytes).await.map_err(connect_failure)
}
