//! A supervision tree, one crash at a time: how each OTP strategy restarts a failing child,
//! how a name follows its child across restarts, and how a supervisor that restarts too often
//! gives up and lets its parent restart the whole subtree.
//!
//! ```text
//! root            one_for_one, at most 3 restarts in 10 s
//! ├── config      worker
//! ├── cache       one_for_all: store and index only make sense together
//! │   ├── store
//! │   └── index
//! └── pipeline    rest_for_one, at most 2 restarts in 10 s: each stage feeds the next
//!     ├── reader
//!     ├── parser
//!     └── writer  registered under the Local name "writer"
//! ```
//!
//! Run: `cargo run --example supervision_tree`

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use understudy::prelude::*;
use understudy::ractor::ActorId;
use understudy::supervisor::{
    ChildKind, ChildSpec, ESCALATION_REASON, SupervisorMsg, SupervisorRef, SupervisorSpec,
};

/// A worker that announces its life and can be told to crash.
struct Worker {
    name: &'static str,
}

impl Actor for Worker {
    async fn on_start(&mut self, ctx: &Ctx<Self>) -> Result<(), ActorError> {
        println!(
            "      + {:<7} started as {}",
            self.name,
            ctx.cell().get_id()
        );
        Ok(())
    }

    async fn on_stop(&mut self, ctx: &Ctx<Self>) -> Result<(), ActorError> {
        println!(
            "      - {:<7} stopped    ({})",
            self.name,
            ctx.cell().get_id()
        );
        Ok(())
    }
}

#[messages]
impl Worker {
    /// Exits abnormally (any stop reason other than normal/shutdown is a crash), as a worker
    /// whose connection broke would.
    #[message]
    fn crash(&mut self, ctx: &Ctx<Self>, why: String) {
        println!("      ! {:<7} crashes: {why}", self.name);
        ctx.stop(Some(why));
    }
}

/// The example's error type: anything, boxed.
type Error = Box<dyn std::error::Error>;

fn worker(name: &'static str) -> ChildSpec {
    ChildSpec::new(name, move || Worker { name })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let node = Runtime::new();
    let spec = SupervisorSpec::one_for_one()
        .intensity(3, Duration::from_secs(10))
        .child(worker("config"))
        .child(ChildSpec::supervisor(
            "cache",
            SupervisorSpec::one_for_all()
                .intensity(3, Duration::from_secs(10))
                .children([worker("store"), worker("index")]),
        ))
        .child(ChildSpec::supervisor(
            "pipeline",
            SupervisorSpec::rest_for_one()
                .intensity(2, Duration::from_secs(10))
                .children([
                    worker("reader"),
                    worker("parser"),
                    worker("writer").name("writer"),
                ]),
        ));

    println!("Starting the tree: children start in order, depth first.");
    let root = node.start_supervisor(spec).await?;
    print_tree(&root, "root", "", 1).await?;
    let cache = subtree(&root, "cache").await?;
    let pipeline = subtree(&root, "pipeline").await?;

    println!("\n1. one_for_one — `config` crashes; root restarts only `config`.");
    let before = snapshot(&root).await?;
    let old = crash(&root, "config", "lost its config file").await?;
    let new = restarted(&root, "config", old).await?;
    println!(
        "   config: {old} -> {new}; cache and pipeline untouched: {}",
        unchanged(&root, &before, "config").await?
    );

    println!(
        "\n2. one_for_all — `index` crashes; cache stops `store` too, then starts both in order."
    );
    let old_store = child_id(&cache, "store").await?;
    let old = crash(&cache, "index", "corrupt segment").await?;
    let new = restarted(&cache, "index", old).await?;
    let new_store = child_id(&cache, "store").await?;
    println!("   index: {old} -> {new}; store: {old_store} -> {new_store}");

    println!("\n3. rest_for_one — `parser` crashes; pipeline restarts it and the stage after it.");
    let reader = child_id(&pipeline, "reader").await?;
    let old_writer = whereis_writer(&node);
    let old = crash(&pipeline, "parser", "bad input").await?;
    let new = restarted(&pipeline, "parser", old).await?;
    let new_writer = whereis_writer(&node);
    println!("   parser: {old} -> {new}; reader kept {reader} (it came before the parser)");
    println!("   whereis(\"writer\"): {old_writer} -> {new_writer} — the name follows the restart");

    println!(
        "\n4. Escalation — pipeline allows 2 restarts in 10 s, and the parser crash used one."
    );
    let old_pipeline = pipeline.id();
    let old = crash(&pipeline, "reader", "source unreachable").await?;
    restarted(&pipeline, "reader", old).await?;
    println!("   restart 2 of 2 done (rest_for_one: reader is first, so every stage restarted)");
    println!("   `reader` crashes again, one restart too many: pipeline stops its children in");
    println!("   reverse order and exits with reason {ESCALATION_REASON:?};");
    println!("   root (one_for_one) then restarts the whole pipeline subtree:");
    crash(&pipeline, "reader", "source still unreachable").await?;
    let new_pipeline = restarted(&root, "pipeline", old_pipeline).await?;
    println!(
        "   pipeline: {old_pipeline} -> {new_pipeline}; the old one is {:?}",
        pipeline.cell().get_status()
    );
    print_tree(&root, "root", "", 1).await?;

    println!("\n5. Shutdown — children stop in reverse start order, depth first.");
    root.shutdown().await;
    println!(
        "   root stopped; whereis(\"writer\") = {}",
        whereis_writer(&node)
    );
    Ok(())
}

/// Who holds the Local name "writer", for printing.
fn whereis_writer(node: &Runtime) -> String {
    match node.whereis::<WorkerMsg>("writer") {
        Some(writer) => writer.get_id().to_string(),
        None => "nobody".to_owned(),
    }
}

/// Tells child `id` of `sup` to crash; returns the id of the incarnation that crashed.
async fn crash(sup: &SupervisorRef, id: &str, why: &str) -> Result<ActorId, Error> {
    // A typed lookup: an error, not a bad cast, if `id` were not a Worker.
    let worker = sup
        .child_ref::<WorkerMsg>(id)
        .await?
        .ok_or("child not running")?;
    worker.crash(why.to_owned())?;
    Ok(worker.get_id())
}

/// Waits until child `id` of `sup` runs as a new incarnation; returns its id.
async fn restarted(sup: &SupervisorRef, id: &str, old: ActorId) -> Result<ActorId, Error> {
    for _ in 0..5_000 {
        if let Some(cell) = sup.child(id).await?
            && cell.get_id() != old
        {
            return Ok(cell.get_id());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err(format!("{id} was not restarted").into())
}

async fn child_id(sup: &SupervisorRef, id: &str) -> Result<ActorId, Error> {
    Ok(sup.child(id).await?.ok_or("child not running")?.get_id())
}

async fn subtree(sup: &SupervisorRef, id: &str) -> Result<SupervisorRef, Error> {
    let nested = sup
        .child_ref::<SupervisorMsg>(id)
        .await?
        .ok_or("child not running")?;
    Ok(nested.into())
}

/// Every child's id and incarnation.
async fn snapshot(sup: &SupervisorRef) -> Result<Vec<(String, Option<ActorId>)>, Error> {
    Ok(sup
        .which_children()
        .await?
        .into_iter()
        .map(|c| (c.id, c.cell.map(|c| c.get_id())))
        .collect())
}

/// Whether every child but `except` still runs as the same incarnation.
async fn unchanged(
    sup: &SupervisorRef,
    before: &[(String, Option<ActorId>)],
    except: &str,
) -> Result<bool, Error> {
    let now = snapshot(sup).await?;
    Ok(before
        .iter()
        .zip(&now)
        .all(|(b, n)| b.0 == except || b == n))
}

/// Prints a supervisor's children, recursing into child supervisors.
/// `note` goes after the supervisor's own line.
fn print_tree<'a>(
    sup: &'a SupervisorRef,
    label: &'a str,
    note: &'a str,
    depth: usize,
) -> Pin<Box<dyn Future<Output = Result<(), Error>> + 'a>> {
    Box::pin(async move {
        let counts = sup.count_children().await?;
        println!(
            "{:indent$}{label} {} ({} children, {} running){note}",
            "",
            sup.id(),
            counts.specs,
            counts.active,
            indent = 2 * depth
        );
        for child in sup.which_children().await? {
            let Some(cell) = child.cell else { continue };
            match child.kind {
                ChildKind::Supervisor => {
                    let nested = SupervisorRef::from_cell(cell).ok_or("not a supervisor")?;
                    print_tree(&nested, &child.id, &restarts(child.restarts), depth + 1).await?;
                }
                ChildKind::Worker => {
                    println!(
                        "{:indent$}{} {}{}",
                        "",
                        child.id,
                        cell.get_id(),
                        restarts(child.restarts),
                        indent = 2 * (depth + 1)
                    );
                }
            }
        }
        Ok(())
    })
}

/// " — restarted n times" if the supervisor has restarted the child.
fn restarts(n: u64) -> String {
    match n {
        0 => String::new(),
        1 => " — restarted once".to_owned(),
        n => format!(" — restarted {n} times"),
    }
}
