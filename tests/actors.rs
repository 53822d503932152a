//! The local programming model end to end: macro-generated actors, tell and ask, timeouts,
//! typed errors, context access, async handlers, Local names, and runtime isolation.

use std::time::Duration;

use understudy::DEFAULT_ASK_TIMEOUT;
use understudy::prelude::*;

#[derive(Actor)]
struct Counter {
    n: u64,
}

#[messages]
impl Counter {
    /// Adds `by`.
    #[message]
    fn add(&mut self, by: u64) {
        self.n += by;
    }

    /// The count.
    #[message]
    fn get(&self) -> u64 {
        self.n
    }

    /// Adds and returns the new count, from an async handler.
    #[message]
    async fn add_slowly(&mut self, by: u64, pause_ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        self.n += by;
        self.n
    }

    /// Never answers: drops its reply port by stopping the actor.
    #[message]
    fn quit(&mut self, ctx: &Ctx<Self>) -> u64 {
        ctx.stop(None);
        self.n
    }

    /// Panics (a crashing handler).
    #[message]
    fn crash(&mut self) {
        panic!("boom");
    }

    /// Returns its own pid via the context.
    #[message]
    fn whoami(&self, ctx: &Ctx<Self>) -> u64 {
        ctx.myself().get_id().pid()
    }

    /// Not a message: an ordinary helper stays callable.
    fn double(&self) -> u64 {
        self.n * 2
    }
}

#[tokio::test]
async fn tell_then_ask_sees_the_effect_in_order() {
    let rt = Runtime::new();
    let c = rt.spawn(Counter { n: 0 }).await.unwrap();
    for _ in 0..100 {
        c.add(1).unwrap();
    }
    assert_eq!(c.get().await.unwrap(), 100);
    assert_eq!(Counter { n: 4 }.double(), 8);
}

#[tokio::test]
async fn async_handlers_and_per_call_timeouts() {
    let rt = Runtime::new();
    let c = rt.spawn(Counter { n: 1 }).await.unwrap();
    assert_eq!(c.add_slowly(2, 1).await.unwrap(), 3);
    // The actor is busy for 10 s: a 20 ms ask times out, it does not wait the default 5 s.
    let slow = c.add_slowly(1, 10_000);
    let err = c.get().timeout(Duration::from_millis(20));
    let handle = tokio::spawn(slow.timeout(Duration::from_secs(30)).into_future());
    assert_eq!(err.await, Err(AskError::Timeout(Duration::from_millis(20))));
    handle.abort();
}

// Paused time: the runtime jumps the clock whenever every task waits on a timer, so a
// 60 s handler runs at once and the test still tells a 5 s timeout from none.
#[tokio::test(start_paused = true)]
async fn an_untimed_ask_waits_past_the_default_timeout() {
    let rt = Runtime::new();
    let c = rt.spawn(Counter { n: 1 }).await.unwrap();
    let minute = 60_000;
    // The default 5 s gives up on a handler that takes a minute ...
    let timed = c.add_slowly(1, minute);
    assert_eq!(timed.await, Err(AskError::Timeout(DEFAULT_ASK_TIMEOUT)));
    // ... an untimed ask waits for it (the previous one ran too: 1 + 1 + 1).
    assert_eq!(c.add_slowly(1, minute).untimed().await, Ok(3));
    // `timeout` after `untimed` times the ask again.
    let again = c
        .add_slowly(1, minute)
        .untimed()
        .timeout(Duration::from_secs(1));
    assert_eq!(again.await, Err(AskError::Timeout(Duration::from_secs(1))));
}

// Timers are reused between asks (a per-thread pool, see actor/src/deadline.rs): a short
// timeout after many 5 s asks, and timeouts in a row, must each fire on time.
#[tokio::test(start_paused = true)]
async fn timeouts_fire_on_time_after_many_asks() {
    let rt = Runtime::new();
    let c = rt.spawn(Counter { n: 0 }).await.unwrap();
    for _ in 0..100 {
        c.get().await.unwrap();
    }
    for timeout in [
        Duration::from_secs(1),
        Duration::from_millis(20),
        Duration::from_secs(2),
    ] {
        let start = tokio::time::Instant::now();
        let slow = c.add_slowly(1, 60_000).timeout(timeout);
        assert_eq!(slow.await, Err(AskError::Timeout(timeout)));
        let waited = start.elapsed();
        // Never early; late by at most tokio's resolution (1 ms; 5 ms of margin).
        assert!(waited >= timeout, "{waited:?} < {timeout:?}");
        assert!(
            waited <= timeout + Duration::from_millis(5),
            "{waited:?} >> {timeout:?}"
        );
        // Let the slow handler finish before the next round.
        assert!(c.get().timeout(Duration::from_secs(120)).await.is_ok());
    }
}

// A thread that runs one runtime after another (as a test thread does) must not reuse the
// first one's timers in the second.
#[test]
fn timed_asks_work_in_one_runtime_after_another_on_one_thread() {
    for round in 0..3 {
        let tokio_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio_rt.block_on(async {
            let rt = Runtime::new();
            let c = rt.spawn(Counter { n: round }).await.unwrap();
            for _ in 0..10 {
                assert_eq!(c.get().await, Ok(round));
            }
            let slow = c.add_slowly(1, 10_000).timeout(Duration::from_millis(10));
            assert_eq!(
                slow.await,
                Err(AskError::Timeout(Duration::from_millis(10)))
            );
        });
    }
}

#[tokio::test]
async fn an_untimed_ask_ends_when_the_actor_cannot_answer() {
    let rt = Runtime::new();
    let c = rt.spawn(Counter { n: 0 }).await.unwrap();
    assert_eq!(c.get().untimed().await, Ok(0));
    c.crash().unwrap();
    // Left in the mailbox of a crashing actor: the reply port is dropped, or the mailbox
    // closed first. Either way the untimed ask ends.
    assert!(matches!(
        c.get().untimed().await,
        Err(AskError::ActorStopped | AskError::MailboxClosed)
    ));
    c.wait(None).await.unwrap();
    assert_eq!(c.get().untimed().await, Err(AskError::MailboxClosed));
}

#[tokio::test]
async fn ask_to_a_stopped_actor_is_mailbox_closed() {
    let rt = Runtime::new();
    let c = rt.spawn(Counter { n: 0 }).await.unwrap();
    c.stop_and_wait(None, None).await.unwrap();
    assert_eq!(c.get().await, Err(AskError::MailboxClosed));
    assert_eq!(c.add(1), Err(TellError::MailboxClosed));
}

#[tokio::test]
async fn actor_that_stops_before_replying_is_actor_stopped() {
    let rt = Runtime::new();
    let c = rt.spawn(Counter { n: 0 }).await.unwrap();
    // `quit` stops the actor, but it still answers that one message.
    assert_eq!(c.quit().await, Ok(0));
    c.wait(None).await.unwrap();
    // A message left in the mailbox of a crashing actor sees its reply port dropped.
    let c = rt.spawn(Counter { n: 0 }).await.unwrap();
    c.crash().unwrap();
    assert!(matches!(
        c.get().await,
        Err(AskError::ActorStopped | AskError::MailboxClosed)
    ));
}

/// Keeps the reply ports of the asks it is given and drops them on `forget`: an actor that
/// lives on but gives no answer.
#[derive(Actor, Default)]
struct Keeper {
    kept: Vec<RpcReplyPort<u64>>,
}

#[messages]
impl Keeper {
    #[message]
    fn keep(&mut self, port: RpcReplyPort<u64>) {
        self.kept.push(port);
    }

    #[message]
    fn forget(&mut self) {
        self.kept.clear();
    }

    #[message]
    fn kept(&self) -> usize {
        self.kept.len()
    }
}

/// Polls `f` once (a first poll arms an ask's timer).
async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *f).poll(cx))).await
}

// The deadline decides: a reply port closed after it is a timeout, as it would have been had
// the asker been polled on time, even when the asker looks only after the port closed.
#[tokio::test(start_paused = true)]
async fn a_reply_port_dropped_after_the_deadline_is_a_timeout_however_late_seen() {
    use std::future::IntoFuture;
    let rt = Runtime::new();
    let k = rt.spawn(Keeper::default()).await.unwrap();
    let timeout = Duration::from_millis(100);
    let mut asking = understudy::ask(&k, |port| KeeperMsg::Keep { port })
        .timeout(timeout)
        .into_future();
    assert!(poll_once(&mut asking).await.is_pending());
    assert_eq!(k.kept().await, Ok(1));
    // The deadline passes while the asker is not polled; then the port is dropped.
    tokio::time::advance(timeout).await;
    k.forget().unwrap();
    assert_eq!(k.kept().await, Ok(0));
    assert_eq!(asking.await, Err(AskError::Timeout(timeout)));
    assert_eq!(k.get_status(), understudy::ractor::ActorStatus::Running);

    // Dropped before the deadline, the port says the actor gave no answer.
    let asking = understudy::ask(&k, |port| KeeperMsg::Keep { port }).timeout(timeout);
    let asking = tokio::spawn(asking.into_future());
    assert_eq!(k.kept().await, Ok(1));
    k.forget().unwrap();
    assert_eq!(asking.await.unwrap(), Err(AskError::ActorStopped));
}

#[tokio::test]
async fn context_gives_the_actor_its_own_ref() {
    let rt = Runtime::new();
    let c = rt.spawn(Counter { n: 0 }).await.unwrap();
    assert_eq!(c.whoami().await.unwrap(), c.get_id().pid());
}

#[tokio::test]
async fn local_names_are_per_runtime_and_released_on_stop() {
    let a = Runtime::new();
    let b = Runtime::new();
    let x = a.spawn_named("counter", Counter { n: 1 }).await.unwrap();
    // Another runtime in the same process does not see, and is not blocked by, a's name.
    assert!(b.whereis::<CounterMsg>("counter").is_none());
    let y = b.spawn_named("counter", Counter { n: 2 }).await.unwrap();
    assert_eq!(
        a.whereis::<CounterMsg>("counter").unwrap().get().await,
        Ok(1)
    );
    assert_eq!(
        b.whereis::<CounterMsg>("counter").unwrap().get().await,
        Ok(2)
    );

    // A second owner on the same runtime is refused and told who holds the name.
    match a.spawn_named("counter", Counter { n: 3 }).await {
        Err(SpawnError::NameTaken(t)) => assert_eq!(t.owner.get_id(), x.get_id()),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    assert_eq!(a.registered(), vec!["counter".to_string()]);

    x.stop_and_wait(None, None).await.unwrap();
    assert!(a.whereis::<CounterMsg>("counter").is_none());
    // The name is free again.
    let z = a.spawn_named("counter", Counter { n: 4 }).await.unwrap();
    assert_eq!(
        a.whereis::<CounterMsg>("counter").unwrap().get_id(),
        z.get_id()
    );
    drop(y);
}

#[tokio::test]
async fn whereis_with_the_wrong_message_type_is_none() {
    let rt = Runtime::new();
    rt.spawn_named("c", Counter { n: 0 }).await.unwrap();
    assert!(rt.whereis::<String>("c").is_none());
    assert!(rt.whereis_cell("c").is_some());
}

#[derive(Actor)]
struct Failing;

#[messages]
impl Failing {
    #[message]
    fn noop(&self) {}
}

struct FailsToStart;
impl understudy::Actor for FailsToStart {
    async fn on_start(&mut self, _ctx: &Ctx<Self>) -> Result<(), ActorError> {
        Err("no database".into())
    }
}
impl Handler for FailsToStart {
    type Msg = FailingMsg;
    async fn handle(&mut self, _: &Ctx<Self>, _: FailingMsg) -> Result<(), ActorError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_on_start_fails_the_spawn_with_its_reason_and_frees_the_name() {
    let rt = Runtime::new();
    match rt.spawn_named("db", FailsToStart).await {
        Err(SpawnError::StartFailed(source)) => {
            assert!(source.to_string().contains("no database"), "{source}")
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    assert!(rt.whereis_cell("db").is_none());
    let ok = rt.spawn_named("db", Failing).await.unwrap();
    ok.noop().unwrap();
}

#[tokio::test]
async fn supervision_events_reach_a_linked_parent() {
    // A parent with the default hook stops when its child fails, like an Erlang process
    // linked to a crashing one.
    let rt = Runtime::new();
    let parent = rt.spawn(Counter { n: 0 }).await.unwrap();
    let child = rt
        .spawn_linked(Counter { n: 0 }, parent.get_cell())
        .await
        .unwrap();
    child.crash().unwrap();
    tokio::time::timeout(Duration::from_secs(5), parent.wait(None))
        .await
        .expect("parent stops after its child crashed")
        .unwrap();
}
