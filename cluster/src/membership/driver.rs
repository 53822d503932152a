//! [`Membership`]: the tokio task that drives a [`Swim`] state machine, and its handle.
//!
//! The task owns the state machine and is its only caller. It waits for whichever comes first
//! — an inbound packet or sync request, a command from the handle, a finished sync, or the
//! next timer — feeds it in with the current time, then hands every output on without
//! awaiting any I/O: packets go to [`Transport::send`] (to members) or
//! [`Transport::send_once`] (to anyone else), both non-blocking by contract, syncs run
//! as separate tasks whose results come back as inputs, and events are published to the
//! shared view and the subscribers. So a slow peer or a hanging dial never delays a probe.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use understudy_actor::NodeId;

use super::config::{InvalidMembershipConfig, MembershipConfig};
use super::member::LocalNode;
use super::member::{Member, MembershipEvent, NodeLoad};
use super::stats::MembershipStats;
use super::swim::Swim;
use super::transport::{InboundMessage, InboundReceiver, SyncError, Transport};

/// What the handle asks of the task.
enum Command {
    Leave(oneshot::Sender<()>),
    MemberLeaving(NodeId, crate::identity::Incarnation),
    SetLoad(NodeLoad),
    Announce(Vec<std::net::SocketAddr>),
}

/// The published view: members, this node, counters. Events are sent while holding the write
/// lock, so a snapshot taken under the read lock and a subscription made under it are
/// consistent (no event missed, none applied twice).
#[derive(Debug)]
struct View {
    members: std::collections::BTreeMap<NodeId, Member>,
    local: Member,
    stats: MembershipStats,
    connected: bool,
    running: bool,
}

#[derive(Debug)]
struct Shared {
    view: RwLock<View>,
    events: broadcast::Sender<MembershipEvent>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running membership: the handle to one node's SWIM task.
///
/// Dropping the handle stops the task *without* leaving (peers will see this node fail);
/// call [`leave`](Membership::leave) first for a graceful exit.
///
/// ```
/// use std::sync::Arc;
/// use understudy_cluster::identity::{ClusterName, Incarnation, NodeIdentity, NodeName};
/// use understudy_cluster::membership::testing::MemNetwork;
/// use understudy_cluster::membership::{inbound, LocalNode, Membership, MembershipConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let net = MemNetwork::new(7);
/// let cluster = ClusterName::new("demo")?;
/// let mut nodes = Vec::new();
/// for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
///     let identity = NodeIdentity::new(cluster.clone(), NodeName::new(name)?, Incarnation::new(1));
///     let local = LocalNode::new(identity, format!("127.0.0.1:{}", 7000 + i).parse()?);
///     let config = MembershipConfig::default();
///     let (inbound, receiver) = inbound(config.inbound_queue);
///     let transport = net.attach(&local, inbound);
///     let seeds = vec!["127.0.0.1:7000".parse()?];
///     nodes.push(Membership::start(local, config, seeds, Arc::new(transport), receiver)?);
/// }
/// // Wait (in paused virtual time) until everyone sees everyone.
/// while nodes.iter().any(|n| n.members().len() < 2) {
///     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Membership {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Membership {
    /// Starts the membership task of `local` on the current tokio runtime: it announces to
    /// `seeds` until it is in, then keeps the view. `inbox` is the other end of the
    /// [`Inbound`](super::Inbound) given to `transport`.
    ///
    /// The state machine's RNG is seeded from the node id and incarnation: different per node,
    /// reproducible per run.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns the task).
    pub fn start(
        local: LocalNode,
        config: MembershipConfig,
        seeds: Vec<std::net::SocketAddr>,
        transport: Arc<dyn Transport>,
        inbox: InboundReceiver,
    ) -> Result<Membership, InvalidMembershipConfig> {
        let seed = local.identity.node_id().get() ^ local.identity.incarnation().get();
        let swim = Swim::new(local, &config, seeds, seed, now())?;
        let (events, _) = broadcast::channel(config.event_buffer);
        let shared = Arc::new(Shared {
            view: RwLock::new(View {
                members: Default::default(),
                local: swim.local(),
                stats: swim.stats(),
                connected: false,
                running: true,
            }),
            events,
        });
        let (commands, command_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            swim,
            transport,
            inbox,
            commands: command_rx,
            shared: shared.clone(),
            sync_timeout: config.sync_timeout,
        };
        let task = tokio::spawn(driver.run());
        Ok(Membership {
            shared,
            commands,
            task: Mutex::new(Some(task)),
        })
    }

    /// The live members (never this node).
    pub fn members(&self) -> Vec<Member> {
        self.shared.read().members.values().cloned().collect()
    }

    /// One live member.
    pub fn member(&self, node_id: NodeId) -> Option<Member> {
        self.shared.read().members.get(&node_id).cloned()
    }

    /// This node as it announces itself.
    pub fn local(&self) -> Member {
        self.shared.read().local.clone()
    }

    /// Whether some live member knows this node.
    pub fn is_connected(&self) -> bool {
        self.shared.read().connected
    }

    /// Whether the task still runs (it stops after [`leave`](Self::leave) or
    /// [`stop`](Self::stop)).
    pub fn is_running(&self) -> bool {
        self.shared.read().running
    }

    /// Counters.
    pub fn stats(&self) -> MembershipStats {
        self.shared.read().stats
    }

    /// Membership events from now on. A subscriber that falls more than
    /// [`event_buffer`](MembershipConfig::event_buffer) events behind gets
    /// `RecvError::Lagged` and should re-read [`members`](Self::members).
    pub fn subscribe(&self) -> broadcast::Receiver<MembershipEvent> {
        let _view = self.shared.read();
        self.shared.events.subscribe()
    }

    /// The current members and the events after them, atomically: applying the events to
    /// the snapshot tracks the view exactly.
    pub fn subscribe_with_snapshot(&self) -> (Vec<Member>, broadcast::Receiver<MembershipEvent>) {
        let view = self.shared.read();
        let rx = self.shared.events.subscribe();
        (view.members.values().cloned().collect(), rx)
    }

    /// Publishes this node's load to the cluster.
    pub fn set_load(&self, load: NodeLoad) {
        let _ = self.commands.send(Command::SetLoad(load));
    }

    /// Announces this node to more seeds.
    pub fn announce(&self, seeds: Vec<std::net::SocketAddr>) {
        let _ = self.commands.send(Command::Announce(seeds));
    }

    /// A member said goodbye on a reliable, authenticated channel (the mesh's control
    /// stream): record it as [`Left`](super::LeaveReason::Left) now instead of waiting for
    /// its (lossy) leave gossip. See [`Swim::member_leaving`].
    pub fn member_leaving(&self, node: NodeId, incarnation: crate::identity::Incarnation) {
        let _ = self
            .commands
            .send(Command::MemberLeaving(node, incarnation));
    }

    /// Leaves the cluster gracefully (peers report [`Left`](super::LeaveReason::Left)) and
    /// stops the task once the goodbye packets are handed to the transport.
    pub async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).is_ok() {
            let _ = rx.await;
        }
        self.join_task().await;
    }

    /// Stops the task at once, without telling anyone: to peers this node has failed.
    pub async fn stop(&self) {
        if let Some(task) = self.take_task() {
            task.abort();
            let _ = task.await;
        }
        self.shared.write().running = false;
    }

    fn take_task(&self) -> Option<JoinHandle<()>> {
        self.task.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    async fn join_task(&self) {
        if let Some(task) = self.take_task() {
            let _ = task.await;
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(task) = self.take_task() {
            task.abort();
        }
    }
}

fn now() -> Instant {
    // tokio's clock, so paused test time drives membership too.
    tokio::time::Instant::now().into_std()
}

struct Driver {
    swim: Swim,
    transport: Arc<dyn Transport>,
    inbox: InboundReceiver,
    commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    sync_timeout: std::time::Duration,
}

type SyncOutcome = (u64, Result<Bytes, SyncError>);

impl Driver {
    async fn run(mut self) {
        let (sync_tx, mut sync_rx) = mpsc::unbounded_channel::<SyncOutcome>();
        let mut inbox_open = true;
        loop {
            self.flush(&sync_tx);
            let deadline = self.swim.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            // Biased, in this order: a due timer first (a flood of packets must not delay a
            // probe), then commands, finished syncs and inbound traffic. Also deterministic,
            // which paused-time tests rely on.
            tokio::select! {
                biased;
                () = sleep => self.swim.handle_timeout(now()),
                command = self.commands.recv() => match command {
                    Some(Command::Leave(done)) => {
                        self.swim.leave(now());
                        self.flush(&sync_tx);
                        self.shared.write().running = false;
                        let _ = done.send(());
                        return;
                    }
                    Some(Command::SetLoad(load)) => self.swim.set_load(now(), load),
                    Some(Command::MemberLeaving(node, incarnation)) => {
                        self.swim.member_leaving(now(), node, incarnation)
                    }
                    Some(Command::Announce(seeds)) => self.swim.announce(now(), &seeds),
                    // The handle is gone: stop without leaving.
                    None => return,
                },
                Some((id, outcome)) = sync_rx.recv() => {
                    self.swim
                        .handle_sync_response(now(), id, outcome.as_deref().map_err(Clone::clone));
                }
                message = self.inbox.rx.recv(), if inbox_open => match message {
                    Some(message) => {
                        self.handle(message);
                        // Take what else is queued before flushing (one flush per batch).
                        for _ in 0..64 {
                            match self.inbox.rx.try_recv() {
                                Ok(message) => self.handle(message),
                                Err(_) => break,
                            }
                        }
                    }
                    None => inbox_open = false,
                },
            }
        }
    }

    fn handle(&mut self, message: InboundMessage) {
        match message {
            InboundMessage::Packet { from, packet } => {
                let _ = self.swim.handle_packet(now(), from, &packet);
            }
            InboundMessage::Sync {
                from,
                request,
                reply,
            } => {
                let _ = reply.send(self.swim.handle_sync_request(now(), from, &request));
            }
        }
    }

    /// Hands every output on; never awaits.
    fn flush(&mut self, sync_tx: &mpsc::UnboundedSender<SyncOutcome>) {
        while let Some(transmit) = self.swim.poll_transmit() {
            if transmit.to_member {
                self.transport.send(&transmit.to, transmit.packet);
            } else {
                self.transport.send_once(&transmit.to, transmit.packet);
            }
        }
        while let Some(request) = self.swim.poll_sync() {
            let call = self.transport.sync(&request.to, request.payload);
            let timeout = self.sync_timeout;
            let tx = sync_tx.clone();
            tokio::spawn(async move {
                let outcome = match tokio::time::timeout(timeout, call).await {
                    Ok(result) => result,
                    Err(_) => Err(SyncError::Timeout),
                };
                let _ = tx.send((request.id, outcome));
            });
        }
        let mut view = self.shared.write();
        while let Some(event) = self.swim.poll_event() {
            match &event {
                MembershipEvent::NodeJoined(m) | MembershipEvent::NodeUpdated(m) => {
                    view.members.insert(m.node_id(), m.clone());
                }
                MembershipEvent::NodeLeft { member, .. } => {
                    view.members.remove(&member.node_id());
                }
            }
            tracing::debug!(?event, "membership");
            // No subscribers is fine.
            let _ = self.shared.events.send(event);
        }
        let mut stats = self.swim.stats();
        stats.inbound_dropped = self.inbox.dropped.load(AtomicOrdering::Relaxed);
        view.stats = stats;
        view.local = self.swim.local();
        view.connected = self.swim.is_connected();
    }
}
