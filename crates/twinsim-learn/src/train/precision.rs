//! Reduced precision where the device gains from it: bfloat16 autocast on
//! CUDA GPUs (float32's range, so no loss scaling and no host round trip
//! per step), or float16 autocast with dynamic loss scaling so small
//! gradients do not vanish.
//!
//! On the CPU, bfloat16 pays only where the cores compute it natively
//! (x86-64's AVX512-BF16): there every recipe trained 1.56-1.71x more
//! images a second than in float32 on 2 cores of an AMD EPYC (airbench 442
//! against 258, airbench-half 1289 against 815; docs/benchmarks.md,
//! "bfloat16 on the CPU"). Elsewhere libtorch emulates it, slower than
//! float32, so `auto` keeps float32 there. MNIST lost precision in it
//! (0.9936 against 0.9951), so the digits recipe asks for `auto-gpu`.

use tch::Device;

use crate::error::{LearnError, Result};

/// Every precision name with a one-line description.
pub const PRECISIONS: &[(&str, &str)] = &[
    (
        "auto",
        "bf16 autocast on a GPU and on CPUs with AVX512-BF16, else fp32",
    ),
    (
        "auto-gpu",
        "bf16 autocast on a GPU, fp32 on every CPU (the digits recipe's)",
    ),
    ("fp32", "float32 throughout"),
    (
        "bf16",
        "bfloat16 autocast (an Ampere or newer GPU, or a CPU; slow without AVX512-BF16)",
    ),
    ("fp16", "fp16 autocast with loss scaling (GPU only)"),
];

/// The half type CUDA autocast computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    BFloat16,
    Float16,
}

/// Loss scaling: the loss is multiplied by `scale` before backward, and the
/// gradients divided by it before the update; a step whose gradients
/// overflow is skipped and the scale halved, and after `GROWTH_INTERVAL`
/// good steps the scale doubles (as PyTorch's GradScaler does).
#[derive(Clone, Debug, PartialEq)]
pub struct Precision {
    /// Run the forward pass under autocast, on the CPU or CUDA.
    pub autocast: bool,
    /// Autocast's device: the CPU's is separate from CUDA's in libtorch.
    cpu: bool,
    /// What autocast computes in (set as libtorch's autocast type by
    /// [`Precision::enter`]).
    pub half: Half,
    /// Current loss scale (1 and fixed when not scaling).
    pub scale: f64,
    scaling: bool,
    good_steps: u32,
}

const GROWTH_INTERVAL: u32 = 2000;

impl Precision {
    /// Resolves `name` (one of [`PRECISIONS`]) for `device`.
    pub fn new(name: &str, device: Device) -> Result<Precision> {
        let gpu = device.is_cuda();
        let on = |p: Precision| Precision { cpu: !gpu, ..p };
        match name {
            "fp32" => Ok(Self::scaled(None, 1.0)),
            "auto" if !gpu && !cpu_has_bf16() => Ok(Self::scaled(None, 1.0)),
            "auto-gpu" if !gpu => Ok(Self::scaled(None, 1.0)),
            "auto" | "auto-gpu" | "bf16" => Ok(on(Self::scaled(Some(Half::BFloat16), 1.0))),
            "fp16" if gpu => Ok(Self::scaled(Some(Half::Float16), 65536.0)),
            "fp16" => Err(LearnError::config(
                "fp16 training needs a GPU",
                "use --precision auto, bf16 or fp32 on the CPU",
            )),
            other => Err(LearnError::config(
                format!("unknown precision '{other}'"),
                format!("use one of: {}", crate::registry::names(PRECISIONS)),
            )),
        }
    }

    /// Autocast in `half` (none: float32), starting at loss scale `scale`;
    /// float16 scales the loss dynamically, bfloat16 needs no scaling.
    pub fn scaled(half: Option<Half>, scale: f64) -> Precision {
        Precision {
            autocast: half.is_some(),
            half: half.unwrap_or(Half::BFloat16),
            scale,
            scaling: half == Some(Half::Float16),
            good_steps: 0,
            cpu: false,
        }
    }

    /// Runs `f` under autocast in this precision's half type (or without
    /// autocast in float32).
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        match (self.autocast, self.cpu) {
            (false, _) => f(),
            (true, true) => cpu_autocast(f),
            (true, false) => {
                set_autocast_type(self.half);
                tch::autocast(true, f)
            }
        }
    }

    /// What the forward pass computes in: fp32, bf16 or fp16.
    pub fn name(&self) -> &'static str {
        match (self.autocast, self.half) {
            (false, _) => "fp32",
            (true, Half::BFloat16) => "bf16",
            (true, Half::Float16) => "fp16",
        }
    }

    /// Whether the forward pass computes in bfloat16 on the CPU.
    pub fn is_cpu_bf16(&self) -> bool {
        self.autocast && self.cpu
    }

    /// Records whether the step's gradients were finite; returns whether the
    /// optimizer should apply them.
    pub fn update(&mut self, grads_finite: bool) -> bool {
        if !self.scaling {
            return true;
        }
        if !grads_finite {
            self.scale /= 2.0;
            self.good_steps = 0;
            return false;
        }
        self.good_steps += 1;
        if self.good_steps == GROWTH_INTERVAL {
            self.scale *= 2.0;
            self.good_steps = 0;
        }
        true
    }

    /// Whether gradients need unscaling and an overflow check.
    pub fn is_scaling(&self) -> bool {
        self.scaling
    }
}

/// Makes CUDA autocast compute in `half`. tch exposes autocast only in
/// libtorch's default float16, so this calls libtorch's own setter, an
/// exported C++ function whose arguments are two one-byte enums (passed as
/// C passes `int8_t` on the x86-64 and AArch64 ABIs).
pub fn set_autocast_type(half: Half) {
    // c10::ScalarType values.
    let dtype: i8 = match half {
        Half::Float16 => 5,
        Half::BFloat16 => BFLOAT16,
    };
    // SAFETY: the signature matches libtorch's
    // `void at::autocast::set_autocast_dtype(c10::DeviceType, c10::ScalarType)`,
    // which only stores the type in thread-local state.
    unsafe { ffi::set_autocast_dtype(CUDA, dtype) }
}

/// Whether the CPU computes bfloat16 natively (AVX512-BF16; AMX CPUs have
/// it too).
pub fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512bf16");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Runs `f` under the CPU's autocast in bfloat16, as PyTorch's
/// `torch.autocast("cpu")` does: tch's `autocast` switches CUDA's only.
/// The state is restored and the cast weights' cache cleared afterwards.
fn cpu_autocast<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: the signatures match libtorch's
    // `bool at::autocast::is_autocast_enabled(c10::DeviceType)`,
    // `void at::autocast::set_autocast_enabled(c10::DeviceType, bool)` and
    // `set_autocast_dtype`, which only read and store thread-local state.
    let before = unsafe {
        let before = ffi::is_autocast_enabled(CPU);
        ffi::set_autocast_dtype(CPU, BFLOAT16);
        ffi::set_autocast_enabled(CPU, true);
        before
    };
    let out = f();
    // SAFETY: as above; the cache holds only the weights cast inside `f`.
    unsafe {
        ffi::set_autocast_enabled(CPU, before);
        if !before {
            ffi::clear_cache();
        }
    }
    out
}

/// The type autocast computes in now on `device`, as a c10::ScalarType value.
#[cfg(test)]
fn autocast_type(device: i8) -> i8 {
    // SAFETY: as for `set_autocast_dtype`; the getter only reads the state.
    unsafe { ffi::get_autocast_dtype(device) }
}

/// c10::DeviceType::CPU and CUDA.
const CPU: i8 = 0;
const CUDA: i8 = 1;
/// c10::ScalarType::BFloat16.
const BFLOAT16: i8 = 15;

mod ffi {
    extern "C" {
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub(super) fn set_autocast_dtype(device: i8, dtype: i8);
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub(super) fn set_autocast_enabled(device: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub(super) fn is_autocast_enabled(device: i8) -> bool;
        #[link_name = "_ZN2at8autocast11clear_cacheEv"]
        pub(super) fn clear_cache();
        #[cfg(test)]
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub(super) fn get_autocast_dtype(device: i8) -> i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_autocast_type_is_set_in_libtorch() {
        set_autocast_type(Half::BFloat16);
        assert_eq!(autocast_type(CUDA), 15);
        set_autocast_type(Half::Float16);
        assert_eq!(autocast_type(CUDA), 5);
    }
}
