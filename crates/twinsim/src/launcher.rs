//! `twinsim`, the command users run. It answers `--version` and `--help`
//! itself and hands every other command line, unchanged, to `twinsim-core`
//! beside it by exec: the same process, arguments, environment, signals and
//! exit status, so nothing a caller sees differs.
//!
//! Why two binaries: `twinsim-core` links libtorch_cpu, and the dynamic
//! loader maps it and runs its initialisers (thousands of operator
//! registrations) before `main` is reached. That took 0.33 s on 2 cores, all
//! of what `--version` cost, and no flag can skip it (docs/benchmarks.md,
//! "Start-up"). This binary links only std.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// What `twinsim-core --help` prints. `tests/it/startup_cli.rs` fails when
/// the two differ and, with `TWINSIM_BLESS=1`, writes this file afresh.
const HELP: &str = include_str!("help.txt");

/// What `twinsim-core --version` prints (clap's `NAME VERSION`).
const VERSION: &str = concat!("twinsim ", env!("CARGO_PKG_VERSION"), "\n");

/// The core binary's file name, next to this one.
const CORE: &str = "twinsim-core";

fn main() {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| OsString::from("twinsim"));
    let rest: Vec<OsString> = args.collect();
    if let Some(text) = answer_here(&rest) {
        // A closed stdout (`twinsim --help | head -1`) is not an error.
        let _ = std::io::stdout().write_all(text.as_bytes());
        return;
    }
    let core = core_path();
    let err = Command::new(&core).arg0(&argv0).args(&rest).exec();
    eprintln!("error: cannot start {}: {err}", core.display());
    eprintln!(
        "  hint: {CORE} is part of twinsim and must sit beside the twinsim binary; build both with `./dev build` or install both with `cargo install --path crates/twinsim`"
    );
    std::process::exit(1);
}

/// The text for a command line this binary answers alone: exactly one of
/// `--version`, `-V`, `--help`, `-h` or `help`. Anything longer (`-q
/// --version`, `train --help`) goes to the core, which parses it in full.
fn answer_here(args: &[OsString]) -> Option<&'static str> {
    match args {
        [one] => match one.to_str()? {
            "--version" | "-V" => Some(VERSION),
            "--help" | "-h" | "help" => Some(HELP),
            _ => None,
        },
        _ => None,
    }
}

/// `twinsim-core` in this executable's folder (symbolic links to `twinsim`
/// resolved, so a link in `~/bin` works).
fn core_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("twinsim"));
    exe.with_file_name(CORE)
}
