//! The registry: `PeerMessage::decode` (every message registry instances exchange on the
//! `registry` extension channel: Raft RPCs, formation claims, forwarded writes, feeds), and
//! the pure code that consumes what it decodes (the name table applying a forwarded command,
//! a feed batch, an image). The check itself lives in the registry crate
//! (`understudy::registry::fuzz`), beside the private types it decodes.
//!
//! Input: the bytes of one message, as a peer would send them.

/// The `registry_messages` target.
pub fn registry_messages(data: &[u8]) -> bool {
    understudy::registry::fuzz::check(data)
}

/// Seeds: each message kind, and near misses.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    understudy::registry::fuzz::seeds()
}
