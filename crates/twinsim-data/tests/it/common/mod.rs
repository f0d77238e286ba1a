//! Helpers shared by the data crate's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// `../shared/data` beside the repository (override with `TWINSIM_SHARED_DATA`).
pub fn shared_data() -> PathBuf {
    if let Some(p) = std::env::var_os("TWINSIM_SHARED_DATA") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// The Python that has numpy and Pillow (the project's venv when run via ./dev).
pub fn python() -> String {
    std::env::var("TWINSIM_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A folder holding `cifar-10-binary.tar.gz` and `cifar-10-python.tar.gz`,
/// built once from the shared JPEG copy by its own script and reused.
pub fn official_cifar10() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cifar10-official");
        if dir.join("cifar-10-python.tar.gz").exists() && dir.join("cifar-10-binary.tar.gz").exists() {
            return dir;
        }
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cifar10-official.tmp{}", std::process::id()));
        let script = shared_data().join("cifar10/build_official_formats.py");
        let status = Command::new(python())
            .arg(&script)
            .arg(&tmp)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run python3 (set TWINSIM_PYTHON to a Python with numpy and Pillow)");
        assert!(status.success(), "{} failed", script.display());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).unwrap();
        dir
    })
    .clone()
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
