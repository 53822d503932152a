//! openraft's storage suite on both stores, and what it does not cover: applying commands,
//! reopening a disk store, group commit, and a failing disk.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::StorageError;
use openraft::entry::RaftEntry;
use openraft::storage::{
    IOFlushed, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine,
};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::testing::{blank_ent, log_id, membership_ent};
use openraft::type_config::TypeConfigExt;
use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};
use understudy_actor::{ActorAddr, NodeId, Tag};

use super::disk::{Disk, FILE, Recovered};
use super::log::{LogStore, Mirror};
use super::state_machine::StateMachine;
use super::types::{Entry, Tc, Vote};
use crate::core::command::{Command, Owner};
use crate::kernel::Kernel;

struct Memory;

impl StoreBuilder<Tc, LogStore, StateMachine> for Memory {
    async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError<Tc>> {
        let kernel = Kernel::new(1000);
        let sm = StateMachine::new(kernel, None, None).expect("an empty state machine");
        Ok(((), LogStore::new(Mirror::default(), None), sm))
    }
}

struct OnDisk;

impl StoreBuilder<Tc, LogStore, StateMachine, tempfile::TempDir> for OnDisk {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<Tc>> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (disk, recovered) = Disk::open(dir.path()).expect("a new store");
        assert!(recovered.fresh);
        let disk = Some(Arc::new(disk));
        let sm = StateMachine::new(Kernel::new(1000), None, disk.clone()).expect("a state machine");
        Ok((dir, LogStore::new(Mirror::default(), disk), sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_passes_openraft_s_suite() {
    Suite::test_all(Memory).await.expect("the storage suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_store_passes_openraft_s_suite() {
    Suite::test_all(OnDisk).await.expect("the storage suite");
}

// A real file behind a probe, so tests can count fsyncs, stall them, fail them, and know when
// redb has let go of the file (the writer thread drops the database after its last handle).

#[derive(Debug, Default)]
struct Probe {
    syncs: AtomicU64,
    failing: AtomicBool,
    state: Mutex<ProbeState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct ProbeState {
    held: bool,
    closed: bool,
}

/// How long a test waits for the writer thread before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

impl Probe {
    fn state(&self) -> MutexGuard<'_, ProbeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stalls every sync until [`Probe::release`].
    fn hold(&self) {
        self.state().held = true;
    }

    fn release(&self) {
        self.state().held = false;
        self.changed.notify_all();
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// Waits until redb closed the file (all handles dropped, the writer thread done).
    fn wait_closed(&self) {
        let deadline = Instant::now() + DEADLINE;
        let mut state = self.state();
        while !state.closed {
            let left = deadline
                .checked_duration_since(Instant::now())
                .expect("the disk writer closes its file once its last handle is dropped");
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn check(&self) -> Result<(), BackendError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(BackendError::Io(io::Error::other("injected disk failure")));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Probed {
    file: FileBackend,
    probe: Arc<Probe>,
}

impl StorageBackend for Probed {
    fn len(&self) -> Result<u64, BackendError> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        self.probe.check()?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> Result<(), BackendError> {
        {
            let mut state = self.probe.state();
            while state.held {
                state = self
                    .probe
                    .changed
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        self.probe.syncs.fetch_add(1, Ordering::SeqCst);
        self.probe.check()?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        self.probe.check()?;
        self.file.write(offset, data)
    }

    fn close(&self) -> Result<(), BackendError> {
        let result = self.file.close();
        self.probe.state().closed = true;
        self.probe.changed.notify_all();
        result
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

/// The store in `dir` (the file [`Disk::open`] uses), behind a probe.
fn open_probed(dir: &Path) -> (Arc<Disk>, Recovered, Arc<Probe>) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(FILE))
        .expect("the store's file");
    let probe = Arc::new(Probe::default());
    let (disk, recovered) = Disk::open_on(Probed {
        file: FileBackend::new(file),
        probe: probe.clone(),
    })
    .expect("the store opens");
    (Arc::new(disk), recovered, probe)
}

/// Makes a store in `dir` and closes it; what it held when opened.
fn make_store(dir: &Path) -> Recovered {
    let (disk, recovered, probe) = open_probed(dir);
    drop(disk);
    probe.wait_closed();
    recovered
}

fn owner(pid: u64) -> Owner {
    Owner {
        addr: ActorAddr {
            node: NodeId::new(1).expect("non-zero"),
            pid,
        },
        tag: Tag(1),
        incarnation: 1,
    }
}

fn register(index: u64, name: &str, pid: u64) -> Entry {
    Entry::new_normal(
        log_id::<Tc>(1, 1, index),
        crate::core::command::Request {
            id: crate::core::command::RequestId {
                session: 1,
                seq: index,
            },
            command: Command::Register {
                name: name.to_owned(),
                owner: owner(pid),
            },
        },
    )
}

/// Appends `entries` and waits until the store says they are durable.
async fn append(log: &mut LogStore, entries: Vec<Entry>) -> io::Result<()> {
    let (tx, rx) = Tc::oneshot();
    log.append(entries, IOFlushed::signal(tx)).await?;
    rx.await.expect("every append is answered")
}

/// Applies `entries` as a follower does (no client waiting).
async fn apply(sm: &mut StateMachine, entries: &[Entry]) {
    let stream = futures_util::stream::iter(entries.iter().cloned().map(|e| Ok((e, None))));
    sm.apply(stream).await.expect("applied");
}

fn image_names(kernel: &Kernel) -> Vec<(String, Owner)> {
    kernel.image().names
}

#[tokio::test]
async fn applied_commands_reach_the_kernel_first_writer_first() {
    let kernel = Kernel::new(2);
    let mut sm = StateMachine::new(kernel.clone(), None, None).expect("a state machine");
    let members = membership_ent::<Tc>(1, 1, 1, vec![BTreeSet::from([1])]);
    let entries = vec![
        members.clone(),
        register(2, "x", 1),
        register(3, "x", 2),
        blank_ent::<Tc>(1, 1, 4),
        register(5, "y", 2),
        register(6, "z", 2),
    ];
    apply(&mut sm, &entries).await;

    assert_eq!(
        kernel.owner("x"),
        Some(owner(1)),
        "the first writer holds it"
    );
    assert_eq!(kernel.owner("y"), Some(owner(2)));
    assert_eq!(kernel.owner("z"), None, "max_names is 2");
    assert_eq!(kernel.revision(), 6);
    let (last, membership) = sm.applied_state().await.expect("applied state");
    assert_eq!(last, Some(log_id::<Tc>(1, 1, 6)));
    assert_eq!(membership.log_id(), &Some(members.log_id()));
}

#[tokio::test]
async fn a_blank_entry_moves_the_kernel_s_revision() {
    let kernel = Kernel::new(10);
    let mut sm = StateMachine::new(kernel.clone(), None, None).expect("a state machine");
    apply(&mut sm, &[register(1, "x", 1), blank_ent::<Tc>(2, 1, 2)]).await;
    assert_eq!(kernel.revision(), 2);
    assert_eq!(kernel.owner("x"), Some(owner(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_holds_what_was_written() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (disk, first, probe) = open_probed(dir.path());
    assert!(first.fresh);
    assert_ne!(first.raft_id, 0);
    let disk = Some(disk);
    let mut log = LogStore::new(Mirror::default(), disk.clone());
    let kernel = Kernel::new(100);
    let mut sm = StateMachine::new(kernel.clone(), None, disk.clone()).expect("a state machine");

    let mut entries = vec![membership_ent::<Tc>(1, 1, 1, vec![BTreeSet::from([1])])];
    entries.extend((2..=8).map(|i| register(i, &format!("name-{i}"), i)));
    append(&mut log, entries[..4].to_vec())
        .await
        .expect("appended");
    append(&mut log, entries[4..].to_vec())
        .await
        .expect("appended");
    log.save_vote(&Vote::new(1, 1)).await.expect("voted");
    let committed = Some(log_id::<Tc>(1, 1, 6));
    log.save_committed(committed).await.expect("committed");

    apply(&mut sm, &entries[..5]).await;
    let at_snapshot = image_names(&kernel);
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("a snapshot");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id::<Tc>(1, 1, 5)));
    apply(&mut sm, &entries[5..6]).await;
    // The vote is durable when saving it returns, and the writer keeps Raft's order: the last
    // vote is a barrier for everything before it.
    let vote = Vote::new_committed(2, 1);
    log.save_vote(&vote).await.expect("voted");
    drop((log, sm, disk));
    probe.wait_closed();

    let (_disk, again) = Disk::open(dir.path()).expect("the store reopens");
    assert_eq!(again.raft_id, first.raft_id);
    assert!(!again.fresh);
    assert_eq!(again.vote, Some(vote));
    assert_eq!(again.committed, committed);
    assert_eq!(again.last_purged, None);
    let expected: BTreeMap<u64, Entry> = entries.iter().map(|e| (e.index(), e.clone())).collect();
    assert_eq!(again.log, expected);

    let stored = again.snapshot.expect("the snapshot was kept");
    assert_eq!(stored.meta, snapshot.meta);
    let recovered = Kernel::new(100);
    let mut sm = StateMachine::new(recovered.clone(), Some(stored), None).expect("restored");
    assert_eq!(image_names(&recovered), at_snapshot);
    assert_eq!(recovered.revision(), 5);
    assert_eq!(recovered.owner("name-5"), Some(owner(5)));
    assert_eq!(
        recovered.owner("name-6"),
        None,
        "applied after the snapshot"
    );
    let (last, membership) = sm.applied_state().await.expect("applied state");
    assert_eq!(last, snapshot.meta.last_log_id);
    assert_eq!(membership, snapshot.meta.last_membership);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_and_purge_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (disk, _, probe) = open_probed(dir.path());
    let mut log = LogStore::new(Mirror::default(), Some(disk));
    append(&mut log, (1..=10).map(|i| register(i, "x", 1)).collect())
        .await
        .expect("appended");
    log.truncate_after(Some(log_id::<Tc>(1, 1, 7)))
        .await
        .expect("truncated");
    let purged = log_id::<Tc>(1, 1, 3);
    log.purge(purged).await.expect("purged");
    let vote = Vote::new(1, 1);
    log.save_vote(&vote).await.expect("voted (and a barrier)");
    let in_memory = log.try_get_log_entries(..).await.expect("read");
    drop(log);
    probe.wait_closed();

    let (_disk, again) = Disk::open(dir.path()).expect("the store reopens");
    assert_eq!(again.last_purged, Some(purged));
    assert_eq!(again.log.keys().copied().collect::<Vec<_>>(), [4, 5, 6, 7]);
    assert_eq!(again.log.into_values().collect::<Vec<_>>(), in_memory);
    assert_eq!(again.vote, Some(vote));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_store_comes_back_with_a_new_raft_id() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let first = make_store(dir.path());
    std::fs::remove_file(dir.path().join(FILE)).expect("wiped");

    let (_disk, again) = Disk::open(dir.path()).expect("a new store");
    assert!(again.fresh);
    assert_ne!(again.raft_id, first.raft_id);
    assert_eq!(again.vote, None);
    assert!(again.log.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_another_format_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("a temp dir");
    make_store(dir.path());
    {
        let db = redb::Database::create(dir.path().join(FILE)).expect("the file");
        let txn = db.begin_write().expect("a write");
        {
            let meta = redb::TableDefinition::<&str, &[u8]>::new("meta");
            let mut meta = txn.open_table(meta).expect("the meta table");
            meta.insert("format", [u8::MAX].as_slice())
                .expect("written");
        }
        txn.commit().expect("committed");
    }
    let err = Disk::open(dir.path()).expect_err("another format");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("format"), "{err}");
}

/// Appends issued while the disk is busy share one commit: with the writer stalled in an
/// fsync, 2000 appends queue up and go out together when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_waiting_for_the_disk_share_a_commit() {
    const APPENDS: u64 = 2000;
    let dir = tempfile::tempdir().expect("a temp dir");
    let (disk, _, probe) = open_probed(dir.path());
    let mut log = LogStore::new(Mirror::default(), Some(disk.clone()));
    append(&mut log, vec![register(1, "x", 1)])
        .await
        .expect("appended");

    probe.hold();
    let (commits, syncs) = (disk.commits(), probe.syncs());
    let (tx, mut acks) = tokio::sync::mpsc::unbounded_channel();
    for index in 2..=APPENDS + 1 {
        let (done, rx) = Tc::oneshot();
        log.append(vec![register(index, "x", 1)], IOFlushed::signal(done))
            .await
            .expect("queued");
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(rx.await.expect("every append is answered"));
        });
    }
    drop(tx);
    probe.release();
    let mut acked = 0;
    while let Some(result) = acks.recv().await {
        result.expect("durable");
        acked += 1;
    }
    assert_eq!(acked, APPENDS);
    // At most the commit that was stalled and the one after it.
    let (commits, syncs) = (disk.commits() - commits, probe.syncs() - syncs);
    assert!(
        (1..=2).contains(&commits),
        "{APPENDS} appends took {commits} commits"
    );
    assert!(
        syncs < APPENDS / 100,
        "{APPENDS} appends took {syncs} fsyncs"
    );

    log.save_vote(&Vote::new(1, 1)).await.expect("a barrier");
    drop((log, disk));
    probe.wait_closed();
    let (_disk, again) = Disk::open(dir.path()).expect("the store reopens");
    assert_eq!(
        again.log.keys().copied().collect::<Vec<_>>(),
        (1..=APPENDS + 1).collect::<Vec<_>>()
    );
}

/// Once a commit fails, every write fails, even when the disk works again: nothing is
/// written after a write that may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_every_later_write() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (disk, _, probe) = open_probed(dir.path());
    let disk = Some(disk);
    let mut log = LogStore::new(Mirror::default(), disk.clone());
    let mut sm = StateMachine::new(Kernel::new(10), None, disk.clone()).expect("a state machine");
    append(&mut log, vec![register(1, "x", 1)])
        .await
        .expect("a healthy disk");

    probe.fail(true);
    append(&mut log, vec![register(2, "y", 1)])
        .await
        .expect_err("the commit failed");
    probe.fail(false);

    // Every kind of write, queued together and one at a time.
    let (first, rx1) = Tc::oneshot();
    let (second, rx2) = Tc::oneshot();
    log.append(vec![register(3, "z", 1)], IOFlushed::signal(first))
        .await
        .expect("queued");
    log.append(vec![register(4, "z", 1)], IOFlushed::signal(second))
        .await
        .expect("queued");
    rx1.await.expect("answered").expect_err("after a failure");
    rx2.await.expect("answered").expect_err("after a failure");
    log.save_vote(&Vote::new(2, 1))
        .await
        .expect_err("after a failure");
    apply(&mut sm, &[register(1, "x", 1)]).await;
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect_err("after a failure");
    append(&mut log, vec![register(5, "w", 1)])
        .await
        .expect_err("after a failure");

    drop((log, sm, disk));
    probe.wait_closed();
    let (_disk, again) = Disk::open(dir.path()).expect("the store reopens");
    assert_eq!(again.log.keys().copied().collect::<Vec<_>>(), [1]);
    assert_eq!(again.vote, None);
    assert!(again.snapshot.is_none());
}
