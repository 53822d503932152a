//! Messages that can cross the network: [`RemoteMessage`], its stable [`Tag`], and the wire
//! encoding of one message.
//!
//! A message is sent to a remote actor as ractor's `SerializedMessage` whose `args` are
//! `tag (8 bytes, little endian) ++ postcard(payload)`. The tag names the Rust type (by
//! default a hash of its path, or a name the application fixes), so a receiver decodes only
//! what it was built to understand. Decoding is fallible everywhere: a wrong tag, truncated or
//! trailing bytes, or a payload postcard rejects become a [`DecodeError`] and a count in the
//! `understudy_decode_errors_total` metric, never a panic.
//!
//! Asks carry a reply port. Crossing the network, a typed `RpcReplyPort<R>` is bridged to a
//! byte port (`RpcReplyPort<Vec<u8>>`) on the sending side and back on the receiving side;
//! each bridge is one small task that lives until the reply arrives or the port is dropped.

use std::fmt;

use std::time::Duration;

use ractor::RpcReplyPort;
use ractor::message::{BoxedDowncastErr, SerializedMessage};

use crate::remote_reply::{Answer, Deliver};
use crate::reply::Reply;
pub use crate::wire_ref::actor_ref;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Metric counting every rejected inbound message (bad tag, bad bytes).
pub const DECODE_ERRORS_METRIC: &str = "understudy_decode_errors_total";

/// The stable identity of a message type on the wire.
///
/// ```
/// use understudy_actor::remote::Tag;
/// // Tags are FNV-1a hashes of a name, computed at compile time.
/// const PING: Tag = Tag::of("my_app::Ping");
/// assert_eq!(PING, Tag::of("my_app::Ping"));
/// assert_ne!(PING, Tag::of("my_app::Pong"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tag(pub u64);

impl Tag {
    /// The FNV-1a 64-bit hash of `name`: stable across builds, platforms and compiler versions.
    pub const fn of(name: &str) -> Tag {
        let bytes = name.as_bytes();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        Tag(hash)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Why an inbound message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than a tag.
    #[error(
        "message too short to hold a type tag ({len} bytes); the sender is not speaking understudy's wire format"
    )]
    Truncated {
        /// How many bytes arrived.
        len: usize,
    },
    /// The message is of another type than the receiver expects.
    #[error(
        "message tag {found} does not match {expected} ({type_name}); sender and receiver disagree on the message type (different versions, or a wrong ActorRef type)"
    )]
    WrongTag {
        /// The tag the receiver expects.
        expected: Tag,
        /// The tag that arrived.
        found: Tag,
        /// The Rust type the receiver expected.
        type_name: &'static str,
    },
    /// The payload did not decode as the expected type.
    #[error(
        "payload of {type_name} does not decode: {reason}; sender and receiver likely run incompatible versions of this type"
    )]
    Payload {
        /// The Rust type the receiver expected.
        type_name: &'static str,
        /// postcard's reason.
        reason: String,
    },
    /// Bytes were left after the payload.
    #[error(
        "{extra} trailing bytes after a {type_name}; the frame is corrupt or of a newer version"
    )]
    Trailing {
        /// The Rust type decoded.
        type_name: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// An ask arrived where a tell was expected, or the other way round.
    #[error("a {found} arrived for {type_name}, which expects a {expected} here")]
    WrongKind {
        /// The Rust type decoded.
        type_name: &'static str,
        /// What the receiver expected (`tell` or `ask`).
        expected: &'static str,
        /// What arrived.
        found: &'static str,
    },
    /// A variant index that the type does not have.
    #[error(
        "{type_name} has no message number {index}; sender and receiver run different versions"
    )]
    UnknownVariant {
        /// The Rust type decoded.
        type_name: &'static str,
        /// The index that arrived.
        index: u32,
    },
}

/// Why a message could not be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// postcard rejected the value (e.g. a map with a non-serialisable key).
    #[error("{type_name} does not serialise: {reason}")]
    Payload {
        /// The Rust type encoded.
        type_name: &'static str,
        /// postcard's reason.
        reason: String,
    },
    /// The value is meaningful only on its own node (a monitor's DOWN, which understudy puts
    /// in its watcher's mailbox itself) and is never sent.
    #[error("{what} in {type_name} is local to its node and cannot be sent to another")]
    LocalOnly {
        /// The Rust type encoded.
        type_name: &'static str,
        /// What could not be sent.
        what: &'static str,
    },
    /// Bridging a reply port needs a tokio runtime.
    #[error("an ask to a remote actor must be made from inside a tokio runtime")]
    NoRuntime,
}

/// A message type that can be sent to actors on other nodes.
///
/// Derive it with `#[derive(RemoteMessage)]` (serde types) or let `#[messages(remote)]`
/// generate it for an actor's message enum. The derive also implements `ractor::Message`
/// so that a remote `ActorRef` serialises the message when it is sent.
pub trait RemoteMessage: ractor::Message {
    /// The type's stable wire identity.
    const TAG: Tag;

    /// Encodes the message for the wire (asks bridge their reply port here).
    fn to_wire(self) -> Result<SerializedMessage, EncodeError>;

    /// Decodes a message that arrived from the wire.
    fn from_wire(message: SerializedMessage) -> Result<Self, DecodeError>;
}

/// Counts a rejected message and logs why. Returns the error for chaining.
pub fn reject(error: DecodeError) -> DecodeError {
    metrics::counter!(DECODE_ERRORS_METRIC).increment(1);
    tracing::warn!(%error, "rejected inbound message");
    error
}

/// Encodes `tag ++ postcard(payload)`.
pub fn encode_args<T: Serialize + ?Sized>(tag: Tag, payload: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&tag.0.to_le_bytes());
    postcard::to_io(payload, &mut out).map_err(|e| EncodeError::Payload {
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Splits `args` into its tag and payload, checking the tag.
pub fn check_tag<T>(expected: Tag, args: &[u8]) -> Result<&[u8], DecodeError> {
    let Some((tag, payload)) = args.split_first_chunk::<8>() else {
        return Err(DecodeError::Truncated { len: args.len() });
    };
    let found = Tag(u64::from_le_bytes(*tag));
    if found != expected {
        return Err(DecodeError::WrongTag {
            expected,
            found,
            type_name: std::any::type_name::<T>(),
        });
    }
    Ok(payload)
}

/// Decodes exactly one postcard value from `bytes`, rejecting trailing bytes.
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let type_name = std::any::type_name::<T>();
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| DecodeError::Payload {
            type_name,
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing {
            type_name,
            extra: rest.len(),
        });
    }
    Ok(value)
}

/// Decodes `tag ++ postcard(T)` for the message type `M`.
pub fn decode_args<M, T: DeserializeOwned>(tag: Tag, args: &[u8]) -> Result<T, DecodeError> {
    decode_payload(check_tag::<M>(tag, args)?)
}

/// A one-way message on the wire.
pub fn cast(args: Vec<u8>) -> SerializedMessage {
    SerializedMessage::Cast {
        variant: String::new(),
        args,
        metadata: None,
    }
}

/// An ask on the wire. Sent by [`tell`](crate::tell) to a remote actor, the asker's side
/// becomes a [`Completion`](crate::remote_reply::Completion) that the connection runs when the
/// answer arrives (see [`remote_reply`](crate::remote_reply)); sent any other way (a plain
/// ractor send to a proxy), it is bridged to a byte port by a small task. An answer that does
/// not decode is counted and the asker sees the actor as gone, never a wrong value.
pub fn call<R>(args: Vec<u8>, reply: Reply<R>) -> Result<SerializedMessage, EncodeError>
where
    R: DeserializeOwned + Send + 'static,
{
    let (timeout, complete): (Option<Duration>, Deliver) = match reply.into_target() {
        Ok(port) => (
            port.get_timeout(),
            Box::new(ToPort {
                port,
                // Refs in the answer resolve on the node that asked (the one encoding now).
                refs: crate::wire_ref::encoder(),
            }),
        ),
        // An ask this node was asked, passed on: the answer goes back as it comes.
        Err(remote) => (None, Box::new(PassedOn(remote))),
    };
    let Some(complete) = crate::remote_reply::hand_over(timeout, complete) else {
        // `tell` took the asker's side: no port travels.
        return Ok(cast(args));
    };
    let handle = tokio::runtime::Handle::try_current().map_err(|_| EncodeError::NoRuntime)?;
    let (tx, rx) = ractor::concurrency::oneshot::<Vec<u8>>();
    let bytes_port = match timeout {
        Some(t) => RpcReplyPort::from((tx, t)),
        None => RpcReplyPort::from(tx),
    };
    handle.spawn(async move {
        if let Ok(bytes) = rx.await {
            complete.deliver(bytes);
        }
    });
    Ok(SerializedMessage::Call {
        variant: String::new(),
        args,
        reply: bytes_port,
        metadata: None,
    })
}

/// An answer for a typed port on this node: decoded, then sent.
struct ToPort<R> {
    port: RpcReplyPort<R>,
    refs: Option<crate::wire_ref::ResolverId>,
}

impl<R: DeserializeOwned + Send + 'static> Answer for ToPort<R> {
    fn deliver(self: Box<Self>, bytes: Vec<u8>) {
        match crate::wire_ref::decoding_by(self.refs, || decode_payload::<R>(&bytes)) {
            Ok(value) => {
                let _ = self.port.send(value);
            }
            Err(e) => {
                reject(e);
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.port.is_closed()
    }
}

/// An answer for an ask this node was asked and passed on: its bytes go back as they come.
struct PassedOn<R>(crate::remote_reply::RemoteReply<R>);

impl<R: Send + 'static> Answer for PassedOn<R> {
    fn deliver(mut self: Box<Self>, bytes: Vec<u8>) {
        let _ = self.0.send_bytes(bytes);
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// The receiving side of [`call`]: the `Reply` an ask decodes with. An ask delivered by this
/// node's cluster layer answers straight to the asker's connection from the answering actor's
/// task; otherwise (a ractor cluster's ask) the answer is encoded and sent back on
/// `bytes_port` by a small task. Must run inside a tokio runtime (inbound delivery always
/// does).
pub fn reply_port<R>(bytes_port: RpcReplyPort<Vec<u8>>) -> Result<Reply<R>, DecodeError>
where
    R: Serialize + Send + 'static,
{
    if let Some(direct) = crate::remote_reply::reply_for::<R>() {
        return Ok(direct);
    }
    let type_name = std::any::type_name::<R>();
    let handle = tokio::runtime::Handle::try_current().map_err(|_| DecodeError::Payload {
        type_name,
        reason: "no tokio runtime to bridge the reply".into(),
    })?;
    let (tx, rx) = ractor::concurrency::oneshot::<R>();
    let port = match bytes_port.get_timeout() {
        Some(t) => RpcReplyPort::from((tx, t)),
        None => RpcReplyPort::from(tx),
    };
    handle.spawn(async move {
        if let Ok(value) = rx.await {
            match postcard::to_allocvec(&value) {
                Ok(bytes) => {
                    let _ = bytes_port.send(bytes);
                }
                Err(e) => tracing::warn!(error = %e, type_name, "reply does not serialise; the asker will see the actor stopped"),
            }
        }
    });
    Ok(Reply::from(port))
}

/// Name of a serialised message's kind, for errors.
pub fn kind(message: &SerializedMessage) -> &'static str {
    match message {
        SerializedMessage::Cast { .. } => "tell",
        SerializedMessage::Call { .. } => "ask",
        SerializedMessage::CallReply(..) => "reply",
    }
}

/// Glue for ractor's `Message::serialize` hook.
pub fn serialize_hook<M: RemoteMessage>(message: M) -> Result<SerializedMessage, BoxedDowncastErr> {
    message.to_wire().map_err(|e| {
        tracing::warn!(error = %e, "message not sent: it does not serialise");
        BoxedDowncastErr
    })
}

/// Glue for ractor's `Message::deserialize` hook: errors are counted and logged.
///
/// ractor calls it in the receiving actor's task as the message leaves the mailbox, which is
/// where a message from the network stops counting against its connection's
/// [`backlog`](crate::backlog). A hand-written `ractor::Message` impl for a remote message
/// type must call it too.
pub fn deserialize_hook<M: RemoteMessage>(
    mut message: SerializedMessage,
) -> Result<M, BoxedDowncastErr> {
    let metadata = match &mut message {
        SerializedMessage::Cast { metadata, .. } | SerializedMessage::Call { metadata, .. } => {
            metadata.take()
        }
        SerializedMessage::CallReply(..) => None,
    };
    if let Some(meta) = &metadata {
        crate::backlog::consumed(meta);
    }
    let decode = || crate::wire_ref::decoding(metadata.as_deref(), || M::from_wire(message));
    crate::remote_reply::decoding(metadata.as_deref(), decode).map_err(|e| {
        reject(e);
        BoxedDowncastErr
    })
}

/// Splits a multi-message payload into its variant index and the rest.
pub fn take_variant<M>(payload: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    postcard::take_from_bytes::<u32>(payload).map_err(|e| DecodeError::Payload {
        type_name: std::any::type_name::<M>(),
        reason: format!("bad message number: {e}"),
    })
}
