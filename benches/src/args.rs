//! The local benchmarks' command line, shared by the driver (`understudy-benches`) and the
//! measurement binary built without ractor's `cluster` (`understudy-benches-local`).

use crate::bench::{Sizes, Test};

/// What to run.
pub struct Opts {
    /// Drive (child processes, tables) rather than measure in this process: `--all`, or
    /// anything but exactly one framework and one test.
    pub driver: bool,
    pub frameworks: Vec<String>,
    pub tests: Vec<Test>,
    pub runs: usize,
    pub sizes: Sizes,
    pub current_thread: bool,
}

/// Parses `args` (without the program name); `known` are the framework names accepted,
/// `default_frameworks` those run when none is given. `Err("")` means `--help`.
pub fn parse(args: &[String], known: &[&str], default_frameworks: &[&str]) -> Result<Opts, String> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut opts = Opts {
        driver: false,
        frameworks: default_frameworks.iter().map(|s| s.to_string()).collect(),
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
                opts.frameworks = crate::bench::framework_list(&value(arg)?, known)?;
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
    opts.driver =
        opts.driver || !framework_given || opts.frameworks.len() != 1 || opts.tests.len() != 1;
    Ok(opts)
}
