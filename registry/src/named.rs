//! Name-addressed refs: a handle that looks its name up at each send, so it follows the
//! actor across restarts and failovers.
//!
//! A tell resolves the name from this node's copy (no network round trip: the cost of
//! `whereis`) and fails with [`TellError::NotRegistered`] while no actor holds it; an ask
//! that finds no holder waits for one, within its own timeout, and then sends. The methods
//! `#[messages]` generates work on it as on an `ActorRef`.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};
use understudy_actor::{Ask, RemoteMessage, Resolve, Target, TellError, ask_resolved, tell};

use crate::consistent::whereis_in;
use crate::driver::Shared;
use crate::error::RegistryError;

/// An actor addressed by its registered name (see [`Registry::named`]).
///
/// [`Registry::named`]: crate::Registry::named
pub struct Named<M> {
    resolver: Arc<NameResolver<M>>,
}

impl<M> Clone for Named<M> {
    fn clone(&self) -> Self {
        Named {
            resolver: self.resolver.clone(),
        }
    }
}

impl<M> std::fmt::Debug for Named<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Named")
            .field("name", &self.resolver.name)
            .finish()
    }
}

struct NameResolver<M> {
    shared: Arc<Shared>,
    name: String,
    _m: PhantomData<fn() -> M>,
}

impl<M: RemoteMessage> Named<M> {
    pub(crate) fn new(shared: Arc<Shared>, name: &str) -> Named<M> {
        Named {
            resolver: Arc::new(NameResolver {
                shared,
                name: name.to_owned(),
                _m: PhantomData,
            }),
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.resolver.name
    }

    /// The actor holding the name now.
    pub fn resolve(&self) -> Result<ActorRef<M>, RegistryError> {
        whereis_in(&self.resolver.shared, &self.resolver.name)
    }
}

impl<M: RemoteMessage> NameResolver<M> {
    fn tell_error(&self, e: RegistryError) -> TellError {
        match e {
            RegistryError::NotRegistered { .. } => TellError::NotRegistered {
                name: self.name.clone(),
            },
            RegistryError::TypeMismatch { .. } => TellError::WrongActorType,
            // Stopped registry, or a holder this node cannot reach: nothing can be sent.
            _ => TellError::MailboxClosed,
        }
    }
}

impl<M: RemoteMessage> Resolve<M> for NameResolver<M> {
    fn now(&self) -> Result<ActorRef<M>, TellError> {
        whereis_in(&self.shared, &self.name).map_err(|e| self.tell_error(e))
    }

    fn wait(
        &self,
        within: Option<Duration>,
    ) -> Pin<Box<dyn Future<Output = Result<ActorRef<M>, TellError>> + Send>> {
        let (shared, name) = (self.shared.clone(), self.name.clone());
        let resolver = NameResolver::<M> {
            shared: shared.clone(),
            name: name.clone(),
            _m: PhantomData,
        };
        Box::pin(async move {
            // Watch first, then look: a holder that appears in between is not missed.
            let (_, mut watch) = shared.kernel.watch(&name);
            let wait = async {
                loop {
                    match resolver.now() {
                        Err(TellError::NotRegistered { .. }) => {}
                        found => return found,
                    }
                    if watch.recv().await.is_err() {
                        return Err(TellError::MailboxClosed);
                    }
                }
            };
            match within {
                Some(within) => tokio::time::timeout(within, wait)
                    .await
                    .unwrap_or(Err(TellError::NotRegistered { name })),
                None => wait.await,
            }
        })
    }
}

impl<M: RemoteMessage> Target<M> for Named<M> {
    fn tell_to(&self, message: M) -> Result<(), TellError> {
        let actor = self.resolver.now()?;
        tell(&actor, message)
    }

    fn ask_to<R, F>(&self, make: F) -> Ask<M, R, F>
    where
        F: FnOnce(RpcReplyPort<R>) -> M,
    {
        ask_resolved(self.resolver.clone(), make)
    }
}
