//! # understudy-macros
//!
//! Derives and attributes for understudy actors and messages. Use them through the
//! `understudy` facade (`use understudy::prelude::*;`), which the generated code refers to
//! as `::understudy`; a crate that renames or re-exports it says where with
//! `#[messages(crate = path)]` / `#[understudy(crate = path)]`.
//!
//! - `#[derive(Message)]`: a local-only message (ractor's `Message` with no serialisation).
//! - `#[derive(RemoteMessage)]`: a serde type that can cross the network (postcard, stable
//!   tag, fallible decode).
//! - `#[derive(Actor)]`: an actor with the default lifecycle hooks.
//! - `#[messages]` on an `impl` block: its `#[message]` methods become the actor's message
//!   enum, its `Handler` impl, and typed tell/ask methods on `ActorRef`.

use proc_macro::TokenStream;

mod derive;
mod messages;
mod options;

/// Implements ractor's `Message` for a local-only message type.
///
/// ```text
/// #[derive(understudy::Message)]
/// enum Cmd { Ping }
/// ```
#[proc_macro_derive(Message, attributes(understudy))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    derive::message(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes a serde type a `RemoteMessage`: postcard on the wire, behind a stable tag.
///
/// The tag defaults to a hash of the type's path; fix it with `#[understudy(tag = "name")]`
/// so that moving or renaming the type does not change the wire format.
///
/// Needs understudy's `cluster` feature (or `remote`); in a local-only build it is a compile
/// error that says so.
///
/// ```text
/// #[derive(serde::Serialize, serde::Deserialize, understudy::RemoteMessage)]
/// #[understudy(tag = "shop.Order")]
/// struct Order { id: u64 }
/// ```
#[proc_macro_derive(RemoteMessage, attributes(understudy))]
pub fn derive_remote_message(input: TokenStream) -> TokenStream {
    derive::remote_message(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Implements `Actor` with the default lifecycle hooks.
///
/// ```text
/// #[derive(understudy::Actor)]
/// struct Counter { n: u64 }
/// ```
#[proc_macro_derive(Actor, attributes(understudy))]
pub fn derive_actor(input: TokenStream) -> TokenStream {
    derive::actor(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Turns an `impl` block's `#[message]` methods into an actor's messages.
///
/// For `impl Counter` it generates `enum CounterMsg` (a variant per method), the `Handler`
/// impl that dispatches to the methods, and a trait `CounterRef` implemented for
/// `ActorRef<CounterMsg>` with one method per message: methods returning nothing are
/// tells (`Result<(), TellError>`), others are asks (await them; `.timeout(d)` to change the
/// default 5 s, `.untimed()` for no timer at all). A method may take `ctx: &Ctx<Self>` to reach its own ref and runtime, and
/// may be `async`.
///
/// Options: `#[messages(remote)]` makes the messages `RemoteMessage` (arguments and replies
/// must be serde types, or `ActorRef<M>` of a remote-ready `M`, which travels as its address
/// and arrives as a working ref; needs understudy's `cluster` or `remote` feature);
/// `name = CounterMsg`, `ext = CounterRef`, `vis = pub(crate)`, `tag = "..."` and
/// `crate = path` override the defaults.
///
/// The enum also carries the DOWNs of actors this one monitors (a hidden variant; they reach
/// `Actor::on_down`).
///
/// Reserved names: a message method may not be named like a method of ractor's `ActorRef`,
/// which would shadow the generated one (a compile error says so): `call`, `cast`, `clone`,
/// `drain`, `drain_and_wait`, `drain_children`, `drain_children_and_wait`, `exit_after`,
/// `get_cell`, `get_children`, `get_derived`, `get_id`, `get_name`, `get_status`,
/// `get_type_id`, `is_message_type_of`, `kill`, `kill_after`, `kill_and_wait`, `link`,
/// `monitor`, `notify_supervisor`, `notify_supervisor_and_monitors`, `send_after`,
/// `send_interval`, `send_message`, `send_serialized`, `spawn_linked`, `stop`,
/// `stop_and_wait`, `stop_children`, `stop_children_and_wait`, `supports_remoting`,
/// `try_get_supervisor`, `unlink`, `unmonitor`, `wait`, `where_is`.
///
/// ```text
/// #[derive(Actor)]
/// struct Counter { n: u64 }
///
/// #[messages]
/// impl Counter {
///     #[message]
///     fn add(&mut self, by: u64) { self.n += by }
///     #[message]
///     fn get(&self) -> u64 { self.n }
/// }
/// ```
#[proc_macro_attribute]
pub fn messages(attr: TokenStream, item: TokenStream) -> TokenStream {
    messages::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
