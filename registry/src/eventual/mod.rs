//! The Eventual name scope: gossip-replicated names that need no quorum.
//!
//! Each node is the sole writer of its own entries and sends them to its peers as pg does
//! (a full `Sync` on connect, numbered deltas, periodic digests); every node resolves a name
//! to the same deterministic winner among the claims it sees, so registration works in a
//! minority partition and the views converge when it heals. The semantics and the exchange
//! are stated on [`core`]; the messages and claims are in [`wire`].
//!
//! - [`core`]: the pure state machine (local registrations, the resolved view, outputs).
//! - `peer`: its side of the exchange (peers up and down, the tick, messages received).
//! - [`wire`]: the messages, the claims they carry and the stamps that rank them.

pub(crate) mod core;
pub(crate) mod driver;
mod peer;
pub(crate) mod scope;
pub(crate) mod wire;

#[cfg(test)]
mod tests;
