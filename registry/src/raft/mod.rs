//! The Raft core: the only module that names openraft. Everything outside it sees the
//! registry's own types ([`handle::RaftView`], [`handle::Written`]).

pub(crate) mod disk;
pub(crate) mod handle;
pub(crate) mod log;
pub(crate) mod network;
pub(crate) mod settings;
pub(crate) mod standby;
pub(crate) mod state_machine;
pub(crate) mod types;

#[cfg(test)]
mod tests;
