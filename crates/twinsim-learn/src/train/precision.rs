//! Reduced precision where the device gains from it: bfloat16 autocast on
//! CUDA GPUs (float32's range, so no loss scaling and no host round trip
//! per step), or float16 autocast with dynamic loss scaling so small
//! gradients do not vanish; the CPU trains in float32, which its kernels run
//! fastest.

use tch::Device;

use crate::error::{LearnError, Result};

/// Every precision name with a one-line description.
pub const PRECISIONS: &[(&str, &str)] = &[
    ("auto", "bf16 autocast on a GPU, fp32 on the CPU"),
    ("fp32", "float32 throughout"),
    (
        "bf16",
        "bfloat16 autocast (GPU only; needs an Ampere or newer GPU)",
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
    /// Run the forward pass under CUDA autocast.
    pub autocast: bool,
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
        match name {
            "fp32" => Ok(Self::scaled(None, 1.0)),
            "auto" if !gpu => Ok(Self::scaled(None, 1.0)),
            "auto" | "bf16" if gpu => Ok(Self::scaled(Some(Half::BFloat16), 1.0)),
            "fp16" if gpu => Ok(Self::scaled(Some(Half::Float16), 65536.0)),
            "bf16" | "fp16" => Err(LearnError::config(
                format!("{name} training needs a GPU"),
                "use --precision auto or fp32 on the CPU, where float32 is fastest",
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
        }
    }

    /// Runs `f` under CUDA autocast in this precision's half type (or
    /// without autocast in float32).
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        if self.autocast {
            set_autocast_type(self.half);
        }
        tch::autocast(self.autocast, f)
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
        Half::BFloat16 => 15,
    };
    // SAFETY: the signature matches libtorch's
    // `void at::autocast::set_autocast_dtype(c10::DeviceType, c10::ScalarType)`,
    // which only stores the type in thread-local state.
    unsafe { ffi::set_autocast_dtype(CUDA, dtype) }
}

/// The type CUDA autocast computes in now, as a c10::ScalarType value.
#[cfg(test)]
fn autocast_type() -> i8 {
    // SAFETY: as for `set_autocast_dtype`; the getter only reads the state.
    unsafe { ffi::get_autocast_dtype(CUDA) }
}

/// c10::DeviceType::CUDA.
const CUDA: i8 = 1;

mod ffi {
    extern "C" {
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub(super) fn set_autocast_dtype(device: i8, dtype: i8);
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
        assert_eq!(autocast_type(), 15);
        set_autocast_type(Half::Float16);
        assert_eq!(autocast_type(), 5);
    }
}
