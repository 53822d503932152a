//! `understudy`: the command-line tool for operating understudy clusters.
//!
//! One module per group of subcommands, so later groups (`node run`, `cluster members`, ...)
//! slot in beside `certs`. Every failure is a one-line message on stderr and
//! exit code 1; argument errors are clap's (usage on stderr, exit code 2). Nothing here panics
//! on user input.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod certs;

/// Operate understudy clusters.
#[derive(Debug, Parser)]
#[command(name = "understudy", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make the cluster CA and node certificates for the mTLS mesh.
    #[command(subcommand)]
    Certs(certs::Certs),
}

/// What a subcommand returns: `Err` is printed as `error: ...` and exits with 1.
type CmdResult = Result<(), Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Certs(cmd) => certs::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
