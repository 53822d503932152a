//! Raw ractor: behaviour + `State`, native async fns, `cast`, `call_t!` (timed) and
//! `call(.., None)` (untimed).

use ractor::{ActorProcessingErr, ActorRef};

use super::CounterMsg;
use crate::bench::{ASK_TIMEOUT, Fw};

pub struct Counter;

impl ractor::Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<CounterMsg>,
        _args: (),
    ) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _myself: ActorRef<CounterMsg>,
        msg: CounterMsg,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CounterMsg::Add(by) => *n += by,
            CounterMsg::Get(reply) => {
                let _ = reply.send(*n);
            }
        }
        Ok(())
    }
}

pub struct Ractor;

impl Fw for Ractor {
    type Ref = ActorRef<CounterMsg>;

    async fn spawn(&self) -> Self::Ref {
        ractor::Actor::spawn(None, Counter, ())
            .await
            .expect("spawn")
            .0
    }

    #[inline]
    fn tell(r: &Self::Ref, by: u64) {
        r.cast(CounterMsg::Add(by)).expect("cast");
    }

    async fn get(r: &Self::Ref) -> u64 {
        ractor::call_t!(r, CounterMsg::Get, ASK_TIMEOUT.as_millis() as u64).expect("call")
    }

    async fn get_untimed(r: &Self::Ref) -> u64 {
        match r.call(CounterMsg::Get, None).await.expect("call") {
            ractor::rpc::CallResult::Success(n) => n,
            other => panic!("call failed: {other:?}"),
        }
    }

    async fn stop(r: &Self::Ref) {
        r.stop(None);
    }

    async fn wait_stopped(r: Self::Ref) {
        let _ = r.wait(None).await;
    }
}
