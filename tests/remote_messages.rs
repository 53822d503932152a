//! The wire encoding of remote messages: round trips, hostile bytes, tags, and the
//! `#[messages(remote)]` switch end to end through a node's exported-actor table.

use std::time::Duration;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use understudy::__private::ractor::message::SerializedMessage;
use understudy::prelude::*;
use understudy::{DecodeError, DeliverError, Tag};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, RemoteMessage)]
struct Order {
    id: u64,
    items: Vec<String>,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, RemoteMessage)]
#[understudy(tag = "shop.Event")]
enum Event {
    Placed(u64),
    Cancelled { id: u64, reason: String },
    Tick,
}

fn args_of(m: SerializedMessage) -> Vec<u8> {
    match m {
        SerializedMessage::Cast { args, .. } => args,
        other => panic!("expected a cast, got {other:?}"),
    }
}

fn cast(args: Vec<u8>) -> SerializedMessage {
    SerializedMessage::Cast {
        variant: String::new(),
        args,
        metadata: None,
    }
}

fn order() -> impl Strategy<Value = Order> {
    (
        any::<u64>(),
        prop::collection::vec(".{0,12}", 0..6),
        prop::option::of(".{0,20}"),
    )
        .prop_map(|(id, items, note)| Order { id, items, note })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        any::<u64>().prop_map(Event::Placed),
        (any::<u64>(), ".{0,16}").prop_map(|(id, reason)| Event::Cancelled { id, reason }),
        Just(Event::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn orders_round_trip(o in order()) {
        let wire = o.clone().to_wire().unwrap();
        prop_assert_eq!(Order::from_wire(wire).unwrap(), o);
    }

    #[test]
    fn events_round_trip(e in event()) {
        let wire = e.clone().to_wire().unwrap();
        prop_assert_eq!(Event::from_wire(wire).unwrap(), e);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Order::from_wire(cast(bytes.clone()));
        let _ = Event::from_wire(cast(bytes.clone()));
        let _ = CalcMsg::from_wire(cast(bytes));
    }

    #[test]
    fn garbage_behind_a_valid_tag_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut args = Order::TAG.0.to_le_bytes().to_vec();
        args.extend(bytes);
        let _ = Order::from_wire(cast(args.clone()));
        let mut args2 = CalcMsg::TAG.0.to_le_bytes().to_vec();
        args2.extend_from_slice(&args[8..]);
        let _ = CalcMsg::from_wire(cast(args2));
    }

    #[test]
    fn every_truncation_is_rejected(o in order()) {
        let args = args_of(o.to_wire().unwrap());
        for cut in 0..args.len() {
            prop_assert!(Order::from_wire(cast(args[..cut].to_vec())).is_err(), "prefix of {} bytes accepted", cut);
        }
    }

    #[test]
    fn bit_flips_never_panic(o in order(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut args = args_of(o.to_wire().unwrap());
        let i = pos.index(args.len());
        args[i] ^= 1 << bit;
        let _ = Order::from_wire(cast(args));
    }
}

#[test]
fn tags_are_stable_names() {
    assert_eq!(Event::TAG, Tag::of("shop.Event"));
    // Default: the type's path (this test crate's module path, then the type name).
    assert_eq!(Order::TAG, Tag::of("remote_messages::Order"));
}

#[test]
fn a_message_of_another_type_is_rejected_by_tag() {
    let wire = Event::Tick.to_wire().unwrap();
    match Order::from_wire(wire) {
        Err(DecodeError::WrongTag {
            expected, found, ..
        }) => {
            assert_eq!(expected, Order::TAG);
            assert_eq!(found, Event::TAG);
        }
        other => panic!("expected WrongTag, got {other:?}"),
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut args = args_of(Event::Placed(7).to_wire().unwrap());
    args.push(0);
    assert!(matches!(
        Event::from_wire(cast(args)),
        Err(DecodeError::Trailing { extra: 1, .. })
    ));
}

// ---- the remote switch on an actor ----

#[derive(Actor)]
struct Calc {
    total: i64,
    seen: Vec<String>,
}

#[messages(remote)]
impl Calc {
    #[message]
    fn add(&mut self, n: i64) {
        self.total += n;
    }

    #[message]
    fn note(&mut self, text: String, times: u8) {
        for _ in 0..times {
            self.seen.push(text.clone());
        }
    }

    #[message]
    fn total(&self) -> i64 {
        self.total
    }

    #[message]
    fn notes(&self) -> Vec<String> {
        self.seen.clone()
    }
}

async fn calc(rt: &Runtime) -> (ActorRef<CalcMsg>, u64) {
    let c = rt
        .spawn(Calc {
            total: 0,
            seen: vec![],
        })
        .await
        .unwrap();
    let addr = rt.export(&c);
    assert_eq!(addr.node, rt.node_id());
    (c, addr.pid)
}

#[tokio::test]
async fn remote_tells_and_asks_cross_the_export_table() {
    let rt = Runtime::new();
    let (_c, pid) = calc(&rt).await;
    rt.deliver(pid, CalcMsg::Add { n: 40 }.to_wire().unwrap())
        .unwrap();
    rt.deliver(pid, CalcMsg::Add { n: 2 }.to_wire().unwrap())
        .unwrap();
    rt.deliver(
        pid,
        CalcMsg::Note {
            text: "hi".into(),
            times: 2,
        }
        .to_wire()
        .unwrap(),
    )
    .unwrap();

    // An ask: the typed port is bridged to bytes, crosses "the wire", and back.
    let (tx, rx) = understudy::__private::ractor::concurrency::oneshot();
    rt.deliver(
        pid,
        CalcMsg::Total {
            reply: understudy::RpcReplyPort::from(tx).into(),
        }
        .to_wire()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap(),
        42
    );

    let (tx, rx) = understudy::__private::ractor::concurrency::oneshot();
    rt.deliver(
        pid,
        CalcMsg::Notes {
            reply: understudy::RpcReplyPort::from(tx).into(),
        }
        .to_wire()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap(),
        vec!["hi".to_string(), "hi".to_string()]
    );
    assert_eq!(rt.rejected_messages(), 0);
}

#[tokio::test]
async fn bad_inbound_messages_are_errors_and_counted_and_the_actor_lives_on() {
    let rt = Runtime::new();
    let (c, pid) = calc(&rt).await;

    let garbage = cast(vec![1, 2, 3]);
    assert!(matches!(
        rt.deliver(pid, garbage),
        Err(DeliverError::Decode(DecodeError::Truncated { len: 3 }))
    ));

    let wrong_type = Event::Tick.to_wire().unwrap();
    assert!(matches!(
        rt.deliver(pid, wrong_type),
        Err(DeliverError::Decode(DecodeError::WrongTag { .. }))
    ));

    // A message number the actor does not have (a newer sender).
    let mut args = CalcMsg::TAG.0.to_le_bytes().to_vec();
    args.push(9);
    assert!(matches!(
        rt.deliver(pid, cast(args)),
        Err(DeliverError::Decode(DecodeError::UnknownVariant {
            index: 9,
            ..
        }))
    ));

    // An ask's variant sent as a tell: no reply port to answer on.
    let mut args = CalcMsg::TAG.0.to_le_bytes().to_vec();
    args.push(2);
    assert!(matches!(
        rt.deliver(pid, cast(args)),
        Err(DeliverError::Decode(DecodeError::WrongKind { .. }))
    ));

    assert_eq!(rt.rejected_messages(), 4);
    assert!(matches!(
        rt.deliver(pid + 1_000_000, Event::Tick.to_wire().unwrap()),
        Err(DeliverError::UnknownActor { .. })
    ));

    // Nothing above disturbed the actor.
    c.add(1).unwrap();
    assert_eq!(c.total().await, Ok(1));

    // A stopped actor is no longer reachable.
    c.stop_and_wait(None, None).await.unwrap();
    assert!(matches!(
        rt.deliver(pid, CalcMsg::Add { n: 1 }.to_wire().unwrap()),
        Err(DeliverError::UnknownActor { .. })
    ));
}

#[tokio::test]
async fn remote_actors_still_work_locally() {
    let rt = Runtime::new();
    let c = rt
        .spawn(Calc {
            total: 1,
            seen: vec![],
        })
        .await
        .unwrap();
    c.add(2).unwrap();
    assert_eq!(c.total().await, Ok(3));
}
