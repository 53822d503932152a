//! `spawn_named` on real QUIC clusters in one process: exactly one actor per name however
//! many nodes ask at once, placement rules, and the errors a caller can get.
#![cfg(feature = "cluster")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use understudy::cluster::certs::ClusterCa;
use understudy::cluster::node::Node;
use understudy::registry::{Placement, Registry, RegistryError, Scope, Unplaceable};

use common::registry::*;

/// How many actors each name got, across every node of one test.
type Starts = Arc<Mutex<HashMap<String, u32>>>;

/// Registries whose nodes all have the kinds "worker" (counted in `starts`) and "faulty"
/// (its factory fails); node `i` gets `worker` only if `has_worker(i)`.
fn registries(n: usize, starts: &Starts, has_worker: impl Fn(usize) -> bool) -> Vec<Registry> {
    (0..n)
        .map(|i| {
            let starts = starts.clone();
            let mut r = Registry::new().kind("faulty", |_: ()| {
                Err::<Worker, _>("this factory always fails".to_owned())
            });
            if has_worker(i) {
                r = r.kind("worker", move |name: String| {
                    *starts.lock().expect("starts").entry(name).or_insert(0) += 1;
                    let (seen, _) = tokio::sync::mpsc::unbounded_channel();
                    Ok::<_, String>(Worker { seen })
                });
            }
            r
        })
        .collect()
}

async fn cluster(registries: &[Registry]) -> Vec<Node> {
    let ca = ClusterCa::ephemeral("test");
    let nodes = common::cluster_with(&ca, registries.len(), None, WAIT, |i, b| {
        b.extension(registries[i].clone())
    })
    .await;
    let all: Vec<&Registry> = registries.iter().collect();
    let n = registries.len();
    let voters = if n.min(5) % 2 == 1 {
        n.min(5)
    } else {
        n.min(5) - 1
    };
    roles(&all, voters, (n - voters).min(4)).await;
    for r in registries {
        r.wait_ready(WAIT).await.expect("ready");
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_spawns_from_every_node_end_with_one_actor_per_name() {
    let starts = Starts::default();
    let registries = registries(5, &starts, |_| true);
    let nodes = cluster(&registries).await;
    // Three rounds of 100 fresh names: each round another race (the placements, the order
    // the calls reach the leader, and Random's picks differ).
    for round in 0..3 {
        concurrent_round(&registries, &nodes, &starts, round).await;
    }
}

async fn concurrent_round(registries: &[Registry], nodes: &[Node], starts: &Starts, round: usize) {
    let names: Vec<String> = (0..100).map(|i| format!("s{round}-{i}")).collect();

    let mut calls = Vec::new();
    for (i, registry) in registries.iter().enumerate() {
        for name in &names {
            let (registry, name) = (registry.clone(), name.clone());
            // Each node names the placement differently: the log decides which one holds.
            let placement =
                [Placement::Hash, Placement::Random, Placement::LeastLoaded][i % 3].clone();
            calls.push(tokio::spawn(async move {
                let actor = registry
                    .spawn_named::<Work, _>(&name, Scope::Consistent, placement, "worker", &name)
                    .await
                    .unwrap_or_else(|e| panic!("spawn_named {name}: {e}"));
                (i, name, actor.get_id())
            }));
        }
    }
    let names0 = registries[0].consistent().expect("started");
    for call in calls {
        let (i, name, id) = call.await.expect("call");
        let owner = names0.owner(&name).expect("held");
        assert_eq!(
            id.pid(),
            owner.addr.pid,
            "every caller of {name} holds its actor"
        );
        assert_eq!(
            id.is_local(),
            owner.node() == nodes[i].runtime().node_id(),
            "{name}: a local ref only on the holder's node"
        );
    }
    let starts = starts.lock().expect("starts");
    for name in &names {
        assert_eq!(starts.get(name), Some(&1), "exactly one {name} was started");
    }
    // Every node's copy agrees.
    for registry in registries {
        let names_here = registry.consistent().expect("started");
        for name in &names {
            assert_eq!(names_here.owner(name), names0.owner(name));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_rules_choose_among_the_nodes_that_have_the_kind() {
    let starts = Starts::default();
    // n4 cannot start workers.
    let registries = registries(5, &starts, |i| i != 4);
    let nodes = cluster(&registries).await;
    let names0 = registries[0].consistent().expect("started");
    let node_of = |name: &str| {
        let owner = names0.owner(name).expect("held");
        nodes
            .iter()
            .position(|n| n.runtime().node_id() == owner.node())
            .expect("a node of the cluster")
    };
    let spawn = |r: &Registry, name: &str, placement: Placement| {
        let (r, name) = (r.clone(), name.to_owned());
        async move {
            r.spawn_named::<Work, _>(&name, Scope::Consistent, placement, "worker", &name)
                .await
        }
    };

    spawn(&registries[1], "on-n2", Placement::Node("n2".into()))
        .await
        .expect("placed");
    assert_eq!(node_of("on-n2"), 2);
    spawn(&registries[3], "local", Placement::Local)
        .await
        .expect("placed");
    assert_eq!(node_of("local"), 3);
    let prefer = Placement::PreferNodes(vec!["n9".into(), "n4".into(), "n1".into()]);
    spawn(&registries[0], "preferred", prefer)
        .await
        .expect("placed");
    assert_eq!(
        node_of("preferred"),
        1,
        "n9 is not a member and n4 lacks the kind"
    );
    for i in 0..8 {
        let name = format!("hashed-{i}");
        spawn(&registries[4], &name, Placement::Hash)
            .await
            .expect("placed");
        assert_ne!(node_of(&name), 4, "n4 lacks the kind");
    }

    // A node that lacks the kind, or is no member, is a typed error naming the able nodes.
    match spawn(&registries[0], "on-n4", Placement::Node("n4".into())).await {
        Err(RegistryError::NoEligibleNode {
            source: Unplaceable::NodeCannot { able, .. },
            ..
        }) => assert_eq!(able.len(), 4, "n0..n3 have it: {able:?}"),
        other => panic!("expected NodeCannot, got {other:?}"),
    }
    match spawn(&registries[4], "here", Placement::Local).await {
        Err(RegistryError::NoEligibleNode { .. }) => {}
        other => panic!("n4 has no worker kind: {other:?}"),
    }
    match registries[0]
        .spawn_named::<Work, _>("nope", Scope::Consistent, Placement::Hash, "nope", &())
        .await
    {
        Err(RegistryError::NoEligibleNode {
            source: Unplaceable::NobodyHasKind { kind },
            ..
        }) => assert_eq!(kind, "nope"),
        other => panic!("expected NobodyHasKind, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_factory_is_the_caller_s_error_and_frees_the_name() {
    let starts = Starts::default();
    let registries = registries(3, &starts, |_| true);
    let nodes = cluster(&registries).await;
    let faulty = registries[0]
        .spawn_named::<Work, _>(
            "f",
            Scope::Consistent,
            Placement::Node("n1".into()),
            "faulty",
            &(),
        )
        .await;
    match faulty {
        Err(RegistryError::StartFailed { node, reason, .. }) => {
            assert_eq!(node, "n1");
            assert!(reason.contains("always fails"), "{reason}");
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    // The name is free: a plain registration takes it.
    let (mine, _) = worker(&nodes[2]).await;
    registries[2]
        .consistent()
        .expect("started")
        .register("f", &mine)
        .await
        .expect("the name is free after a failed start");

    // The kind's message type is checked before anything starts.
    match registries[1]
        .spawn_named::<Other, _>("typed", Scope::Consistent, Placement::Hash, "worker", &"x")
        .await
    {
        Err(RegistryError::TypeMismatch { .. }) => {}
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    // An existing name answers at once with its holder, whatever the kind asked.
    let held = registries[1]
        .spawn_named::<Work, _>("f", Scope::Consistent, Placement::Hash, "worker", &"f")
        .await
        .expect("the holder");
    assert_eq!(held.get_id().pid(), mine.get_id().pid());
    assert!(starts.lock().expect("starts").get("f").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_s_named_actors_run_again_once_elsewhere() {
    let starts = Starts::default();
    let registries = registries(5, &starts, |_| true);
    let nodes = cluster(&registries).await;
    let names: Vec<String> = (0..50).map(|i| format!("f-{i}")).collect();
    // All on n3 while it is up; anywhere (by hash) once it is not.
    let prefer = Placement::PreferNodes(vec!["n3".into()]);
    for name in &names {
        registries[0]
            .spawn_named::<Work, _>(name, Scope::Consistent, prefer.clone(), "worker", name)
            .await
            .expect("spawn");
    }
    let n3 = nodes[3].runtime().node_id();
    let names0 = registries[0].consistent().expect("started");
    assert!(
        names
            .iter()
            .all(|n| names0.owner(n).map(|o| o.node()) == Some(n3))
    );
    let refs: Vec<_> = names
        .iter()
        .map(|n| registries[0].named::<Work>(n).expect("a valid name"))
        .collect();

    let crashed = std::time::Instant::now();
    nodes[3].crash();
    registries[3].shutdown().await;
    let survivors: Vec<usize> = vec![0, 1, 2, 4];
    until("every name running again off n3", || {
        survivors.iter().all(|i| {
            let copy = registries[*i].consistent().expect("started");
            names
                .iter()
                .all(|n| copy.owner(n).is_some_and(|o| o.node() != n3))
        })
    })
    .await;
    println!(
        "50 named actors running again {:?} after their node crashed",
        crashed.elapsed()
    );
    let counts = starts.lock().expect("starts").clone();
    for name in &names {
        assert_eq!(counts.get(name), Some(&2), "{name}: once on n3, once after");
    }
    // Name-addressed refs made before the crash reach them where they run now.
    for named in &refs {
        understudy::Target::tell_to(named, Work::Job(1)).expect("a tell by name");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_actor_that_stops_is_started_again_and_a_transient_one_is_not() {
    let starts = Starts::default();
    let registries = registries(3, &starts, |_| true);
    let nodes = cluster(&registries).await;
    let names0 = registries[0].consistent().expect("started");
    let stop = |name: &str| {
        let owner = names0.owner(name).expect("held");
        let node = nodes
            .iter()
            .find(|n| n.runtime().node_id() == owner.node())
            .expect("its node");
        let cell = node.actor_cell_now(owner.addr).expect("local");
        cell.stop(None);
        owner
    };

    registries[1]
        .spawn_named::<Work, _>("p", Scope::Consistent, Placement::Hash, "worker", &"p")
        .await
        .expect("spawn");
    let first = stop("p");
    until("p running again", || {
        names0.owner("p").is_some_and(|o| o != first)
    })
    .await;
    assert_eq!(starts.lock().expect("starts").get("p"), Some(&2));

    let transient = understudy::registry::SpawnOptions::default()
        .restart(understudy::registry::Restart::Transient);
    registries[1]
        .spawn_named_with::<Work, _>(
            "t",
            Scope::Consistent,
            Placement::Hash,
            "worker",
            &"t",
            transient,
        )
        .await
        .expect("spawn");
    stop("t");
    until("t released", || names0.owner("t").is_none()).await;
    // Freed for good: a plain registration takes it.
    let (mine, _) = worker(&nodes[0]).await;
    names0
        .register("t", &mine)
        .await
        .expect("a transient name that stopped normally is free");
    assert_eq!(starts.lock().expect("starts").get("t"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_hands_its_named_actors_over_with_no_gap() {
    let starts = Starts::default();
    let registries = registries(4, &starts, |_| true);
    let nodes = cluster(&registries).await;
    let names: Vec<String> = (0..20).map(|i| format!("h-{i}")).collect();
    let prefer = Placement::PreferNodes(vec!["n3".into()]);
    for name in &names {
        registries[1]
            .spawn_named::<Work, _>(name, Scope::Consistent, prefer.clone(), "worker", name)
            .await
            .expect("spawn");
    }
    let n3 = nodes[3].runtime().node_id();
    let names0 = registries[0].consistent().expect("started");
    let (now, mut watch) = names0.watch_prefix("h-");
    assert!(now.iter().all(|(_, o)| o.node() == n3));

    nodes[3].leave().await;
    // Every name moved: one change each, from the n3 holder straight to its successor.
    let mut moved = std::collections::HashSet::new();
    while moved.len() < names.len() {
        let change = tokio::time::timeout(WAIT, watch.recv())
            .await
            .expect("a change in time")
            .expect("the watch goes on");
        let new = change
            .new
            .unwrap_or_else(|| panic!("{} had no holder for a moment: {change:?}", change.name));
        assert_eq!(change.old.map(|o| o.node()), Some(n3));
        assert_ne!(new.node(), n3);
        moved.insert(change.name);
    }
    let counts = starts.lock().expect("starts").clone();
    for name in &names {
        assert_eq!(counts.get(name), Some(&2), "{name}: once on n3, once after");
    }
}

/// A named actor with typed methods.
#[derive(understudy::prelude::Actor)]
struct Counter {
    n: u64,
}

#[understudy::prelude::messages(remote)]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_addressed_ref_follows_its_actor_across_a_failover() {
    use understudy::prelude::TellError;
    let registries: Vec<Registry> = (0..5)
        .map(|_| Registry::new().kind("counter", |n: u64| Ok::<_, String>(Counter { n })))
        .collect();
    let nodes = cluster(&registries).await;
    let counter = registries[0]
        .named::<CounterMsg>("c")
        .expect("a valid name");

    // Nobody holds it yet: a tell fails at once, an ask waits for a holder.
    assert_eq!(
        counter.add(1),
        Err(TellError::NotRegistered { name: "c".into() })
    );
    let waiting = {
        let counter = counter.clone();
        tokio::spawn(async move { counter.get().timeout(WAIT).await })
    };
    registries[1]
        .spawn_named::<CounterMsg, _>(
            "c",
            Scope::Consistent,
            Placement::PreferNodes(vec!["n3".into()]),
            "counter",
            &40u64,
        )
        .await
        .expect("spawn");
    assert_eq!(
        waiting.await.expect("task"),
        Ok(40),
        "the waiting ask was sent"
    );
    counter.add(2).expect("tell by name");
    assert_eq!(counter.get().await, Ok(42));

    // Its node crashes: the same handle reaches the new actor (a fresh count).
    let n3 = nodes[3].runtime().node_id();
    assert!(!counter.resolve().expect("held").get_id().is_local());
    nodes[3].crash();
    registries[3].shutdown().await;
    let names0 = registries[0].consistent().expect("started");
    until("c running off n3", || {
        names0.owner("c").is_some_and(|o| o.node() != n3)
    })
    .await;
    assert_eq!(counter.get().timeout(WAIT).await, Ok(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_placed_while_nodes_were_clients_fail_over_the_same_everywhere() {
    // n1..n3 start as clients of the one-node registry n0 formed and are promoted later:
    // their copies of the placement records came from n0's feed, and must decide every later
    // bind exactly as n0 does.
    let ca = ClusterCa::ephemeral("test");
    let starts = Starts::default();
    let registries = registries(4, &starts, |_| true);
    let mut nodes: Vec<Node> = Vec::new();
    for (i, registry) in registries.iter().enumerate() {
        let b = builder(&ca, &format!("n{i}"), nodes.first(), registry);
        nodes.push(b.start().await.expect("start"));
        registry.wait_ready(WAIT).await.expect("ready");
    }
    let names: Vec<String> = (0..10).map(|i| format!("early-{i}")).collect();
    for name in &names {
        registries[1]
            .spawn_named::<Work, _>(
                name,
                Scope::Consistent,
                Placement::PreferNodes(vec!["n1".into()]),
                "worker",
                name,
            )
            .await
            .expect("spawn");
    }
    let all: Vec<&Registry> = registries.iter().collect();
    roles(&all, 3, 1).await;

    let n1 = nodes[1].runtime().node_id();
    nodes[1].crash();
    registries[1].shutdown().await;
    until("every copy has every name on a survivor", || {
        [0, 2, 3].iter().all(|i| {
            let copy = registries[*i].consistent().expect("started");
            names
                .iter()
                .all(|n| copy.owner(n).is_some_and(|o| o.node() != n1))
        })
    })
    .await;
    let copy0 = registries[0].consistent().expect("started");
    for i in [2, 3] {
        let copy = registries[i].consistent().expect("started");
        for name in &names {
            assert_eq!(copy.owner(name), copy0.owner(name), "{name} on n{i}");
        }
    }
}

/// An actor that fails right after it starts: a kind that keeps crashing.
struct Crasher {
    starts: Starts,
}

impl understudy::prelude::Actor for Crasher {
    async fn on_start(
        &mut self,
        ctx: &understudy::prelude::Ctx<Self>,
    ) -> Result<(), understudy::prelude::ActorError> {
        *self
            .starts
            .lock()
            .expect("starts")
            .entry("crasher".into())
            .or_insert(0) += 1;
        understudy::tell(&ctx.myself(), Work::Job(0)).expect("to itself");
        Ok(())
    }
}

impl understudy::prelude::Handler for Crasher {
    type Msg = Work;
    async fn handle(
        &mut self,
        _: &understudy::prelude::Ctx<Self>,
        _: Work,
    ) -> Result<(), understudy::prelude::ActorError> {
        Err("this kind crashes on its first message".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_that_keeps_crashing_is_given_up_cluster_wide_and_a_panicking_factory_fails_the_call()
 {
    let starts = Starts::default();
    let registries: Vec<Registry> = (0..3)
        .map(|_| {
            let starts = starts.clone();
            Registry::new()
                .kind("crasher", move |_: ()| {
                    Ok::<_, String>(Crasher {
                        starts: starts.clone(),
                    })
                })
                .kind("panicky", |_: ()| -> Result<Worker, String> {
                    panic!("the factory panics")
                })
        })
        .collect();
    let _nodes = cluster(&registries).await;

    match registries[0]
        .spawn_named::<Work, _>(
            "p",
            Scope::Consistent,
            Placement::Node("n2".into()),
            "panicky",
            &(),
        )
        .await
    {
        Err(RegistryError::StartFailed { reason, .. }) => {
            assert!(reason.contains("the factory panics"), "{reason}")
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    let names0 = registries[0].consistent().expect("started");
    assert!(names0.owner("p").is_none(), "the name is free");

    // Two restarts in a minute at most, cluster-wide: the first start and two restarts,
    // each crashing at once, and then the name is released.
    let options =
        understudy::registry::SpawnOptions::default().intensity(understudy::registry::Intensity {
            max_restarts: 2,
            within_ms: 60_000,
        });
    let _ = registries[1]
        .spawn_named_with::<Work, _>(
            "c",
            Scope::Consistent,
            Placement::Random,
            "crasher",
            &(),
            options,
        )
        .await;
    until("three starts of the crashing kind", || {
        starts.lock().expect("starts").get("crasher") == Some(&3)
    })
    .await;
    // The next re-place finds the intensity spent: the name is released, for good.
    let (mine, _) = worker(&_nodes[0]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // Reserved until the placer gives up; a write can also time out on a loaded machine.
        match names0.register("c", &mine).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                if !matches!(e, RegistryError::Reserved { .. }) {
                    eprintln!("registering the given-up name: {e}; retrying");
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the crashing name was not released: {e}"),
        }
    }
    assert_eq!(starts.lock().expect("starts").get("crasher"), Some(&3));
}
