//! Actor kinds: what a node can start when the registry places a named actor on it.
//!
//! A remote spawn needs the code on the target node, so each node registers the kinds it
//! can start (a name, an argument type, a factory) and tells its peers their names. The
//! argument crosses the network encoded (postcard) and is decoded fallibly on the target,
//! with a size cap; the factory's actor must take a remote message, so every node can
//! address it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractor::ActorCell;
use serde::Serialize;
use serde::de::DeserializeOwned;
use understudy_actor::{ActorAddr, Handler, RemoteMessage, Tag};
use understudy_cluster::node::Node;

pub use crate::core::placement::MAX_ARGS_BYTES;

/// Why a kind could not start an actor.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The argument did not decode as the kind's argument type.
    #[error("the argument does not decode as this kind's argument type")]
    BadArgs(#[source] postcard::Error),
    /// The argument is larger than [`MAX_ARGS_BYTES`].
    #[error("the argument is {0} bytes; at most {MAX_ARGS_BYTES} are taken")]
    ArgsTooLarge(usize),
    /// The factory returned an error or panicked.
    #[error("the factory failed: {0}")]
    Factory(String),
    /// The actor did not start (its `started` hook failed, or the runtime is stopping).
    #[error("the actor did not start: {0}")]
    Spawn(String),
}

type Started = Result<(ActorCell, ActorAddr), StartError>;
type Start = dyn Fn(Node, Vec<u8>) -> Pin<Box<dyn Future<Output = Started> + Send>> + Send + Sync;

/// One kind: its message type and how to start it.
#[derive(Clone)]
pub(crate) struct Kind {
    /// The message type its actors take.
    pub(crate) tag: Tag,
    start: Arc<Start>,
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kind").field("tag", &self.tag).finish()
    }
}

impl Kind {
    /// A kind whose factory makes an `A` from an `Args`.
    pub(crate) fn new<A, Args, F>(factory: F) -> Kind
    where
        A: Handler,
        A::Msg: RemoteMessage,
        Args: DeserializeOwned + Send + 'static,
        F: Fn(Args) -> Result<A, String> + Send + Sync + 'static,
    {
        let factory = Arc::new(factory);
        Kind {
            tag: <A::Msg as RemoteMessage>::TAG,
            start: Arc::new(move |node: Node, bytes: Vec<u8>| {
                let factory = factory.clone();
                Box::pin(async move {
                    if bytes.len() > MAX_ARGS_BYTES {
                        return Err(StartError::ArgsTooLarge(bytes.len()));
                    }
                    let args: Args = postcard::from_bytes(&bytes).map_err(StartError::BadArgs)?;
                    // A panicking factory is the caller's error, not this node's crash.
                    let made =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| factory(args)))
                            .map_err(|panic| StartError::Factory(panic_message(&panic)))?
                            .map_err(StartError::Factory)?;
                    let actor = node
                        .spawn(made)
                        .await
                        .map_err(|e| StartError::Spawn(e.to_string()))?;
                    let addr = node.runtime().export(&actor);
                    Ok((actor.get_cell(), addr))
                })
            }),
        }
    }

    /// Starts one actor of this kind on `node` from the encoded `args`.
    pub(crate) async fn start(&self, node: Node, args: Vec<u8>) -> Started {
        (self.start)(node, args).await
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "it panicked".to_owned())
}

/// The kinds one node can start, by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct Kinds(BTreeMap<String, Kind>);

impl Kinds {
    pub(crate) fn add(&mut self, name: &str, kind: Kind) {
        self.0.insert(name.to_owned(), kind);
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Kind> {
        self.0.get(name)
    }

    /// Each kind's name and message type, as peers are told.
    pub(crate) fn tagged(&self) -> Vec<(String, Tag)> {
        self.0.iter().map(|(n, k)| (n.clone(), k.tag)).collect()
    }
}

/// Encodes a spawn's argument.
pub(crate) fn encode_args<Args: Serialize>(args: &Args) -> Result<Vec<u8>, StartError> {
    let bytes = postcard::to_stdvec(args).map_err(StartError::BadArgs)?;
    if bytes.len() > MAX_ARGS_BYTES {
        return Err(StartError::ArgsTooLarge(bytes.len()));
    }
    Ok(bytes)
}
