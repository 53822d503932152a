//! Side-by-side benchmarks of understudy, raw ractor, kameo and actix.
//!
//! ```text
//! cargo run --release -- --all            # full run: every test x every framework, table
//! cargo run --release -- --all --quick    # smoke run (small sizes, 3 runs)
//! cargo run --release -- --framework ractor --test ask   # one measurement, one process
//! cargo run --release -- --cluster                       # cluster benchmarks (src/cluster)
//! cargo run --release -- --pg                            # process groups (src/pg.rs)
//! ```
//!
//! The driver (`--all`) never measures in its own process: each measurement is a child
//! process (`--framework X --test T`) with a fresh runtime and a fresh allocator, so one
//! framework's heap never pollutes another's (this matters most for `memory`). Runs are
//! interleaved — run 1 of every framework, then run 2, ..., with the framework order rotated
//! each round — so a load change on the machine hits every framework alike. The table
//! shows the best and the median over the runs.

mod bench;
mod cluster;
mod fw;
mod pg;

use std::collections::BTreeMap;
use std::process::{Command, ExitCode};

use bench::{Metrics, Sizes, Test};

/// The default set, in table order.
const FRAMEWORKS: [&str; 4] = ["understudy", "ractor", "kameo", "actix"];
/// Also selectable with --framework: understudy with a hand-written Handler (what the
/// macros generate), to check that the generated path costs nothing extra.
const EXTRA_FRAMEWORKS: [&str; 1] = ["understudy-manual"];

const USAGE: &str = "\
understudy-benches: understudy vs raw ractor, kameo and actix

USAGE:
  understudy-benches [--all] [OPTIONS]                 driver: runs each measurement in a
                                                       child process, prints the tables
  understudy-benches --framework F --test T [OPTIONS]  one measurement in this process

OPTIONS:
  --all                 drive (the default unless exactly one framework and one test given)
  --framework F,..      understudy | ractor | kameo | actix         [all four]
                        (also: understudy-manual, a hand-written Handler)
  --test T,..           tell1 | tell100 | ask | spawn | memory      [all five]
  --quick               small sizes and 3 runs (a smoke run of a few seconds)
  --runs N              runs per (framework, test): best and median shown  [5; quick 3]
  --msgs N              messages per tell run                        [1000000; quick 100000]
  --asks N              sequential asks per ask run                  [100000; quick 10000]
  --spawns N            actors spawned per spawn run                 [100000; quick 10000]
  --idle N              idle actors for the memory run               [100000; quick 10000]
  --current-thread      diagnostic: tokio frameworks on a current-thread runtime (no
                        cross-thread wake-ups; for instruction counts under valgrind)
  -h, --help            this text

  understudy-benches --cluster [--help]                cluster benchmarks: remote tell/ask vs
                                                       ractor_cluster, membership convergence,
                                                       failure detection (docs/BENCHMARKS.md)
  understudy-benches --pg [--help]                     process groups: join visibility on 5
                                                       nodes, broadcast throughput, get_members
                                                       vs ractor::pg, memory per node of a
                                                       group (docs/BENCHMARKS.md)
";

struct Opts {
    driver: bool,
    frameworks: Vec<String>,
    tests: Vec<Test>,
    runs: usize,
    sizes: Sizes,
    current_thread: bool,
}

fn parse_args() -> Result<Opts, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut opts = Opts {
        driver: false,
        frameworks: FRAMEWORKS.iter().map(|s| s.to_string()).collect(),
        tests: Test::ALL.to_vec(),
        runs: if quick { 3 } else { 5 },
        sizes: if quick {
            Sizes {
                msgs: 100_000,
                asks: 10_000,
                spawns: 10_000,
                idle: 10_000,
            }
        } else {
            Sizes {
                msgs: 1_000_000,
                asks: 100_000,
                spawns: 100_000,
                idle: 100_000,
            }
        },
        current_thread: false,
    };
    let mut framework_given = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        let num = |v: String, name: &str| -> Result<u64, String> {
            let n: u64 = v
                .replace('_', "")
                .parse()
                .map_err(|_| format!("{name}: not a number: {v}"))?;
            if n == 0 {
                Err(format!("{name} must be at least 1"))
            } else {
                Ok(n)
            }
        };
        match arg.as_str() {
            "--all" => opts.driver = true,
            "--quick" => {}
            "--current-thread" => opts.current_thread = true,
            "--framework" | "--frameworks" => {
                framework_given = true;
                opts.frameworks = value(arg)?.split(',').map(str::to_owned).collect();
                for f in &opts.frameworks {
                    if !FRAMEWORKS.contains(&f.as_str()) && !EXTRA_FRAMEWORKS.contains(&f.as_str())
                    {
                        return Err(format!(
                            "unknown framework {f:?} (one of {FRAMEWORKS:?} or {EXTRA_FRAMEWORKS:?})"
                        ));
                    }
                }
            }
            "--test" | "--tests" => {
                opts.tests = value(arg)?
                    .split(',')
                    .map(|t| Test::parse(t).ok_or(format!("unknown test {t:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--runs" => opts.runs = num(value(arg)?, arg)? as usize,
            "--msgs" => opts.sizes.msgs = num(value(arg)?, arg)?,
            "--asks" => opts.sizes.asks = num(value(arg)?, arg)?,
            "--spawns" => opts.sizes.spawns = num(value(arg)?, arg)?,
            "--idle" => opts.sizes.idle = num(value(arg)?, arg)?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    // One framework and one test, without --all: measure here. Anything else: drive.
    if !framework_given || opts.frameworks.len() != 1 || opts.tests.len() != 1 {
        opts.driver = true;
    }
    Ok(opts)
}

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
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}\n");
            }
            eprint!("{USAGE}");
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    if opts.driver {
        driver(&opts)
    } else {
        let (fw, test) = (opts.frameworks[0].as_str(), opts.tests[0]);
        let metrics = measure(fw, test, opts.sizes, opts.current_thread);
        let fields: Vec<String> = metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("RESULT {fw} {} {}", test.name(), fields.join(" "));
        ExitCode::SUCCESS
    }
}

/// One measurement (warm-up included) of `test` on framework `fw`, in this process.
fn measure(fw: &str, test: Test, sizes: Sizes, ct: bool) -> Metrics {
    match fw {
        "understudy" => fw::run_tokio(
            ct,
            bench::run(fw::understudy::Understudy::new(), test, sizes),
        ),
        "understudy-manual" => {
            fw::run_tokio(ct, bench::run(fw::understudy::Manual::new(), test, sizes))
        }
        "ractor" => fw::run_tokio(ct, bench::run(fw::ractor::Ractor, test, sizes)),
        "kameo" => fw::run_tokio(ct, bench::run(fw::kameo::Kameo, test, sizes)),
        "actix" => fw::actix::run_actix(bench::run(fw::actix::Actix, test, sizes)),
        _ => unreachable!("checked in parse_args"),
    }
}

/// (framework, test, metric) -> one value per run.
type Results = BTreeMap<(String, &'static str, String), Vec<f64>>;

fn driver(opts: &Opts) -> ExitCode {
    let exe = std::env::current_exe().expect("current_exe");
    let s = opts.sizes;
    eprintln!(
        "understudy-benches: {} run(s) each; msgs={} asks={} spawns={} idle={}; one process per measurement",
        opts.runs, s.msgs, s.asks, s.spawns, s.idle
    );
    let mut results = Results::new();
    for run in 0..opts.runs {
        for &test in &opts.tests {
            let n = opts.frameworks.len();
            for i in 0..n {
                let fw = &opts.frameworks[(i + run) % n];
                eprint!(
                    "run {}/{} {:<8} {:<10} ",
                    run + 1,
                    opts.runs,
                    test.name(),
                    fw
                );
                let mut cmd = Command::new(&exe);
                cmd.args(["--framework", fw, "--test", test.name()])
                    .args(["--msgs", &s.msgs.to_string(), "--asks", &s.asks.to_string()])
                    .args([
                        "--spawns",
                        &s.spawns.to_string(),
                        "--idle",
                        &s.idle.to_string(),
                    ]);
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

const ROWS: [Row; 12] = [
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
        "ask, sequential (asks/s)",
        true,
        Some(0.10),
    ),
    row("ask", "mean_us", "ask latency mean (µs)", false, Some(0.10)),
    row("ask", "p50_us", "ask latency p50 (µs)", false, Some(0.10)),
    row("ask", "p99_us", "ask latency p99 (µs)", false, Some(0.10)),
    row(
        "ask",
        "cpu_ns_per_ask",
        "ask, CPU per ask (ns)",
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

fn print_tables(opts: &Opts, results: &Results) {
    let fws = &opts.frameworks;
    let get = |fw: &str, test: &str, metric: &str| {
        results.get(&(fw.to_owned(), test_static(test), metric.to_owned()))
    };
    let has_both = fws.iter().any(|f| f == "understudy") && fws.iter().any(|f| f == "ractor");
    let rows: Vec<&Row> = ROWS
        .iter()
        .filter(|r| opts.tests.iter().any(|t| t.name() == r.test))
        .collect();

    for (title, pick) in [
        (
            "Best",
            &(|v: &[f64], r: &Row| best(v, r.higher_is_better)) as &dyn Fn(&[f64], &Row) -> f64,
        ),
        ("Median", &|v: &[f64], _: &Row| median(v)),
    ] {
        println!("\n### {title} of {} runs\n", opts.runs);
        let mut header = format!("| measurement | {} |", fws.join(" | "));
        let mut rule = format!("|---|{}", "---:|".repeat(fws.len()));
        if has_both {
            header.push_str(" understudy/ractor | target |");
            rule.push_str("---:|---|");
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
            if has_both {
                match (
                    get("understudy", row.test, row.metric),
                    get("ractor", row.test, row.metric),
                ) {
                    (Some(u), Some(r)) => {
                        let ratio = pick(u, row) / pick(r, row);
                        line.push_str(&format!(" {ratio:.3} |"));
                        match row.tolerance {
                            Some(tol) => {
                                let (ok, bound) = if row.higher_is_better {
                                    (ratio >= 1.0 - tol, format!("≥ {:.2}", 1.0 - tol))
                                } else {
                                    (ratio <= 1.0 + tol, format!("≤ {:.2}", 1.0 + tol))
                                };
                                line.push_str(&format!(
                                    " {bound} {} |",
                                    if ok { "✅" } else { "❌ miss" }
                                ));
                            }
                            None => line.push_str(" (info) |"),
                        }
                    }
                    _ => line.push_str(" – | – |"),
                }
            }
            println!("{line}");
        }
    }

    println!("\n### Spread (min – max over {} runs)\n", opts.runs);
    println!(
        "| measurement | {} |\n|---|{}",
        fws.join(" | "),
        "---:|".repeat(fws.len())
    );
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
    println!(
        "| test | {} |\n|---|{}",
        fws.join(" | "),
        "---:|".repeat(fws.len())
    );
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

fn test_static(name: &str) -> &'static str {
    Test::parse(name).map(Test::name).unwrap_or("")
}
