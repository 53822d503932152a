//! `openraft-mem`'s storage, all in memory: the log (entries, vote, commit index, purge and
//! truncation) and the state machine (the name table, snapshots built and installed).
//!
//! Nothing is durable, as in openraft's benchmark and the registry's memory store: an
//! append is complete as soon as it is in the map. Locks are held only inside a call; the
//! state machine's lock is tokio's, because applying awaits the entry stream while it holds
//! the table, and a snapshot is built under the same lock so its data and `last_applied`
//! agree.

use std::collections::{BTreeMap, HashMap, hash_map};
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{Stream, TryStreamExt};
use openraft::EntryPayload;
use openraft::entry::RaftEntry;
use openraft::storage::{
    EntryResponder, IOFlushed, LogState, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder,
    RaftStateMachine,
};

use super::{Entry, Holder, LogId, Outcome, Snapshot, SnapshotMeta, StoredMembership, Tc, Vote};

/// The log: entries by index, the last purged id (entries up to it are gone), the vote and
/// the commit index.
#[derive(Debug, Default)]
struct Log {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

/// The log store (and its reader: a clone).
#[derive(Debug, Clone, Default)]
pub(crate) struct LogStore(Arc<Mutex<Log>>);

impl LogStore {
    fn log(&self) -> MutexGuard<'_, Log> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RaftLogReader<Tc> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self
            .log()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.log().vote)
    }
}

impl RaftLogStorage<Tc> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<Tc>, io::Error> {
        let log = self.log();
        // With every entry purged (after a snapshot), the log ends where the purge did.
        let last = log.entries.values().next_back().map(|e| e.log_id());
        Ok(LogState {
            last_purged_log_id: log.last_purged,
            last_log_id: last.or(log.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.log().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.log().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.log().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<Tc>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        self.log()
            .entries
            .extend(entries.into_iter().map(|e| (e.index(), e)));
        // In memory, appended is flushed.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last: Option<LogId>) -> Result<(), io::Error> {
        let from = last.map_or(0, |l| l.index + 1);
        self.log().entries.split_off(&from);
        Ok(())
    }

    async fn purge(&mut self, upto: LogId) -> Result<(), io::Error> {
        let mut log = self.log();
        log.entries = log.entries.split_off(&(upto.index + 1));
        log.last_purged = Some(upto);
        Ok(())
    }
}

/// The state machine's state: the name table, how far it has applied, the membership in
/// force, and the latest snapshot (built or installed: what a lagging follower is sent).
#[derive(Debug, Default)]
struct Machine {
    names: HashMap<String, Holder>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
}

impl Machine {
    /// Put-if-absent: the first holder wins; asking again for a name it holds is success.
    fn register(&mut self, name: String, holder: Holder) -> Outcome {
        match self.names.entry(name) {
            hash_map::Entry::Vacant(free) => {
                free.insert(holder);
                Outcome::Took
            }
            hash_map::Entry::Occupied(held) if *held.get() == holder => Outcome::Took,
            hash_map::Entry::Occupied(_) => Outcome::Held,
        }
    }
}

/// The state machine (and its snapshot builder: a clone).
#[derive(Debug, Clone, Default)]
pub(crate) struct StateMachine(Arc<tokio::sync::Mutex<Machine>>);

fn invalid(e: postcard::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl RaftSnapshotBuilder<Tc> for StateMachine {
    type SnapshotData = Vec<u8>;

    /// The whole table, encoded (postcard, as the registry encodes its own).
    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut m = self.0.lock().await;
        let data = postcard::to_allocvec(&m.names).map_err(invalid)?;
        let meta = SnapshotMeta {
            last_log_id: m.last_applied,
            last_membership: m.membership.clone(),
        };
        m.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<Tc> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let m = self.0.lock().await;
        Ok((m.last_applied, m.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<Tc>, io::Error>> + Unpin + Send,
    {
        let mut m = self.0.lock().await;
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id;
            let outcome = match entry.payload {
                EntryPayload::Normal(r) => m.register(r.name, r.holder),
                EntryPayload::Membership(members) => {
                    m.membership = StoredMembership::new(Some(log_id), members);
                    Outcome::NoName
                }
                EntryPayload::Blank => Outcome::NoName,
            };
            m.last_applied = Some(log_id);
            if let Some(responder) = responder {
                responder.send(outcome);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let names = postcard::from_bytes(&snapshot).map_err(invalid)?;
        let mut m = self.0.lock().await;
        m.names = names;
        m.last_applied = meta.last_log_id;
        m.membership = meta.last_membership.clone();
        m.snapshot = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let m = self.0.lock().await;
        Ok(m.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: data.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::StorageError;
    use openraft::testing::log::{StoreBuilder, Suite};

    use super::{LogStore, StateMachine, Tc};

    struct Fresh;

    impl StoreBuilder<Tc, LogStore, StateMachine> for Fresh {
        async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError<Tc>> {
            Ok(((), LogStore::default(), StateMachine::default()))
        }
    }

    /// The store is a real one: openraft's own storage suite passes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_store_passes_openraft_s_suite() {
        Suite::test_all(Fresh).await.expect("the storage suite");
    }
}
