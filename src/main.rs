//! The flowdesk binary: parses the command line and hands over to `flowdesk::cli`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    flowdesk::cli::run(flowdesk::cli::Cli::parse())
}
