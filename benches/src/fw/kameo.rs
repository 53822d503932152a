//! kameo: `Actor` + one `Message<T>` impl per message. Unbounded mailbox (ractor's and
//! actix's `do_send` are unbounded too; kameo's default is bounded(64), which would make
//! every tell wait for room), ask with the same 5 s reply timeout, or none.

use kameo::actor::{ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::mailbox;
use kameo::message::{Context, Message};

use crate::bench::{ASK_TIMEOUT, Fw};

pub struct Counter {
    n: u64,
}

impl kameo::Actor for Counter {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(args: Self, _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(args)
    }
}

#[derive(Debug)]
pub struct Add(pub u64);
#[derive(Debug)]
pub struct Get;

impl Message<Add> for Counter {
    type Reply = ();

    async fn handle(&mut self, Add(by): Add, _ctx: &mut Context<Self, ()>) {
        self.n += by;
    }
}

impl Message<Get> for Counter {
    type Reply = u64;

    async fn handle(&mut self, _: Get, _ctx: &mut Context<Self, u64>) -> u64 {
        self.n
    }
}

pub struct Kameo;

impl Fw for Kameo {
    type Ref = ActorRef<Counter>;

    async fn spawn(&self) -> Self::Ref {
        let r = Counter::spawn_with_mailbox(Counter { n: 0 }, mailbox::unbounded());
        r.wait_for_startup().await;
        r
    }

    #[inline]
    fn tell(r: &Self::Ref, by: u64) {
        // On an unbounded mailbox `try_send` is the synchronous send (never "full").
        r.tell(Add(by)).try_send().expect("tell");
    }

    async fn get(r: &Self::Ref) -> u64 {
        r.ask(Get).reply_timeout(ASK_TIMEOUT).await.expect("ask")
    }

    async fn get_untimed(r: &Self::Ref) -> u64 {
        r.ask(Get).await.expect("ask")
    }

    async fn stop(r: &Self::Ref) {
        let _ = r.stop_gracefully().await;
    }

    async fn wait_stopped(r: Self::Ref) {
        r.wait_for_shutdown().await;
    }
}
