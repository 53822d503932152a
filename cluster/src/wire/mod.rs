//! The mesh's wire protocol: what travels between two nodes, and how it is framed.
//!
//! Every stream between two nodes carries a sequence of **frames**: a little-endian `u32`
//! length, then that many bytes of postcard. Two kinds of stream exist:
//!
//! - the **control stream** (one per connection direction, high priority) carries
//!   [`Control`] frames: the [`Hello`] handshake that must complete before anything else is
//!   trusted, extension traffic, and node-level notices;
//! - the **lanes** (K ordered uni streams per direction) carry [`Signal`] frames: actor
//!   messages, asks and replies, and the monitor/link signals. A signal's lane is chosen by the
//!   actor it is *about on the receiving side* (the target of a message, the watcher of a
//!   DOWN), so everything one actor receives from one node arrives in send order — including
//!   "message, then the sender's exit" (see `remote/`).
//!
//! Decoding is total: any byte sequence yields frames or a [`WireError`], never a panic, and
//! never an allocation larger than the configured frame cap, whatever a length prefix claims.
//! A protocol violation closes the connection it came on and disturbs nothing else.

mod codec;
mod frames;

pub use codec::{DEFAULT_MAX_FRAME, FrameDecoder, WireError, encode_frame, encode_frame_into};
pub use frames::{
    Control, ExitReason, ExtensionBody, Hello, PROTOCOL_VERSION, ReplyOutcome, Signal,
};

#[cfg(test)]
mod tests;
