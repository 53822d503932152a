//! actix: its standard setup — a `System` (one thread: a current-thread tokio runtime with a
//! LocalSet, the system arbiter), actors started on it with `start()`, tells with `do_send`
//! (which ignores the mailbox capacity, like an unbounded mailbox), asks with `send` and the
//! same 5 s timeout (or none).

use actix::{Actor, Addr, Context, Handler, Message};

use crate::bench::{ASK_TIMEOUT, Fw};

pub struct Counter {
    n: u64,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

pub struct Add(pub u64);
impl Message for Add {
    type Result = ();
}

pub struct Get;
impl Message for Get {
    type Result = u64;
}

pub struct Stop;
impl Message for Stop {
    type Result = ();
}

impl Handler<Add> for Counter {
    type Result = ();
    fn handle(&mut self, Add(by): Add, _ctx: &mut Context<Self>) {
        self.n += by;
    }
}

impl Handler<Get> for Counter {
    type Result = u64;
    fn handle(&mut self, _: Get, _ctx: &mut Context<Self>) -> u64 {
        self.n
    }
}

impl Handler<Stop> for Counter {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        actix::ActorContext::stop(ctx);
    }
}

pub struct Actix;

impl Fw for Actix {
    type Ref = Addr<Counter>;

    /// `start()` registers the actor on the current arbiter and returns at once; it runs
    /// `started` on its first poll. (The spawn test's closing ask covers that.)
    async fn spawn(&self) -> Self::Ref {
        Counter { n: 0 }.start()
    }

    #[inline]
    fn tell(r: &Self::Ref, by: u64) {
        r.do_send(Add(by));
    }

    async fn get(r: &Self::Ref) -> u64 {
        r.send(Get).timeout(ASK_TIMEOUT).await.expect("ask")
    }

    async fn get_untimed(r: &Self::Ref) -> u64 {
        r.send(Get).await.expect("ask")
    }

    async fn stop(r: &Self::Ref) {
        let _ = r.send(Stop).await;
    }

    async fn wait_stopped(_r: Self::Ref) {
        // actix has no join on an actor; `stop` above returned after the actor handled
        // `Stop`, and the context finishes on its next poll.
    }
}

/// Runs `body` on an actix `System` (its standard single-threaded setup).
pub fn run_actix<T>(body: impl Future<Output = T>) -> T {
    actix::System::new().block_on(body)
}
