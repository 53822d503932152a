//! Registry benchmarks (`understudy::registry`, cluster-wide names on Raft), side by side
//! with etcd 3.4 in the same run: registrations per second with 64 concurrent writers, one
//! writer's latency, lookups from the local copy, how long writes stop when the leader
//! crashes, and the leader's idle CPU as the cluster grows; and, understudy only,
//! `spawn_named` and its failover (see [`spawn`]). Beside them, for writes and
//! latency, plain openraft with a memory store and an in-process network (`openraft-mem`,
//! see [`openraft`]): what openraft itself costs, without the registry around it.
//!
//! ```text
//! cargo run --release -- --registry                  # full run, tables on stdout
//! cargo run --release -- --registry --quick          # smoke run
//! cargo run --release -- --registry-test write --framework understudy-disk   # one measurement
//! cargo run --release -- --registry-test idle --framework understudy-mem --nodes 50
//! ```
//!
//! As for the other benchmarks, the driver never measures in its own process: each
//! (test, framework, size, run) is a child process, runs are interleaved with the framework
//! order rotated, and the tables show the median and the best run. Both systems run three
//! voters on loopback: understudy's three nodes in the measuring process (one 2-worker
//! tokio runtime), etcd's three members as processes the measuring process starts (Debian's
//! `etcd-server`; without it the etcd columns are left out). Each stores its log in memory
//! (understudy) or on tmpfs (etcd: its fsyncs cost nothing there), or on the disk, in a
//! fresh temporary directory.

mod etcd;
mod eventual;
mod http;
mod load;
mod openraft;
mod ours;
mod spawn;
mod theirs;

use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::time::Duration;

use crate::bench::Metrics;
use crate::cluster::{best, fmt_num, median, runtime};
use etcd::{Storage, Timing};
use ours::Store;

/// The columns, in table order.
const FRAMEWORKS: [&str; 5] = [
    "understudy-mem",
    "understudy-disk",
    "openraft-mem",
    "etcd-tmpfs",
    "etcd-disk",
];

/// The column of plain openraft, which measures only these tests.
const OPENRAFT: &str = "openraft-mem";
const OPENRAFT_TESTS: [Test; 2] = [Test::Write, Test::Latency];

const USAGE: &str = "\
understudy-benches --registry: understudy::registry (Raft names) vs etcd 3.4 and openraft

USAGE:
  understudy-benches --registry [OPTIONS]          driver: one child process per measurement
  understudy-benches --registry-test T --framework F [OPTIONS]
                                                   one measurement in this process

OPTIONS:
  --test T,..          write | latency | lookup | failover | idle | spawn | eventual
                                                                         [all seven]
                       (spawn: understudy only; Registry::spawn_named of new names on 3
                       voters beside node.spawn + register, of an existing name beside
                       whereis, and 100 placed names' failover when their node crashes,
                       on 5 voters; --registry-test spawn measures the calls, with
                       --nodes 5 one crash. eventual: understudy-mem only; how long an
                       Eventual registration takes to reach all of 10 nodes, beside a
                       Consistent one's, --samples / 2 of each)
  --framework F,..     understudy-mem | understudy-disk | openraft-mem | etcd-tmpfs |
                       etcd-disk                                           [all five]
                       (mem: Raft log in memory; tmpfs: etcd's data on /dev/shm; disk: a
                       temporary directory on the disk). lookup and idle do not depend on
                       the store: they run on the first understudy and the first etcd one.
                       openraft-mem: plain openraft 0.10.0-alpha.37, 3 voters in one
                       process, memory store, requests handed to the target's Raft as
                       function calls (as openraft's own benchmark); write and latency only
  --quick              small sizes, 1 run, 3 kills
  --runs N             runs per cell of write, latency and lookup          [3; quick 1]
  --kills N            leader kills per framework (failover)              [10; quick 3]
  --crashes N          node crashes per framework (spawn's failover)       [5; quick 2]
  --idle-runs N        runs per cell of idle                                [3; quick 1]
  --writers N          concurrent writers of the write test                [64]
  --secs S             length of a write run, after a fifth as long of warm-up [3; quick 1]
  --samples N          sequential writes (latency) and linearizable reads (lookup)
                                                                          [500; quick 200]
  --lookups N          whereis calls per name per lookup run      [10000000; quick 1000000]
  --idle-nodes N,..    cluster sizes of the idle test (5 voters at most)  [5,10,50]
  --idle-secs S        the idle window                                     [5; quick 2]
  --idle-standbys N    the registry's max_standbys in the idle test  [its default, 4]
  --etcd-heartbeat MS  etcd's --heartbeat-interval                         [50]
  --etcd-election MS   etcd's --election-timeout (it waits 1-2x this)      [250]
                       (the registry: heartbeats every 100 ms, elections after 250-500 ms;
                       etcd wants its election timeout at least 5 heartbeats)
  -h, --help           this text
";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Test {
    Write,
    Latency,
    Lookup,
    Failover,
    Idle,
    Spawn,
    Eventual,
}

impl Test {
    const ALL: [Test; 7] = [
        Test::Write,
        Test::Latency,
        Test::Lookup,
        Test::Failover,
        Test::Idle,
        Test::Spawn,
        Test::Eventual,
    ];
    fn name(self) -> &'static str {
        match self {
            Test::Write => "write",
            Test::Latency => "latency",
            Test::Lookup => "lookup",
            Test::Failover => "failover",
            Test::Idle => "idle",
            Test::Spawn => "spawn",
            Test::Eventual => "eventual",
        }
    }
    fn parse(s: &str) -> Option<Test> {
        Test::ALL.into_iter().find(|t| t.name() == s)
    }
}

struct Opts {
    tests: Vec<Test>,
    frameworks: Vec<String>,
    runs: usize,
    kills: usize,
    crashes: usize,
    idle_runs: usize,
    writers: usize,
    secs: f64,
    samples: usize,
    lookups: u64,
    idle_nodes: Vec<usize>,
    idle_secs: f64,
    /// `max_standbys` of the idle test's registries (None: the default).
    idle_standbys: Option<usize>,
    timing: Timing,
    // A child's own: the idle test's cluster size, and whether it runs the registry.
    nodes: usize,
    no_registry: bool,
    seed: Option<std::net::SocketAddr>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Opts {
        tests: Test::ALL.to_vec(),
        frameworks: FRAMEWORKS.iter().map(|s| s.to_string()).collect(),
        runs: if quick { 1 } else { 3 },
        kills: if quick { 3 } else { 10 },
        crashes: if quick { 2 } else { 5 },
        idle_runs: if quick { 1 } else { 3 },
        writers: 64,
        secs: if quick { 1.0 } else { 3.0 },
        samples: if quick { 200 } else { 500 },
        lookups: if quick { 1_000_000 } else { 10_000_000 },
        // 10 nodes: the same voters and standbys as 50, so 10 → 50 shows the clients' cost.
        idle_nodes: vec![5, 10, 50],
        idle_secs: if quick { 2.0 } else { 5.0 },
        idle_standbys: None,
        timing: Timing {
            heartbeat_ms: 50,
            election_ms: 250,
        },
        nodes: 0,
        no_registry: false,
        seed: None,
    };
    let list = crate::bench::positive_list;
    let seconds = |v: String| match v.parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() => Ok(s),
        _ => Err(format!("not a positive number of seconds: {v}")),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--registry" | "--registry-serve" | "--quick" => {}
            "--registry-test" | "--test" | "--tests" => {
                o.tests = value()?
                    .split(',')
                    .map(|t| Test::parse(t).ok_or(format!("unknown registry test {t:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--framework" | "--frameworks" => {
                o.frameworks = crate::bench::framework_list(&value()?, &FRAMEWORKS)?;
            }
            "--runs" => o.runs = list(&value()?)?[0],
            "--kills" => o.kills = list(&value()?)?[0],
            "--crashes" => o.crashes = list(&value()?)?[0],
            "--idle-runs" => o.idle_runs = list(&value()?)?[0],
            "--writers" => o.writers = list(&value()?)?[0],
            "--secs" => o.secs = seconds(value()?)?,
            "--samples" => o.samples = list(&value()?)?[0],
            "--lookups" => o.lookups = list(&value()?)?[0] as u64,
            "--idle-nodes" => o.idle_nodes = list(&value()?)?,
            "--idle-secs" => o.idle_secs = seconds(value()?)?,
            "--idle-standbys" => {
                let v = value()?;
                o.idle_standbys = Some(v.parse().map_err(|_| format!("not a number: {v}"))?);
            }
            "--etcd-heartbeat" => o.timing.heartbeat_ms = list(&value()?)?[0] as u64,
            "--etcd-election" => o.timing.election_ms = list(&value()?)?[0] as u64,
            "--nodes" => o.nodes = list(&value()?)?[0],
            "--no-registry" => o.no_registry = true,
            "--seed" => {
                let v = value()?;
                o.seed = Some(v.parse().map_err(|_| format!("not an address: {v}"))?);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// Entry point for every `--registry*` invocation.
pub fn main(args: &[String]) -> ExitCode {
    let mut opts = match parse(args) {
        Ok(o) => o,
        Err(e) => return crate::bench::usage_exit(&e, USAGE),
    };
    if args.iter().any(|a| a == "--registry-serve") {
        let seed = opts.seed.expect("--registry-serve needs --seed");
        ours::serve(opts.nodes, seed, ours::idle_config(&opts));
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--registry-test") {
        let (test, fw) = (opts.tests[0], opts.frameworks[0].clone());
        if !measures(&fw, test) {
            let e = format!("{fw} does not measure {}", test.name());
            return crate::bench::usage_exit(&e, USAGE);
        }
        let m = measure(test, &fw, &opts);
        let fields: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("RESULT {fw} {} {}", test.name(), fields.join(" "));
        // The nodes and their tasks need no orderly shutdown.
        std::process::exit(0);
    }
    if opts.frameworks.iter().any(|f| f.starts_with("etcd")) && !etcd::installed() {
        println!("etcd: not installed (apt-get install etcd-server); its columns are left out");
        opts.frameworks.retain(|f| !f.starts_with("etcd"));
        if opts.frameworks.is_empty() {
            return ExitCode::FAILURE;
        }
    }
    driver(&opts)
}

/// One measurement in this process.
fn measure(test: Test, fw: &str, o: &Opts) -> Metrics {
    let run = Duration::from_secs_f64(o.secs);
    let window = Duration::from_secs_f64(o.idle_secs);
    let settle = Duration::from_secs_f64((o.idle_secs / 2.0).max(1.0));
    let (writers, samples, lookups, timing) = (o.writers, o.samples, o.lookups, o.timing);
    let (nodes, registry) = (o.nodes, ours::idle_config(o));
    let fw = fw.to_owned();
    runtime().block_on(async move {
        tokio::spawn(async move {
            if fw == OPENRAFT {
                return match test {
                    Test::Write => openraft::write(writers, run).await,
                    Test::Latency => openraft::latency(samples).await,
                    other => unreachable!("{OPENRAFT} does not measure {}", other.name()),
                };
            }
            let store = match fw.as_str() {
                "understudy-mem" => Ok(Store::Memory),
                "understudy-disk" => Ok(Store::Disk),
                "etcd-tmpfs" => Err(Storage::Tmpfs),
                "etcd-disk" => Err(Storage::Disk),
                other => panic!("unknown framework {other:?}"),
            };
            match (test, store) {
                (Test::Write, Ok(s)) => ours::write(s, writers, run).await,
                (Test::Write, Err(s)) => theirs::write(s, timing, writers, run).await,
                (Test::Latency, Ok(s)) => ours::latency(s, samples).await,
                (Test::Latency, Err(s)) => theirs::latency(s, timing, samples).await,
                (Test::Lookup, Ok(s)) => ours::lookup(s, lookups, samples).await,
                (Test::Lookup, Err(s)) => theirs::lookup(s, timing, samples).await,
                (Test::Failover, Ok(s)) => ours::failover(s).await,
                (Test::Failover, Err(s)) => theirs::failover(s, timing).await,
                (Test::Idle, Ok(_)) => ours::idle(nodes, registry, settle, window).await,
                (Test::Idle, Err(s)) => theirs::idle(s, timing, settle, window).await,
                (Test::Spawn, Ok(s)) if nodes == spawn::FAILOVER_NODES => spawn::failover(s).await,
                (Test::Spawn, Ok(s)) => spawn::calls(s, samples, lookups / 10).await,
                (Test::Spawn, Err(_)) => unreachable!("etcd has no spawn_named"),
                (Test::Eventual, Ok(_)) => eventual::visibility(samples / 2).await,
                (Test::Eventual, Err(_)) => unreachable!("etcd has no Eventual names"),
            }
        })
        .await
        .expect("measurement task")
    })
}

/// A cell of the results: (test, framework, cluster size or 0, metric).
type Key = (&'static str, String, usize, String);
type Results = BTreeMap<Key, Vec<f64>>;

/// What one child process measures.
struct Job {
    fw: String,
    /// The idle test's cluster size (0 otherwise).
    nodes: usize,
    with_registry: bool,
}

/// Whether column `fw` has a figure for `test`.
fn measures(fw: &str, test: Test) -> bool {
    match test {
        Test::Spawn => fw.starts_with("understudy"),
        // No Raft store in it to speak of: the memory column only.
        Test::Eventual => fw == "understudy-mem",
        _ => fw != OPENRAFT || OPENRAFT_TESTS.contains(&test),
    }
}

/// The jobs of one round of `test`, the framework order rotated by `round`.
fn jobs(o: &Opts, test: Test, round: usize) -> Vec<Job> {
    let fws: Vec<String> = match test {
        // The store plays no part: the first framework of each system.
        Test::Lookup | Test::Idle => ["understudy", "etcd"]
            .iter()
            .filter_map(|sys| o.frameworks.iter().find(|f| f.starts_with(sys)).cloned())
            .collect(),
        _ => o
            .frameworks
            .iter()
            .filter(|fw| measures(fw, test))
            .cloned()
            .collect(),
    };
    let n = fws.len();
    let rotated = (0..n).map(|i| fws[(i + round) % n].clone());
    let mut out = Vec::new();
    for fw in rotated {
        if test == Test::Spawn {
            // The calls on 3 nodes for `runs` rounds, the failover on 5 for `crashes`.
            for (nodes, rounds) in [(3, o.runs), (spawn::FAILOVER_NODES, o.crashes)] {
                if round < rounds {
                    out.push(Job {
                        fw: fw.clone(),
                        nodes,
                        with_registry: true,
                    });
                }
            }
        } else if test == Test::Idle && fw.starts_with("understudy") {
            for &nodes in &o.idle_nodes {
                for with_registry in [true, false] {
                    out.push(Job {
                        fw: fw.clone(),
                        nodes,
                        with_registry,
                    });
                }
            }
        } else {
            out.push(Job {
                fw,
                nodes: if test == Test::Idle { 3 } else { 0 },
                with_registry: true,
            });
        }
    }
    out
}

fn driver(o: &Opts) -> ExitCode {
    let exe = std::env::current_exe().expect("current_exe");
    eprintln!(
        "understudy-benches --registry: {} run(s) each, {} kills, {} idle run(s); write: {} writers x {} s; latency: {} samples; lookup: {} lookups; idle: {:?} nodes, {} s; etcd heartbeat {} ms, election {} ms",
        o.runs,
        o.kills,
        o.idle_runs,
        o.writers,
        o.secs,
        o.samples,
        o.lookups,
        o.idle_nodes,
        o.idle_secs,
        o.timing.heartbeat_ms,
        o.timing.election_ms
    );
    let mut results = Results::new();
    let mut failed: Vec<String> = Vec::new();
    for &test in &o.tests {
        let rounds = match test {
            Test::Failover => o.kills,
            Test::Idle => o.idle_runs,
            Test::Spawn => o.runs.max(o.crashes),
            _ => o.runs,
        };
        for round in 0..rounds {
            for job in jobs(o, test, round) {
                eprint!(
                    "{} {}/{} {:<9} {:<16} {:>3}{} ",
                    if test == Test::Failover {
                        "kill"
                    } else {
                        "run"
                    },
                    round + 1,
                    rounds,
                    test.name(),
                    job.fw,
                    if job.nodes > 0 {
                        job.nodes.to_string()
                    } else {
                        String::new()
                    },
                    if job.with_registry {
                        ""
                    } else {
                        " (no registry)"
                    }
                );
                let mut cmd = Command::new(&exe);
                cmd.args(["--registry-test", test.name(), "--framework", &job.fw])
                    .args(["--writers", &o.writers.to_string()])
                    .args(["--secs", &o.secs.to_string()])
                    .args(["--samples", &o.samples.to_string()])
                    .args(["--lookups", &o.lookups.to_string()])
                    .args(["--idle-secs", &o.idle_secs.to_string()])
                    .args(["--etcd-heartbeat", &o.timing.heartbeat_ms.to_string()])
                    .args(["--etcd-election", &o.timing.election_ms.to_string()]);
                if job.nodes > 0 {
                    cmd.args(["--nodes", &job.nodes.to_string()]);
                }
                if !job.with_registry {
                    cmd.arg("--no-registry");
                }
                if let Some(n) = o.idle_standbys {
                    cmd.args(["--idle-standbys", &n.to_string()]);
                }
                let Some(fields) = crate::bench::run_measurement(&mut cmd) else {
                    // One failed process (its stderr is above) loses one sample, not the run.
                    failed.push(format!(
                        "{} {} {}{}",
                        test.name(),
                        job.fw,
                        if job.nodes > 0 {
                            format!("{} nodes", job.nodes)
                        } else {
                            String::new()
                        },
                        if job.with_registry {
                            ""
                        } else {
                            " (no registry)"
                        }
                    ));
                    continue;
                };
                for (k, v) in fields {
                    let k = if job.with_registry {
                        k
                    } else {
                        format!("base_{k}")
                    };
                    results
                        .entry((test.name(), job.fw.clone(), job.nodes, k))
                        .or_default()
                        .push(v);
                }
            }
        }
    }
    print_tables(o, &results);
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!(
            "\n**Failed measurements** (left out above): {}",
            failed.join("; ")
        );
        ExitCode::FAILURE
    }
}

// ------------------------------------------------------------------------------------------
// Tables.

/// A bound on one column's value.
#[derive(Clone, Copy)]
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

struct Row {
    test: Test,
    size: usize,
    metric: &'static str,
    label: String,
    higher_is_better: bool,
    /// The targets, per column (none: shown for information).
    targets: Vec<(&'static str, Bound)>,
}

fn rows(o: &Opts) -> Vec<Row> {
    use Bound::*;
    let mut rows = Vec::new();
    let mut r = |test, metric, label: String, hib, targets: Vec<(&'static str, Bound)>| {
        if o.tests.contains(&test) {
            rows.push(Row {
                test,
                size: 0,
                metric,
                label,
                higher_is_better: hib,
                targets,
            })
        }
    };
    let w = o.writers;
    let both = |b: Bound| vec![("understudy-mem", b), ("understudy-disk", b)];
    r(
        Test::Write,
        "regs_per_s",
        format!("registrations/s, {w} concurrent writers on the leader's node"),
        true,
        vec![
            ("understudy-mem", AtLeast(50_000.0)),
            ("understudy-disk", AtLeast(20_000.0)),
        ],
    );
    r(
        Test::Write,
        "cpu_us_per_reg",
        "CPU per registration, all 3 voters and the writers (µs)".into(),
        false,
        vec![],
    );
    r(
        Test::Write,
        "load_p50_ms",
        format!("one registration among {w} writers, p50 (ms)"),
        false,
        vec![],
    );
    r(
        Test::Write,
        "load_p99_ms",
        format!("one registration among {w} writers, p99 (ms)"),
        false,
        vec![],
    );
    r(
        Test::Latency,
        "leader_p50_ms",
        "register, 1 writer on the leader's node, p50 (ms)".into(),
        false,
        both(AtMost(2.0)),
    );
    r(
        Test::Latency,
        "leader_p99_ms",
        "register, 1 writer on the leader's node, p99 (ms)".into(),
        false,
        both(AtMost(5.0)),
    );
    r(
        Test::Latency,
        "follower_p50_ms",
        "register, 1 writer on a follower's node, p50 (ms)".into(),
        false,
        vec![],
    );
    r(
        Test::Latency,
        "follower_p99_ms",
        "register, 1 writer on a follower's node, p99 (ms)".into(),
        false,
        vec![],
    );
    let mem = |b: Bound| vec![("understudy-mem", b)];
    r(
        Test::Lookup,
        "remote_ns",
        "whereis from the local copy, holder on another node, median (ns)".into(),
        false,
        mem(AtMost(100.0)),
    );
    r(
        Test::Lookup,
        "remote_per_s",
        "whereis from the local copy, holder on another node (lookups/s, 1 thread)".into(),
        true,
        mem(AtLeast(10e6)),
    );
    r(
        Test::Lookup,
        "local_ns",
        "whereis from the local copy, local holder, median (ns)".into(),
        false,
        mem(AtMost(100.0)),
    );
    r(
        Test::Lookup,
        "local_per_s",
        "whereis from the local copy, local holder (lookups/s, 1 thread)".into(),
        true,
        mem(AtLeast(10e6)),
    );
    r(
        Test::Lookup,
        "remote_per_cpu_s",
        "whereis, holder on another node (lookups per CPU-second of the looping thread)".into(),
        true,
        vec![],
    );
    r(
        Test::Lookup,
        "local_per_cpu_s",
        "whereis, local holder (lookups per CPU-second of the looping thread)".into(),
        true,
        vec![],
    );
    r(
        Test::Lookup,
        "serializable_p99_us",
        "etcd serializable get from a follower, p99 (µs)".into(),
        false,
        vec![],
    );
    r(
        Test::Lookup,
        "lin_p50_us",
        "linearizable lookup on a follower, p50 (µs)".into(),
        false,
        vec![],
    );
    r(
        Test::Lookup,
        "lin_p99_us",
        "linearizable lookup on a follower, p99 (µs)".into(),
        false,
        vec![],
    );
    r(
        Test::Failover,
        "failover_ms",
        "leader crash → next successful write from a survivor (ms)".into(),
        false,
        both(AtMost(1000.0)),
    );
    r(
        Test::Failover,
        "elected_ms",
        "leader crash → the survivor knows a new leader (ms)".into(),
        false,
        vec![],
    );
    r(
        Test::Failover,
        "attempts",
        "leader crash: write attempts until one succeeded".into(),
        false,
        vec![],
    );
    if o.tests.contains(&Test::Spawn) {
        rows.extend(spawn::rows());
    }
    if o.tests.contains(&Test::Eventual) {
        rows.extend(eventual::rows());
    }
    rows
}

fn column(fw: &str) -> &str {
    match fw {
        "understudy-mem" => "mem",
        "understudy-disk" => "disk",
        other => other,
    }
}

type Pick<'a> = &'a dyn Fn(&[f64], &Row) -> f64;

fn print_tables(o: &Opts, results: &Results) {
    let fws = &o.frameworks;
    let get = |row: &Row, fw: &str| {
        results.get(&(
            row.test.name(),
            fw.to_owned(),
            row.size,
            row.metric.to_owned(),
        ))
    };
    // The rows some column has a value for; each line starts with the row's label and one
    // cell per column, `cell` of its values (or "–").
    let rows: Vec<Row> = rows(o)
        .into_iter()
        .filter(|row| fws.iter().any(|fw| get(row, fw).is_some()))
        .collect();
    let cells = |row: &Row, cell: &dyn Fn(&[f64]) -> String| {
        let mut line = format!("| {} |", row.label);
        for fw in fws {
            line.push_str(&format!(
                " {} |",
                get(row, fw).map_or("–".into(), |v| cell(v))
            ));
        }
        line
    };
    let picks: [(&str, Pick); 2] = [
        ("Median", &|v: &[f64], _: &Row| median(v)),
        ("Best", &|v: &[f64], r: &Row| best(v, r.higher_is_better)),
    ];
    for (title, pick) in picks {
        println!(
            "\n### {title} of {} runs (failover: of {} kills; spawn's failover: of {} crashes; \
             idle: of {} runs)\n",
            o.runs, o.kills, o.crashes, o.idle_runs
        );
        println!(
            "| measurement | {} | target | result |\n|---|{}---|---|",
            fws.join(" | "),
            "---:|".repeat(fws.len())
        );
        for row in &rows {
            let mut line = cells(row, &|v| fmt_num(pick(v, row)));
            let mut target = Vec::new();
            let mut verdict = Vec::new();
            for (fw, bound) in &row.targets {
                let text = match *bound {
                    Bound::AtLeast(t) => format!("≥ {}", fmt_num(t)),
                    Bound::AtMost(t) => format!("≤ {}", fmt_num(t)),
                };
                target.push(format!("{text} ({})", column(fw)));
                if let Some(v) = get(row, fw) {
                    let v = pick(v, row);
                    let pass = match *bound {
                        Bound::AtLeast(t) => v >= t,
                        Bound::AtMost(t) => v <= t,
                    };
                    verdict.push(format!(
                        "{} {}",
                        column(fw),
                        if pass { "✅" } else { "❌ miss" }
                    ));
                }
            }
            if target.is_empty() {
                line.push_str(" (info) | |");
            } else {
                line.push_str(&format!(
                    " {} | {} |",
                    target.join(", "),
                    verdict.join(" · ")
                ));
            }
            println!("{line}");
        }
        if o.tests.contains(&Test::Idle) {
            print_idle(o, results, pick, title);
        }
    }

    println!("\n### Spread (min – max over the runs)\n");
    println!(
        "| measurement | {} |\n|---|{}",
        fws.join(" | "),
        "---:|".repeat(fws.len())
    );
    for row in &rows {
        println!(
            "{}",
            cells(row, &|v| format!(
                "{} – {}",
                fmt_num(best(v, false)),
                fmt_num(best(v, true))
            ))
        );
    }

    if o.tests.contains(&Test::Write) {
        println!(
            "\n### Interference: runnable-but-waiting thread time of the measuring process \
             during the write runs, % of wall time (median)\n"
        );
        println!(
            "| test | {} |\n|---|{}",
            fws.join(" | "),
            "---:|".repeat(fws.len())
        );
        let mut line = "| write |".to_owned();
        for fw in fws {
            match results.get(&("write", fw.clone(), 0, "runq_wait_pct".to_owned())) {
                Some(v) => line.push_str(&format!(" {:.1} |", median(v))),
                None => line.push_str(" – |"),
            }
        }
        println!("{line}");
    }
}

/// The idle table: the leader's process CPU with and without the registry, per cluster size,
/// and the registry's share at the largest size against the smallest (target: within 10%).
fn print_idle(o: &Opts, results: &Results, pick: Pick, title: &str) {
    let info = Row {
        test: Test::Idle,
        size: 0,
        metric: "",
        label: String::new(),
        higher_is_better: false,
        targets: vec![],
    };
    let cell = |fw: &str, n: usize, metric: &str| {
        results
            .get(&("idle", fw.to_owned(), n, metric.to_owned()))
            .map(|v| pick(v, &info))
    };
    let Some(fw) = o.frameworks.iter().find(|f| f.starts_with("understudy")) else {
        return;
    };
    let standbys = o
        .idle_standbys
        .map_or("the default 4".to_owned(), |n| n.to_string());
    println!(
        "\n#### Leader idle CPU ({}; ms of CPU per second; 5 voters at most, standbys at most {standbys})\n",
        title.to_lowercase()
    );
    println!(
        "| nodes | leader's process, with the registry | without it | the registry's share | \
         each other node, with / without | leader kept |\n|---:|---:|---:|---:|---:|---|"
    );
    let mut shares = Vec::new();
    for &n in &o.idle_nodes {
        let with = cell(fw, n, "leader_cpu_ms_per_s");
        let without = cell(fw, n, "base_leader_cpu_ms_per_s");
        let share = with.zip(without).map(|(a, b)| a - b);
        if let Some(s) = share {
            shares.push((n, s, with.unwrap_or(0.0)));
        }
        let show = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
        let kept = results
            .get(&("idle", fw.clone(), n, "leader_kept".to_owned()))
            .map_or("–".to_owned(), |v| {
                format!("{} of {}", v.iter().filter(|k| **k > 0.5).count(), v.len())
            });
        println!(
            "| {n} | {} | {} | {} | {} / {} | {kept} |",
            show(with),
            show(without),
            show(share),
            show(cell(fw, n, "other_cpu_ms_per_s_per_node")),
            show(cell(fw, n, "base_other_cpu_ms_per_s_per_node")),
        );
    }
    if let (Some(&(small, s_small, w_small)), Some(&(large, s_large, w_large))) =
        (shares.first(), shares.last())
        && small != large
    {
        let ratio = s_large / s_small;
        println!(
            "\nThe registry's share, {large} nodes / {small} nodes: **{ratio:.2}** (target ≤ 1.10: {}); \
             the leader's whole process: {:.2}",
            if ratio <= 1.10 { "✅" } else { "❌ miss" },
            w_large / w_small
        );
    }
    if let Some(etcd) = o.frameworks.iter().find(|f| f.starts_with("etcd"))
        && let Some(v) = cell(etcd, 3, "leader_cpu_ms_per_s")
    {
        println!(
            "\n{etcd}: the leader's process, 3 members, idle: {v:.2} ms of CPU per second \
             (heartbeat every {} ms)",
            o.timing.heartbeat_ms
        );
    }
}
