//! understudy, two ways:
//! - [`Understudy`] (reported as `understudy`): the way users write it, `#[derive(Actor)]` +
//!   `#[messages]`, called through the generated `CounterRef` methods `c.add(1)` /
//!   `c.get().await`;
//! - [`Manual`] (`understudy-manual`, not in the default set): the same actor with a
//!   hand-written `Handler` and `understudy::tell` / `understudy::ask` — what the macros
//!   expand to, kept to show that the generated path costs nothing extra.

use understudy::prelude::*;

use super::CounterMsg;
use crate::bench::{ASK_TIMEOUT, Fw};

/// The macro-generated counter.
pub mod generated {
    use understudy::prelude::*;

    #[derive(Actor)]
    pub struct Counter {
        pub n: u64,
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
    }
}

use generated::CounterRef as _;

pub struct Understudy {
    rt: Runtime,
}

impl Understudy {
    pub fn new() -> Self {
        Understudy { rt: Runtime::new() }
    }
}

impl Fw for Understudy {
    type Ref = ActorRef<generated::CounterMsg>;

    async fn spawn(&self) -> Self::Ref {
        self.rt
            .spawn(generated::Counter { n: 0 })
            .await
            .expect("spawn")
    }

    #[inline]
    fn tell(r: &Self::Ref, by: u64) {
        r.add(by).expect("tell");
    }

    async fn get(r: &Self::Ref) -> u64 {
        // The default ask timeout is 5 s (= ASK_TIMEOUT): the plain call is the fair one.
        r.get().await.expect("ask")
    }

    async fn get_untimed(r: &Self::Ref) -> u64 {
        r.get().untimed().await.expect("ask")
    }

    async fn stop(r: &Self::Ref) {
        r.stop(None);
    }

    async fn wait_stopped(r: Self::Ref) {
        let _ = r.wait(None).await;
    }
}

/// The hand-written counter: `Actor` with default hooks, `Handler` by hand, over the same
/// message enum as the raw-ractor counter.
pub struct ManualCounter {
    n: u64,
}

impl Actor for ManualCounter {}

impl Handler for ManualCounter {
    type Msg = CounterMsg;

    async fn handle(&mut self, _ctx: &Ctx<Self>, msg: CounterMsg) -> Result<(), ActorError> {
        match msg {
            CounterMsg::Add(by) => self.n += by,
            CounterMsg::Get(reply) => {
                let _ = reply.send(self.n);
            }
        }
        Ok(())
    }
}

pub struct Manual {
    rt: Runtime,
}

impl Manual {
    pub fn new() -> Self {
        Manual { rt: Runtime::new() }
    }
}

impl Fw for Manual {
    type Ref = ActorRef<CounterMsg>;

    async fn spawn(&self) -> Self::Ref {
        self.rt.spawn(ManualCounter { n: 0 }).await.expect("spawn")
    }

    #[inline]
    fn tell(r: &Self::Ref, by: u64) {
        understudy::tell(r, CounterMsg::Add(by)).expect("tell");
    }

    async fn get(r: &Self::Ref) -> u64 {
        understudy::ask(r, CounterMsg::Get)
            .timeout(ASK_TIMEOUT)
            .await
            .expect("ask")
    }

    async fn get_untimed(r: &Self::Ref) -> u64 {
        understudy::ask(r, CounterMsg::Get)
            .untimed()
            .await
            .expect("ask")
    }

    async fn stop(r: &Self::Ref) {
        r.stop(None);
    }

    async fn wait_stopped(r: Self::Ref) {
        let _ = r.wait(None).await;
    }
}
