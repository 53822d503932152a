//! The mesh's wire protocol: what travels between two nodes, and how it is framed.
//!
//! Every stream between two nodes carries a sequence of **frames**: a little-endian `u32`
//! length, then that many bytes of postcard. Per connection and direction there are:
//!
//! - the **control stream** (bi-directional, opened by the dialer): [`Control`] frames — the
//!   [`Hello`] handshake that must complete before anything else is trusted, then extension
//!   notices and requests (the receiver may pause it while its services catch up);
//! - the **signal stream** (one uni stream, highest priority): [`Signal`] frames — replies to
//!   asks, monitors, DOWNs, links, exit signals, extension responses and the goodbye of a
//!   leaving node. The receiver never pauses it and the sender never refuses a signal for lack
//!   of room: it is delivered or the connection fails;
//! - the **data lanes** (K ordered uni streams): [`Delivery`] frames — tells and asks. A
//!   message's lane is chosen by its target, so everything one actor receives from one node
//!   arrives in send order. A DOWN or exit signal carries a [`Barrier`] (the sender's lane
//!   counts) and takes effect only after the messages sent before it (see `remote/`).
//!
//! Each uni stream starts with one byte naming it (see `mesh::uni_kind`).
//!
//! Decoding is total: any byte sequence yields frames or a [`WireError`], never a panic, and
//! never an allocation larger than the configured frame cap, whatever a length prefix claims.
//! A protocol violation closes the connection it came on and disturbs nothing else.

mod codec;
mod frames;

pub(crate) use codec::RawFrames;
pub use codec::{DEFAULT_MAX_FRAME, FrameDecoder, WireError, encode_frame, encode_frame_into};
pub use frames::{
    Barrier, Control, Delivery, ExitReason, ExtensionBody, Hello, PROTOCOL_VERSION, Refusal,
    ReplyOutcome, Signal,
};

#[cfg(test)]
mod tests;
