//! The Raft log store: an in-memory mirror that answers every read, in front of an optional
//! disk ([`super::disk`]). Without a disk it is the in-memory store for tests and for nodes
//! without a `data_dir`.
//!
//! The log is bounded by snapshots (`snapshot_every` entries), so the mirror holds at most
//! about that many entries; reads never touch the disk, which is read once, on open.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};

use super::disk::{SharedDisk, encode};
use super::types::{Entry, LogId, Tc, Vote};

#[derive(Debug, Default)]
pub(crate) struct Mirror {
    pub(crate) log: BTreeMap<u64, Entry>,
    pub(crate) last_purged: Option<LogId>,
    pub(crate) committed: Option<LogId>,
    pub(crate) vote: Option<Vote>,
}

/// The log store (and its reader: a clone).
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    mirror: Arc<Mutex<Mirror>>,
    disk: SharedDisk,
}

impl LogStore {
    /// A store starting from `mirror` (empty, or what the disk held).
    pub(crate) fn new(mirror: Mirror, disk: SharedDisk) -> LogStore {
        LogStore {
            mirror: Arc::new(Mutex::new(mirror)),
            disk,
        }
    }

    fn mirror(&self) -> std::sync::MutexGuard<'_, Mirror> {
        self.mirror.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RaftLogReader<Tc> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self
            .mirror()
            .log
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.mirror().vote)
    }
}

impl RaftLogStorage<Tc> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<Tc>, io::Error> {
        let mirror = self.mirror();
        let last = mirror.log.values().next_back().map(|e| e.log_id());
        Ok(LogState {
            last_purged_log_id: mirror.last_purged,
            last_log_id: last.or(mirror.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        if let Some(disk) = &self.disk {
            disk.put_durable("vote", encode(vote)?).await?;
        }
        self.mirror().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        if let Some(disk) = &self.disk {
            // Not awaited: a lost commit index is only a hint lost (restart re-applies less).
            disk.put("committed", encode(&committed)?)?;
        }
        self.mirror().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.mirror().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<Tc>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        {
            let mut mirror = self.mirror();
            for entry in &entries {
                mirror.log.insert(entry.index(), entry.clone());
            }
        }
        match &self.disk {
            Some(disk) => disk.append(&entries, callback)?,
            None => callback.io_completed(Ok(())),
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last: Option<LogId>) -> Result<(), io::Error> {
        let from = last.map_or(0, |l| l.index + 1);
        self.mirror().log.split_off(&from);
        if let Some(disk) = &self.disk {
            disk.truncate_from(from)?;
        }
        Ok(())
    }

    async fn purge(&mut self, upto: LogId) -> Result<(), io::Error> {
        {
            let mut mirror = self.mirror();
            let keep = mirror.log.split_off(&(upto.index + 1));
            mirror.log = keep;
            mirror.last_purged = Some(upto);
        }
        if let Some(disk) = &self.disk {
            disk.purge(&upto)?;
        }
        Ok(())
    }
}
