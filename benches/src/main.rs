//! Side-by-side benchmarks of understudy, raw ractor, kameo and actix.
//!
//! ```text
//! cargo run --release -- --all            # full run: every test x every framework, table
//! cargo run --release -- --all --quick    # smoke run (small sizes, 3 runs)
//! cargo run --release -- --framework ractor+cluster --test ask   # one measurement, one process
//! cargo run --release -- --cluster                       # cluster benchmarks (src/cluster)
//! cargo run --release -- --pg                            # process groups (src/pg.rs)
//! cargo run --release -- --registry                      # registry vs etcd (src/registry.rs)
//! ```
//!
//! Two builds are compared: with ractor's `cluster` feature (this binary: understudy's
//! default build, ractor with `cluster`, kameo, actix) and without it (the sibling binary
//! `understudy-benches-local`, package `local/`: understudy's local-only build and plain
//! ractor). Cargo unifies features within one build, so the two cannot be one binary; the
//! driver builds the sibling (`cargo build -p understudy-benches-local`) and runs both.
//!
//! The driver (`--all`) never measures in its own process: each measurement is a child
//! process (`--framework X --test T`) with a fresh runtime and a fresh allocator, so one
//! framework's heap never pollutes another's (this matters most for `memory`). Runs are
//! interleaved — run 1 of every framework, then run 2, ..., with the framework order rotated
//! each round — so a load change on the machine hits every framework alike. The table
//! shows the best and the median over the runs.

mod args;
mod bench;
mod cluster;
mod fw;
mod pg;
mod registry;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use args::Opts;
use bench::{Metrics, Sizes, Test};

/// The default set, in table order.
const FRAMEWORKS: [&str; 6] = [
    "understudy",
    "understudy+cluster",
    "ractor",
    "ractor+cluster",
    "kameo",
    "actix",
];
/// Also selectable with --framework: understudy with a hand-written Handler (what the
/// macros generate), to check that the generated path costs nothing extra, in each build.
const EXTRA_FRAMEWORKS: [&str; 2] = ["understudy-manual", "understudy-manual+cluster"];
/// Measured by `understudy-benches-local` (built without ractor's `cluster`); the others
/// by this binary.
const LOCAL_FRAMEWORKS: [&str; 3] = ["understudy", "understudy-manual", "ractor"];
const LOCAL_EXE: &str = "understudy-benches-local";

const USAGE: &str = "\
understudy-benches: understudy vs raw ractor, kameo and actix

USAGE:
  understudy-benches [--all] [OPTIONS]                 driver: runs each measurement in a
                                                       child process, prints the tables
  understudy-benches --framework F --test T [OPTIONS]  one measurement in a child process
                                                       of its own build, tables as above

OPTIONS:
  --all                 drive (the default)
  --framework F,..      understudy | understudy+cluster | ractor | ractor+cluster |
                        kameo | actix                                [all six]
                        understudy, ractor: built without ractor's `cluster` feature
                        (understudy's local-only build; plain ractor); +cluster: with it
                        (understudy's default build). Also: understudy-manual and
                        understudy-manual+cluster, a hand-written Handler
  --test T,..           tell1 | tell100 | ask | ask_untimed | spawn | memory   [all six]
                        ask: 5 s timeout (understudy's default); ask_untimed: none
  --quick               small sizes and 3 runs (a smoke run of a few seconds)
  --runs N              runs per (framework, test): best and median shown  [5; quick 3]
  --msgs N              messages per tell run                        [1000000; quick 100000]
  --asks N              sequential asks per ask run                  [100000; quick 10000]
  --spawns N            actors spawned per spawn run                 [100000; quick 10000]
  --idle N              idle actors for the memory run               [100000; quick 10000]
  --current-thread      diagnostic: tokio frameworks on a current-thread runtime (no
                        cross-thread wake-ups; for instruction counts under valgrind, run
                        one measurement in its own binary: understudy-benches for +cluster,
                        kameo, actix; understudy-benches-local for understudy, ractor)
  -h, --help            this text

  understudy-benches --cluster [--help]                cluster benchmarks: remote tell/ask vs
                                                       ractor_cluster, membership convergence,
                                                       failure detection (docs/BENCHMARKS.md)
  understudy-benches --pg [--help]                     process groups: join visibility on 5
                                                       nodes, broadcast throughput, get_members
                                                       vs ractor::pg, memory per node of a
                                                       group (docs/BENCHMARKS.md)
  understudy-benches --registry [--help]               the registry (Raft names) vs etcd:
                                                       registrations/s, write latency,
                                                       lookups, leader failover, leader idle
                                                       CPU (docs/BENCHMARKS.md)
";

fn main() -> ExitCode {
    // The cluster benchmarks (remote actors, membership) have their own driver and options.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a.starts_with("--cluster")) {
        return cluster::main(&args);
    }
    // Process groups (understudy::pg; lookups vs ractor::pg): their own driver too.
    if args.iter().any(|a| a.starts_with("--pg")) {
        return pg::main(&args);
    }
    // The registry (understudy::registry, Raft names) side by side with etcd: its own driver.
    if args.iter().any(|a| a.starts_with("--registry")) {
        return registry::main(&args);
    }
    let known: Vec<&str> = FRAMEWORKS
        .iter()
        .chain(&EXTRA_FRAMEWORKS)
        .copied()
        .collect();
    let opts = match args::parse(&args, &known, &FRAMEWORKS) {
        Ok(o) => o,
        Err(e) => return crate::bench::usage_exit(&e, USAGE),
    };
    let fw = opts.frameworks[0].as_str();
    if opts.driver || LOCAL_FRAMEWORKS.contains(&fw) {
        // A framework of the other build is measured by its binary, through the driver.
        driver(&opts)
    } else {
        let metrics = measure(fw, opts.tests[0], opts.sizes, opts.current_thread);
        bench::print_result(fw, opts.tests[0], &metrics);
        ExitCode::SUCCESS
    }
}

/// One measurement (warm-up included) of `test` on framework `fw`, in this process.
fn measure(fw: &str, test: Test, sizes: Sizes, ct: bool) -> Metrics {
    match fw {
        "understudy+cluster" => fw::run_tokio(
            ct,
            bench::run(fw::understudy::Understudy::new(), test, sizes),
        ),
        "understudy-manual+cluster" => {
            fw::run_tokio(ct, bench::run(fw::understudy::Manual::new(), test, sizes))
        }
        "ractor+cluster" => fw::run_tokio(ct, bench::run(fw::ractor::Ractor, test, sizes)),
        "kameo" => fw::run_tokio(ct, bench::run(fw::kameo::Kameo, test, sizes)),
        "actix" => fw::actix::run_actix(bench::run(fw::actix::Actix, test, sizes)),
        _ => unreachable!("local frameworks are measured by {LOCAL_EXE}"),
    }
}

/// The arguments that give a measurement process the same sizes and runtime flavour.
fn child_args(opts: &Opts) -> Vec<String> {
    let s = opts.sizes;
    let mut out: Vec<String> = [
        ("--msgs", s.msgs),
        ("--asks", s.asks),
        ("--spawns", s.spawns),
        ("--idle", s.idle),
    ]
    .iter()
    .flat_map(|(k, v)| [k.to_string(), v.to_string()])
    .collect();
    if opts.current_thread {
        out.push("--current-thread".into());
    }
    out
}

/// (framework, test, metric) -> one value per run.
type Results = BTreeMap<(String, &'static str, String), Vec<f64>>;

/// Builds `understudy-benches-local` (same profile as this binary; a no-op when it is up to
/// date) and returns its path, next to this binary.
fn local_exe() -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("current_exe: {e}"))?
        .with_file_name(LOCAL_EXE);
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(&cargo)
        .args(["build", "--quiet", "--profile", profile, "-p", LOCAL_EXE])
        .args(["--manifest-path", manifest])
        .status();
    match built {
        Ok(s) if s.success() && exe.exists() => Ok(exe),
        Ok(s) => Err(format!(
            "building {LOCAL_EXE} failed ({s}); build it alone: \
             cargo build --release -p {LOCAL_EXE} --manifest-path {manifest}"
        )),
        // No cargo here (a copied binary): use the sibling if it is there.
        Err(_) if exe.exists() => Ok(exe),
        Err(e) => Err(format!(
            "{LOCAL_EXE} is not next to this binary and `{cargo}` did not run ({e}): \
             cargo build --release -p {LOCAL_EXE} --manifest-path {manifest}"
        )),
    }
}

fn driver(opts: &Opts) -> ExitCode {
    let exe = std::env::current_exe().expect("current_exe");
    let local = if opts
        .frameworks
        .iter()
        .any(|f| LOCAL_FRAMEWORKS.contains(&f.as_str()))
    {
        match local_exe() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let s = opts.sizes;
    eprintln!(
        "understudy-benches: {} run(s) each; msgs={} asks={} spawns={} idle={}{}; one process per measurement",
        opts.runs,
        s.msgs,
        s.asks,
        s.spawns,
        s.idle,
        if opts.current_thread {
            "; current-thread runtime"
        } else {
            ""
        }
    );
    let mut results = Results::new();
    for run in 0..opts.runs {
        for &test in &opts.tests {
            let n = opts.frameworks.len();
            for i in 0..n {
                let fw = &opts.frameworks[(i + run) % n];
                eprint!(
                    "run {}/{} {:<11} {:<18} ",
                    run + 1,
                    opts.runs,
                    test.name(),
                    fw
                );
                let mut cmd = match &local {
                    Some(local) if LOCAL_FRAMEWORKS.contains(&fw.as_str()) => Command::new(local),
                    _ => Command::new(&exe),
                };
                cmd.args(["--framework", fw, "--test", test.name()])
                    .args(child_args(opts));
                let Some(fields) = bench::run_measurement(&mut cmd) else {
                    return ExitCode::FAILURE;
                };
                for (k, v) in fields {
                    results
                        .entry((fw.clone(), test.name(), k))
                        .or_default()
                        .push(v);
                }
            }
        }
    }
    print_tables(opts, &results);
    ExitCode::SUCCESS
}

/// A row of the table: which metric, how to show it, and the issue's target for
/// understudy/ractor (`None`: shown for information).
struct Row {
    test: &'static str,
    metric: &'static str,
    label: &'static str,
    higher_is_better: bool,
    /// Allowed shortfall of understudy vs ractor (0.10 = within 10%).
    tolerance: Option<f64>,
}

const fn row(
    test: &'static str,
    metric: &'static str,
    label: &'static str,
    higher_is_better: bool,
    tolerance: Option<f64>,
) -> Row {
    Row {
        test,
        metric,
        label,
        higher_is_better,
        tolerance,
    }
}

const ROWS: [Row; 17] = [
    row("tell1", "msgs_per_s", "tell 1→1 (msgs/s)", true, Some(0.10)),
    row(
        "tell1",
        "cpu_ns_per_msg",
        "tell 1→1, CPU per msg (ns)",
        false,
        None,
    ),
    row(
        "tell100",
        "msgs_per_s",
        "tell 1→100 round-robin (msgs/s)",
        true,
        Some(0.10),
    ),
    row(
        "tell100",
        "cpu_ns_per_msg",
        "tell 1→100, CPU per msg (ns)",
        false,
        None,
    ),
    row(
        "ask",
        "asks_per_s",
        "ask 5 s timeout, sequential (asks/s)",
        true,
        Some(0.10),
    ),
    row(
        "ask",
        "mean_us",
        "ask 5 s, latency mean (µs)",
        false,
        Some(0.10),
    ),
    row(
        "ask",
        "p50_us",
        "ask 5 s, latency p50 (µs)",
        false,
        Some(0.10),
    ),
    row(
        "ask",
        "p99_us",
        "ask 5 s, latency p99 (µs)",
        false,
        Some(0.10),
    ),
    row(
        "ask",
        "cpu_ns_per_ask",
        "ask 5 s, CPU per ask (ns)",
        false,
        None,
    ),
    row(
        "ask_untimed",
        "asks_per_s",
        "ask untimed, sequential (asks/s)",
        true,
        Some(0.10),
    ),
    row(
        "ask_untimed",
        "mean_us",
        "ask untimed, latency mean (µs)",
        false,
        Some(0.10),
    ),
    row(
        "ask_untimed",
        "p50_us",
        "ask untimed, latency p50 (µs)",
        false,
        Some(0.10),
    ),
    row(
        "ask_untimed",
        "p99_us",
        "ask untimed, latency p99 (µs)",
        false,
        Some(0.10),
    ),
    row(
        "ask_untimed",
        "cpu_ns_per_ask",
        "ask untimed, CPU per ask (ns)",
        false,
        None,
    ),
    row(
        "spawn",
        "actors_per_s",
        "spawn, sequential (actors/s)",
        true,
        Some(0.10),
    ),
    row(
        "spawn",
        "cpu_ns_per_actor",
        "spawn, CPU per actor (ns)",
        false,
        None,
    ),
    row(
        "memory",
        "bytes_per_actor",
        "memory per idle actor (bytes)",
        false,
        Some(0.05),
    ),
];

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The best run: the highest rate, the lowest time or size. Other load on the machine only
/// ever makes a run slower, so the best run is the least disturbed one.
fn best(v: &[f64], higher_is_better: bool) -> f64 {
    let it = v.iter().copied();
    if higher_is_better {
        it.fold(f64::NEG_INFINITY, f64::max)
    } else {
        it.fold(f64::INFINITY, f64::min)
    }
}

fn fmt_num(x: f64) -> String {
    if x >= 10_000.0 {
        // Thousands separators for the big rates.
        let s = format!("{:.0}", x);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// Picks one number out of a cell's runs (the best or the median).
type Pick<'a> = &'a dyn Fn(&[f64], &Row) -> f64;

/// A ratio column: `num / den` of the same row, with understudy's target when it has one.
struct Ratio {
    num: &'static str,
    den: &'static str,
    with_target: bool,
}

const RATIOS: [Ratio; 2] = [
    Ratio {
        num: "understudy",
        den: "ractor",
        with_target: true,
    },
    Ratio {
        num: "understudy+cluster",
        den: "ractor+cluster",
        with_target: false,
    },
];

/// What turning on `cluster` costs: ractor's own price, and understudy's cluster build
/// against the plain ractor a local-only program would use.
const TAX: [Ratio; 3] = [
    Ratio {
        num: "ractor+cluster",
        den: "ractor",
        with_target: false,
    },
    Ratio {
        num: "understudy+cluster",
        den: "ractor",
        with_target: false,
    },
    Ratio {
        num: "understudy+cluster",
        den: "understudy",
        with_target: false,
    },
];

fn print_tables(opts: &Opts, results: &Results) {
    let fws = &opts.frameworks;
    let get = |fw: &str, test: &str, metric: &str| cell(results, fw, test, metric);
    let has = |fw: &str| fws.iter().any(|f| f == fw);
    let ratios: Vec<&Ratio> = RATIOS.iter().filter(|r| has(r.num) && has(r.den)).collect();
    let tax: Vec<&Ratio> = TAX.iter().filter(|r| has(r.num) && has(r.den)).collect();
    let rows: Vec<&Row> = ROWS
        .iter()
        .filter(|r| opts.tests.iter().any(|t| t.name() == r.test))
        .collect();
    // `num / den` of a row, if both were measured.
    let ratio = |r: &Ratio, row: &Row, pick: Pick| -> Option<f64> {
        let (n, d) = (
            get(r.num, row.test, row.metric)?,
            get(r.den, row.test, row.metric)?,
        );
        Some(pick(n, row) / pick(d, row))
    };

    let picks: [(&str, Pick); 2] = [
        ("Best", &|v: &[f64], r: &Row| best(v, r.higher_is_better)),
        ("Median", &|v: &[f64], _: &Row| median(v)),
    ];
    for (title, pick) in picks {
        println!("\n### {title} of {} runs\n", opts.runs);
        let mut header = format!("| measurement | {} |", fws.join(" | "));
        let mut rule = format!("|---|{}", "---:|".repeat(fws.len()));
        for r in &ratios {
            header.push_str(&format!(" {}/{} |", r.num, r.den));
            rule.push_str("---:|");
            if r.with_target {
                header.push_str(" target |");
                rule.push_str("---|");
            }
        }
        println!("{header}\n{rule}");
        for row in &rows {
            let mut line = format!("| {} |", row.label);
            for fw in fws {
                match get(fw, row.test, row.metric) {
                    Some(v) => line.push_str(&format!(" {} |", fmt_num(pick(v, row)))),
                    None => line.push_str(" – |"),
                }
            }
            for r in &ratios {
                let value = ratio(r, row, pick);
                match value {
                    Some(x) => line.push_str(&format!(" {x:.3} |")),
                    None => line.push_str(" – |"),
                }
                if r.with_target {
                    line.push_str(&match (value, row.tolerance) {
                        (Some(x), Some(tol)) => {
                            let (ok, bound) = if row.higher_is_better {
                                (x >= 1.0 - tol, format!("≥ {:.2}", 1.0 - tol))
                            } else {
                                (x <= 1.0 + tol, format!("≤ {:.2}", 1.0 + tol))
                            };
                            format!(" {bound} {} |", if ok { "✅" } else { "❌ miss" })
                        }
                        (Some(_), None) => " (info) |".to_owned(),
                        (None, _) => " – |".to_owned(),
                    });
                }
            }
            println!("{line}");
        }

        if !tax.is_empty() {
            println!(
                "\n#### The `cluster` tax ({}): ratios, > 1 costs more for times and sizes, \
                 < 1 for rates\n",
                title.to_lowercase()
            );
            let names: Vec<String> = tax.iter().map(|r| format!("{}/{}", r.num, r.den)).collect();
            print_header("measurement", &names);
            for row in &rows {
                let mut line = format!("| {} |", row.label);
                for r in &tax {
                    match ratio(r, row, pick) {
                        Some(x) => line.push_str(&format!(" {x:.3} |")),
                        None => line.push_str(" – |"),
                    }
                }
                println!("{line}");
            }
        }

        print_ask_timer_target(title, pick, results, fws);
    }

    println!("\n### Spread (min – max over {} runs)\n", opts.runs);
    print_header("measurement", fws);
    for row in &rows {
        let mut line = format!("| {} |", row.label);
        for fw in fws {
            match get(fw, row.test, row.metric) {
                Some(v) => line.push_str(&format!(
                    " {} – {} |",
                    fmt_num(best(v, false)),
                    fmt_num(best(v, true))
                )),
                None => line.push_str(" – |"),
            }
        }
        println!("{line}");
    }

    println!(
        "\n### Interference: time this process's threads were runnable but waited for a CPU, \
         summed over its threads, as % of the measured wall time (median; 0 on an idle machine)\n"
    );
    print_header("test", fws);
    for test in &opts.tests {
        if *test == Test::Memory {
            continue;
        }
        let mut line = format!("| {} |", test.name());
        for fw in fws {
            match get(fw, test.name(), "runq_wait_pct") {
                Some(v) => line.push_str(&format!(" {:.1} |", median(v))),
                None => line.push_str(" – |"),
            }
        }
        println!("{line}");
    }
}

/// A markdown table's header: `first`, then one right-aligned column per name.
fn print_header(first: &str, columns: &[String]) {
    println!(
        "| {first} | {} |\n|---|{}",
        columns.join(" | "),
        "---:|".repeat(columns.len())
    );
}

/// The price of understudy's default ask timeout: its timed ask against ractor's untimed
/// `call(msg, None)` in the same build (target: p50 at most 1.3x).
fn print_ask_timer_target(title: &str, pick: Pick, results: &Results, fws: &[String]) {
    let get = |fw: &str, test: &str, metric: &str| cell(results, fw, test, metric);
    const TARGET: f64 = 1.3;
    let pairs = [
        ("understudy", "ractor"),
        ("understudy+cluster", "ractor+cluster"),
    ];
    let mut lines = Vec::new();
    for (us, them) in pairs {
        if !fws.iter().any(|f| f == us) || !fws.iter().any(|f| f == them) {
            continue;
        }
        for metric in ["p50_us", "mean_us"] {
            let row = ROWS
                .iter()
                .find(|r| r.test == "ask" && r.metric == metric)
                .expect("ask rows");
            let (Some(timed), Some(call)) =
                (get(us, "ask", metric), get(them, "ask_untimed", metric))
            else {
                continue;
            };
            let x = pick(timed, row) / pick(call, row);
            let verdict = match metric {
                "p50_us" if x <= TARGET => format!("≤ {TARGET:.1} ✅"),
                "p50_us" => format!("≤ {TARGET:.1} ❌ miss"),
                _ => "(info)".to_owned(),
            };
            lines.push(format!(
                "| {us} ask (5 s) / {them} call(msg, None), {} | {x:.3} | {verdict} |",
                &metric[..metric.len() - 3]
            ));
        }
    }
    if !lines.is_empty() {
        println!(
            "\n#### The price of the default ask timeout ({})\n\n| ratio | value | target |\n|---|---:|---|",
            title.to_lowercase()
        );
        for l in lines {
            println!("{l}");
        }
    }
}

/// The runs of one cell of the tables, if it was measured.
fn cell<'a>(results: &'a Results, fw: &str, test: &str, metric: &str) -> Option<&'a Vec<f64>> {
    let test = Test::parse(test).map(Test::name).unwrap_or("");
    results.get(&(fw.to_owned(), test, metric.to_owned()))
}
