//! Writing files so that a crash never leaves a half-written file under the
//! final name: write a temporary file in the same folder, fsync it, rename
//! it over the target, fsync the folder. A temporary file left by a write
//! that was killed is removed by the next write of the same file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// A temporary path beside `path` (same folder, so the rename is atomic).
pub fn temp_path(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}{}", temp_prefix(path), std::process::id()))
}

/// `.NAME.tmp-`: what every temporary file of `path` is named, up to the PID
/// of the process writing it.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp-")
}

/// Removes the temporary files of `path` whose writer is gone (killed
/// mid-write), leaving those of processes still running: they may be
/// writing it now.
fn remove_stale_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|p| p.parse::<i32>().ok())
            .filter(|&pid| pid > 0);
        if pid.is_some_and(|pid| !process_alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// True when a process with this PID exists (signal 0 checks without
/// sending anything; EPERM means it exists under another user).
fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only reports whether
    // the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Runs `write` on a temporary path beside `path`, then fsyncs it and
/// renames it to `path`. On any failure the temporary file is removed and
/// `path` is left as it was.
pub fn write_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    remove_stale_temps(path);
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| commit(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| DataError::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| DataError::io(tmp, e))
    })
}

/// Fsyncs `tmp`, renames it to `path` and fsyncs the folder, so the new
/// content is durable under its final name.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| DataError::io(tmp, e))?;
    std::fs::rename(tmp, path).map_err(|e| DataError::io(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| DataError::io(dir, e))?;
    }
    Ok(())
}
