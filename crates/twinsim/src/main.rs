//! `twinsim`: train and use neural networks that score how similar two
//! images are. This binary only turns arguments into library calls.

mod cli;
mod commands;
mod report;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = cli::Cli::parse();
    report::init_logging(cli.global.verbose, cli.global.quiet);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report::print_error(&err);
            ExitCode::FAILURE
        }
    }
}

/// Lets a closed pipe end the process quietly, as it does `cat` or `grep`
/// (`twinsim search ... | head`): Rust ignores SIGPIPE, which turns every
/// later print into a panic.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first in main, before any other thread exists; it only
    // sets the signal's disposition back to the system default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
