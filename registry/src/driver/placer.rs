//! The leader's placement duties: start orphaned names again, and see that assigned starts
//! happen.
//!
//! A placed name is orphaned by the log (its holder stopped and its policy restarts it, or
//! its node is gone). The leader picks a node for it by its placement rule among the live
//! nodes with the kind (`Local` means any, its caller's node being no more to it than any
//! other) and proposes a re-place naming the orphaned epoch, so exactly one re-place of a
//! failure wins however many times it is tried; then it asks that node to start the actor.
//! An assignment that has not been bound after [`START_RETRY`] gets its `Start` again (the
//! caller that placed it may have died, or the request was lost); the target answers a
//! repeat with the actor it already started.
//!
//! Departures are acted on as SWIM reports them: a member that failed or left has its names
//! released at once (`ReleaseNode`), so failover costs SWIM's detection and a few log
//! round trips, not a further grace period.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use understudy_cluster::membership::MembershipEvent;

use super::{Shared, spawn, write};
use crate::core::command::{Command, Outcome};
use crate::core::placement::{Placed, Stage};
use crate::raft::handle::{RaftHandle, Written};

/// How long an assignment may go without a bind before its `Start` is sent again.
pub(crate) const START_RETRY: Duration = Duration::from_secs(3);

/// How often a re-place that found no node is tried again.
const RETRY_UNPLACEABLE: Duration = Duration::from_millis(500);

/// Starts in flight at once (each a request to a node and a bind).
const MAX_STARTS: usize = 64;

/// The leader's memory of what it tried, by (name, epoch).
#[derive(Debug, Default)]
pub(crate) struct Placer {
    tried: HashMap<(String, u64), Instant>,
    /// The table revision of the last scan that found nothing to do.
    settled_at: Option<u64>,
    starts: Option<Arc<Semaphore>>,
}

impl Placer {
    /// One pass over the records that are not running.
    pub(crate) async fn tick(&mut self, shared: &Arc<Shared>, raft: &RaftHandle) {
        let revision = shared.kernel.revision();
        if self.settled_at == Some(revision) {
            return;
        }
        let waiting: Vec<(String, Placed)> = shared
            .kernel
            .read()
            .table
            .placements()
            .iter()
            .filter(|(_, p)| !matches!(p.stage, Stage::Running { .. }))
            .map(|(n, p)| (n.to_owned(), p.clone()))
            .collect();
        self.tried
            .retain(|(name, epoch), _| waiting.iter().any(|(n, p)| n == name && p.epoch == *epoch));
        if waiting.is_empty() {
            self.settled_at = Some(revision);
            return;
        }
        self.settled_at = None;
        let starts = self
            .starts
            .get_or_insert_with(|| Arc::new(Semaphore::new(MAX_STARTS)))
            .clone();
        if !raft.view().leading {
            return;
        }
        let mut orphans = Vec::new();
        for (name, record) in waiting {
            let key = (name.clone(), record.epoch);
            match record.stage {
                Stage::Orphaned { .. } => {
                    if self
                        .tried
                        .get(&key)
                        .is_some_and(|t| t.elapsed() < RETRY_UNPLACEABLE)
                    {
                        continue;
                    }
                    self.tried.insert(key, Instant::now());
                    orphans.push((name, record));
                }
                Stage::Starting { target } | Stage::Moving { target, .. } => {
                    let first = *self.tried.entry(key.clone()).or_insert_with(Instant::now);
                    if first.elapsed() < START_RETRY {
                        continue;
                    }
                    self.tried.insert(key, Instant::now());
                    let Some(node) = node_name(shared, target.node) else {
                        // Not a member: its departure orphans the record.
                        continue;
                    };
                    send_start(shared, node, name, record, &starts);
                }
                Stage::Running { .. } => {}
            }
        }
        // A crashed node's names are placed again together: each re-place is a log round
        // trip (and an fsync on disk), and one at a time they would add up.
        futures_util::stream::iter(orphans)
            .for_each_concurrent(MAX_STARTS, |(name, record)| {
                let starts = starts.clone();
                async move { replace(shared, &name, &record, &starts).await }
            })
            .await;
    }
}

/// Runs the leader's placement duties: after every change to the table (at most every
/// [`COALESCE`]) and every [`IDLE_TICK`], while this node leads.
pub(crate) async fn run(shared: Weak<Shared>) {
    let mut placer = Placer::default();
    let mut changes = {
        let Some(s) = shared.upgrade() else { return };
        s.kernel.changes()
    };
    loop {
        tokio::select! {
            _ = changes.recv() => {}
            () = tokio::time::sleep(IDLE_TICK) => {}
        }
        tokio::time::sleep(COALESCE).await;
        let Some(s) = shared.upgrade() else { return };
        if s.ctx.node().is_none() {
            return;
        }
        let Some(raft) = s.raft.clone() else { return };
        placer.tick(&s, &raft).await;
    }
}

/// The longest a table change waits before the placer looks at it (changes in between are
/// handled together).
const COALESCE: Duration = Duration::from_millis(10);

/// How often the placer looks when nothing changes (for starts to send again).
const IDLE_TICK: Duration = Duration::from_millis(500);

/// Places an orphaned record again and asks its new node to start it.
async fn replace(shared: &Arc<Shared>, name: &str, record: &Placed, starts: &Arc<Semaphore>) {
    let spec = &record.spec;
    let (target, node) = match spawn::place(shared, name, spec, None, None) {
        Ok(placed) => placed,
        Err(why) => {
            tracing::warn!(name, %why, "registry: a placed name has no node to run on; retrying");
            return;
        }
    };
    let place = Command::Place {
        name: name.to_owned(),
        spec: spec.clone(),
        target,
        replaces: Some(record.epoch),
        at_ms: spawn::now_ms(),
    };
    match write::write(shared, place).await {
        Ok((Outcome::Placed { epoch, .. }, _)) => {
            let mut record = record.clone();
            record.epoch = epoch;
            send_start(shared, node, name.to_owned(), record, starts);
        }
        Ok((Outcome::GaveUp, _)) => {
            metrics::counter!(GAVE_UP_METRIC).increment(1);
            tracing::error!(name, kind = %spec.kind, "registry: a placed name was restarted too often and was released");
        }
        Ok((other, _)) => tracing::debug!(name, ?other, "registry: a re-place lost to another"),
        Err(e) => tracing::debug!(name, error = %e, "registry: a re-place failed; retrying"),
    }
}

/// Asks `node` to start `record` (on a task of its own, a bounded number at once).
fn send_start(
    shared: &Arc<Shared>,
    node: String,
    name: String,
    record: Placed,
    starts: &Arc<Semaphore>,
) {
    let (shared, starts) = (Arc::downgrade(shared), starts.clone());
    tokio::spawn(async move {
        let Ok(_permit) = starts.acquire_owned().await else {
            return;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let answer = spawn::start_on(&shared, &node, &name, record.epoch, &record.spec).await;
        tracing::debug!(name, %node, ?answer, "registry: started a placed name");
    });
}

fn node_name(shared: &Shared, node: understudy_actor::NodeId) -> Option<String> {
    let n = shared.node().ok()?;
    if n.runtime().node_id() == node {
        return Some(shared.me.to_string());
    }
    n.members()
        .iter()
        .find(|m| m.node_id() == node)
        .map(|m| m.name().to_string())
}

/// Counts placed names released after too many restarts.
pub const GAVE_UP_METRIC: &str = "understudy_registry_placed_gave_up_total";

/// On the leader: releases the names of members SWIM reports failed or gone, as it reports
/// them (the placer then sees their placed names orphaned).
pub(crate) async fn departures(shared: Weak<Shared>) {
    let mut events = {
        let Some(s) = shared.upgrade() else { return };
        let Ok(node) = s.node() else { return };
        node.subscribe()
    };
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let MembershipEvent::NodeLeft { member, .. } = event else {
            continue;
        };
        tokio::spawn(release_departed(shared.clone(), member));
    }
}

/// How long a departure must stand before the leader releases the node's names: a view
/// that flaps as a partition heals (a rejoining node's stale gossip declaring members
/// failed, refuted a moment later) must not take live nodes' names.
pub(crate) const DEPARTURE_GRACE: Duration = Duration::from_millis(750);

/// Releases `member`'s names if it is still gone after [`DEPARTURE_GRACE`] and this node
/// still leads.
async fn release_departed(shared: Weak<Shared>, member: understudy_cluster::membership::Member) {
    tokio::time::sleep(DEPARTURE_GRACE).await;
    let Some(s) = shared.upgrade() else { return };
    let Ok(node) = s.node() else { return };
    if node
        .members()
        .iter()
        .any(|m| m.node_id() == member.node_id())
    {
        return;
    }
    drop(node);
    let Some(raft) = s.raft.clone() else { return };
    if !raft.view().leading {
        return;
    }
    let holds = {
        let state = s.kernel.read();
        state.table.holder_nodes().contains_key(&member.node_id())
            || state.table.placements().iter().any(|(_, p)| match p.stage {
                Stage::Starting { target } => target.node == member.node_id(),
                _ => false,
            })
    };
    if !holds {
        return;
    }
    // Through this node's own Raft only: a leader deposed meanwhile (cut off, its view
    // of who departed wrong) must not hand its view to the new leader.
    let release = s.request(Command::ReleaseNode {
        node: member.node_id(),
        incarnation: member.incarnation().get(),
    });
    match tokio::time::timeout(s.config.write_deadline, raft.write(release)).await {
        Ok(Written::Done { outcome, .. }) => {
            tracing::info!(node = %member.name(), ?outcome, "registry: released a departed node's names");
        }
        // Not committed here: the periodic release of absent nodes retries.
        other => {
            tracing::debug!(node = %member.name(), ?other, "registry: release not committed")
        }
    }
}
