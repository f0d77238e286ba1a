//! Choosing where tensors live: `cpu`, `cuda`, `cuda:N` or `auto`.
//!
//! libtorch's CUDA half (libtorch_cuda.so, which brings cuDNN, cuBLAS and
//! NCCL) is loaded here, when a GPU is asked for, not at start-up: linked
//! in, it made every command, `--version` included, take 0.6 s and 460 MB
//! before doing anything (docs/benchmarks.md, "Start-up").

use std::sync::OnceLock;

use tch::Device;

/// Parses a `--device` value; `auto` picks the first GPU when libtorch can
/// see one, else the CPU. An unavailable GPU is an error that says so.
/// `cpu` never loads CUDA's libraries, and `auto` loads them only on a
/// machine with NVIDIA's driver.
pub fn parse_device(s: &str) -> Result<Device, String> {
    let gpu = |i: usize| {
        let gpus = cuda_device_count();
        if i < gpus {
            Ok(Device::Cuda(i))
        } else if gpus == 0 {
            Err(format!(
                "device '{s}' asked for, but libtorch sees no CUDA GPU ({}); use --device cpu",
                no_gpu_reason()
            ))
        } else {
            Err(format!(
                "device '{s}' asked for, but only {gpus} GPU(s) are visible"
            ))
        }
    };
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" if nvidia_driver_present() && cuda_device_count() > 0 => Ok(Device::Cuda(0)),
        "auto" => Ok(Device::Cpu),
        "cuda" | "gpu" => gpu(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => gpu(i),
            _ => Err(format!("unknown device '{s}'; use cpu, cuda, cuda:N or auto")),
        },
    }
}

/// The number of CUDA GPUs libtorch sees, once its CUDA half is loaded.
/// Every CUDA query in twinsim goes through here: libtorch picks its CUDA
/// hooks at its first CUDA query and keeps them, so a query made before
/// libtorch_cuda.so is loaded sees no GPU for the rest of the process.
pub fn cuda_device_count() -> usize {
    if load_libtorch_cuda().is_err() {
        return 0;
    }
    usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
}

/// Why libtorch sees no GPU, for the error that says so.
fn no_gpu_reason() -> String {
    match load_libtorch_cuda() {
        Ok(()) => "no NVIDIA driver, or no GPU".into(),
        Err(e) => format!("a CPU-only libtorch, or its CUDA libraries did not load: {e}"),
    }
}

/// Loads libtorch_cuda.so, once. Its static initialisers register CUDA's
/// kernels and hooks with libtorch_cpu, as linking it would (without a
/// GPU, a CUDA tensor then fails with "Found no NVIDIA driver", where
/// before the load it finds no CUDA kernel at all). It is found
/// through the binary's rpath (the libtorch it was built against) or
/// LD_LIBRARY_PATH; RTLD_GLOBAL lets the libraries libtorch opens later
/// (NVRTC's, for fused kernels) resolve their symbols against it.
fn load_libtorch_cuda() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| dl::open(c"libtorch_cuda.so", dl::NOW_GLOBAL))
        .clone()
}

/// Whether NVIDIA's driver is installed: its kernel module, or where there
/// is none (WSL) its user-space library. Without it there is no GPU to
/// find, so `auto` does not spend a quarter of a second and 330 MB loading
/// libtorch_cuda to find none (docs/benchmarks.md, "Start-up").
fn nvidia_driver_present() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists()
        || dl::open(c"libcuda.so.1", dl::LAZY_LOCAL).is_ok()
}

/// The system's dynamic loader.
#[cfg(unix)]
mod dl {
    use std::ffi::{c_int, CStr};

    /// Resolve every symbol now, and share them with later loads.
    pub const NOW_GLOBAL: c_int = libc::RTLD_NOW | libc::RTLD_GLOBAL;
    /// Resolve symbols on use, and keep them private: a probe.
    pub const LAZY_LOCAL: c_int = libc::RTLD_LAZY | libc::RTLD_LOCAL;

    /// `dlopen(name, flags)`; the error is the loader's message. The library
    /// stays loaded for the process's life, as libtorch expects.
    pub fn open(name: &CStr, flags: c_int) -> Result<(), String> {
        // SAFETY: `name` is NUL-terminated; the libraries opened here
        // (libtorch_cuda, libcuda) only register themselves as they load.
        if !unsafe { libc::dlopen(name.as_ptr(), flags) }.is_null() {
            return Ok(());
        }
        // SAFETY: after a failed dlopen, dlerror returns this thread's
        // message, NUL-terminated and valid until the next dl call, or null.
        let msg = unsafe { libc::dlerror() };
        Err(if msg.is_null() {
            format!("{} could not be loaded", name.to_string_lossy())
        } else {
            // SAFETY: non-null, so a NUL-terminated string (above).
            unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned()
        })
    }
}

/// Elsewhere libtorch's CUDA half is linked as the platform's linker
/// decides; there is nothing to load, and libtorch answers for itself.
#[cfg(not(unix))]
mod dl {
    /// Unused flags, for the same calls as on Unix.
    pub const NOW_GLOBAL: i32 = 0;
    /// Unused flags, for the same calls as on Unix.
    pub const LAZY_LOCAL: i32 = 0;

    /// Nothing to load.
    pub fn open(_name: &std::ffi::CStr, _flags: i32) -> Result<(), String> {
        Ok(())
    }
}
