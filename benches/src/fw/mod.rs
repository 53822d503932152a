//! One module per framework: the counter actor written the framework's way, and its [`Fw`]
//! impl. The raw-ractor counter and the hand-written understudy one share [`CounterMsg`];
//! the one `#[messages]` generates has the same layout (`Add { by }`, `Get { reply }`).
//!
//! [`Fw`]: crate::bench::Fw

pub mod actix;
mod common;
pub mod kameo;
pub mod ractor;
pub mod understudy;

pub use common::{CounterMsg, run_tokio};
