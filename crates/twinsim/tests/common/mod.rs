//! Runs the real `twinsim` binary, offline, as a user would.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// `../shared/data` beside the repository (override with `TWINSIM_SHARED_DATA`).
pub fn shared_data() -> PathBuf {
    std::env::var_os("TWINSIM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// The binary, with downloads off and an empty private cache, so tests see
/// only the data they point it at.
pub fn twinsim(cache: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_twinsim"));
    cmd.env("TWINSIM_OFFLINE", "1")
        .env("XDG_CACHE_HOME", cache)
        .env_remove("TWINSIM_DATA")
        .env_remove("TWINSIM_MIRRORS");
    cmd
}

/// Runs `cmd`, returning (exit success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run twinsim");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Asserts a failed run explained itself: an `error:` line, a `hint:`, no panic.
pub fn assert_user_error(ok: bool, stderr: &str, needle: &str) {
    assert!(!ok, "expected failure, stderr: {stderr}");
    assert!(stderr.contains("error:"), "no error line: {stderr}");
    assert!(stderr.contains("hint:"), "no hint: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "panic: {stderr}"
    );
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
}
