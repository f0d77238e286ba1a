//! What the user sees: logs on stderr, errors with hints, JSON or tables on stdout.

use serde::Serialize;
use tracing_subscriber::EnvFilter;
use twinsim_data::DataError;
use twinsim_index::IndexError;
use twinsim_learn::LearnError;

/// Logs go to stderr, compact: warnings by default, more with -v.
pub fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("TWINSIM_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}

/// Makes a panic (a bug, never a user's mistake: those are errors) end the
/// process with one `error:` line and a hint instead of Rust's message and
/// backtrace. libtorch's exceptions reach Rust as panics whose text carries
/// a C++ backtrace; only their first line is shown. `RUST_BACKTRACE=1`
/// restores the full output for a bug report.
pub fn install_panic_hook() {
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        let first = message.lines().next().unwrap_or_default();
        eprintln!("error: internal error: {first}");
        eprintln!(
            "  hint: this is a bug in twinsim, not in what you asked; please report it with the command you ran (RUST_BACKTRACE=1 shows where it happened)"
        );
    }));
}

/// Answers a command line clap refused: help and version as clap prints
/// them; a mistake as every other error is printed, its `error:` line (and
/// clap's usage) followed by a `hint:`, with clap's exit status 2.
pub fn command_line_error(e: clap::Error) -> i32 {
    if !e.use_stderr() {
        let _ = e.print();
        return 0;
    }
    let rendered = e.render().to_string();
    for line in rendered
        .lines()
        .filter(|l| !l.starts_with("For more information"))
    {
        eprintln!("{line}");
    }
    let hint = match e.kind() {
        clap::error::ErrorKind::InvalidSubcommand => "run `twinsim --help` for the commands".to_string(),
        _ => "run `twinsim --help`, or `twinsim COMMAND --help`, for what each option takes".to_string(),
    };
    eprintln!("  hint: {hint}");
    2
}

/// Prints `err` and, when the library knows one, how to fix it.
pub fn print_error(err: &anyhow::Error) {
    let mut said = err.to_string();
    eprintln!("error: {said}");
    // Errors that name a file carry their cause's text already; a cause is
    // printed only when it says something new.
    for cause in err.chain().skip(1).map(|c| c.to_string()) {
        if !said.contains(&cause) {
            eprintln!("  caused by: {cause}");
            said = cause;
        }
    }
    let hint = err.chain().find_map(|e| {
        e.downcast_ref::<LearnError>()
            .and_then(LearnError::hint)
            .or_else(|| e.downcast_ref::<DataError>().and_then(DataError::hint))
            .or_else(|| e.downcast_ref::<IndexError>().and_then(IndexError::hint))
            .or_else(|| {
                e.downcast_ref::<twinsim_serve::ServeError>()
                    .and_then(twinsim_serve::ServeError::hint)
            })
    });
    if let Some(hint) = hint {
        eprintln!("  hint: {hint}");
    }
}

/// Prints `value` as one JSON object on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
