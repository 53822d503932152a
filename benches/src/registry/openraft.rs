//! openraft's side (`openraft-mem`): plain openraft, built as openraft's own benchmark builds
//! it (`benchmarks/minimal` in its repository: a memory store and a network that calls the
//! target's `Raft` in the same process), with a state machine that does the registry's job.
//! Put beside `understudy-mem`, the difference is what the registry adds to openraft: the
//! QUIC + mTLS mesh, encoding each RPC, the extension channel, and its own name table.
//!
//! Three voters in this process, on the same 2-worker tokio runtime as the registry's nodes.
//! No RPC is encoded, copied or timed out: [`Router`] hands each request to the target's
//! `Raft` as a function call, as openraft's benchmark does. The Raft settings are the
//! registry's defaults, snapshot policy included (a snapshot every
//! `RegistryConfig::snapshot_every` entries, each encoding the whole table): openraft's
//! benchmark keeps openraft's defaults, but its state machine holds no data, so its
//! snapshots cost nothing and would not compare. A registration is a put-if-absent of the
//! name with a [`Holder`] (the registry's owner record, 32 bytes), first writer wins, as the
//! registry's `Register` command.
//!
//! It measures `write` and `latency` only: lookups from a local copy, failover of a crashed
//! node and a node's idle CPU are the registry's (or etcd's) own, with nothing in plain
//! openraft to set beside them.

mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::{
    ClientWriteError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{Config, EmptyNode, Raft, RaftNetworkV2, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use understudy::registry::RegistryConfig;

use super::load::{self, Writer};
use crate::bench::Metrics;
use store::{LogStore, StateMachine};

openraft::declare_raft_types!(
    /// Registrations in, their outcomes out; one leader per term (`leader_id_std`), as the
    /// registry's Raft.
    pub(crate) Tc:
        D = Register,
        R = Outcome,
        NodeId = u64,
        Node = EmptyNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<Self::Term, Self::NodeId>,
);

type LogId = openraft::type_config::alias::LogIdOf<Tc>;
type Vote = openraft::type_config::alias::VoteOf<Tc>;
type Entry = openraft::type_config::alias::EntryOf<Tc>;
type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<Tc>;
type StoredMembership = openraft::type_config::alias::StoredMembershipOf<Tc>;
type Snapshot = openraft::type_config::alias::SnapshotOf<Tc, Vec<u8>>;
type BenchRaft = Raft<Tc, StateMachine>;

/// The voters' Raft ids; `initialize` goes to the first.
const VOTERS: [u64; 3] = [0, 1, 2];
/// Forming the cluster takes at most this long, or the run fails.
const LIMIT: Duration = Duration::from_secs(30);

/// Who holds a name: the registry's owner record field for field (the actor's node and pid,
/// its message type's tag, the run of its node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holder {
    node: u64,
    pid: u64,
    tag: u64,
    incarnation: u64,
}

/// Give `name` to `holder` if nobody holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Register {
    name: String,
    holder: Holder,
}

impl std::fmt::Display for Register {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "register {:?} to pid {}", self.name, self.holder.pid)
    }
}

/// What applying an entry came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// The name is the writer's holder's (it was free, or held by that holder already).
    Took,
    /// Another holder has the name.
    Held,
    /// A blank or membership entry: no name changed.
    NoName,
}

/// openraft's settings: the registry's (`registry/src/raft/settings.rs`) with
/// `RegistryConfig`'s defaults — heartbeat 100 ms, elections after 250–350 ms, pre-vote,
/// a snapshot every `snapshot_every` entries — so that only what lies around openraft
/// differs between the two columns.
fn raft_config() -> Arc<Config> {
    let registry = RegistryConfig::default();
    let ms = |d: Duration| d.as_millis() as u64;
    let every = registry.snapshot_every;
    let config = Config {
        cluster_name: "openraft-mem".into(),
        heartbeat_interval: ms(registry.heartbeat),
        election_timeout_min: ms(registry.election_timeout_min),
        election_timeout_max: ms(registry.election_timeout_max),
        enable_pre_vote: Some(true),
        install_snapshot_timeout: 10_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(every),
        purge_batch_size: 64,
        replication_lag_threshold: every.saturating_mul(2),
        max_payload_entries: 300,
        backoff: "50ms".into(),
        ..Default::default()
    };
    Arc::new(config.validate().expect("the registry's Raft settings"))
}

// ------------------------------------------------------------------------------------------
// The in-process network.

/// Every voter's `Raft` by id: each node's network factory, handing requests to the target
/// as function calls.
#[derive(Clone, Default)]
struct Router(Arc<Mutex<BTreeMap<u64, BenchRaft>>>);

impl Router {
    fn get(&self, id: u64) -> Option<BenchRaft> {
        let table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        table.get(&id).cloned()
    }

    fn insert(&self, id: u64, raft: BenchRaft) {
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        table.insert(id, raft);
    }

    fn raft(&self, id: u64) -> BenchRaft {
        self.get(id).expect("a voter's Raft")
    }
}

impl RaftNetworkFactory<Tc> for Router {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, _: &EmptyNode) -> Peer {
        Peer {
            raft: self.get(target),
        }
    }
}

/// The way to one target: its `Raft` (none if it is not in the router, which a member of
/// this cluster always is).
struct Peer {
    raft: Option<BenchRaft>,
}

/// The target's error as the network's: only a Raft that has stopped answers with one, so
/// the node is unreachable.
fn stopped<T: From<Unreachable<Tc>>>(e: impl std::error::Error + 'static) -> T {
    Unreachable::new(&e).into()
}

impl Peer {
    fn target(&self) -> Result<&BenchRaft, Unreachable<Tc>> {
        self.raft
            .as_ref()
            .ok_or_else(|| Unreachable::from_string("no such node in this process"))
    }
}

impl RaftNetworkV2<Tc> for Peer {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Tc>,
        _: RPCOption,
    ) -> Result<AppendEntriesResponse<Tc>, RPCError<Tc>> {
        self.target()?.append_entries(rpc).await.map_err(stopped)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Tc>,
        _: RPCOption,
    ) -> Result<VoteResponse<Tc>, RPCError<Tc>> {
        self.target()?.vote(rpc).await.map_err(stopped)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<Tc>,
        _: RPCOption,
    ) -> Result<VoteResponse<Tc>, RPCError<Tc>> {
        self.target()?.pre_vote(rpc).await.map_err(stopped)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _: RPCOption,
    ) -> Result<SnapshotResponse<Tc>, StreamingError<Tc>> {
        let raft = self.target()?;
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            answer = raft.install_full_snapshot(vote, snapshot) => answer.map_err(stopped),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<Tc>,
        _: RPCOption,
    ) -> Result<TransferLeaderResponse<Tc>, RPCError<Tc>> {
        self.target()?
            .handle_transfer_leader(req)
            .await
            .map_err(stopped)
    }
}

// ------------------------------------------------------------------------------------------
// The cluster and the measurements.

/// Three voters, formed and settled.
struct Cluster {
    router: Router,
    leader: u64,
}

impl Cluster {
    /// Starts the voters, initializes the first with all three, and waits until every node
    /// names the same leader and the leader has applied all it has (its first entry of the
    /// term included).
    async fn start() -> Cluster {
        let config = raft_config();
        let router = Router::default();
        for id in VOTERS {
            let raft = Raft::new(
                id,
                config.clone(),
                router.clone(),
                LogStore::default(),
                StateMachine::default(),
            )
            .await
            .expect("Raft starts");
            router.insert(id, raft);
        }
        router
            .raft(VOTERS[0])
            .initialize(VOTERS.into_iter().collect::<BTreeSet<u64>>())
            .await
            .expect("the cluster forms");
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(leader) = settled(&router) {
                return Cluster { router, leader };
            }
            assert!(
                Instant::now() < deadline,
                "openraft did not settle on one leader within {LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A writer on node `at`, its holder `pid`.
    fn client(&self, at: u64, pid: u64) -> Client {
        Client {
            node: self.router.raft(at),
            router: self.router.clone(),
            holder: Holder {
                node: at + 1,
                pid,
                // Every holder takes the same message type.
                tag: 1,
                incarnation: 1,
            },
        }
    }
}

/// The leader all voters name, once it leads three voters and has applied its whole log.
fn settled(router: &Router) -> Option<u64> {
    let metrics: Vec<_> = VOTERS
        .iter()
        .map(|&id| router.raft(id).metrics().borrow_watched().clone())
        .collect();
    let leader = metrics.iter().find(|m| m.state == ServerState::Leader)?;
    let voters = leader.membership_config.membership().voter_ids().count();
    let applied = leader.last_applied.map(|l| l.index);
    (voters == VOTERS.len()
        && applied.is_some()
        && applied == leader.last_log_index
        && metrics.iter().all(|m| m.current_leader == Some(leader.id)))
    .then_some(leader.id)
}

/// One holder's registrations through the Raft of its node: the leader's commits them; a
/// follower's answers `ForwardToLeader`, and the writer sends them to the leader it names
/// (a function call here, where the registry forwards over the mesh).
struct Client {
    node: BenchRaft,
    router: Router,
    holder: Holder,
}

impl Writer for Client {
    async fn register(&mut self, name: &str) -> Result<(), String> {
        let request = || Register {
            name: name.to_owned(),
            holder: self.holder,
        };
        let mut answer = self.node.client_write(request()).await;
        if let Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) = &answer
            && let Some(leader) = to.leader_id
        {
            answer = self.router.raft(leader).client_write(request()).await;
        }
        match answer.map_err(|e| e.to_string())?.data {
            Outcome::Took => Ok(()),
            other => Err(format!("{name}: {other:?}")),
        }
    }
}

/// Registrations/s of `writers` concurrent writers calling `client_write` on the leader,
/// each with a holder of its own, under fresh names for `run`.
pub(crate) async fn write(writers: usize, run: Duration) -> Metrics {
    let c = Cluster::start().await;
    let writers: Vec<Client> = (0..writers as u64)
        .map(|pid| c.client(c.leader, pid))
        .collect();
    load::throughput(writers, run, || 0).await
}

/// Latency of one writer's sequential registrations on the leader, then on a follower
/// (forwarded to the leader).
pub(crate) async fn latency(samples: usize) -> Metrics {
    let c = Cluster::start().await;
    let follower = VOTERS
        .into_iter()
        .find(|&id| id != c.leader)
        .expect("a follower");
    let mut m = Metrics::new();
    for (at, node, k50, k99) in [
        ("leader", c.leader, "leader_p50_ms", "leader_p99_ms"),
        ("follower", follower, "follower_p50_ms", "follower_p99_ms"),
    ] {
        let mut writer = c.client(node, 0);
        let (p50, p99) = load::percentiles(load::sequential(&mut writer, at, samples).await);
        m.push((k50, p50 * 1e3));
        m.push((k99, p99 * 1e3));
    }
    m
}
