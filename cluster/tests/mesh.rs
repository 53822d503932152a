//! The QUIC mesh on loopback: handshakes, one connection per pair, lanes, datagrams, and
//! everything a hostile or confused peer can do.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use understudy_cluster::certs::ClusterCa;
use understudy_cluster::identity::NodeName;
use understudy_cluster::mesh::{
    Admit, DialError, FaultPlan, FrameStream, Mesh, MeshConfig, MeshHandler, PeerLink,
};
use understudy_cluster::wire::{Control, Delivery, ExtensionBody, Signal};

#[derive(Debug)]
enum Event {
    Up(String),
    Down(String),
    Delivery(String, usize, Delivery),
    Signal(String, Signal),
    Control(String, Control),
    Datagram(String, Bytes),
}

struct Recorder(mpsc::UnboundedSender<Event>);

impl MeshHandler for Recorder {
    fn peer_up(&self, link: &Arc<PeerLink>) {
        let _ = self.0.send(Event::Up(link.info().name.to_string()));
    }
    fn peer_down(&self, link: &Arc<PeerLink>, _reason: &str) {
        let _ = self.0.send(Event::Down(link.info().name.to_string()));
    }
    fn delivery(&self, link: &Arc<PeerLink>, lane: usize, delivery: Delivery, _: usize) -> Admit {
        let _ = self.0.send(Event::Delivery(
            link.info().name.to_string(),
            lane,
            delivery,
        ));
        Admit::Next
    }
    fn signal(&self, link: &Arc<PeerLink>, signal: Signal) {
        let _ = self
            .0
            .send(Event::Signal(link.info().name.to_string(), signal));
    }
    fn control(&self, link: &Arc<PeerLink>, control: Control) -> Admit {
        let _ = self
            .0
            .send(Event::Control(link.info().name.to_string(), control));
        Admit::Next
    }
    fn datagram(&self, link: &Arc<PeerLink>, data: Bytes) {
        let _ = self
            .0
            .send(Event::Datagram(link.info().name.to_string(), data));
    }
    fn stream(&self, _: Arc<PeerLink>, _: u8, _: FrameStream) {}
}

struct TestNode {
    mesh: Mesh,
    events: mpsc::UnboundedReceiver<Event>,
}

fn name(s: &str) -> NodeName {
    NodeName::new(s).expect("valid name")
}

fn node_with(ca: &ClusterCa, cert_name: &str, faults: Option<FaultPlan>) -> TestNode {
    node_configured(ca, cert_name, MeshConfig::default(), faults)
}

fn node_configured(
    ca: &ClusterCa,
    cert_name: &str,
    config: MeshConfig,
    faults: Option<FaultPlan>,
) -> TestNode {
    let cert = ca.issue(&name(cert_name)).expect("cert");
    let mesh = Mesh::bind_with_faults(
        "127.0.0.1:0".parse().expect("addr"),
        &cert,
        &ca.trust(),
        1,
        config,
        faults,
    )
    .expect("bind");
    let (tx, rx) = mpsc::unbounded_channel();
    mesh.start(Arc::new(Recorder(tx)));
    TestNode { mesh, events: rx }
}

fn node(ca: &ClusterCa, n: &str) -> TestNode {
    node_with(ca, n, None)
}

/// Waits for the first event matching `pred`, with a deadline.
async fn expect(
    events: &mut mpsc::UnboundedReceiver<Event>,
    what: &str,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event stream ended waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Waits for `peer` to go down on this endpoint, ignoring other events.
async fn went_down(events: &mut mpsc::UnboundedReceiver<Event>, peer: &str, what: &str) {
    expect(events, what, |e| matches!(e, Event::Down(n) if n == peer)).await;
}

/// Waits for `peer` to come up on this endpoint, ignoring other events.
async fn came_up(events: &mut mpsc::UnboundedReceiver<Event>, peer: &str, what: &str) {
    expect(events, what, |e| matches!(e, Event::Up(n) if n == peer)).await;
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_connect_and_exchange_signals_in_order() {
    let ca = ClusterCa::ephemeral("test");
    let mut a = node(&ca, "a");
    let mut b = node(&ca, "b");
    let link = a
        .mesh
        .dial(b.mesh.local_addr(), Some(name("b")))
        .await
        .expect("dial");
    came_up(&mut b.events, "a", "b sees a").await;
    assert_eq!(link.info().name, name("b"));

    for i in 0..1000u64 {
        link.send_signal(&Signal::Monitor {
            watcher: i,
            target: 7,
        })
        .expect("send");
    }
    for i in 0..1000u64 {
        match expect(&mut b.events, "signal", |e| matches!(e, Event::Signal(..))).await {
            Event::Signal(from, Signal::Monitor { watcher, .. }) => {
                assert_eq!(from, "a");
                assert_eq!(watcher, i, "signals on one lane arrive in order");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // And back, over b's side of the same connection.
    let back = b.mesh.link(&name("a")).expect("b has a link to a");
    let notice = Control::Extension {
        service: "test".into(),
        body: ExtensionBody::Notice(vec![1]),
    };
    back.send_control(&notice).expect("control");
    expect(
        &mut a.events,
        "control from b",
        |e| matches!(e, Event::Control(n, Control::Extension { .. }) if n == "b"),
    )
    .await;
    back.send_datagram(Bytes::from_static(b"swim"))
        .expect("datagram");
    expect(
        &mut a.events,
        "datagram from b",
        |e| matches!(e, Event::Datagram(n, d) if n == "b" && &d[..] == b"swim"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_known_only_by_address_is_identified_by_its_certificate() {
    let ca = ClusterCa::ephemeral("test");
    let a = node(&ca, "a");
    let b = node(&ca, "b");
    let link = a
        .mesh
        .dial(b.mesh.local_addr(), None)
        .await
        .expect("dial by address");
    assert_eq!(link.info().name, name("b"));
    // A second dial finds the connection already up.
    assert!(matches!(
        a.mesh.dial(b.mesh.local_addr(), None).await,
        Err(DialError::Duplicate)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dials_leave_exactly_one_connection() {
    let ca = ClusterCa::ephemeral("test");
    let mut a = node(&ca, "a");
    let mut b = node(&ca, "b");
    let (ra, rb) = tokio::join!(
        a.mesh.dial(b.mesh.local_addr(), Some(name("b"))),
        b.mesh.dial(a.mesh.local_addr(), Some(name("a")))
    );
    assert!(
        ra.is_ok() || rb.is_ok(),
        "at least one dial succeeds: {ra:?} {rb:?}"
    );
    eventually("both sides connected", || {
        a.mesh.link(&name("b")).is_some() && b.mesh.link(&name("a")).is_some()
    })
    .await;
    let (la, lb) = (
        a.mesh.link(&name("b")).expect("a"),
        b.mesh.link(&name("a")).expect("b"),
    );
    // Traffic both ways over what each side kept proves they kept the same connection.
    la.send_signal(&Signal::Monitor {
        watcher: 1,
        target: 1,
    })
    .expect("a->b");
    expect(
        &mut b.events,
        "a->b",
        |e| matches!(e, Event::Signal(n, _) if n == "a"),
    )
    .await;
    lb.send_signal(&Signal::Monitor {
        watcher: 2,
        target: 2,
    })
    .expect("b->a");
    expect(
        &mut a.events,
        "b->a",
        |e| matches!(e, Event::Signal(n, _) if n == "b"),
    )
    .await;
    assert!(
        !la.is_closed() && !lb.is_closed(),
        "the surviving connection stays open"
    );
    assert_eq!(a.mesh.links().len(), 1);
    assert_eq!(b.mesh.links().len(), 1);
    assert_eq!(
        a.mesh.link(&name("b")).expect("still").serial(),
        la.serial()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wanted_peers_are_redialed_after_the_connection_drops() {
    let ca = ClusterCa::ephemeral("test");
    let mut a = node(&ca, "a");
    let b = node(&ca, "b");
    a.mesh.want(name("b"), b.mesh.local_addr());
    came_up(&mut a.events, "b", "up").await;
    b.mesh.disconnect(&name("a"), "test");
    went_down(&mut a.events, "b", "down").await;
    came_up(&mut a.events, "b", "up again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_ca_is_refused() {
    let ca = ClusterCa::ephemeral("test");
    let rogue_ca = ClusterCa::ephemeral("test"); // same cluster name, different key
    let a = node(&ca, "a");
    let mut rogue = node(&rogue_ca, "b");
    let err = rogue.mesh.dial(a.mesh.local_addr(), Some(name("a"))).await;
    assert!(
        matches!(err, Err(DialError::Connect(_) | DialError::Refused(_))),
        "{err:?}"
    );
    assert!(a.mesh.links().is_empty());
    // And the other way round.
    let err = a.mesh.dial(rogue.mesh.local_addr(), Some(name("b"))).await;
    assert!(err.is_err());
    assert!(
        rogue.events.try_recv().is_err(),
        "the rogue never gets a connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_certificate_for_another_name_is_refused() {
    let ca = ClusterCa::ephemeral("test");
    let a = node(&ca, "a");
    let c = node(&ca, "c");
    // Dialing "b" but reaching c's endpoint: TLS name check fails.
    assert!(
        a.mesh
            .dial(c.mesh.local_addr(), Some(name("b")))
            .await
            .is_err()
    );
    assert!(a.mesh.links().is_empty() && c.mesh.links().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_lane_closes_that_connection_only() {
    let ca = ClusterCa::ephemeral("test");
    let mut a = node(&ca, "a");
    let b = node(&ca, "b");
    let c = node(&ca, "c");
    a.mesh
        .dial(b.mesh.local_addr(), Some(name("b")))
        .await
        .expect("a-b");
    let ac = a
        .mesh
        .dial(c.mesh.local_addr(), Some(name("c")))
        .await
        .expect("a-c");
    came_up(&mut a.events, "b", "b up").await;
    // b writes raw garbage on a fresh uni stream: a claimed length of 4 GiB.
    let b_to_a = b.mesh.link(&name("a")).expect("b-a");
    b_to_a
        .write_raw_uni_for_tests(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .expect("write");
    went_down(&mut a.events, "b", "b dropped").await;
    // c is untouched.
    ac.send_signal(&Signal::Monitor {
        watcher: 1,
        target: 1,
    })
    .expect("a-c still works");
    assert!(!ac.is_closed());
    assert!(a.mesh.link(&name("c")).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_drops_the_connection_and_healing_restores_it() {
    let plan = FaultPlan::new(7);
    let ca = ClusterCa::ephemeral("test");
    let cfg_idle = MeshConfig {
        idle_timeout: Duration::from_secs(2),
        keep_alive: Duration::from_millis(500),
        ..MeshConfig::default()
    };
    let mk = |n: &str| node_configured(&ca, n, cfg_idle.clone(), Some(plan.clone()));
    let mut a = mk("a");
    let b = mk("b");
    a.mesh.want(name("b"), b.mesh.local_addr());
    came_up(&mut a.events, "b", "up").await;
    plan.partition(a.mesh.local_addr(), b.mesh.local_addr());
    went_down(&mut a.events, "b", "down after idle timeout").await;
    plan.heal_all();
    came_up(&mut a.events, "b", "up after heal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_percent_loss_delivers_every_acknowledged_signal() {
    let plan = FaultPlan::new(11);
    plan.set_loss(200);
    let ca = ClusterCa::ephemeral("test");
    let a = node_with(&ca, "a", Some(plan.clone()));
    let mut b = node_with(&ca, "b", Some(plan.clone()));
    let link = loop {
        if let Ok(l) = a.mesh.dial(b.mesh.local_addr(), Some(name("b"))).await {
            break l;
        }
    };
    let n = 2000u64;
    for i in 0..n {
        link.send(
            i,
            &Delivery::Tell {
                to: i,
                variant: String::new(),
                args: vec![0; 64],
            },
        )
        .expect("send");
    }
    let mut seen = vec![false; n as usize];
    for _ in 0..n {
        if let Event::Delivery(_, _, Delivery::Tell { to, .. }) =
            expect(&mut b.events, "tell", |e| matches!(e, Event::Delivery(..))).await
        {
            assert!(!seen[to as usize], "no duplicates");
            seen[to as usize] = true;
        }
    }
    assert!(seen.iter().all(|s| *s));
    assert!(plan.dropped() > 0, "the plan did drop packets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_different_lane_counts_use_the_smaller_on_both_sides() {
    let ca = ClusterCa::ephemeral("test");
    let lanes = |n| MeshConfig {
        lanes: n,
        ..MeshConfig::default()
    };
    let mut few = node_configured(&ca, "few", lanes(2), None);
    let mut many = node_configured(&ca, "many", lanes(16), None);
    let link = many
        .mesh
        .dial(few.mesh.local_addr(), Some(name("few")))
        .await
        .expect("dial");
    came_up(&mut few.events, "many", "up").await;
    let back = few.mesh.link(&name("many")).expect("few has the link");
    assert_eq!(link.lanes(), 2);
    assert_eq!(back.lanes(), 2);
    assert_eq!(link.info().lanes, 2);
    // Every key reaches the other side, on a lane both sides have, both ways.
    let n = 64u64;
    for key in 0..n {
        let tell = |to| Delivery::Tell {
            to,
            variant: String::new(),
            args: vec![],
        };
        link.send(key, &tell(key)).expect("many -> few");
        back.send(key, &tell(key)).expect("few -> many");
    }
    for (events, what) in [(&mut few.events, "at few"), (&mut many.events, "at many")] {
        let mut seen = 0;
        while seen < n {
            if let Event::Delivery(from, lane, _) =
                expect(events, what, |e| matches!(e, Event::Delivery(..))).await
            {
                assert!(from == "few" || from == "many");
                assert!(lane < 2, "lane {lane} of 2");
                seen += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_or_repeated_stream_closes_the_connection() {
    let ca = ClusterCa::ephemeral("test");
    for header in [0x40u8, 0xff, 0] {
        let mut a = node(&ca, "a");
        let b = node(&ca, "b");
        a.mesh
            .dial(b.mesh.local_addr(), Some(name("b")))
            .await
            .expect("dial");
        came_up(&mut a.events, "b", "up").await;
        let b_to_a = b.mesh.link(&name("a")).expect("b-a");
        // 0x40: no such lane; 0xff: a second signal stream; 0: a second lane 0.
        b_to_a
            .write_raw_uni_for_tests(&[header, 0, 0, 0, 0])
            .await
            .expect("write");
        went_down(&mut a.events, "b", "b dropped").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_queued_when_the_data_lane_is_full_and_a_stalled_peer_fails_the_link() {
    let plan = FaultPlan::new(5);
    let ca = ClusterCa::ephemeral("test");
    let small = MeshConfig {
        lanes: 1,
        lane_buffer: 64 * 1024,
        max_frame: 16 * 1024,
        ..MeshConfig::default()
    };
    let a = node_configured(&ca, "a", small.clone(), Some(plan.clone()));
    let mut b = node_configured(&ca, "b", small, Some(plan.clone()));
    let link = a
        .mesh
        .dial(b.mesh.local_addr(), Some(name("b")))
        .await
        .expect("dial");
    came_up(&mut b.events, "a", "up").await;
    // Fill the data lane until it refuses: data gets Overloaded...
    let big = Delivery::Tell {
        to: 1,
        variant: String::new(),
        args: vec![0; 8 * 1024],
    };
    let mut refused = false;
    for _ in 0..100_000 {
        if link.send(1, &big).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "a full lane refuses data");
    // ...but a signal is still taken.
    link.send_signal(&Signal::Monitor {
        watcher: 1,
        target: 1,
    })
    .expect("a signal is never refused for a full data lane");
    expect(
        &mut b.events,
        "the signal",
        |e| matches!(e, Event::Signal(n, Signal::Monitor { .. }) if n == "a"),
    )
    .await;
    // A peer that takes nothing more (cut off): signals pile up until even the reserve is
    // full, and then the connection fails rather than drop one.
    plan.partition(a.mesh.local_addr(), b.mesh.local_addr());
    let exit = Signal::Exit {
        from: 1,
        to: 2,
        reason: Some("x".repeat(8 * 1024)),
        after: vec![0],
    };
    let mut failed = false;
    for _ in 0..100_000 {
        if link.send_signal(&exit).is_err() {
            failed = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(failed, "a stalled peer fails the link");
    assert!(link.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_delivers_what_was_queued() {
    let ca = ClusterCa::ephemeral("test");
    let a = node(&ca, "a");
    let mut b = node(&ca, "b");
    let link = a
        .mesh
        .dial(b.mesh.local_addr(), Some(name("b")))
        .await
        .expect("dial");
    for i in 0..500u64 {
        link.send(
            i,
            &Delivery::Tell {
                to: i,
                variant: String::new(),
                args: vec![1; 512],
            },
        )
        .expect("send");
    }
    link.send_signal(&Signal::Leaving).expect("goodbye");
    a.mesh.shutdown("bye", Duration::from_secs(5)).await;
    let mut tells = 0;
    loop {
        match expect(&mut b.events, "traffic", |e| {
            matches!(
                e,
                Event::Delivery(..) | Event::Signal(_, Signal::Leaving) | Event::Down(_)
            )
        })
        .await
        {
            Event::Delivery(..) => tells += 1,
            Event::Signal(..) => {}
            _ => break,
        }
    }
    assert_eq!(tells, 500, "every queued message arrived before the close");
}
