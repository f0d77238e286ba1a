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
    // Ranks other than 0 of a data-parallel job log only errors, so the
    // job's output reads as one run's.
    let quiet = cli.global.quiet || twinsim_learn::distributed::launcher_rank() > 0;
    report::init_logging(cli.global.verbose, quiet);
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
