//! Cluster benchmarks (issue #3, point 9): understudy's QUIC mesh side by side with
//! ractor_cluster over TCP, and understudy's membership (convergence, failure detection).
//!
//! ```text
//! cargo run --release -- --cluster            # full run, tables on stdout
//! cargo run --release -- --cluster --quick    # smoke run
//! cargo run --release -- --cluster-test rtell --framework ractor_cluster   # one measurement
//! ```
//!
//! Like the local benchmarks, the driver never measures in its own process: each
//! (test, framework, size, run) is a child process, runs are interleaved with the framework
//! order rotated, and the tables show the best and the median run.

mod membership;
pub(crate) mod remote;

use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::time::Duration;

use crate::bench::Metrics;
pub(crate) use crate::bench::Stopwatch;
use remote::{RemoteSizes, RemoteTest};

/// Remote-actor frameworks, in table order. `understudy` and `ractor_cluster` both run as two
/// processes (one node each); `understudy-1proc` runs both understudy nodes in one process.
const FRAMEWORKS: [&str; 3] = ["understudy", "ractor_cluster", "understudy-1proc"];

const USAGE: &str = "\
understudy-benches --cluster: understudy's QUIC cluster vs ractor_cluster over TCP

USAGE:
  understudy-benches --cluster [OPTIONS]           driver: one child process per measurement
  understudy-benches --cluster-test T [--framework F] [OPTIONS]
                                                   one measurement in this process

OPTIONS:
  --test T,..        rtell | rask | converge | join | detect       [all five]
  --framework F,..   understudy | ractor_cluster | understudy-1proc  [all three]
                     (converge, join, detect: understudy only; ractor_cluster has no
                     membership)
  --quick            small sizes, 3 runs
  --runs N           runs per cell                                  [5; quick 3]
  --msgs N           remote tells per run                           [1000000; quick 100000]
  --asks N           sequential remote asks per run                 [20000; quick 2000]
  --nodes N,..       cluster sizes for converge and join            [10,30,50]
  --detect-nodes N,..  cluster sizes for detect                     [5,10]
  -h, --help         this text
";

/// A tokio multi-thread runtime with 2 workers, as for the local benchmarks (one per process).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// mean / p50 / p99 in µs of a set of latencies.
pub(crate) fn latency_metrics(mut lat: Vec<Duration>) -> Metrics {
    lat.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pct = |p: f64| us(lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]);
    let mean = lat.iter().map(|d| us(*d)).sum::<f64>() / lat.len() as f64;
    vec![
        ("mean_us", mean),
        ("p50_us", pct(0.50)),
        ("p99_us", pct(0.99)),
    ]
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Test {
    RTell,
    RAsk,
    Converge,
    Join,
    Detect,
}

impl Test {
    const ALL: [Test; 5] = [
        Test::RTell,
        Test::RAsk,
        Test::Converge,
        Test::Join,
        Test::Detect,
    ];
    fn name(self) -> &'static str {
        match self {
            Test::RTell => "rtell",
            Test::RAsk => "rask",
            Test::Converge => "converge",
            Test::Join => "join",
            Test::Detect => "detect",
        }
    }
    fn parse(s: &str) -> Option<Test> {
        Test::ALL.into_iter().find(|t| t.name() == s)
    }
    fn remote(self) -> bool {
        matches!(self, Test::RTell | Test::RAsk)
    }
}

struct Opts {
    tests: Vec<Test>,
    frameworks: Vec<String>,
    runs: usize,
    sizes: RemoteSizes,
    nodes: Vec<usize>,
    detect_nodes: Vec<usize>,
}

/// Entry point for every `--cluster*` invocation.
pub fn main(args: &[String]) -> ExitCode {
    // Diagnostics: `UNDERSTUDY_BENCH_LOG=understudy_cluster=debug` (a tracing filter).
    if let Ok(filter) = std::env::var("UNDERSTUDY_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    if let Some(i) = args.iter().position(|a| a == "--cluster-serve") {
        remote::serve(args.get(i + 1).map(String::as_str).unwrap_or(""));
        return ExitCode::SUCCESS;
    }
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => return crate::bench::usage_exit(&e, USAGE),
    };
    if args.iter().any(|a| a == "--cluster-test") {
        let (test, fw) = (opts.tests[0], opts.frameworks[0].as_str());
        let n = if test == Test::Detect {
            opts.detect_nodes[0]
        } else {
            opts.nodes[0]
        };
        let m = measure(test, fw, n, opts.sizes);
        let fields: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("RESULT {fw} {} {}", test.name(), fields.join(" "));
        // The nodes and their tasks need no orderly shutdown.
        std::process::exit(0);
    }
    driver(&opts)
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Opts {
        tests: Test::ALL.to_vec(),
        frameworks: FRAMEWORKS.iter().map(|s| s.to_string()).collect(),
        runs: if quick { 3 } else { 5 },
        sizes: if quick {
            RemoteSizes {
                msgs: 100_000,
                asks: 2_000,
            }
        } else {
            RemoteSizes {
                msgs: 1_000_000,
                asks: 20_000,
            }
        },
        nodes: vec![10, 30, 50],
        detect_nodes: vec![5, 10],
    };
    let list = crate::bench::positive_list;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--cluster" | "--quick" => {}
            "--cluster-test" | "--test" | "--tests" => {
                o.tests = value()?
                    .split(',')
                    .map(|t| Test::parse(t).ok_or(format!("unknown cluster test {t:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--framework" | "--frameworks" => {
                o.frameworks = crate::bench::framework_list(&value()?, &FRAMEWORKS)?;
            }
            "--runs" => o.runs = list(&value()?)?[0],
            "--msgs" => o.sizes.msgs = list(&value()?)?[0] as u64,
            "--asks" => o.sizes.asks = list(&value()?)?[0] as u64,
            "--nodes" => o.nodes = list(&value()?)?,
            "--detect-nodes" => o.detect_nodes = list(&value()?)?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// One measurement in this process.
fn measure(test: Test, fw: &str, nodes: usize, sizes: RemoteSizes) -> Metrics {
    match test {
        Test::RTell => remote::run(fw, RemoteTest::Tell, sizes),
        Test::RAsk => remote::run(fw, RemoteTest::Ask, sizes),
        Test::Converge | Test::Join | Test::Detect => {
            assert!(
                fw.starts_with("understudy"),
                "{} measures understudy's membership only",
                test.name()
            );
            runtime().block_on(async move {
                tokio::spawn(async move {
                    match test {
                        Test::Converge => membership::converge(nodes).await,
                        Test::Join => membership::join(nodes).await,
                        _ => membership::detect(nodes).await,
                    }
                })
                .await
                .expect("measurement task")
            })
        }
    }
}

/// A cell of the results: (test, framework or "understudy", cluster size or 0, metric).
type Key = (&'static str, String, usize, String);
type Results = BTreeMap<Key, Vec<f64>>;

/// What one child process measures.
struct Job {
    test: Test,
    fw: String,
    nodes: usize,
}

fn driver(o: &Opts) -> ExitCode {
    let exe = std::env::current_exe().expect("current_exe");
    eprintln!(
        "understudy-benches --cluster: {} run(s) each; msgs={} asks={} converge nodes={:?} detect nodes={:?}",
        o.runs, o.sizes.msgs, o.sizes.asks, o.nodes, o.detect_nodes
    );
    let mut results = Results::new();
    for run in 0..o.runs {
        for &test in &o.tests {
            let jobs: Vec<Job> = if test.remote() {
                let n = o.frameworks.len();
                (0..n)
                    .map(|i| Job {
                        test,
                        fw: o.frameworks[(i + run) % n].clone(),
                        nodes: 0,
                    })
                    .collect()
            } else {
                let sizes = if test == Test::Converge || test == Test::Join {
                    &o.nodes
                } else {
                    &o.detect_nodes
                };
                sizes
                    .iter()
                    .map(|&nodes| Job {
                        test,
                        fw: "understudy".into(),
                        nodes,
                    })
                    .collect()
            };
            for job in jobs {
                eprint!(
                    "run {}/{} {:<8} {:<16} {:>3} ",
                    run + 1,
                    o.runs,
                    job.test.name(),
                    job.fw,
                    if job.nodes > 0 {
                        job.nodes.to_string()
                    } else {
                        String::new()
                    }
                );
                let mut cmd = Command::new(&exe);
                cmd.args(["--cluster-test", job.test.name(), "--framework", &job.fw])
                    .args(["--msgs", &o.sizes.msgs.to_string()])
                    .args(["--asks", &o.sizes.asks.to_string()]);
                if job.nodes > 0 {
                    let flag = if job.test != Test::Detect {
                        "--nodes"
                    } else {
                        "--detect-nodes"
                    };
                    cmd.args([flag, &job.nodes.to_string()]);
                }
                let Some(fields) = crate::bench::run_measurement(&mut cmd) else {
                    return ExitCode::FAILURE;
                };
                for (k, v) in fields {
                    results
                        .entry((job.test.name(), job.fw.clone(), job.nodes, k))
                        .or_default()
                        .push(v);
                }
            }
        }
    }
    print_tables(o, &results);
    ExitCode::SUCCESS
}

/// How a row is judged against the issue's targets.
#[derive(Clone, Copy)]
enum Target {
    /// Shown for information.
    Info,
    /// understudy's value at least this, and better than ractor_cluster's.
    AtLeastAndAhead(f64),
    /// understudy's value at most this (no ractor_cluster counterpart).
    AtMost(f64),
    /// understudy's value at most this share of ractor_cluster's, in the same run.
    AtMostTimesTheirs(f64),
}

struct Row {
    test: Test,
    nodes: usize,
    metric: &'static str,
    label: String,
    higher_is_better: bool,
    target: Target,
}

fn rows(o: &Opts) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut r = |test, nodes, metric, label: String, hib, target| {
        if o.tests.contains(&test) {
            rows.push(Row {
                test,
                nodes,
                metric,
                label,
                higher_is_better: hib,
                target,
            })
        }
    };
    use Target::*;
    r(
        Test::RTell,
        0,
        "msgs_per_s",
        "remote tell 1→1, u64 (msgs/s)".into(),
        true,
        AtLeastAndAhead(1e6),
    );
    r(
        Test::RTell,
        0,
        "cpu_ns_per_msg",
        "remote tell, CPU per msg, both nodes (ns)".into(),
        false,
        Info,
    );
    r(
        Test::RTell,
        0,
        "overloaded",
        "remote tell, sends refused `Overloaded` (retried)".into(),
        false,
        Info,
    );
    r(
        Test::RAsk,
        0,
        "p50_us",
        "remote ask RTT p50 (µs)".into(),
        false,
        AtMostTimesTheirs(0.75),
    );
    r(
        Test::RAsk,
        0,
        "p99_us",
        "remote ask RTT p99 (µs)".into(),
        false,
        AtMostTimesTheirs(0.9),
    );
    r(
        Test::RAsk,
        0,
        "mean_us",
        "remote ask RTT mean (µs)".into(),
        false,
        Info,
    );
    r(
        Test::RAsk,
        0,
        "asks_per_s",
        "remote asks, sequential (asks/s)".into(),
        true,
        Info,
    );
    r(
        Test::RAsk,
        0,
        "cpu_ns_per_ask",
        "remote ask, CPU per ask, both nodes (ns)".into(),
        false,
        Info,
    );
    for &n in &o.nodes {
        let target = if n == 50 { AtMost(1.0) } else { Info };
        r(
            Test::Converge,
            n,
            "converge_s",
            format!("membership convergence, {n} nodes (s after last start)"),
            false,
            target,
        );
    }
    for &n in &o.nodes {
        let target = if n == 50 { AtMost(1.0) } else { Info };
        r(
            Test::Join,
            n,
            "join_converge_s",
            format!(
                "one join into a steady {}-node cluster: convergence to {n} (s)",
                n - 1
            ),
            false,
            target,
        );
    }
    for &n in &o.nodes {
        r(
            Test::Converge,
            n,
            "converge_cpu_s",
            format!("CPU used until convergence, {n} nodes (s, 2 cores)"),
            false,
            Info,
        );
        r(
            Test::Converge,
            n,
            "mesh_s",
            format!("full mesh (all connected), {n} nodes (s after last start)"),
            false,
            Info,
        );
        r(
            Test::Converge,
            n,
            "start_all_s",
            format!("starting all {n} nodes one by one (s)"),
            false,
            Info,
        );
    }
    for &n in &o.nodes {
        r(
            Test::Join,
            n,
            "join_mesh_s",
            format!("one join: every node connected to all, {n} nodes (s)"),
            false,
            Info,
        );
    }
    for &n in &o.detect_nodes {
        r(
            Test::Detect,
            n,
            "detect_all_s",
            format!("failure detection, {n} nodes: all others report Failed (s)"),
            false,
            AtMost(3.0),
        );
        r(
            Test::Detect,
            n,
            "detect_first_s",
            format!("failure detection, {n} nodes: first report (s)"),
            false,
            Info,
        );
        r(
            Test::Detect,
            n,
            "false_failures",
            format!("failure detection, {n} nodes: other nodes reported gone"),
            false,
            Info,
        );
    }
    rows
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

pub(crate) fn best(v: &[f64], higher_is_better: bool) -> f64 {
    let it = v.iter().copied();
    if higher_is_better {
        it.fold(f64::NEG_INFINITY, f64::max)
    } else {
        it.fold(f64::INFINITY, f64::min)
    }
}

pub(crate) fn fmt_num(x: f64) -> String {
    if x >= 10_000.0 {
        let s = format!("{x:.0}");
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if x >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

fn print_tables(o: &Opts, results: &Results) {
    let rows = rows(o);
    let fws = &o.frameworks;
    let get = |row: &Row, fw: &str| -> Option<&Vec<f64>> {
        let fw = if row.test.remote() { fw } else { "understudy" };
        results.get(&(
            row.test.name(),
            fw.to_owned(),
            row.nodes,
            row.metric.to_owned(),
        ))
    };
    for (title, pick) in [
        (
            "Median",
            &(|v: &[f64], _: &Row| median(v)) as &dyn Fn(&[f64], &Row) -> f64,
        ),
        ("Best", &|v: &[f64], r: &Row| best(v, r.higher_is_better)),
    ] {
        println!("\n### {title} of {} runs\n", o.runs);
        println!(
            "| measurement | {} | target | result |\n|---|{}---|---|",
            fws.join(" | "),
            "---:|".repeat(fws.len())
        );
        for row in &rows {
            let mut line = format!("| {} |", row.label);
            for fw in fws {
                let cell = if !row.test.remote() && fw != "understudy" {
                    "–".to_owned()
                } else {
                    get(row, fw).map_or("–".into(), |v| fmt_num(pick(v, row)))
                };
                line.push_str(&format!(" {cell} |"));
            }
            let ours = get(row, "understudy").map(|v| pick(v, row));
            let theirs = get(row, "ractor_cluster").map(|v| pick(v, row));
            let ahead = |better: &dyn Fn(f64, f64) -> bool| match (ours, theirs) {
                (Some(u), Some(r)) => Some(better(u, r)),
                _ => None,
            };
            let (target, ok) = match row.target {
                Target::Info => ("(info)".to_owned(), None),
                Target::AtLeastAndAhead(t) => (
                    format!("≥ {} and ahead of ractor_cluster", fmt_num(t)),
                    ours.map(|u| u >= t && ahead(&|u, r| u > r).unwrap_or(true)),
                ),
                Target::AtMost(t) => (format!("≤ {}", fmt_num(t)), ours.map(|u| u <= t)),
                Target::AtMostTimesTheirs(share) => (
                    match (ours, theirs) {
                        (Some(u), Some(r)) => {
                            format!("≤ {share}× ractor_cluster (here {:.2}×)", u / r)
                        }
                        _ => format!("≤ {share}× ractor_cluster"),
                    },
                    ours.zip(theirs).map(|(u, r)| u <= share * r),
                ),
            };
            let verdict = match ok {
                None if matches!(row.target, Target::Info) => String::new(),
                None => "–".into(),
                Some(true) => "✅".into(),
                Some(false) => "❌ miss".into(),
            };
            line.push_str(&format!(" {target} | {verdict} |"));
            println!("{line}");
        }
    }

    println!("\n### Spread (min – max over {} runs)\n", o.runs);
    println!(
        "| measurement | {} |\n|---|{}",
        fws.join(" | "),
        "---:|".repeat(fws.len())
    );
    for row in &rows {
        let mut line = format!("| {} |", row.label);
        for fw in fws {
            let cell = if !row.test.remote() && fw != "understudy" {
                "–".to_owned()
            } else {
                get(row, fw).map_or("–".into(), |v| {
                    format!("{} – {}", fmt_num(best(v, false)), fmt_num(best(v, true)))
                })
            };
            line.push_str(&format!(" {cell} |"));
        }
        println!("{line}");
    }

    println!(
        "\n### Interference: runnable-but-waiting thread time of the measuring process, % of wall \
         time (median; the peer process is not counted)\n"
    );
    println!(
        "| test | {} |\n|---|{}",
        fws.join(" | "),
        "---:|".repeat(fws.len())
    );
    for test in o.tests.iter().filter(|t| t.remote()) {
        let mut line = format!("| {} |", test.name());
        for fw in fws {
            match results.get(&(test.name(), fw.clone(), 0, "runq_wait_pct".to_owned())) {
                Some(v) => line.push_str(&format!(" {:.1} |", median(v))),
                None => line.push_str(" – |"),
            }
        }
        println!("{line}");
    }
}
