//! Integration tests of OTP supervision trees (`understudy_actor::supervisor`).
//!
//! Deterministic by construction: nothing sleeps to synchronise. Tests wait for conditions
//! (`eventually`, polling the supervisor, which answers only after it has handled earlier
//! exits) or for events on channels. Time-dependent behaviour (restart periods, backoff,
//! call timeouts) runs on tokio's paused clock. Every test has its own `Runtime` and logs, so
//! tests run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent};
use tokio::sync::mpsc;
use tokio::time::Instant;
use understudy_actor::supervisor::{
    Backoff, ChildCounts, ChildInfo, ChildKind, ChildSpec, ESCALATION_REASON, Restart, Shutdown,
    SupervisorError, SupervisorMsg, SupervisorRef, SupervisorSpec,
};
use understudy_actor::{Actor, ActorError, Ctx, Handler, Runtime, Spawn, SpawnError};

const DEADLINE: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(3600);

// ---- a worker that records its life ------------------------------------------------------

/// A shared event log: "start:a", "stop:a", "fail:a".
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }
    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    /// The entries after the first `n`.
    fn since(&self, n: usize) -> Vec<String> {
        self.entries()[n..].to_vec()
    }
    fn count(&self, entry: &str) -> usize {
        self.entries().iter().filter(|e| *e == entry).count()
    }
}

/// How a probe's `on_start` fails while `fail_starts` is positive.
#[derive(Clone, Copy)]
enum StartFailure {
    Error,
    Panic,
}

#[derive(Clone)]
struct Probe {
    tag: &'static str,
    log: Log,
    /// The next this-many starts fail.
    fail_starts: Arc<AtomicU32>,
    failure: StartFailure,
    /// `on_stop` never returns (only a kill ends it).
    hang_on_stop: bool,
    /// Start instants (tokio's clock), for backoff tests.
    started_at: Arc<Mutex<Vec<Instant>>>,
}

impl Probe {
    fn new(tag: &'static str, log: &Log) -> Probe {
        Probe {
            tag,
            log: log.clone(),
            fail_starts: Arc::new(AtomicU32::new(0)),
            failure: StartFailure::Error,
            hang_on_stop: false,
            started_at: Arc::default(),
        }
    }

    /// A child spec with id `tag` that starts a fresh copy of this probe.
    fn spec(&self) -> ChildSpec {
        let probe = self.clone();
        ChildSpec::new(self.tag, move || probe.clone())
    }
}

enum Cmd {
    /// Fail with an error (ractor `ActorFailed`).
    Crash,
    /// Stop gracefully with this reason.
    Stop(Option<String>),
}

// ractor's blanket impl covers every type without its `cluster` feature (understudy's `remote`).
#[cfg(feature = "remote")]
impl ractor::Message for Cmd {}

impl Actor for Probe {
    async fn on_start(&mut self, _ctx: &Ctx<Self>) -> Result<(), ActorError> {
        let must_fail = self
            .fail_starts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if must_fail {
            self.log.push(format!("fail:{}", self.tag));
            match self.failure {
                StartFailure::Error => return Err("refusing to start".into()),
                StartFailure::Panic => panic!("{} panics in on_start", self.tag),
            }
        }
        self.started_at.lock().unwrap().push(Instant::now());
        self.log.push(format!("start:{}", self.tag));
        Ok(())
    }

    async fn on_stop(&mut self, _ctx: &Ctx<Self>) -> Result<(), ActorError> {
        self.log.push(format!("stop:{}", self.tag));
        if self.hang_on_stop {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

impl Handler for Probe {
    type Msg = Cmd;

    async fn handle(&mut self, ctx: &Ctx<Self>, message: Cmd) -> Result<(), ActorError> {
        match message {
            Cmd::Crash => Err(format!("{} crashed", self.tag).into()),
            Cmd::Stop(reason) => {
                ctx.stop(reason);
                Ok(())
            }
        }
    }
}

/// A plain ractor actor as a child.
struct RactorProbe;

impl ractor::Actor for RactorProbe {
    type Msg = Cmd;
    type State = ();
    type Arguments = Log;

    async fn pre_start(&self, _me: ActorRef<Cmd>, log: Log) -> Result<(), ActorProcessingErr> {
        log.push("start:ractor".into());
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<Cmd>,
        message: Cmd,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match message {
            Cmd::Crash => Err("ractor child crashed".into()),
            Cmd::Stop(reason) => {
                me.stop(reason);
                Ok(())
            }
        }
    }
}

// ---- a parent that reports how its children exit -------------------------------------------

/// An exit seen by a [`Watcher`].
#[derive(Debug)]
struct Exit {
    actor: ActorId,
    reason: Option<String>,
}

/// A plain ractor actor standing in for a parent: forwards its children's exits.
struct Watcher;

struct Nothing;
#[cfg(feature = "remote")]
impl ractor::Message for Nothing {}

impl ractor::Actor for Watcher {
    type Msg = Nothing;
    type State = mpsc::UnboundedSender<Exit>;
    type Arguments = mpsc::UnboundedSender<Exit>;

    async fn pre_start(
        &self,
        _me: ActorRef<Nothing>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<Nothing>,
        event: SupervisionEvent,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let exit = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => Exit {
                actor: cell.get_id(),
                reason,
            },
            SupervisionEvent::ActorFailed(cell, error) => Exit {
                actor: cell.get_id(),
                reason: Some(format!("failed: {error}")),
            },
            _ => return Ok(()),
        };
        let _ = tx.send(exit);
        Ok(())
    }
}

/// Starts a supervisor under a watcher; returns it and the watcher's exit channel.
async fn start_watched(
    runtime: &Runtime,
    spec: SupervisorSpec,
) -> (
    SupervisorRef,
    mpsc::UnboundedReceiver<Exit>,
    ActorRef<Nothing>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (watcher, _) = ractor::Actor::spawn(None, Watcher, tx).await.unwrap();
    let sup = runtime
        .start_supervisor_with(spec, Spawn::new().supervisor(watcher.get_cell()))
        .await
        .unwrap();
    (sup, rx, watcher)
}

async fn next_exit(rx: &mut mpsc::UnboundedReceiver<Exit>) -> Exit {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("no exit reported in time")
        .expect("watcher gone")
}

// ---- helpers -----------------------------------------------------------------------------

/// Evaluates `cond` (which may `.await`) until it holds; panics after [`DEADLINE`].
macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let deadline = Instant::now() + DEADLINE;
        while !$cond {
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {}",
                $what
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }};
}

fn send(cell: &ActorCell, cmd: Cmd) {
    ActorRef::<Cmd>::from(cell.clone())
        .send_message(cmd)
        .expect("child mailbox open");
}

async fn child(sup: &SupervisorRef, id: &str) -> ActorCell {
    sup.child(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("child {id} is not running"))
}

/// The ids of the running children, in start order (`None` for a stopped one).
async fn ids(sup: &SupervisorRef) -> Vec<Option<ActorId>> {
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.cell.map(|c| c.get_id()))
        .collect()
}

/// Each child's restart count, in start order.
async fn restart_counts(sup: &SupervisorRef) -> Vec<u64> {
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.restarts)
        .collect()
}

/// Waits until child `id` is as `wanted` says (`what`, for the failure message); returns
/// how the supervisor then reports it.
async fn child_until(
    sup: &SupervisorRef,
    id: &str,
    what: &str,
    wanted: impl Fn(&ChildInfo) -> bool,
) -> ChildInfo {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let info = sup.child_info(id).await.unwrap();
        if wanted(&info) {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {id} {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until child `id` runs as an incarnation other than `old`; returns it.
async fn restarted(sup: &SupervisorRef, id: &str, old: ActorId) -> ActorCell {
    let info = child_until(sup, id, "restarts", |c| {
        c.cell.as_ref().is_some_and(|c| c.get_id() != old)
    })
    .await;
    info.cell.expect("running")
}

/// Waits until child `id` waits to be restarted; returns how the supervisor reports it.
async fn waiting_to_restart(sup: &SupervisorRef, id: &str) -> ChildInfo {
    child_until(sup, id, "waits for its restart", |c| c.restarting).await
}

/// Waits until the supervisor has handled child `id`'s exit and left it stopped.
async fn left_stopped(sup: &SupervisorRef, id: &str) {
    eventually!(format!("{id} is left stopped"), {
        let info = sup.which_children().await.unwrap();
        let c = info.iter().find(|c| c.id == id).expect("spec kept");
        c.cell.is_none() && !c.restarting
    });
}

/// Waits until the child `id` is gone from the supervisor.
async fn removed(sup: &SupervisorRef, id: &str) {
    eventually!(format!("{id} is removed"), {
        sup.which_children()
            .await
            .unwrap()
            .iter()
            .all(|c| c.id != id)
    });
}

fn probes(log: &Log, tags: &[&'static str]) -> Vec<ChildSpec> {
    tags.iter().map(|t| Probe::new(t, log).spec()).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---- strategies ----------------------------------------------------------------------------

#[tokio::test]
async fn one_for_one_restarts_only_the_failed_child() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(5, LONG)
        .children(probes(&log, &["a", "b", "c"]));
    let sup = runtime.start_supervisor(spec).await.unwrap();
    let before = ids(&sup).await;

    let b = child(&sup, "b").await;
    send(&b, Cmd::Crash);
    restarted(&sup, "b", b.get_id()).await;

    let after = ids(&sup).await;
    assert_eq!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_eq!(after[2], before[2]);
    assert_eq!(log.since(3), strs(&["start:b"]));
    sup.shutdown().await;
}

#[tokio::test]
async fn one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_all()
        .intensity(5, LONG)
        .children(probes(&log, &["a", "b", "c"]));
    let sup = runtime.start_supervisor(spec).await.unwrap();
    let before = ids(&sup).await;

    let a = child(&sup, "a").await;
    send(&a, Cmd::Crash);
    eventually!("all three restarted", log.len() == 8);
    // Stale exits of the siblings the supervisor stopped are queued before this call is
    // answered; none of them may cause another restart.
    let after = ids(&sup).await;
    assert_eq!(
        log.since(3),
        strs(&["stop:c", "stop:b", "start:a", "start:b", "start:c"])
    );
    for (old, new) in before.iter().zip(&after) {
        assert!(new.is_some());
        assert_ne!(old, new);
    }
    assert_eq!(restart_counts(&sup).await, [1, 1, 1]);
    sup.shutdown().await;
}

#[tokio::test]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::rest_for_one()
        .intensity(5, LONG)
        .children(probes(&log, &["a", "b", "c", "d"]));
    let sup = runtime.start_supervisor(spec).await.unwrap();
    let before = ids(&sup).await;

    let b = child(&sup, "b").await;
    send(&b, Cmd::Crash);
    eventually!("b, c and d restarted", log.len() == 9);
    let after = ids(&sup).await;
    assert_eq!(
        log.since(4),
        strs(&["stop:d", "stop:c", "start:b", "start:c", "start:d"])
    );
    assert_eq!(after[0], before[0]);
    for i in 1..4 {
        assert_ne!(after[i], before[i]);
    }
    // Every member the group restart started again counts a restart.
    assert_eq!(restart_counts(&sup).await, [0, 1, 1, 1]);
    sup.shutdown().await;
}

#[tokio::test]
async fn children_start_in_order_and_stop_in_reverse_order() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one().children(probes(&log, &["a", "b", "c"]));
    let sup = runtime.start_supervisor(spec).await.unwrap();
    assert_eq!(log.entries(), strs(&["start:a", "start:b", "start:c"]));
    let cells: Vec<ActorCell> = sup
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.cell.unwrap())
        .collect();

    sup.shutdown().await;
    assert_eq!(log.since(3), strs(&["stop:c", "stop:b", "stop:a"]));
    assert!(cells.iter().all(|c| c.get_status() == ActorStatus::Stopped));
    assert!(matches!(
        sup.count_children().await,
        Err(SupervisorError::NotRunning)
    ));
}

// ---- restart intensity and escalation -----------------------------------------------------

#[tokio::test]
async fn exceeding_the_intensity_stops_children_in_reverse_and_escalates() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(1, LONG)
        .children(probes(&log, &["a", "b", "c"]));
    let (sup, mut exits, _watcher) = start_watched(&runtime, spec).await;

    let b = child(&sup, "b").await;
    send(&b, Cmd::Crash);
    let b = restarted(&sup, "b", b.get_id()).await;
    send(&b, Cmd::Crash); // the second restart within the period is one too many

    let exit = next_exit(&mut exits).await;
    assert_eq!(exit.actor, sup.id());
    assert_eq!(exit.reason.as_deref(), Some(ESCALATION_REASON));
    assert_eq!(log.since(4), strs(&["stop:c", "stop:a"]));
    assert_eq!(sup.cell().get_status(), ActorStatus::Stopped);
}

#[tokio::test]
async fn intensity_zero_allows_no_restart() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(0, LONG)
        .children(probes(&log, &["a"]));
    let (sup, mut exits, _watcher) = start_watched(&runtime, spec).await;
    send(&child(&sup, "a").await, Cmd::Crash);
    let exit = next_exit(&mut exits).await;
    assert_eq!(exit.reason.as_deref(), Some(ESCALATION_REASON));
    assert_eq!(log.entries(), strs(&["start:a"]));
}

#[tokio::test(start_paused = true)]
async fn restarts_older_than_the_period_are_forgotten() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(1, Duration::from_secs(5))
        .children(probes(&log, &["a"]));
    let (sup, mut exits, _watcher) = start_watched(&runtime, spec).await;

    let a = child(&sup, "a").await;
    send(&a, Cmd::Crash);
    let a = restarted(&sup, "a", a.get_id()).await;

    tokio::time::advance(Duration::from_secs(6)).await; // the first restart ages out
    send(&a, Cmd::Crash);
    let a = restarted(&sup, "a", a.get_id()).await;

    send(&a, Cmd::Crash); // but two within 5 s are too many
    let exit = next_exit(&mut exits).await;
    assert_eq!(exit.reason.as_deref(), Some(ESCALATION_REASON));
}

#[tokio::test]
async fn nested_supervisor_escalates_and_its_parent_restarts_the_subtree() {
    let runtime = Runtime::new();
    let log = Log::default();
    let inner = SupervisorSpec::one_for_one()
        .intensity(0, LONG)
        .children(probes(&log, &["x", "y"]));
    let root_spec = SupervisorSpec::one_for_one()
        .intensity(5, LONG)
        .child(Probe::new("w", &log).spec())
        .child(ChildSpec::supervisor("inner", inner));
    let root = runtime.start_supervisor(root_spec).await.unwrap();
    assert_eq!(
        log.entries(),
        strs(&["start:w", "start:x", "start:y"]),
        "depth-first start order"
    );
    let w = child(&root, "w").await.get_id();
    let inner_cell = child(&root, "inner").await;
    let inner_sup = SupervisorRef::from_cell(inner_cell.clone()).expect("a supervisor");
    let x = child(&inner_sup, "x").await;

    send(&x, Cmd::Crash);
    let new_inner = restarted(&root, "inner", inner_cell.get_id()).await;
    assert_eq!(log.since(3), strs(&["stop:y", "start:x", "start:y"]));
    assert_eq!(inner_cell.get_status(), ActorStatus::Stopped);
    let new_inner = SupervisorRef::from_cell(new_inner).unwrap();
    assert_ne!(child(&new_inner, "x").await.get_id(), x.get_id());
    assert_eq!(
        child(&root, "w").await.get_id(),
        w,
        "the sibling is untouched"
    );
    root.shutdown().await;
    assert_eq!(log.since(6), strs(&["stop:y", "stop:x", "stop:w"]));
}

#[tokio::test]
async fn a_transient_nested_supervisor_is_not_restarted_after_escalating() {
    // As in OTP: a supervisor that gives up exits with a `shutdown` reason, which is normal
    // for a Transient child.
    let runtime = Runtime::new();
    let log = Log::default();
    let inner = SupervisorSpec::one_for_one()
        .intensity(0, LONG)
        .children(probes(&log, &["x"]));
    let root = runtime
        .start_supervisor(
            SupervisorSpec::one_for_one()
                .intensity(5, LONG)
                .child(ChildSpec::supervisor("inner", inner).restart(Restart::Transient)),
        )
        .await
        .unwrap();
    let inner_sup = SupervisorRef::from_cell(child(&root, "inner").await).unwrap();
    send(&child(&inner_sup, "x").await, Cmd::Crash);
    left_stopped(&root, "inner").await;
    assert_eq!(
        root.count_children().await.unwrap(),
        ChildCounts {
            specs: 1,
            active: 0,
            supervisors: 1,
            workers: 0
        }
    );
    root.shutdown().await;
}

// ---- restart types -------------------------------------------------------------------------

#[tokio::test]
async fn a_permanent_child_is_restarted_even_after_a_normal_exit() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(5, LONG)
        .children(probes(&log, &["p"]));
    let sup = runtime.start_supervisor(spec).await.unwrap();
    let p = child(&sup, "p").await;
    send(&p, Cmd::Stop(None));
    let p = restarted(&sup, "p", p.get_id()).await;
    send(&p, Cmd::Stop(Some("shutdown".into())));
    restarted(&sup, "p", p.get_id()).await;
    sup.shutdown().await;
}

#[tokio::test]
async fn a_transient_child_is_restarted_only_after_an_abnormal_exit() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(10, LONG)
        .child(Probe::new("t", &log).spec().restart(Restart::Transient));
    let sup = runtime.start_supervisor(spec).await.unwrap();

    for normal in [
        None,
        Some("normal"),
        Some("shutdown"),
        Some("shutdown: bye"),
    ] {
        let t = child(&sup, "t").await;
        send(&t, Cmd::Stop(normal.map(str::to_owned)));
        left_stopped(&sup, "t").await;
        sup.restart_child("t").await.unwrap();
    }
    let t = child(&sup, "t").await;
    send(&t, Cmd::Crash);
    let t = restarted(&sup, "t", t.get_id()).await;
    send(&t, Cmd::Stop(Some("lost the connection".into())));
    let t = restarted(&sup, "t", t.get_id()).await;
    t.kill(); // a kill is abnormal too
    restarted(&sup, "t", t.get_id()).await;
    sup.shutdown().await;
}

#[tokio::test]
async fn a_temporary_child_is_never_restarted_and_its_spec_is_removed() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(5, LONG)
        .child(
            Probe::new("crashes", &log)
                .spec()
                .restart(Restart::Temporary),
        )
        .child(Probe::new("quits", &log).spec().restart(Restart::Temporary))
        .child(Probe::new("stays", &log).spec());
    let sup = runtime.start_supervisor(spec).await.unwrap();
    send(&child(&sup, "crashes").await, Cmd::Crash);
    send(&child(&sup, "quits").await, Cmd::Stop(None));
    removed(&sup, "crashes").await;
    removed(&sup, "quits").await;
    assert_eq!(sup.count_children().await.unwrap().specs, 1);
    assert_eq!(log.count("start:crashes"), 1);
    assert_eq!(log.count("start:quits"), 1);
    sup.shutdown().await;
}

#[tokio::test]
async fn a_group_restart_drops_temporary_siblings() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_all()
        .intensity(5, LONG)
        .child(Probe::new("a", &log).spec())
        .child(Probe::new("tmp", &log).spec().restart(Restart::Temporary));
    let sup = runtime.start_supervisor(spec).await.unwrap();
    let a = child(&sup, "a").await;
    send(&a, Cmd::Crash);
    restarted(&sup, "a", a.get_id()).await;
    assert_eq!(log.since(2), strs(&["stop:tmp", "start:a"]));
    assert_eq!(ids(&sup).await.len(), 1);
    sup.shutdown().await;
}

// ---- shutdown --------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn shutdown_timeout_kills_a_child_that_ignores_stop() {
    let runtime = Runtime::new();
    let log = Log::default();
    let mut slow = Probe::new("slow", &log);
    slow.hang_on_stop = true;
    let spec = SupervisorSpec::one_for_one()
        .child(
            slow.spec()
                .shutdown(Shutdown::Timeout(Duration::from_secs(2))),
        )
        .child(Probe::new("next", &log).spec());
    let sup = runtime.start_supervisor(spec).await.unwrap();
    let cell = child(&sup, "slow").await;

    let asked = Instant::now();
    sup.terminate_child("slow").await.unwrap();
    assert!(
        asked.elapsed() >= Duration::from_secs(2),
        "it was given its full timeout"
    );
    assert_eq!(cell.get_status(), ActorStatus::Stopped);
    assert_eq!(
        log.since(2),
        strs(&["stop:slow"]),
        "on_stop began, the kill ended it"
    );
    assert_eq!(sup.count_children().await.unwrap().active, 1);
    sup.shutdown().await;
}

#[tokio::test]
async fn brutal_kill_does_not_run_on_stop() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .child(Probe::new("k", &log).spec().shutdown(Shutdown::BrutalKill))
        .child(Probe::new("g", &log).spec());
    let sup = runtime.start_supervisor(spec).await.unwrap();
    let k = child(&sup, "k").await;
    sup.terminate_child("k").await.unwrap();
    assert_eq!(k.get_status(), ActorStatus::Stopped);
    sup.shutdown().await;
    assert_eq!(log.since(2), strs(&["stop:g"]), "k never ran on_stop");
}

#[tokio::test(start_paused = true)]
async fn a_call_timeout_bounds_the_wait_for_a_busy_supervisor() {
    let runtime = Runtime::new();
    let log = Log::default();
    let mut slow = Probe::new("slow", &log);
    slow.hang_on_stop = true;
    let spec = SupervisorSpec::one_for_one().child(
        slow.spec()
            .shutdown(Shutdown::Timeout(Duration::from_secs(30))),
    );
    let sup = runtime.start_supervisor(spec).await.unwrap();

    let terminating = tokio::spawn({
        let sup = sup.clone();
        async move { sup.terminate_child("slow").await }
    });
    eventually!("the child began stopping", log.count("stop:slow") == 1);
    let impatient = sup.clone().with_timeout(Duration::from_secs(1));
    assert!(matches!(
        impatient.count_children().await,
        Err(SupervisorError::Timeout(_))
    ));
    terminating.await.unwrap().unwrap();
    assert_eq!(sup.count_children().await.unwrap().active, 0);
    sup.shutdown().await;
}

// ---- dynamic children ----------------------------------------------------------------------

#[tokio::test]
async fn dynamic_children_start_terminate_restart_delete_which_count() {
    let runtime = Runtime::new();
    let log = Log::default();
    let sup = runtime
        .start_supervisor(SupervisorSpec::one_for_one().intensity(5, LONG))
        .await
        .unwrap();
    assert_eq!(sup.count_children().await.unwrap(), ChildCounts::default());

    let a = sup.start_child(Probe::new("a", &log).spec()).await.unwrap();
    assert!(matches!(
        sup.start_child(Probe::new("a", &log).spec()).await,
        Err(SupervisorError::AlreadyStarted { id, cell }) if id == "a" && cell.get_id() == a.get_id()
    ));
    let nested = SupervisorSpec::one_for_one().children(probes(&log, &["n1"]));
    sup.start_child(ChildSpec::supervisor("s", nested))
        .await
        .unwrap();
    assert_eq!(
        sup.count_children().await.unwrap(),
        ChildCounts {
            specs: 2,
            active: 2,
            supervisors: 1,
            workers: 1
        }
    );
    let info = sup.which_children().await.unwrap();
    assert_eq!(
        info.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["a", "s"]
    );
    assert_eq!(info[0].kind, ChildKind::Worker);
    assert_eq!(info[1].kind, ChildKind::Supervisor);
    assert_eq!(info[0].restart, Restart::Permanent);

    // A dynamically started child is supervised like any other.
    send(&a, Cmd::Crash);
    let a = restarted(&sup, "a", a.get_id()).await;

    // terminate keeps the spec; start_child then says it is present; restart brings it back.
    sup.terminate_child("a").await.unwrap();
    assert_eq!(a.get_status(), ActorStatus::Stopped);
    sup.terminate_child("a").await.unwrap(); // idempotent
    assert_eq!(sup.count_children().await.unwrap().active, 1);
    assert!(matches!(
        sup.start_child(Probe::new("a", &log).spec()).await,
        Err(SupervisorError::AlreadyPresent(id)) if id == "a"
    ));
    let a2 = sup.restart_child("a").await.unwrap();
    assert_ne!(a2.get_id(), a.get_id());
    assert!(matches!(
        sup.restart_child("a").await,
        Err(SupervisorError::Running(_))
    ));
    assert!(matches!(
        sup.delete_child("a").await,
        Err(SupervisorError::Running(_))
    ));
    sup.terminate_child("a").await.unwrap();
    sup.delete_child("a").await.unwrap();
    assert_eq!(ids(&sup).await.len(), 1);

    for missing in [
        sup.terminate_child("nope").await.err(),
        sup.delete_child("nope").await.err(),
        sup.restart_child("nope").await.err(),
    ] {
        assert!(matches!(missing, Some(SupervisorError::NotFound(id)) if id == "nope"));
    }

    // A child that fails to start is reported and not added.
    let broken = Probe::new("broken", &log);
    broken.fail_starts.store(1, Ordering::SeqCst);
    assert!(matches!(
        sup.start_child(broken.spec()).await,
        Err(SupervisorError::StartFailed { id, source: SpawnError::StartFailed(_) }) if id == "broken"
    ));
    assert_eq!(sup.count_children().await.unwrap().specs, 1);
    sup.shutdown().await;
}

// ---- names -------------------------------------------------------------------------------

#[tokio::test]
async fn a_named_child_gets_its_name_back_after_a_restart() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(5, LONG)
        .child(Probe::new("db", &log).spec().name("db"));
    let sup = runtime.start_supervisor(spec).await.unwrap();
    let first = runtime.whereis::<Cmd>("db").expect("registered");
    assert_eq!(first.get_id(), child(&sup, "db").await.get_id());

    first.send_message(Cmd::Crash).unwrap();
    let second = restarted(&sup, "db", first.get_id()).await;
    assert_eq!(
        runtime.whereis::<Cmd>("db").unwrap().get_id(),
        second.get_id()
    );
    sup.shutdown().await;
    assert!(runtime.whereis_cell("db").is_none());
}

#[tokio::test]
async fn a_named_plain_ractor_child_is_restarted_and_renamed() {
    let runtime = Runtime::new();
    let log = Log::default();
    let child_log = log.clone();
    let spec = SupervisorSpec::one_for_one()
        .intensity(5, LONG)
        .child(ChildSpec::ractor("r", move || (RactorProbe, child_log.clone())).name("r"));
    let sup = runtime.start_supervisor(spec).await.unwrap();
    let first = runtime.whereis::<Cmd>("r").expect("registered");
    first.send_message(Cmd::Crash).unwrap();
    let second = restarted(&sup, "r", first.get_id()).await;
    eventually!(
        "the name follows",
        runtime.whereis_cell("r").map(|c| c.get_id()) == Some(second.get_id())
    );
    assert_eq!(log.entries(), strs(&["start:ractor", "start:ractor"]));
    sup.shutdown().await;
}

#[tokio::test]
async fn a_supervisor_can_be_named_and_found() {
    let runtime = Runtime::new();
    let sup = runtime
        .start_supervisor_with(SupervisorSpec::one_for_one(), Spawn::new().name("root"))
        .await
        .unwrap();
    let found: SupervisorRef = runtime
        .whereis::<SupervisorMsg>("root")
        .expect("registered")
        .into();
    assert_eq!(found.id(), sup.id());
    assert!(matches!(
        runtime
            .start_supervisor_with(SupervisorSpec::one_for_one(), Spawn::new().name("root"))
            .await,
        Err(SpawnError::NameTaken(_))
    ));
    sup.shutdown().await;
    assert!(runtime.whereis_cell("root").is_none());
}

// ---- typed lookup --------------------------------------------------------------------------

#[tokio::test]
async fn child_ref_returns_a_typed_ref_and_a_wrong_type_is_an_error() {
    let runtime = Runtime::new();
    let log = Log::default();
    let ractor_log = log.clone();
    let nested = SupervisorSpec::one_for_one().children(probes(&log, &["n1"]));
    let spec = SupervisorSpec::one_for_one()
        .intensity(5, LONG)
        .child(Probe::new("a", &log).spec())
        .child(ChildSpec::ractor("r", move || {
            (RactorProbe, ractor_log.clone())
        }))
        .child(ChildSpec::supervisor("s", nested));
    let sup = runtime.start_supervisor(spec).await.unwrap();

    // The right type: the running incarnation, usable without a cast.
    let a = sup.child_ref::<Cmd>("a").await.unwrap().expect("a runs");
    assert_eq!(a.get_id(), child(&sup, "a").await.get_id());
    a.send_message(Cmd::Crash).unwrap();
    let a2 = restarted(&sup, "a", a.get_id()).await;
    let a2_ref = sup.child_ref::<Cmd>("a").await.unwrap().expect("a runs");
    assert_eq!(a2_ref.get_id(), a2.get_id());
    let r = sup.child_ref::<Cmd>("r").await.unwrap().expect("r runs");
    assert_eq!(r.get_id(), child(&sup, "r").await.get_id());
    let nested: SupervisorRef = sup
        .child_ref::<SupervisorMsg>("s")
        .await
        .unwrap()
        .expect("s runs")
        .into();
    assert_eq!(nested.count_children().await.unwrap().active, 1);

    // The wrong type: an error naming both types, for workers and supervisors alike.
    for (id, takes) in [("a", "Cmd"), ("r", "Cmd"), ("s", "SupervisorMsg")] {
        match sup.child_ref::<Nothing>(id).await {
            Err(SupervisorError::WrongMessageType {
                id: got,
                takes: got_takes,
                asked,
            }) => {
                assert_eq!(got, id);
                assert!(got_takes.ends_with(takes), "{id} takes {got_takes}");
                assert!(asked.ends_with("Nothing"), "asked {asked}");
            }
            other => panic!("child_ref::<Nothing>({id}): {other:?}"),
        }
    }
    let message = sup.child_ref::<Cmd>("s").await.unwrap_err().to_string();
    assert!(
        message.contains("child \"s\" takes messages of type `")
            && message.contains("SupervisorMsg`, not `supervisor::Cmd`"),
        "{message}"
    );

    // A stopped child: `None` for the right type, still an error for the wrong one.
    sup.terminate_child("a").await.unwrap();
    assert!(sup.child_ref::<Cmd>("a").await.unwrap().is_none());
    assert!(matches!(
        sup.child_ref::<Nothing>("a").await,
        Err(SupervisorError::WrongMessageType { .. })
    ));
    assert!(matches!(
        sup.child_ref::<Cmd>("nope").await,
        Err(SupervisorError::NotFound(id)) if id == "nope"
    ));
    sup.shutdown().await;
}

// ---- start failures --------------------------------------------------------------------------

#[tokio::test]
async fn a_child_panicking_in_on_start_at_init_fails_the_supervisor_start() {
    let runtime = Runtime::new();
    let log = Log::default();
    let mut c = Probe::new("c", &log);
    c.failure = StartFailure::Panic;
    c.fail_starts.store(1, Ordering::SeqCst);
    let spec = SupervisorSpec::one_for_one()
        .child(Probe::new("a", &log).spec().name("a"))
        .child(Probe::new("b", &log).spec())
        .child(c.spec());
    let err = runtime.start_supervisor(spec).await.unwrap_err();
    match err {
        SpawnError::StartFailed(msg) => assert!(msg.to_string().contains("\"c\""), "{msg}"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        log.entries(),
        strs(&["start:a", "start:b", "fail:c", "stop:b", "stop:a"])
    );
    assert!(runtime.whereis_cell("a").is_none(), "a's name was released");
}

#[tokio::test]
async fn duplicate_child_ids_fail_the_supervisor_start() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one().children(probes(&log, &["a", "a"]));
    assert!(matches!(
        runtime.start_supervisor(spec).await,
        Err(SpawnError::StartFailed(msg)) if msg.to_string().contains("duplicate")
    ));
    assert!(log.entries().is_empty());
}

#[tokio::test]
async fn a_child_panicking_in_on_start_during_restarts_counts_against_the_intensity() {
    let runtime = Runtime::new();
    let log = Log::default();
    let mut f = Probe::new("f", &log);
    f.failure = StartFailure::Panic;
    let spec = SupervisorSpec::one_for_one()
        .intensity(3, LONG)
        .child(f.spec())
        .child(Probe::new("g", &log).spec());
    let (sup, mut exits, _watcher) = start_watched(&runtime, spec).await;

    f.fail_starts.store(u32::MAX, Ordering::SeqCst);
    send(&child(&sup, "f").await, Cmd::Crash);
    // Restart 1 (after the crash) fails, retries 2 and 3 fail, and the fourth restart
    // exceeds the intensity of 3.
    let exit = next_exit(&mut exits).await;
    assert_eq!(exit.reason.as_deref(), Some(ESCALATION_REASON));
    assert_eq!(
        log.since(2),
        strs(&["fail:f", "fail:f", "fail:f", "stop:g"])
    );
}

#[tokio::test]
async fn a_failed_restart_is_retried_until_it_succeeds() {
    let runtime = Runtime::new();
    let log = Log::default();
    let f = Probe::new("f", &log);
    let spec = SupervisorSpec::rest_for_one()
        .intensity(5, LONG)
        .child(f.spec())
        .child(Probe::new("after", &log).spec());
    let sup = runtime.start_supervisor(spec).await.unwrap();

    f.fail_starts.store(2, Ordering::SeqCst);
    let old = child(&sup, "f").await;
    send(&old, Cmd::Crash);
    restarted(&sup, "f", old.get_id()).await;
    eventually!("the rest is restarted too", log.len() == 7);
    assert_eq!(
        log.since(2),
        strs(&["stop:after", "fail:f", "fail:f", "start:f", "start:after"])
    );
    assert_eq!(sup.count_children().await.unwrap().active, 2);
    sup.shutdown().await;
}

// ---- restart counts --------------------------------------------------------------------------

#[tokio::test]
async fn restart_counts_grow_with_each_restart_of_a_child() {
    let runtime = Runtime::new();
    let log = Log::default();
    let a = Probe::new("a", &log);
    let spec = SupervisorSpec::one_for_one()
        .intensity(10, LONG)
        .child(a.spec())
        .child(Probe::new("b", &log).spec());
    let sup = runtime.start_supervisor(spec).await.unwrap();
    assert_eq!(restart_counts(&sup).await, [0, 0]);

    for expected in 1..=3 {
        let old = child(&sup, "a").await;
        send(&old, Cmd::Crash);
        restarted(&sup, "a", old.get_id()).await;
        assert_eq!(restart_counts(&sup).await, [expected, 0]);
    }

    // Failed attempts are not restarts: two fail, the third starts it, and that is one.
    a.fail_starts.store(2, Ordering::SeqCst);
    let old = child(&sup, "a").await;
    send(&old, Cmd::Crash);
    restarted(&sup, "a", old.get_id()).await;
    assert_eq!(log.count("fail:a"), 2);
    assert_eq!(restart_counts(&sup).await, [4, 0]);

    // Nor is the caller's own restart_child; a child added later starts from 0.
    sup.terminate_child("a").await.unwrap();
    sup.restart_child("a").await.unwrap();
    sup.start_child(Probe::new("c", &log).spec()).await.unwrap();
    let info = sup.child_info("a").await.unwrap();
    assert_eq!(
        (info.restarts, info.restarting, info.next_restart),
        (4, false, None)
    );
    assert_eq!(restart_counts(&sup).await, [4, 0, 0]);
    sup.shutdown().await;
}

// ---- backoff -------------------------------------------------------------------------------

/// A one_for_one spec whose restarts wait 100 ms, doubling up to `max`, without jitter.
fn doubling_backoff(max: Duration) -> SupervisorSpec {
    SupervisorSpec::one_for_one()
        .intensity(10, Duration::from_secs(60))
        .backoff(Backoff {
            min: Duration::from_millis(100),
            max,
            factor: 2.0,
            jitter: 0.0,
        })
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_restarts_exponentially() {
    let runtime = Runtime::new();
    let log = Log::default();
    let probe = Probe::new("b", &log);
    let spec = doubling_backoff(Duration::from_millis(300)).child(probe.spec());
    let sup = runtime.start_supervisor(spec).await.unwrap();

    let mut delays = Vec::new();
    for _ in 0..4 {
        let old = child(&sup, "b").await;
        let crashed_at = Instant::now();
        send(&old, Cmd::Crash);
        eventually!("the restart is pending", {
            let info = sup.which_children().await.unwrap();
            info[0].restarting
                || info[0]
                    .cell
                    .as_ref()
                    .is_some_and(|c| c.get_id() != old.get_id())
        });
        restarted(&sup, "b", old.get_id()).await;
        let started = *probe.started_at.lock().unwrap().last().unwrap();
        delays.push(started - crashed_at);
    }
    let ms = |n| Duration::from_millis(n);
    for (got, want) in delays.iter().zip([ms(100), ms(200), ms(300), ms(300)]) {
        assert!(
            *got >= want && *got < want + ms(5),
            "delays {delays:?}, expected about 100, 200, 300, 300 ms"
        );
    }
    sup.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_child_waiting_for_its_backoff_reports_restarting_and_can_be_terminated() {
    let runtime = Runtime::new();
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(10, LONG)
        .backoff(Backoff {
            min: Duration::from_secs(60),
            max: Duration::from_secs(60),
            factor: 1.0,
            jitter: 0.0,
        })
        .child(Probe::new("b", &log).spec());
    let sup = runtime.start_supervisor(spec).await.unwrap();
    send(&child(&sup, "b").await, Cmd::Crash);
    eventually!(
        "b waits for its backoff",
        sup.which_children().await.unwrap()[0].restarting
    );
    assert!(matches!(
        sup.delete_child("b").await,
        Err(SupervisorError::Restarting(_))
    ));
    assert!(matches!(
        sup.restart_child("b").await,
        Err(SupervisorError::Restarting(_))
    ));
    // Terminating cancels the pending restart.
    sup.terminate_child("b").await.unwrap();
    tokio::time::advance(Duration::from_secs(120)).await;
    left_stopped(&sup, "b").await;
    assert_eq!(log.count("start:b"), 1);
    sup.delete_child("b").await.unwrap();
    sup.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_child_in_backoff_reports_when_its_restart_is_due() {
    let runtime = Runtime::new();
    let log = Log::default();
    let probe = Probe::new("b", &log);
    let spec = doubling_backoff(Duration::from_secs(10))
        .child(probe.spec())
        .child(Probe::new("other", &log).spec());
    let sup = runtime.start_supervisor(spec).await.unwrap();

    let ms = Duration::from_millis;
    for (restarts, delay) in [(0, ms(100)), (1, ms(200)), (2, ms(400))] {
        let old = child(&sup, "b").await;
        let crashed_at = Instant::now();
        send(&old, Cmd::Crash);
        let info = waiting_to_restart(&sup, "b").await;
        let seen_at = Instant::now();
        let due = Instant::from_std(info.next_restart.expect("a restart is pending"));
        // Due `delay` after the supervisor handled the crash, which was in between.
        assert!(
            due >= crashed_at + delay && due <= seen_at + delay,
            "due {:?} after the crash, expected {delay:?}",
            due - crashed_at
        );
        assert!(due > Instant::now(), "not due yet");
        assert!(info.cell.is_none());
        assert_eq!(
            info.restarts, restarts,
            "the pending restart is not counted yet"
        );
        let other = sup.child_info("other").await.unwrap();
        assert_eq!((other.restarting, other.next_restart), (false, None));

        // The restart happens when it said it would, and is then counted.
        restarted(&sup, "b", old.get_id()).await;
        let started = *probe.started_at.lock().unwrap().last().unwrap();
        assert!(
            started >= due && started < due + ms(5),
            "started {:?} after it was due",
            started - due
        );
        let info = sup.child_info("b").await.unwrap();
        assert_eq!(
            (info.restarts, info.restarting, info.next_restart),
            (restarts + 1, false, None)
        );
    }
    sup.shutdown().await;
}
