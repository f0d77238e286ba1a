//! What the binaries load at start-up. `twinsim --version` and `--help`
//! load nothing of libtorch: the launcher answers them. Every command loads
//! CUDA's libraries (libtorch_cuda, cuDNN, cuBLAS, NCCL: 330 MB and a
//! quarter of a second) only when a GPU is asked for, or when `--device
//! auto` finds NVIDIA's driver. The dynamic loader's own trace
//! (`LD_DEBUG=files`) says which libraries a run loaded.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{assert_user_error, run, twinsim};

/// Libraries of libtorch's CUDA half and the CUDA libraries only it needs.
/// (libtorch_cpu itself needs the small CUDA runtime, for its profiler.)
const CUDA_LIBRARIES: [&str; 5] = [
    "libtorch_cuda.so",
    "libc10_cuda.so",
    "libcudnn",
    "libcublas",
    "libnccl",
];

/// Two images from the repository's examples.
fn images() -> [PathBuf; 2] {
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/digits");
    [digits.join("seven-a.png"), digits.join("two.png")]
}

/// A small model trained once for the tests here: 30 images per class of
/// the embedded sample, one epoch (a second or two).
fn model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        common::train_sample_model(
            "startup-cli",
            &[
                "--per-class",
                "30",
                "--epochs",
                "1",
                "--arch",
                "cnn",
                "--threads",
                "2",
            ],
        )
    })
}

/// `twinsim compare` of the two example images on `device`.
fn compare(scratch: &Path, device: &str) -> Command {
    let mut cmd = twinsim(scratch);
    cmd.arg("compare")
        .args(images())
        .arg("--model")
        .arg(model())
        .args(["--device", device]);
    cmd
}

/// Runs `cmd` under the loader's trace; returns (success, stderr, the
/// paths of the libraries it loaded). The trace goes to its own file, so
/// stderr is what a user sees.
fn run_traced(cmd: &mut Command, name: &str) -> (bool, String, Vec<String>) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("startup-trace")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, _, err) = run(cmd
        .env("LD_DEBUG", "files")
        .env("LD_DEBUG_OUTPUT", dir.join("ld")));
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let trace = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // One "calling init: PATH" line per library whose initialisers ran.
        loaded.extend(
            trace
                .lines()
                .filter_map(|l| l.split_once("calling init: "))
                .map(|(_, p)| p.trim().to_string()),
        );
    }
    assert!(!loaded.is_empty(), "no loader trace in {}", dir.display());
    (ok, err, loaded)
}

/// The CUDA libraries among `loaded`.
fn cuda_loaded(loaded: &[String]) -> Vec<&String> {
    loaded
        .iter()
        .filter(|p| CUDA_LIBRARIES.iter().any(|c| p.contains(c)))
        .collect()
}

/// Whether the libtorch this binary loads is a CUDA build.
fn libtorch_has_cuda(loaded: &[String]) -> bool {
    let cpu = loaded
        .iter()
        .find(|p| p.ends_with("libtorch_cpu.so"))
        .expect("libtorch_cpu.so loaded");
    Path::new(cpu).with_file_name("libtorch_cuda.so").exists()
}

/// Whether NVIDIA's driver is installed: its kernel module, or its
/// library, which CUDA's runtime (and `auto`'s probe) load when present.
fn nvidia_driver(loaded: &[String]) -> bool {
    Path::new("/proc/driver/nvidia/version").exists() || loaded.iter().any(|p| p.contains("libcuda.so"))
}

/// The launcher answers these alone (src/launcher.rs): libtorch, which
/// costs 0.33 s to load, is not even mapped.
#[test]
fn version_and_help_load_no_libtorch_at_all() {
    let scratch = tempfile::tempdir().unwrap();
    for (name, args) in [("version", "--version"), ("help", "--help"), ("help-short", "-h")] {
        let (ok, err, loaded) = run_traced(twinsim(scratch.path()).arg(args), name);
        assert!(ok, "{args}: {err}");
        let torch: Vec<_> = loaded
            .iter()
            .filter(|p| p.contains("libtorch") || p.contains("libc10"))
            .collect();
        assert_eq!(torch, Vec::<&String>::new(), "{args}");
    }
}

/// The launcher answers `--help` and `--version` from stored text; it must
/// be what the core, which owns the flags, prints. `TWINSIM_BLESS=1`
/// rewrites the stored help after a change to the flags.
#[test]
fn launcher_prints_what_the_core_prints() {
    use std::os::unix::process::CommandExt;
    let scratch = tempfile::tempdir().unwrap();
    let core = Path::new(env!("CARGO_BIN_EXE_twinsim")).with_file_name("twinsim-core");
    for args in ["--help", "--version"] {
        let mut core_cmd = Command::new(&core);
        core_cmd.arg0("twinsim").arg(args);
        let (ok, expected, err) = run(&mut core_cmd);
        assert!(ok, "{err}");
        let (ok, got, err) = run(twinsim(scratch.path()).arg(args));
        assert!(ok, "{err}");
        if got != expected && args == "--help" && std::env::var_os("TWINSIM_BLESS").is_some() {
            let stored = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/help.txt");
            std::fs::write(stored, &expected).unwrap();
            continue;
        }
        assert_eq!(
            got, expected,
            "`twinsim {args}` differs from the core's: rerun this test with TWINSIM_BLESS=1 to store the core's help in src/help.txt"
        );
    }
}

/// A missing core: the launcher says what is missing, and how to fix it.
#[test]
fn launcher_without_core_explains() {
    let scratch = tempfile::tempdir().unwrap();
    let alone = scratch.path().join("twinsim");
    std::fs::copy(env!("CARGO_BIN_EXE_twinsim"), &alone).unwrap();
    let (ok, _, err) = run(Command::new(&alone).arg("datasets"));
    assert_user_error(ok, &err, "twinsim-core");
}

#[test]
fn subcommand_help_and_cpu_compare_load_no_cuda_library() {
    let scratch = tempfile::tempdir().unwrap();
    let (ok, err, loaded) = run_traced(
        twinsim(scratch.path()).args(["compare", "--help"]),
        "compare-help",
    );
    assert!(ok, "{err}");
    assert_eq!(cuda_loaded(&loaded), Vec::<&String>::new());
    let (ok, err, loaded) = run_traced(&mut compare(scratch.path(), "cpu"), "compare-cpu");
    assert!(ok, "{err}");
    assert_eq!(cuda_loaded(&loaded), Vec::<&String>::new());
}

#[test]
fn auto_loads_cuda_only_where_nvidia_driver_is() {
    let scratch = tempfile::tempdir().unwrap();
    let (ok, err, loaded) = run_traced(&mut compare(scratch.path(), "auto"), "compare-auto");
    assert!(ok, "{err}");
    if !nvidia_driver(&loaded) {
        assert_eq!(cuda_loaded(&loaded), Vec::<&String>::new());
    }
}

#[test]
fn cuda_loads_libtorch_cuda_and_a_missing_gpu_is_explained() {
    let scratch = tempfile::tempdir().unwrap();
    let (ok, err, loaded) = run_traced(&mut compare(scratch.path(), "cuda"), "compare-cuda");
    if !libtorch_has_cuda(&loaded) {
        return assert_user_error(ok, &err, "CPU-only libtorch");
    }
    assert!(
        loaded.iter().any(|p| p.ends_with("/libtorch_cuda.so")),
        "libtorch_cuda.so's initialisers did not run: {loaded:?}"
    );
    if !nvidia_driver(&loaded) {
        assert_user_error(ok, &err, "libtorch sees no CUDA GPU");
    }
}
