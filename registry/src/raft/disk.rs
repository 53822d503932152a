//! The durable half of the Raft store: one redb file and the writer thread that batches into
//! it.
//!
//! **Group commit.** Every write (log appends, the vote, the commit index, truncation,
//! purges, snapshots) goes to one thread in the order Raft issued it. The thread takes what
//! is waiting (up to [`MAX_BATCH`] writes), applies it all in one redb transaction and
//! commits it with one `fdatasync`, then acknowledges each write in order. With 64 clients
//! writing at once, one fsync carries dozens of entries.
//!
//! **Failure.** A failed commit fails every write in its batch and every later one: Raft
//! stops on the first storage error (openraft makes it fatal), and nothing is written after
//! a write that may be lost. Restart the node to try the disk again.
//!
//! **Format.** Values are postcard, behind a format version the file records; all nodes and
//! all restarts of one node must run the same understudy build's format.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use openraft::storage::IOFlushed;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::types::{Entry, LogId, SnapshotMeta, Tc, Vote};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The store's file in its data dir.
pub(crate) const FILE: &str = "raft.redb";

/// The on-disk format this build writes and reads.
const FORMAT: u8 = 1;

/// How long opening waits for this process's previous store on the same file to close.
pub(crate) const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The most writes one transaction carries.
pub(crate) const MAX_BATCH: usize = 4096;

/// A snapshot as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    pub(crate) meta: SnapshotMeta,
    pub(crate) data: Vec<u8>,
}

/// What a store held when it was opened.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub(crate) raft_id: u64,
    pub(crate) vote: Option<Vote>,
    pub(crate) committed: Option<LogId>,
    pub(crate) last_purged: Option<LogId>,
    pub(crate) log: BTreeMap<u64, Entry>,
    pub(crate) snapshot: Option<StoredSnapshot>,
    /// Whether the file was made now (a fresh Raft id was drawn).
    pub(crate) fresh: bool,
}

enum Op {
    Append(Vec<(u64, Vec<u8>)>, IOFlushed<Tc>),
    Put(
        &'static str,
        Vec<u8>,
        Option<oneshot::Sender<io::Result<()>>>,
    ),
    TruncateFrom(u64),
    Purge {
        upto: u64,
        last_purged: Vec<u8>,
    },
}

/// The handle to a store's writer thread (cheap to clone). The thread ends when the last
/// handle is dropped, after its queued writes.
#[derive(Clone)]
pub(crate) struct Disk {
    tx: std_mpsc::Sender<Op>,
    #[cfg(test)]
    commits: Commits,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) broken: Broken,
}

/// A switch that makes every later commit fail, as a broken disk would: set only through
/// the `testing` feature's `Registry::break_disk`; never set in a production build.
#[derive(Clone, Debug, Default)]
pub(crate) struct Broken(Arc<std::sync::atomic::AtomicBool>);

impl Broken {
    fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[cfg(feature = "testing")]
    pub(crate) fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The transactions the writer committed, counted in tests (that is how they see group
/// commit); nothing in a build without tests.
#[derive(Clone, Debug, Default)]
struct Commits(#[cfg(test)] Arc<std::sync::atomic::AtomicU64>);

impl Commits {
    fn add(&self) {
        #[cfg(test)]
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Disk")
    }
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(invalid)
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(invalid)
}

impl Disk {
    /// Opens (or creates) the store in `dir`, reads it whole, and starts its writer thread.
    ///
    /// Blocks: call it off the async runtime. If the file is still held by a store of this
    /// process that is closing (a registry restarted in place), waits up to
    /// [`RELEASE_WAIT`] for it.
    pub(crate) fn open(dir: &Path) -> io::Result<(Disk, Recovered)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let started = std::time::Instant::now();
        loop {
            match Database::create(&path) {
                Ok(db) => return Disk::start(db),
                Err(redb::DatabaseError::DatabaseAlreadyOpen)
                    if started.elapsed() < RELEASE_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(other(e)),
            }
        }
    }

    /// Opens the store on `backend` (tests: a disk that fails or stalls on demand).
    #[cfg(test)]
    pub(crate) fn open_on(backend: impl redb::StorageBackend) -> io::Result<(Disk, Recovered)> {
        Disk::start(
            Database::builder()
                .create_with_backend(backend)
                .map_err(other)?,
        )
    }

    fn start(db: Database) -> io::Result<(Disk, Recovered)> {
        let recovered = recover(&db)?;
        let (tx, rx) = std_mpsc::channel();
        let commits = Commits::default();
        let counted = commits.clone();
        let broken = Broken::default();
        let switch = broken.clone();
        std::thread::Builder::new()
            .name("registry-disk".into())
            .spawn(move || writer(db, rx, counted, switch))?;
        Ok((
            Disk {
                tx,
                #[cfg(test)]
                commits,
                broken,
            },
            recovered,
        ))
    }

    /// How many transactions the writer has committed.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn send(&self, op: Op) -> io::Result<()> {
        self.tx
            .send(op)
            .map_err(|_| io::Error::other("the registry's disk writer stopped"))
    }

    pub(crate) fn append(&self, entries: &[Entry], done: IOFlushed<Tc>) -> io::Result<()> {
        use openraft::entry::RaftEntry;
        let encoded = entries
            .iter()
            .map(|e| Ok((e.index(), encode(e)?)))
            .collect::<io::Result<Vec<_>>>()?;
        self.send(Op::Append(encoded, done))
    }

    /// Writes a meta value; waits for it to be durable.
    pub(crate) async fn put_durable(&self, key: &'static str, value: Vec<u8>) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Put(key, value, Some(tx)))?;
        rx.await
            .map_err(|_| io::Error::other("the registry's disk writer stopped"))?
    }

    /// Writes a meta value with the next batch (not awaited).
    pub(crate) fn put(&self, key: &'static str, value: Vec<u8>) -> io::Result<()> {
        self.send(Op::Put(key, value, None))
    }

    pub(crate) fn truncate_from(&self, index: u64) -> io::Result<()> {
        self.send(Op::TruncateFrom(index))
    }

    pub(crate) fn purge(&self, upto: &LogId) -> io::Result<()> {
        self.send(Op::Purge {
            upto: upto.index,
            last_purged: encode(upto)?,
        })
    }
}

fn recover(db: &Database) -> io::Result<Recovered> {
    let mut out = Recovered::default();
    {
        let txn = db.begin_read().map_err(other)?;
        match txn.open_table(META) {
            Ok(meta) => {
                let get = |k: &str| -> io::Result<Option<Vec<u8>>> {
                    Ok(meta.get(k).map_err(other)?.map(|v| v.value().to_vec()))
                };
                match get("format")?.as_deref() {
                    Some([FORMAT]) => {}
                    Some(other_format) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "the registry store has format {other_format:?}; this build reads format {FORMAT} (move the data dir aside to start fresh)"
                            ),
                        ));
                    }
                    None => {}
                }
                if let Some(id) = get("raft_id")? {
                    out.raft_id = decode(&id)?;
                }
                out.vote = get("vote")?.map(|v| decode(&v)).transpose()?;
                out.committed = get("committed")?.map(|v| decode(&v)).transpose()?.flatten();
                out.last_purged = get("last_purged")?.map(|v| decode(&v)).transpose()?;
                out.snapshot = get("snapshot")?.map(|v| decode(&v)).transpose()?;
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(other(e)),
        }
        match txn.open_table(LOG) {
            Ok(log) => {
                for row in log.iter().map_err(other)? {
                    let (k, v) = row.map_err(other)?;
                    out.log.insert(k.value(), decode(v.value())?);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(other(e)),
        }
    }
    if out.raft_id == 0 {
        // A new store (or one that lost its data): a fresh Raft id, never an old one.
        out.raft_id = fresh_raft_id();
        out.fresh = true;
        let txn = db.begin_write().map_err(other)?;
        {
            let mut meta = txn.open_table(META).map_err(other)?;
            meta.insert("format", [FORMAT].as_slice()).map_err(other)?;
            meta.insert("raft_id", encode(&out.raft_id)?.as_slice())
                .map_err(other)?;
            txn.open_table(LOG).map_err(other)?;
        }
        txn.commit().map_err(other)?;
    }
    Ok(out)
}

/// A random Raft id (never 0): ids are never reused, so a node that lost its disk cannot
/// be mistaken for its earlier self.
pub(crate) fn fresh_raft_id() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

fn writer(db: Database, rx: std_mpsc::Receiver<Op>, commits: Commits, broken: Broken) {
    let mut failed: Option<(io::ErrorKind, String)> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let result = match &failed {
            Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            None if broken.is_set() => {
                Err(io::Error::other("the disk was broken on purpose (testing)"))
            }
            None => commit(&db, &batch).inspect(|()| commits.add()),
        };
        if let Err(e) = &result {
            if failed.is_none() {
                tracing::error!(error = %e, "registry: the Raft store failed; no more writes");
                metrics::counter!("understudy_registry_storage_failures_total").increment(1);
            }
            failed = Some((e.kind(), e.to_string()));
        }
        let outcome = || match &failed {
            Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            None => Ok(()),
        };
        for op in batch {
            match op {
                Op::Append(_, done) => done.io_completed(outcome()),
                Op::Put(_, _, Some(done)) => {
                    let _ = done.send(outcome());
                }
                _ => {}
            }
        }
    }
}

fn commit(db: &Database, batch: &[Op]) -> io::Result<()> {
    let txn = db.begin_write().map_err(other)?;
    {
        let mut log = txn.open_table(LOG).map_err(other)?;
        let mut meta = txn.open_table(META).map_err(other)?;
        for op in batch {
            match op {
                Op::Append(entries, _) => {
                    for (index, bytes) in entries {
                        log.insert(index, bytes.as_slice()).map_err(other)?;
                    }
                }
                Op::Put(key, value, _) => {
                    meta.insert(*key, value.as_slice()).map_err(other)?;
                }
                Op::TruncateFrom(index) => {
                    log.retain_in(*index.., |_, _| false).map_err(other)?;
                }
                Op::Purge { upto, last_purged } => {
                    log.retain_in(..=*upto, |_, _| false).map_err(other)?;
                    meta.insert("last_purged", last_purged.as_slice())
                        .map_err(other)?;
                }
            }
        }
    }
    txn.commit().map_err(other)
}

/// Shared so the log and the state machine write through one thread, in one order.
pub(crate) type SharedDisk = Option<Arc<Disk>>;
