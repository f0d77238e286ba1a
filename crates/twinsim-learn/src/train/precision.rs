//! Reduced precision where the device gains from it: float16 autocast on
//! CUDA GPUs, with dynamic loss scaling so small gradients do not vanish in
//! float16; the CPU trains in float32, which its kernels run fastest.

use tch::Device;

use crate::error::{LearnError, Result};

/// Every precision name with a one-line description.
pub const PRECISIONS: &[(&str, &str)] = &[
    (
        "auto",
        "fp16 autocast with loss scaling on a GPU, fp32 on the CPU",
    ),
    ("fp32", "float32 throughout"),
    ("fp16", "fp16 autocast with loss scaling (GPU only)"),
];

/// Loss scaling: the loss is multiplied by `scale` before backward, and the
/// gradients divided by it before the update; a step whose gradients
/// overflow is skipped and the scale halved, and after `GROWTH_INTERVAL`
/// good steps the scale doubles (as PyTorch's GradScaler does).
#[derive(Clone, Debug, PartialEq)]
pub struct Precision {
    /// Run the forward pass under CUDA autocast.
    pub autocast: bool,
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
        let reduced = match name {
            "auto" => gpu,
            "fp32" => false,
            "fp16" if gpu => true,
            "fp16" => {
                return Err(LearnError::config(
                    "fp16 training needs a GPU",
                    "use --precision auto or fp32 on the CPU, where float32 is fastest",
                ))
            }
            other => {
                return Err(LearnError::config(
                    format!("unknown precision '{other}'"),
                    format!("use one of: {}", crate::registry::names(PRECISIONS)),
                ))
            }
        };
        Ok(Self::scaled(reduced, if reduced { 65536.0 } else { 1.0 }))
    }

    /// A scaler starting at `scale`; `reduced` turns on autocast and scaling.
    pub fn scaled(reduced: bool, scale: f64) -> Precision {
        Precision {
            autocast: reduced,
            scale,
            scaling: reduced,
            good_steps: 0,
        }
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
