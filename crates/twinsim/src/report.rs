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

/// Prints `err` and, when the library knows one, how to fix it.
pub fn print_error(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
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
