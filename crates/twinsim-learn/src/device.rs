//! Choosing where tensors live: `cpu`, `cuda`, `cuda:N` or `auto`.

use tch::Device;

/// Parses a `--device` value; `auto` picks the first GPU when libtorch can
/// see one, else the CPU. An unavailable GPU is an error that says so.
pub fn parse_device(s: &str) -> Result<Device, String> {
    let gpus = tch::Cuda::device_count() as usize;
    let gpu = |i: usize| {
        if i < gpus {
            Ok(Device::Cuda(i))
        } else if gpus == 0 {
            Err(format!(
                "device '{s}' asked for, but libtorch sees no CUDA GPU (a CPU-only libtorch, or no driver); use --device cpu"
            ))
        } else {
            Err(format!(
                "device '{s}' asked for, but only {gpus} GPU(s) are visible"
            ))
        }
    };
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(if gpus > 0 { Device::Cuda(0) } else { Device::Cpu }),
        "cuda" | "gpu" => gpu(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => gpu(i),
            _ => Err(format!("unknown device '{s}'; use cpu, cuda, cuda:N or auto")),
        },
    }
}
