//! The Raft state machine: applies committed commands to the kernel's name table, and builds
//! and installs snapshots of it.

use std::io;
use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use openraft::EntryPayload;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use tokio::sync::Mutex;

use super::disk::{SharedDisk, StoredSnapshot, encode};
use super::types::{LogId, Snapshot, SnapshotMeta, StoredMembership, Tc};
use crate::core::command::Outcome;
use crate::core::table::TableImage;
use crate::kernel::Kernel;

#[derive(Debug, Default)]
struct Applied {
    last: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<StoredSnapshot>,
}

/// The state machine (and its snapshot builder: a clone).
#[derive(Debug, Clone)]
pub(crate) struct StateMachine {
    kernel: Arc<Kernel>,
    applied: Arc<Mutex<Applied>>,
    disk: SharedDisk,
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl StateMachine {
    /// A state machine over `kernel`, starting from `snapshot` if the store held one.
    pub(crate) fn new(
        kernel: Arc<Kernel>,
        snapshot: Option<StoredSnapshot>,
        disk: SharedDisk,
    ) -> io::Result<StateMachine> {
        let mut applied = Applied::default();
        if let Some(snapshot) = snapshot {
            let image: TableImage = postcard::from_bytes(&snapshot.data).map_err(invalid)?;
            kernel.restore(&image);
            applied.last = snapshot.meta.last_log_id;
            applied.membership = snapshot.meta.last_membership.clone();
            applied.snapshot = Some(snapshot);
        }
        Ok(StateMachine {
            kernel,
            applied: Arc::new(Mutex::new(applied)),
            disk,
        })
    }
}

impl RaftSnapshotBuilder<Tc> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut applied = self.applied.lock().await;
        // Applying holds this lock, so the image and `last` agree.
        let image = self.kernel.image();
        let data = encode(&image)?;
        let meta = SnapshotMeta {
            last_log_id: applied.last,
            last_membership: applied.membership.clone(),
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        if let Some(disk) = &self.disk {
            disk.put_durable("snapshot", encode(&stored)?).await?;
        }
        applied.snapshot = Some(stored);
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
        let applied = self.applied.lock().await;
        Ok((applied.last, applied.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<Tc>, io::Error>> + Unpin + Send,
    {
        let mut applied = self.applied.lock().await;
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index;
            let outcome = match &entry.payload {
                EntryPayload::Normal(request) => self.kernel.apply(request, index),
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    self.kernel.skip(index);
                    Outcome::Nothing
                }
                EntryPayload::Blank => {
                    self.kernel.skip(index);
                    Outcome::Nothing
                }
            };
            applied.last = Some(entry.log_id);
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
        let image: TableImage = postcard::from_bytes(&snapshot).map_err(invalid)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot,
        };
        if let Some(disk) = &self.disk {
            disk.put_durable("snapshot", encode(&stored)?).await?;
        }
        let mut applied = self.applied.lock().await;
        self.kernel.restore(&image);
        applied.last = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        applied.snapshot = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let applied = self.applied.lock().await;
        Ok(applied.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: s.data.clone(),
        }))
    }
}
