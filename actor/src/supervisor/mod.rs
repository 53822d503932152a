//! OTP supervision trees on ractor.
//!
//! A supervisor starts children, watches them, and restarts them when they exit, following
//! Erlang's `supervisor.erl`. ractor links and supervision events carry the exits; this
//! module adds what OTP adds on top of links.
//!
//! # Semantics
//!
//! - **Children** are described by [`ChildSpec`]s and kept in start order. They are started
//!   in that order when the supervisor starts; if one fails to start, the ones already
//!   started are stopped in reverse order and the supervisor fails to start. They are
//!   stopped in reverse order when the supervisor stops.
//! - **Restart types** ([`Restart`]): `Permanent` children are always restarted,
//!   `Transient` ones only after an abnormal exit (anything but a stop with no reason,
//!   `"normal"`, `"shutdown"` or `"shutdown:…"`; see [`ChildExit`]), `Temporary` ones never
//!   (and their spec is dropped when they exit).
//! - **Strategies** ([`Strategy`]): `OneForOne` restarts the exited child; `OneForAll` stops
//!   all other children (reverse order) and restarts all (in order); `RestForOne` does that
//!   for the exited child and the children started after it.
//! - **Restart intensity** ([`RestartWindow`]): at most `intensity` restarts within `period`
//!   (default 1 in 5 s). One more and the supervisor stops all its children (reverse order)
//!   and itself, with reason [`ESCALATION_REASON`]; its parent supervisor then applies its
//!   own strategy to it. A restart whose new incarnation fails to start counts as one more
//!   restart and is tried again. Intensity 0 means no restarts at all.
//! - **Backoff** (optional, [`Backoff`]): wait before restarting, exponentially longer for a
//!   child that keeps exiting, with seeded jitter. Not in OTP; off by default.
//! - **Shutdown** ([`Shutdown`]): `Timeout(d)` asks the child to stop (reason `"shutdown"`)
//!   and kills it after `d`; `BrutalKill` kills at once; `Infinity` waits (the default for
//!   supervisor children). Workers default to `Timeout(5 s)`.
//! - **Dynamic children** through [`SupervisorRef`]: `start_child`, `terminate_child`,
//!   `restart_child`, `delete_child`, `which_children`, `count_children`.
//! - **Looking at children.** [`ChildInfo`] (from `which_children` or `child_info`) carries
//!   OTP's id, incarnation and kind, plus how often the supervisor restarted the child and,
//!   while it waits in backoff, when its next restart is due. `child_ref::<M>(id)` is the
//!   typed lookup: an `ActorRef<M>`, or [`SupervisorError::WrongMessageType`] naming both
//!   types if the child takes another message type.
//! - **Names.** A child spec with [`ChildSpec::name`] registers each incarnation under that
//!   Local name, so `Runtime::whereis` always finds the current one.
//!
//! Not implemented from OTP: `simple_one_for_one` (use `OneForOne` with `start_child`) and
//! `significant` children with `auto_shutdown`. As in OTP, a restarted nested supervisor
//! starts afresh from its spec: children that were added to it dynamically are not kept.
//!
//! # Example
//!
//! ```
//! use understudy_actor::supervisor::{ChildSpec, Restart, SupervisorRef, SupervisorSpec};
//! use understudy_actor::{Actor, ActorError, Ctx, Handler, Runtime};
//!
//! struct Worker;
//! impl Actor for Worker {}
//! impl Handler for Worker {
//!     type Msg = Crash;
//!     async fn handle(&mut self, _: &Ctx<Self>, _: Crash) -> Result<(), ActorError> {
//!         Err("crashed on purpose".into())
//!     }
//! }
//! struct Crash;
//! # #[cfg(feature = "remote")] // ractor has a blanket impl without `cluster`
//! impl ractor::Message for Crash {}
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::new();
//! let sup: SupervisorRef = runtime
//!     .start_supervisor(
//!         SupervisorSpec::one_for_one()
//!             .child(ChildSpec::new("worker", || Worker).name("worker"))
//!             .child(ChildSpec::new("helper", || Worker).restart(Restart::Temporary)),
//!     )
//!     .await?;
//!
//! let before = runtime.whereis::<Crash>("worker").expect("registered");
//! before.send_message(Crash)?;
//! // The supervisor restarts it; the name now points at the new incarnation.
//! let after = loop {
//!     match runtime.whereis::<Crash>("worker") {
//!         Some(w) if w.get_id() != before.get_id() => break w,
//!         _ => tokio::task::yield_now().await,
//!     }
//! };
//! assert_ne!(after.get_id(), before.get_id());
//! assert_eq!(sup.count_children().await?.active, 2);
//! sup.shutdown().await;
//! # Ok(()) }
//! ```

mod backoff;
mod child_spec;
mod children;
mod error;
mod handle;
mod protocol;
mod restart;
mod restart_window;
mod server;
mod shutdown;
mod spec;
mod strategy;

pub use backoff::{Backoff, JitterSource};
pub use child_spec::{ChildKind, ChildSpec};
pub use error::SupervisorError;
pub use handle::SupervisorRef;
pub use protocol::{ChildCounts, ChildInfo, SupervisorMsg};
pub use restart::{ChildExit, Restart};
pub use restart_window::{RestartWindow, Verdict};
pub use server::{ESCALATION_REASON, ESCALATIONS_METRIC, RESTARTS_METRIC};
pub use shutdown::{SHUTDOWN_REASON, Shutdown};
pub use spec::{DEFAULT_INTENSITY, DEFAULT_PERIOD, SupervisorSpec};
pub use strategy::Strategy;
