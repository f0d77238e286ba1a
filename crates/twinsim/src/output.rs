//! The one policy every output path a user names follows: an existing file
//! is replaced only when `--force` is given, nothing is ever written among a
//! run directory's own files, and (in the libraries) every file is written
//! through a temporary file and a rename, so a crash leaves the old file or
//! the new one.

use std::path::Path;

use twinsim_learn::LearnError;

/// Refuses to write the file `path` when it is inside a run directory, is
/// a folder or a special file, or exists and `force` is false. Called
/// before the command does any work, so a refusal costs nothing.
pub fn check_file(path: &Path, force: bool) -> anyhow::Result<()> {
    outside_runs(path)?;
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(meta) if !meta.is_file() => Err(refusal(
            format!("{} exists and is not a regular file", path.display()),
            "name a new file to write",
        )),
        Ok(_) if force => Ok(()),
        Ok(_) => Err(refusal(
            format!("{} already exists", path.display()),
            "pass --force to replace it, or name a new file",
        )),
    }
}

/// Refuses to write files into the folder `path` when it is (or is inside)
/// a run directory, is not a folder, or already holds files and `force` is
/// false. With `force`, only the files the command writes are replaced.
pub fn check_folder(path: &Path, force: bool) -> anyhow::Result<()> {
    outside_runs(path)?;
    if twinsim_learn::run::is_run_dir(path) {
        return Err(run_dir_refusal(path));
    }
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(meta) if !meta.is_dir() => Err(refusal(
            format!("{} exists and is not a folder", path.display()),
            "name a new folder to write into",
        )),
        Ok(_) if force || is_empty_dir(path) => Ok(()),
        Ok(_) => Err(refusal(
            format!("{} already exists and holds files", path.display()),
            "pass --force to replace the files this command writes there, or name a new folder",
        )),
    }
}

/// Refuses `path` when its folder is a run directory.
fn outside_runs(path: &Path) -> anyhow::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if twinsim_learn::run::is_run_dir(parent) {
        return Err(run_dir_refusal(parent));
    }
    Ok(())
}

fn run_dir_refusal(dir: &Path) -> anyhow::Error {
    refusal(
        format!(
            "{} is a run directory: only training writes its files",
            dir.display()
        ),
        "write the output outside the run directory",
    )
}

fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

fn refusal(reason: String, hint: &str) -> anyhow::Error {
    LearnError::config(reason, hint).into()
}
