//! The registry's handle on its Raft node, in the registry's own terms: the rest of the
//! crate calls these methods and reads [`RaftView`], and never sees an openraft type.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft, ReadPolicy, ServerState};
use understudy_cluster::extension::ExtensionContext;

use super::log::LogStore;
use super::network::{MAX_SNAPSHOT_BYTES, Network, RaftRequest, RaftResponse};
use super::settings::raft_config;
use super::state_machine::StateMachine;
use super::types::{LogId, RaftNode, Snapshot, SnapshotMeta, Tc, Vote};
use crate::config::RegistryConfig;
use crate::core::command::{Outcome, Request};
use crate::error::RegistryError;

/// What a node's Raft is doing, as the driver needs it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RaftView {
    /// This node leads.
    pub(crate) leading: bool,
    /// The leader this node knows of: `(raft id, node name)`.
    pub(crate) leader: Option<(u64, String)>,
    /// The voters in the configuration in force: `(raft id, node name)`.
    pub(crate) voters: Vec<(u64, String)>,
    /// The learners.
    pub(crate) learners: Vec<(u64, String)>,
    /// A configuration change is in flight (not committed yet, or still joint).
    pub(crate) changing: bool,
    /// The last log index this node has.
    pub(crate) last_log_index: u64,
    /// On the leader: how far each member's log is known to match.
    pub(crate) matched: BTreeMap<u64, u64>,
    /// On the leader: how long ago each member last acknowledged a heartbeat.
    pub(crate) heard: BTreeMap<u64, Duration>,
    /// While the configuration is joint: the voters it is moving to.
    pub(crate) joint_target: Option<BTreeSet<u64>>,
    /// On the leader: how long since a quorum last acknowledged it.
    pub(crate) quorum_acked: Option<Duration>,
    /// Why Raft stopped, if it did (a failed store).
    pub(crate) failed: Option<String>,
}

impl RaftView {
    /// Whether `raft_id` is in the configuration (voter or learner).
    pub(crate) fn is_member(&self, raft_id: u64) -> bool {
        self.voters
            .iter()
            .chain(&self.learners)
            .any(|(id, _)| *id == raft_id)
    }

    /// The node name recorded for `raft_id`.
    pub(crate) fn name_of(&self, raft_id: u64) -> Option<&str> {
        self.voters
            .iter()
            .chain(&self.learners)
            .find(|(id, _)| *id == raft_id)
            .map(|(_, n)| n.as_str())
    }
}

/// The answer to a write on this node.
#[derive(Debug)]
pub(crate) enum Written {
    /// Committed and applied.
    Done { outcome: Outcome, revision: u64 },
    /// Not the leader; the leader's node name if known.
    NotLeader(Option<String>),
    /// The outcome is unknown (the leader changed under it); the command is idempotent,
    /// so it may be sent again.
    Unknown(Option<String>),
    /// Raft has stopped.
    Failed(String),
}

/// One node's Raft.
#[derive(Clone)]
pub(crate) struct RaftHandle {
    raft: Raft<Tc, StateMachine>,
    pub(crate) id: u64,
    /// The snapshot being received, one at a time (a new one replaces it).
    assembly: Arc<Mutex<Option<Assembly>>>,
}

/// A snapshot arriving in parts.
struct Assembly {
    vote: Vote,
    last_log_id: Option<LogId>,
    data: Vec<u8>,
}

/// Adds a part; the whole snapshot once its last part is in. Parts come in order from one
/// sender (a request at a time); anything else drops the assembly, and the sender starts over.
fn assemble(
    assembly: &mut Option<Assembly>,
    vote: Vote,
    meta: &SnapshotMeta,
    offset: u64,
    data: Vec<u8>,
    last: bool,
) -> Result<Option<Vec<u8>>, &'static str> {
    if offset == 0 {
        *assembly = Some(Assembly {
            vote,
            last_log_id: meta.last_log_id,
            data: Vec::new(),
        });
    }
    let Some(current) = assembly.as_mut() else {
        return Err("a snapshot part out of order");
    };
    let fits = current.data.len() + data.len() <= MAX_SNAPSHOT_BYTES;
    if current.vote != vote
        || current.last_log_id != meta.last_log_id
        || current.data.len() as u64 != offset
        || !fits
    {
        *assembly = None;
        return Err(if fits {
            "a snapshot part out of order"
        } else {
            "a snapshot larger than this node takes"
        });
    }
    current.data.extend_from_slice(&data);
    if last {
        Ok(assembly.take().map(|a| a.data))
    } else {
        Ok(None)
    }
}

impl std::fmt::Debug for RaftHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftHandle").field("id", &self.id).finish()
    }
}

fn node(name: &str) -> RaftNode {
    RaftNode {
        name: name.to_owned(),
    }
}

impl RaftHandle {
    /// Starts Raft as `id` over these stores, talking through `ctx`.
    pub(crate) async fn start(
        id: u64,
        cfg: &RegistryConfig,
        ctx: ExtensionContext,
        log: LogStore,
        sm: StateMachine,
    ) -> Result<RaftHandle, RegistryError> {
        let config = raft_config(cfg)?;
        let roles = super::standby::Roles::default();
        let network = Network {
            ctx,
            me: id,
            roles: roles.clone(),
        };
        let raft =
            Raft::new(id, config, network, log, sm)
                .await
                .map_err(|e| RegistryError::Storage {
                    source: std::io::Error::other(e.to_string()),
                })?;
        roles.set(raft.server_metrics());
        Ok(RaftHandle {
            raft,
            id,
            assembly: Arc::new(Mutex::new(None)),
        })
    }

    /// Whether this node has a configuration (formed, or restarted with one).
    pub(crate) async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// Forms a new registry with these voters (`(raft id, node name)`).
    pub(crate) async fn initialize(&self, voters: &[(u64, String)]) -> Result<(), String> {
        let members: BTreeMap<u64, RaftNode> =
            voters.iter().map(|(id, name)| (*id, node(name))).collect();
        self.raft
            .initialize(members)
            .await
            .map_err(|e| e.to_string())
    }

    /// Where this node's Raft is now.
    pub(crate) fn view(&self) -> RaftView {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let names: BTreeMap<u64, String> = membership
            .nodes()
            .map(|(id, n)| (*id, n.name.clone()))
            .collect();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let named = |id: u64| (id, names.get(&id).cloned().unwrap_or_default());
        // A Raft that stopped (its store failed) leads nothing and knows no leader: its
        // last metrics are frozen.
        let running = m.running_state.is_ok();
        RaftView {
            leading: running && m.state == ServerState::Leader,
            leader: m.current_leader.filter(|_| running).map(named),
            voters: voters.iter().copied().map(named).collect(),
            learners: membership.learner_ids().map(named).collect(),
            changing: m.membership_config.log_id() != m.committed_membership_config.log_id()
                || membership.get_joint_config().len() > 1,
            last_log_index: m.last_log_index.unwrap_or(0),
            matched: m
                .replication
                .iter()
                .flatten()
                .map(|(id, l)| (*id, l.map_or(0, |l| l.index)))
                .collect(),
            heard: m
                .heartbeat
                .iter()
                .flatten()
                .filter_map(|(id, at)| {
                    at.as_ref()
                        .map(|at| (*id, openraft::Instant::elapsed(&**at)))
                })
                .collect(),
            joint_target: (membership.get_joint_config().len() > 1)
                .then(|| membership.get_joint_config().last().cloned())
                .flatten(),
            quorum_acked: m
                .last_quorum_acked
                .as_ref()
                .map(|at| openraft::Instant::elapsed(&**at)),
            failed: m.running_state.as_ref().err().map(|e| e.to_string()),
        }
    }

    /// The leader's node name, if this node's Raft runs and knows one (cheaper than
    /// [`view`](Self::view): no maps built).
    pub(crate) fn leader_name(&self) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        if m.running_state.is_err() {
            return None;
        }
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .nodes()
            .find(|(id, _)| **id == leader)
            .map(|(_, n)| n.name.clone())
            .filter(|n| !n.is_empty())
    }

    /// Waits until Raft's state changes (or `timeout` passes).
    pub(crate) async fn changed(&self, timeout: Duration) {
        // openraft hands out a receiver that has seen only the first version: mark the
        // current one seen, or `changed` returns at once and the caller spins.
        let mut metrics = self.raft.metrics();
        metrics.borrow_and_update();
        let _ =
            tokio::time::timeout(timeout.min(Duration::from_millis(50)), metrics.changed()).await;
    }

    /// Waits until this node's role, vote, leader or membership changes (or `timeout`
    /// passes). Unlike [`changed`](Self::changed) it does not wake for replication
    /// progress and heartbeat acknowledgements, so a loop on it costs nothing at idle
    /// however many followers the leader has.
    pub(crate) async fn role_changed(&self, timeout: Duration) {
        let mut server = self.raft.server_metrics();
        server.borrow_and_update();
        // An error: Raft stopped (its store failed), and nothing will change any more.
        if let Ok(Err(_)) = tokio::time::timeout(timeout, server.changed()).await {
            tokio::time::sleep(timeout).await;
        }
    }

    /// Proposes `command` if this node leads.
    pub(crate) async fn write(&self, request: Request) -> Written {
        match self.raft.client_write(request).await {
            Ok(response) => Written::Done {
                outcome: response.data,
                revision: response.log_id.index,
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Written::NotLeader(f.leader_node.map(|n| n.name))
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
                Written::Unknown(f.leader_node.map(|n| n.name))
            }
            Err(e) => Written::Failed(e.to_string()),
        }
    }

    /// A revision at or after which reads are linearizable, if this node leads.
    pub(crate) async fn read_index(&self) -> Result<u64, Option<String>> {
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read) => Ok(read.log_id().index),
            Err(e) => Err(e
                .forward_to_leader()
                .and_then(|f| f.leader_node.as_ref())
                .map(|n| n.name.clone())),
        }
    }

    /// Starts replicating to a node without giving it a vote.
    pub(crate) async fn add_learner(&self, id: u64, name: &str) -> Result<(), String> {
        self.raft
            .add_learner(id, node(name), false)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Makes exactly `voters` the voters (one joint-consensus change; voters that leave
    /// stay learners).
    pub(crate) async fn change_voters(&self, voters: BTreeSet<u64>) -> Result<(), String> {
        self.raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters), true)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Stops replicating to these learners.
    pub(crate) async fn remove_learners(&self, ids: BTreeSet<u64>) -> Result<(), String> {
        self.raft
            .change_membership(ChangeMembers::RemoveNodes(ids), true)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Serves a peer's Raft RPC.
    pub(crate) async fn serve(&self, request: RaftRequest) -> RaftResponse {
        let refused = |e: &dyn std::fmt::Display| RaftResponse::Refused(e.to_string());
        match request {
            RaftRequest::Append(r) => match self.raft.append_entries(r).await {
                Ok(a) => RaftResponse::Append(a),
                Err(e) => refused(&e),
            },
            RaftRequest::Vote(r) => match self.raft.vote(r).await {
                Ok(a) => RaftResponse::Vote(a),
                Err(e) => refused(&e),
            },
            RaftRequest::PreVote(r) => match self.raft.pre_vote(r).await {
                Ok(a) => RaftResponse::Vote(a),
                Err(e) => refused(&e),
            },
            RaftRequest::Snapshot {
                vote,
                meta,
                offset,
                data,
                last,
            } => {
                let whole = {
                    let mut assembly = self.assembly.lock().unwrap_or_else(|p| p.into_inner());
                    match assemble(&mut assembly, vote, &meta, offset, data, last) {
                        Ok(whole) => whole,
                        Err(why) => return RaftResponse::Refused(why.into()),
                    }
                };
                let Some(data) = whole else {
                    return RaftResponse::Part;
                };
                let snapshot = Snapshot {
                    meta,
                    snapshot: data,
                };
                match self.raft.install_full_snapshot(vote, snapshot).await {
                    Ok(a) => RaftResponse::Snapshot(a),
                    Err(e) => refused(&e),
                }
            }
            RaftRequest::TransferLeader(r) => match self.raft.handle_transfer_leader(r).await {
                Ok(a) => RaftResponse::TransferLeader(a),
                Err(e) => refused(&e),
            },
        }
    }

    /// Hands leadership to `to` (a caught-up voter).
    pub(crate) async fn transfer_leader(&self, to: u64) {
        let _ = self.raft.trigger().transfer_leader(to).await;
    }

    /// Stops Raft.
    pub(crate) async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}
