//! `twinsim`: train and use neural networks that score how similar two
//! images are. This binary only turns arguments into library calls.

mod cli;
mod commands;
mod output;
mod report;

use std::io::Write;

use clap::Parser;

fn main() {
    restore_sigpipe();
    report::install_panic_hook();
    exit_now(run())
}

/// Parses the command line and runs the command; the exit status.
fn run() -> i32 {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return report::command_line_error(e),
    };
    // Ranks other than 0 of a data-parallel job log only errors, so the
    // job's output reads as one run's.
    let quiet = cli.global.quiet || twinsim_learn::distributed::launcher_rank() > 0;
    report::init_logging(cli.global.verbose, quiet);
    match commands::run(cli) {
        Ok(()) => 0,
        Err(err) => {
            report::print_error(&err);
            1
        }
    }
}

/// Flushes stdout and stderr and ends the process with `code` at once,
/// skipping exit-time destructors. libtorch's unregister its thousands of
/// operators one by one: 0.13 s of `--version` and 0.2 s of `compare` went
/// there, after the last output (strace; docs/benchmarks.md, "Start-up").
/// Nothing of twinsim's is left to them: every command has returned, so its
/// values are dropped (an MPI job finalised), and its files were written
/// through fsync and rename.
fn exit_now(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process; it has no preconditions.
    unsafe { libc::_exit(code) }
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
