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

/// Trains a small model on the embedded MNIST sample into a fresh folder
/// `name` under the test binaries' scratch folder, with `args` (the
/// training options besides `--out`); panics with twinsim's message when
/// training fails. Tests share it through a `OnceLock`.
pub fn train_sample_model(name: &str, args: &[&str]) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&root);
    let out = root.join("run");
    let (ok, _, err) = run(twinsim(&root)
        .args(["train", "--dataset", "mnist-sample"])
        .args(args)
        .arg("--out")
        .arg(&out));
    assert!(ok, "training failed: {err}");
    out
}

/// Copies the files of the run directory `run` into `dst` (created), for a
/// test that changes a model without touching the shared one.
pub fn copy_run(run: &std::path::Path, dst: &std::path::Path) -> PathBuf {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(run).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
        }
    }
    dst.to_path_buf()
}

/// The first `per_class` training and test images of `classes` from the
/// shared CIFAR-10 JPEG copy, written as an image folder under `root`.
pub fn cifar_folder(root: &std::path::Path, classes: &[&str], per_class: usize) {
    let tgz = shared_data().join("cifar10/cifar10-jpeg.tar.gz");
    let file = std::fs::File::open(&tgz).unwrap_or_else(|e| panic!("{}: {e}", tgz.display()));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut counts = std::collections::HashMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let parts: Vec<String> = path.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let [split, class, _] = parts.as_slice() else {
            continue;
        };
        let wanted = if split == "train" {
            per_class
        } else {
            per_class / 2
        };
        let n = counts.entry((split.clone(), class.clone())).or_insert(0);
        if classes.contains(&class.as_str()) && *n < wanted {
            *n += 1;
            let dst = root.join(&path);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            entry.unpack(&dst).unwrap();
        }
    }
}

/// CIFAR-10's classes in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
