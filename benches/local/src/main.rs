//! Measures raw ractor and understudy built *without* ractor's `cluster` feature, one
//! measurement per process, for the driver in `understudy-benches` (`../src/main.rs`), which
//! runs it as a child and prints its figures beside the others.
//!
//! ```text
//! understudy-benches-local --framework ractor --test ask [--asks N] [--current-thread]
//! ```
//!
//! The measurements and the counters are the driver's own source files, compiled here
//! against this package's dependencies.

#[path = "../../src/args.rs"]
mod args;
// The driver-side helpers (running children, parsing lists) are not used here.
#[allow(dead_code)]
#[path = "../../src/bench.rs"]
mod bench;
#[path = "../../src/fw/common.rs"]
mod common;
#[path = "../../src/fw/ractor.rs"]
mod ractor_fw;
#[path = "../../src/fw/understudy.rs"]
mod understudy_fw;

use std::process::ExitCode;

// The names the counters' modules reach through `super::`.
use common::{CounterMsg, run_tokio};

/// Frameworks measured by this binary, as the driver names them.
const FRAMEWORKS: [&str; 3] = ["understudy", "understudy-manual", "ractor"];

/// This binary exists to measure ractor without `cluster`. Without it, ractor implements
/// `Message` for every type; with it, for none but those that ask. This function compiles
/// only in the first case, so a build that unified features with the main bench package
/// (which turns `cluster` on) fails here instead of reporting cluster figures as plain ones.
fn ractor_has_no_cluster_feature() {
    struct NoMessageImpl;
    fn is_message<T: ractor::Message>() {}
    is_message::<NoMessageImpl>();
}

fn main() -> ExitCode {
    ractor_has_no_cluster_feature();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match args::parse(&args, &FRAMEWORKS, &FRAMEWORKS) {
        Ok(o) if !o.driver => o,
        Ok(_) => {
            eprintln!(
                "understudy-benches-local measures one framework and one test (--framework F \
                 --test T); the tables come from the driver: understudy-benches --all"
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{e}\nframeworks: {FRAMEWORKS:?}; see understudy-benches --help");
            return ExitCode::from(2);
        }
    };
    let (fw, test, sizes, ct) = (
        opts.frameworks[0].as_str(),
        opts.tests[0],
        opts.sizes,
        opts.current_thread,
    );
    let metrics = match fw {
        "understudy" => run_tokio(
            ct,
            bench::run(understudy_fw::Understudy::new(), test, sizes),
        ),
        "understudy-manual" => run_tokio(ct, bench::run(understudy_fw::Manual::new(), test, sizes)),
        "ractor" => run_tokio(ct, bench::run(ractor_fw::Ractor, test, sizes)),
        _ => unreachable!("checked by args::parse"),
    };
    bench::print_result(fw, test, &metrics);
    ExitCode::SUCCESS
}
