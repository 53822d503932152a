//! Asks across nodes without a task in between (feature `remote`).
//!
//! **Answering side.** A connection registers a [`ReplySink`] and delivers each ask still
//! encoded, with a token in its metadata naming the sink and the call. The deserialise hook
//! (run by ractor in the answering actor's task) finds the sink and decodes the message with
//! a [`Reply`] that goes straight to it: the actor's `reply.send(answer)` encodes the answer
//! and queues it for the network in the actor's own task.
//!
//! **Asking side.** When an ask to a remote actor is serialised by [`tell`](crate::tell), the
//! typed port is not bridged by a task: it becomes a [`Completion`] (decode the bytes, hand
//! them to the port) that the connection keeps with the pending call and runs in its reader
//! when the answer arrives. The handover from the encoding code to the sender uses a
//! thread-local slot, because ractor's serialise hook can return only a `SerializedMessage`
//! and both run synchronously on the sender's thread.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::remote::EncodeError;
use crate::reply::{AskerGone, Reply};
use crate::weak_registry::WeakRegistry;

/// Why an ask got no answer from the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unanswered {
    /// The actor dropped the reply (or stopped) without answering.
    Dropped,
    /// The message did not decode as the actor's type.
    Rejected(String),
}

/// Where the answers to asks from one connection go; implemented by the cluster.
pub trait ReplySink: Send + Sync + 'static {
    /// The answer to `call` (or why there is none). Must not block.
    fn reply(&self, call: u64, answer: Result<Vec<u8>, Unanswered>) -> Result<(), AskerGone>;

    /// The node answering through this sink, which exports the local actors whose refs an
    /// answer carries (see [`crate::wire_ref`]). `None`: such answers do not encode.
    fn refs(&self) -> Option<crate::wire_ref::ResolverId> {
        None
    }
}

fn registry() -> &'static WeakRegistry<dyn ReplySink> {
    static REGISTRY: OnceLock<WeakRegistry<dyn ReplySink>> = OnceLock::new();
    REGISTRY.get_or_init(WeakRegistry::new)
}

/// A registered sink; unregistered when dropped.
#[derive(Debug)]
pub struct SinkRegistration {
    id: u64,
}

impl SinkRegistration {
    /// The metadata that routes the answer to `call` to this sink (appended to the message's
    /// metadata by the connection that delivers the ask).
    pub fn token(&self, call: u64) -> [u8; TOKEN_LEN] {
        let mut t = [0u8; TOKEN_LEN];
        t[..8].copy_from_slice(&MAGIC);
        t[8..16].copy_from_slice(&self.id.to_le_bytes());
        t[16..].copy_from_slice(&call.to_le_bytes());
        t
    }
}

impl Drop for SinkRegistration {
    fn drop(&mut self) {
        registry().remove(self.id);
    }
}

/// Registers `sink`; keep the registration as long as asks may be answered through it.
pub fn register_sink(sink: &Arc<dyn ReplySink>) -> SinkRegistration {
    SinkRegistration {
        id: registry().insert(sink),
    }
}

const MAGIC: [u8; 8] = *b"usreply1";
/// Bytes of a reply token.
pub const TOKEN_LEN: usize = 24;

/// The sink and call a message's metadata names, if any (and if the sink still exists). The
/// reply token is the metadata's last [`TOKEN_LEN`] bytes (after the backlog token).
fn target_of(metadata: &[u8]) -> Option<(Arc<dyn ReplySink>, u64)> {
    let at = metadata.len().checked_sub(TOKEN_LEN)?;
    if metadata[at..at + MAGIC.len()] != MAGIC {
        return None;
    }
    let rest = &metadata[at + MAGIC.len()..];
    let (id, call) = rest.split_at(8);
    let id = u64::from_le_bytes(id.try_into().ok()?);
    let call = u64::from_le_bytes(call.try_into().ok()?);
    let sink = registry().get(id)?;
    Some((sink, call))
}

thread_local! {
    /// The answer target of the ask being decoded on this thread (see the module docs).
    static DECODING: RefCell<Option<(Arc<dyn ReplySink>, u64)>> = const { RefCell::new(None) };
    /// `Some` while `tell` serialises an ask: the completion the encoder hands over.
    static SENDING: RefCell<Option<Option<Completion>>> = const { RefCell::new(None) };
}

/// Runs `decode` (a message's `from_wire`) with the answer target named by `metadata`
/// available to [`reply_for`]. If the target was not taken (the message is not an ask, or it
/// did not decode), an ask is answered `Rejected` with `rejected`'s text.
pub(crate) fn decoding<T, E: std::fmt::Display>(
    metadata: Option<&[u8]>,
    decode: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let target = metadata.and_then(target_of);
    let armed = target.is_some();
    if armed {
        DECODING.with(|d| *d.borrow_mut() = target);
    }
    let result = decode();
    if armed && let Some((sink, call)) = DECODING.with(|d| d.borrow_mut().take()) {
        let why = match &result {
            Ok(_) => "the message is not an ask".to_owned(),
            Err(e) => e.to_string(),
        };
        let _ = sink.reply(call, Err(Unanswered::Rejected(why)));
    }
    result
}

/// The answering side's `Reply` for an ask being decoded: straight to the asker's
/// connection if the message came with a target, else `None` (the caller bridges).
pub(crate) fn reply_for<R: serde::Serialize + Send + 'static>() -> Option<Reply<R>> {
    let (sink, call) = DECODING.with(|d| d.borrow_mut().take())?;
    Some(Reply::remote(RemoteReply {
        sink,
        call,
        encode: encode_answer::<R>,
        answered: false,
    }))
}

fn encode_answer<R: serde::Serialize>(value: R) -> Result<Vec<u8>, EncodeError> {
    postcard::to_allocvec(&value).map_err(|e| EncodeError::Payload {
        type_name: std::any::type_name::<R>(),
        reason: e.to_string(),
    })
}

/// An answer that goes to an asker on another node (see the module docs).
pub(crate) struct RemoteReply<R> {
    sink: Arc<dyn ReplySink>,
    call: u64,
    encode: fn(R) -> Result<Vec<u8>, EncodeError>,
    answered: bool,
}

impl<R> RemoteReply<R> {
    pub(crate) fn call(&self) -> u64 {
        self.call
    }

    pub(crate) fn is_closed(&self) -> bool {
        false
    }

    pub(crate) fn send(mut self, value: R) -> Result<(), AskerGone> {
        let encode = self.encode;
        // Refs in the answer are exported by the node that was asked.
        match crate::wire_ref::encoding(self.sink.refs(), || encode(value)) {
            Ok(bytes) => self.send_bytes(bytes),
            Err(e) => {
                tracing::warn!(error = %e, "an answer does not serialise; the asker sees the actor stopped");
                Err(AskerGone)
            }
        }
    }

    /// Passes on an answer that is already encoded (an ask forwarded to another node).
    pub(crate) fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<(), AskerGone> {
        self.answered = true;
        self.sink.reply(self.call, Ok(bytes))
    }
}

impl<R> Drop for RemoteReply<R> {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.sink.reply(self.call, Err(Unanswered::Dropped));
        }
    }
}

/// Whoever waits for an answer's bytes.
pub(crate) trait Answer: Send {
    /// Hands the bytes over.
    fn deliver(self: Box<Self>, bytes: Vec<u8>);

    /// Whether nobody waits any more (the asker gave up), so the answer need not be kept
    /// waiting for.
    fn is_closed(&self) -> bool;
}

/// Hands an answer's bytes to whoever waits for them.
pub(crate) type Deliver = Box<dyn Answer>;

/// What to do with the answer to an ask sent to another node: decode it and hand it to the
/// asker. Dropping it unrun tells the asker the actor gave no answer.
pub struct Completion {
    timeout: Option<Duration>,
    complete: Deliver,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Completion {
    /// How long the asker waits (`None`: untimed).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Hands the answer's bytes over (decoding them as the asker's type).
    pub fn complete(self, bytes: Vec<u8>) {
        self.complete.deliver(bytes);
    }

    /// Whether the asker gave up (its future was dropped): nothing waits for the answer.
    pub fn is_closed(&self) -> bool {
        self.complete.is_closed()
    }
}

/// Runs `serialize` (a message's serialise hook) and returns the completion its encoder
/// handed over, if the message is an ask.
pub(crate) fn sending<T>(serialize: impl FnOnce() -> T) -> (T, Option<Completion>) {
    SENDING.with(|s| *s.borrow_mut() = Some(None));
    let out = serialize();
    let completion = SENDING.with(|s| s.borrow_mut().take()).flatten();
    (out, completion)
}

/// Called by an ask's encoder: hands the asker's side to [`sending`] if it is waiting for
/// it; otherwise returns it.
pub(crate) fn hand_over(timeout: Option<Duration>, complete: Deliver) -> Option<Deliver> {
    SENDING.with(|s| {
        let mut slot = s.borrow_mut();
        match slot.as_mut() {
            Some(empty @ None) => {
                *empty = Some(Completion { timeout, complete });
                None
            }
            _ => Some(complete),
        }
    })
}
