//! The decode checks behind the fuzz targets, written once.
//!
//! The cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) call them on libFuzzer's inputs; the main
//! workspace's `tests/fuzz_corpus.rs` compiles this module by path and replays every file of
//! the committed corpus (`fuzz/corpus/<target>/`) through them, so `cargo test --workspace`
//! re-checks every input the fuzzers ever found interesting.
//!
//! A check panics only on a bug: a decoder that panics, or a decoded value that does not
//! survive a canonical round trip (decode, re-encode, decode again: the same value, and the
//! re-encoding is a fixed point). It returns whether the input was accepted (decoded to at
//! least one value), which the replay test uses to make sure the seeds still reach the
//! success paths.
//!
//! Each target's input has a small structured prefix (a mode byte, chunk sizes) that the
//! check documents; the rest is the untrusted bytes a peer could send.

pub mod certs;
pub mod frames;
pub mod messages;
pub mod pg;
pub mod registry;
pub mod swim;

pub use certs::peer_certificate;
pub use frames::{control_frames, signal_frames};
pub use messages::remote_message;
pub use pg::pg_notices;
pub use registry::registry_messages;
pub use swim::swim_packets;

/// One fuzz target: its name (also its corpus directory, `fuzz/corpus/<name>/`) and its check.
pub type Target = (&'static str, fn(&[u8]) -> bool);

/// Every target, in the order CI runs them.
pub const TARGETS: &[Target] = &[
    ("signal_frames", signal_frames),
    ("control_frames", control_frames),
    ("remote_message", remote_message),
    ("peer_certificate", peer_certificate),
    ("swim_packets", swim_packets),
    ("pg_notices", pg_notices),
    ("registry_messages", registry_messages),
];

/// Valid inputs (and near-valid ones: truncations, oversize claims, trailing bytes) for a
/// target, named for their corpus files. Certificates need the CA's key, so their seeds are
/// made by `examples/seed_corpus.rs` only and are empty here.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "signal_frames" => frames::signal_seeds(),
        "control_frames" => frames::control_seeds(),
        "remote_message" => messages::seeds(),
        "swim_packets" => swim::seeds(),
        "pg_notices" => pg::seeds(),
        "registry_messages" => registry::seeds(),
        _ => Vec::new(),
    }
}
