//! Heartbeats to standbys, thinned.
//!
//! openraft's leader heartbeats every member of the configuration each `heartbeat`
//! (100 ms), learners included. A voter needs that: without it, it would start an
//! election. A standby (a learner) never does, and at idle a heartbeat tells it nothing it
//! does not already know: the same leader, the same last matching entry, the same commit.
//! Ten real heartbeats a second to each of four standbys would nearly double an idle
//! leader's Raft traffic once a cluster grows past five nodes, which is exactly the growth
//! the bounded membership is there to prevent.
//!
//! So a heartbeat to a standby that repeats the last one it acknowledged (same vote, same
//! `prev_log_id`, same `leader_commit`, no entries) is answered from that acknowledgement,
//! and only one such repeat per [`REAL_EVERY`] goes out for real. Anything new (an entry, a
//! commit, a new term) is sent at once, and a failed or refused heartbeat clears the memory,
//! so every later one is real until one succeeds again. What the leader gives up: it learns
//! that a standby died or restarted up to [`REAL_EVERY`] later (it never judges a standby's
//! liveness from heartbeats: SWIM decides that), and the standby's own `staleness()` can
//! read up to [`REAL_EVERY`] at idle.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use openraft::async_runtime::watch::WatchReceiver;
use openraft::metrics::RaftServerMetrics;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::type_config::alias::WatchReceiverOf;

use super::types::{LogId, Tc, Vote};

/// How often a standby gets a real heartbeat at idle.
pub(crate) const REAL_EVERY: Duration = Duration::from_secs(1);

/// Which members of this node's Raft configuration are standbys, as it changes (known
/// once Raft has started; the network is built before it).
#[derive(Clone, Default)]
pub(crate) struct Roles(Arc<OnceLock<WatchReceiverOf<Tc, RaftServerMetrics<Tc>>>>);

impl Roles {
    pub(crate) fn set(&self, server: WatchReceiverOf<Tc, RaftServerMetrics<Tc>>) {
        let _ = self.0.set(server);
    }

    /// Whether `target` is a learner in the configuration in force.
    pub(crate) fn is_standby(&self, target: u64) -> bool {
        self.0.get().is_some_and(|server| {
            let m = server.borrow_watched();
            let membership = m.membership_config.membership();
            membership.get_node(&target).is_some() && !membership.voter_ids().any(|id| id == target)
        })
    }
}

impl std::fmt::Debug for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roles")
            .field("known", &self.0.get().is_some())
            .finish()
    }
}

/// The last heartbeat a standby acknowledged, and when.
#[derive(Debug, Default)]
pub(crate) struct Quiet {
    last: Option<(Vote, Option<LogId>, Option<LogId>, Instant)>,
}

impl Quiet {
    /// The answer to give `rpc` without sending it, if it repeats the last acknowledged
    /// heartbeat and a real one went out less than [`REAL_EVERY`] ago.
    pub(crate) fn answer(
        &self,
        rpc: &AppendEntriesRequest<Tc>,
        now: Instant,
    ) -> Option<AppendEntriesResponse<Tc>> {
        let (vote, prev, commit, at) = self.last.as_ref()?;
        let repeat = rpc.entries.is_empty()
            && *vote == rpc.vote
            && *prev == rpc.prev_log_id
            && *commit == rpc.leader_commit;
        (repeat && now.saturating_duration_since(*at) < REAL_EVERY)
            .then_some(AppendEntriesResponse::Success)
    }

    /// Records how a heartbeat sent for real was answered.
    pub(crate) fn sent(&mut self, rpc: &AppendEntriesRequest<Tc>, acked: bool, now: Instant) {
        self.last = (acked && rpc.entries.is_empty()).then_some((
            rpc.vote,
            rpc.prev_log_id,
            rpc.leader_commit,
            now,
        ));
    }
}

#[cfg(test)]
mod tests {
    use openraft::vote::leader_id_std::CommittedLeaderId;

    use super::*;

    fn heartbeat(term: u64, commit: u64) -> AppendEntriesRequest<Tc> {
        let log_id = LogId::new(CommittedLeaderId::new(term), commit);
        AppendEntriesRequest {
            vote: Vote::new_committed(term, 1),
            prev_log_id: Some(log_id),
            leader_commit: Some(log_id),
            entries: vec![],
        }
    }

    #[test]
    fn a_repeat_within_the_interval_is_answered_locally() {
        let (mut quiet, t0) = (Quiet::default(), Instant::now());
        let hb = heartbeat(2, 7);
        assert!(quiet.answer(&hb, t0).is_none(), "nothing acknowledged yet");
        quiet.sent(&hb, true, t0);
        let later = t0 + REAL_EVERY / 2;
        assert!(matches!(
            quiet.answer(&hb, later),
            Some(AppendEntriesResponse::Success)
        ));
        assert!(
            quiet.answer(&hb, t0 + REAL_EVERY).is_none(),
            "one real heartbeat per interval"
        );
    }

    #[test]
    fn anything_new_goes_out() {
        let (mut quiet, t0) = (Quiet::default(), Instant::now());
        quiet.sent(&heartbeat(2, 7), true, t0);
        assert!(quiet.answer(&heartbeat(2, 8), t0).is_none(), "a new commit");
        assert!(quiet.answer(&heartbeat(3, 7), t0).is_none(), "a new term");
        let mut with_entry = heartbeat(2, 7);
        with_entry.entries.push(crate::raft::types::Entry {
            log_id: with_entry.prev_log_id.unwrap(),
            payload: openraft::EntryPayload::Blank,
        });
        assert!(quiet.answer(&with_entry, t0).is_none(), "entries");
    }

    #[test]
    fn a_failed_heartbeat_makes_the_next_real() {
        let (mut quiet, t0) = (Quiet::default(), Instant::now());
        let hb = heartbeat(2, 7);
        quiet.sent(&hb, true, t0);
        quiet.sent(&hb, false, t0);
        assert!(quiet.answer(&hb, t0).is_none());
    }
}
