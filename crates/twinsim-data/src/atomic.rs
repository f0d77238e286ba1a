//! Writing files so that a crash never leaves a half-written file under the
//! final name: write a temporary file in the same folder, fsync it, rename
//! it over the target, fsync the folder.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// A temporary path beside `path` (same folder, so the rename is atomic).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Runs `write` on a temporary path beside `path`, then fsyncs it and
/// renames it to `path`. On any failure the temporary file is removed and
/// `path` is left as it was.
pub fn write_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
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
