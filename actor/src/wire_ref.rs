//! `ActorRef`s inside remote messages: a ref travels as its [`ActorAddr`] and arrives as a
//! working ref on the receiving node, as pids do in Erlang and ActorRefs in Akka.
//!
//! - **Sending.** A ref to a local actor is exported on the sending node (so the receiver
//!   can reach it) and goes as `(this node, pid)`; a ref to a remote actor goes as that
//!   actor's own address, so a ref forwarded A → B → C reaches A's actor directly from C.
//!   The sending node is known to the encoder when the message is sent with understudy's
//!   `tell` / `ask` / `send` (every `#[messages]` method): they encode inside
//!   [`encoding`]. Sent another way (a raw ractor `send_message` to a remote ref), a message
//!   that carries a ref to a *local* actor does not encode, because nothing says which node
//!   exports it.
//! - **Receiving.** The node that delivers a message names itself in the message's metadata
//!   ([`ResolverRegistration::token`]); the deserialise hook decodes inside that node's context,
//!   which resolves each distinct address once: to the local actor if it points home (an
//!   error if that actor no longer exists, or takes another message type), else to a proxy
//!   of the remote one. At most [`MAX_REFS_PER_MESSAGE`] distinct refs per message, and the
//!   node caps the proxies such refs may make per peer ([`RefError::TooManyProxies`]), so
//!   messages cannot make a node build proxies without limit; resolving needs a connection
//!   to the ref's node (a ref to a node this one does not know is a decode error).
//! - **Answers.** An ask's answer may carry refs too: the asked node exports (it encodes in
//!   its reply sink, which names it), and the asking node resolves (its completion decodes
//!   in the context the ask was encoded in).
//!
//! In a `#[messages(remote)]` method, a parameter of type `ActorRef<M>` is handled by the
//! macro. In a serde type (`#[derive(RemoteMessage)]`), mark the field
//! `#[serde(with = "understudy::remote::actor_ref")]`.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use ractor::{ActorCell, ActorId, ActorRef};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id::{ActorAddr, NodeId};
use crate::remote::RemoteMessage;
use crate::runtime::Runtime;
use crate::weak_registry::WeakRegistry;

/// The most distinct actor refs one message may carry.
pub const MAX_REFS_PER_MESSAGE: usize = 64;

/// Why an address did not resolve on the receiving node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefError {
    /// The address points to this node, and no such actor is exported here (any more).
    #[error("no actor {0} on this node (it stopped, or was never exported)")]
    NoSuchActor(ActorAddr),
    /// The address is on a node this one has no connection to.
    #[error("no connection to the node of {0}")]
    NotConnected(ActorAddr),
    /// This node holds as many proxies of that node's actors as refs from messages may make.
    #[error(
        "too many proxies of the actors of {0}'s node; raise remote.max_proxies_per_peer if that many are needed"
    )]
    TooManyProxies(ActorAddr),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    Stopped,
}

/// One node's way of turning addresses into cells (implemented by the cluster's remote
/// layer). Must not block: it runs in a deserialise hook.
pub trait RefResolver: Send + Sync + 'static {
    /// The node's runtime (its exports, its id).
    fn runtime(&self) -> &Runtime;

    /// The local actor, or a proxy of the remote one, for `addr`, now.
    fn resolve_now(&self, addr: ActorAddr) -> Result<ActorCell, RefError>;

    /// The node a route id (ractor's `ActorId::Remote::node_id`) leads to.
    fn node_of_route(&self, route: u64) -> Option<NodeId> {
        crate::route::lookup(route).map(|r| r.node())
    }
}

const MAGIC: [u8; 8] = *b"usrefs01";
const TOKEN_LEN: usize = 16;

fn registry() -> &'static WeakRegistry<dyn RefResolver> {
    static REGISTRY: OnceLock<WeakRegistry<dyn RefResolver>> = OnceLock::new();
    REGISTRY.get_or_init(WeakRegistry::new)
}

/// Names one registered [`RefResolver`]. Contexts carry this, not the resolver: it costs
/// nothing per message, and the resolver is looked up only when a ref is encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResolverId(u64);

impl ResolverId {
    /// The resolver, if it is still registered.
    fn get(self) -> Option<Arc<dyn RefResolver>> {
        registry().get(self.0)
    }

    /// The id a metadata token carries, if it has one. The token sits right after the
    /// backlog's (which the delivering node always puts first), at a fixed place: the bytes
    /// around it are partly a peer's, and must never be read as a token.
    fn in_metadata(metadata: &[u8]) -> Option<ResolverId> {
        let at = crate::backlog::TOKEN_LEN;
        let token = metadata.get(at..at + TOKEN_LEN)?;
        if token[..8] != MAGIC {
            return None;
        }
        Some(ResolverId(u64::from_le_bytes(token[8..].try_into().ok()?)))
    }
}

/// A registered resolver; unregistered when dropped.
#[derive(Debug)]
pub struct ResolverRegistration {
    id: ResolverId,
}

impl ResolverRegistration {
    /// The registered resolver's id (what [`Route::refs`](crate::route::Route::refs) gives).
    pub fn id(&self) -> ResolverId {
        self.id
    }

    /// What a delivering node puts in a message's metadata, right after the backlog's token,
    /// so that the receiving actor's deserialise hook resolves refs on this node.
    pub fn token(&self) -> [u8; TOKEN_LEN] {
        let mut t = [0u8; TOKEN_LEN];
        t[..8].copy_from_slice(&MAGIC);
        t[8..].copy_from_slice(&self.id.0.to_le_bytes());
        t
    }
}

impl Drop for ResolverRegistration {
    fn drop(&mut self) {
        registry().remove(self.id.0);
    }
}

/// Registers `resolver`; keep the registration as long as messages may be delivered.
pub fn register(resolver: &Arc<dyn RefResolver>) -> ResolverRegistration {
    ResolverRegistration {
        id: ResolverId(registry().insert(resolver)),
    }
}

thread_local! {
    /// The node encoding a message on this thread now.
    static ENCODING: Cell<Option<ResolverId>> = const { Cell::new(None) };
    /// The node decoding a message on this thread now. A `Copy` value: every remote message
    /// sets and restores it, and most carry no ref.
    static DECODING: Cell<Option<ResolverId>> = const { Cell::new(None) };
    /// What the refs of the message being decoded resolved to (a few at most), touched only
    /// by a message that carries refs.
    static RESOLVED: RefCell<Vec<(ActorAddr, ActorCell)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `encode` with `resolver`'s node as the sender of any ref it encodes.
pub fn encoding<T>(resolver: Option<ResolverId>, encode: impl FnOnce() -> T) -> T {
    if resolver.is_none() {
        return encode();
    }
    /// Puts the previous context back however `encode` ends (a panic in a user's
    /// `Serialize` is caught by ractor, and the thread lives on).
    struct Restore(Option<ResolverId>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ENCODING.with(|e| e.set(self.0));
        }
    }
    let _restore = Restore(ENCODING.with(|e| e.replace(resolver)));
    encode()
}

/// The node encoding on this thread now, if any (an ask's encoder keeps it to decode the
/// answer on the same node).
pub(crate) fn encoder() -> Option<ResolverId> {
    ENCODING.with(Cell::get)
}

/// Runs `decode` with the node named in `metadata` resolving any ref it decodes.
pub(crate) fn decoding<T>(metadata: Option<&[u8]>, decode: impl FnOnce() -> T) -> T {
    decoding_by(metadata.and_then(ResolverId::in_metadata), decode)
}

/// Runs `decode` with `resolver`'s node resolving any ref it decodes.
pub(crate) fn decoding_by<T>(resolver: Option<ResolverId>, decode: impl FnOnce() -> T) -> T {
    if resolver.is_none() {
        return decode();
    }
    /// Puts the previous context back however `decode` ends (a panic in a user's
    /// `Deserialize` is caught by ractor, and the thread lives on), and forgets what this
    /// message's refs resolved to.
    struct Restore(Option<ResolverId>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DECODING.with(|d| d.set(self.0));
            RESOLVED.with(|r| {
                if let Ok(mut r) = r.try_borrow_mut()
                    && !r.is_empty()
                {
                    r.clear();
                }
            });
        }
    }
    let _restore = Restore(DECODING.with(|d| d.replace(resolver)));
    decode()
}

/// The wire address of `actor`, exporting it on the sending node if it is local.
fn addr_of<M: RemoteMessage>(actor: &ActorRef<M>) -> Result<ActorAddr, String> {
    match actor.get_id() {
        ActorId::Remote { node_id, pid } => crate::route::lookup(node_id)
            .map(|route| ActorAddr {
                node: route.node(),
                pid,
            })
            .ok_or_else(|| format!("the connection of remote actor {} is gone", actor.get_id())),
        ActorId::Local(_) => match encoder().and_then(ResolverId::get) {
            Some(resolver) => Ok(resolver.runtime().export(actor)),
            None => Err("a ref to a local actor can only be sent with understudy's tell, ask or send (which know the sending node)".to_owned()),
        },
    }
}

/// The ref for `addr` on the decoding node.
fn ref_for<M: RemoteMessage>(addr: ActorAddr) -> Result<ActorRef<M>, String> {
    let Some(id) = DECODING.with(Cell::get) else {
        return Err(
            "an ActorRef can only be decoded by a node (it arrived outside one)".to_owned(),
        );
    };
    let known = RESOLVED.with(|r| {
        let r = r.borrow();
        let known = r
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, cell)| cell.clone());
        (known, r.len())
    });
    let cell = match known {
        (Some(cell), _) => cell,
        (None, n) if n >= MAX_REFS_PER_MESSAGE => {
            return Err(format!(
                "more than {MAX_REFS_PER_MESSAGE} distinct actor refs in one message"
            ));
        }
        (None, _) => {
            let resolver = id.get().ok_or_else(|| RefError::Stopped.to_string())?;
            let cell = resolver.resolve_now(addr).map_err(|e| e.to_string())?;
            RESOLVED.with(|r| r.borrow_mut().push((addr, cell.clone())));
            cell
        }
    };
    if cell.is_message_type_of::<M>() == Some(false) {
        return Err(format!(
            "actor {addr} does not take {}",
            std::any::type_name::<M>()
        ));
    }
    Ok(ActorRef::from(cell))
}

/// serde glue for an `ActorRef<M>` field of a remote message:
/// `#[serde(with = "understudy::remote::actor_ref")]`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use understudy_actor::remote::actor_ref;
/// # use ractor::message::{BoxedDowncastErr, SerializedMessage};
/// # use understudy_actor::{remote, DecodeError, EncodeError, RemoteMessage, Tag};
/// # // What `#[derive(RemoteMessage)]` writes for `Answer`.
/// # #[derive(Serialize, Deserialize)] struct Answer(u64);
/// # impl ractor::Message for Answer {
/// #     fn serializable() -> bool { true }
/// #     fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> { remote::serialize_hook(self) }
/// #     fn deserialize(m: SerializedMessage) -> Result<Self, BoxedDowncastErr> { remote::deserialize_hook(m) }
/// # }
/// # impl RemoteMessage for Answer {
/// #     const TAG: Tag = Tag::of("Answer");
/// #     fn to_wire(self) -> Result<SerializedMessage, EncodeError> {
/// #         Ok(remote::cast(remote::encode_args(Self::TAG, &self)?))
/// #     }
/// #     fn from_wire(m: SerializedMessage) -> Result<Self, DecodeError> {
/// #         match m {
/// #             SerializedMessage::Cast { args, .. } => remote::decode_args::<Self, Self>(Self::TAG, &args),
/// #             other => Err(DecodeError::WrongKind {
/// #                 type_name: "Answer", expected: "tell", found: remote::kind(&other),
/// #             }),
/// #         }
/// #     }
/// # }
/// #[derive(Serialize, Deserialize)]
/// struct Question {
///     text: String,
///     #[serde(with = "actor_ref")]
///     reply_to: ractor::ActorRef<Answer>,
/// }
/// ```
pub mod actor_ref {
    use super::*;

    /// Serialises the ref as its address (exporting a local actor on the sending node).
    pub fn serialize<M: RemoteMessage, S: Serializer>(
        actor: &ActorRef<M>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        addr_of(actor)
            .map_err(S::Error::custom)?
            .serialize(serializer)
    }

    /// Deserialises an address into a working ref on the receiving node.
    pub fn deserialize<'de, M: RemoteMessage, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<ActorRef<M>, D::Error> {
        let addr = ActorAddr::deserialize(deserializer)?;
        ref_for(addr).map_err(D::Error::custom)
    }
}

/// A ref on its way out (what `#[messages(remote)]` encodes an `ActorRef` parameter as).
#[doc(hidden)]
pub struct Out<'a, M>(pub &'a ActorRef<M>);

impl<M: RemoteMessage> Serialize for Out<'_, M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        actor_ref::serialize(self.0, serializer)
    }
}

/// A ref on its way in (what `#[messages(remote)]` decodes an `ActorRef` parameter as).
#[doc(hidden)]
pub struct In<M>(pub ActorRef<M>, PhantomData<fn() -> M>);

impl<M> In<M> {
    /// The ref.
    pub fn into_ref(self) -> ActorRef<M> {
        self.0
    }
}

impl<'de, M: RemoteMessage> Deserialize<'de> for In<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        actor_ref::deserialize(deserializer).map(|r| In(r, PhantomData))
    }
}
