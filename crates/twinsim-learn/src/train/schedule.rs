//! Learning rate over the course of a run.

use crate::error::{LearnError, Result};

/// Every schedule name with a one-line description.
pub const SCHEDULES: &[(&str, &str)] = &[
    (
        "cosine",
        "linear warm-up over the first 3% of steps, then cosine decay to zero",
    ),
    ("constant", "the same learning rate throughout"),
];

/// A learning-rate schedule over `total` steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    cosine: bool,
    peak: f64,
    total: u64,
}

impl Schedule {
    /// `name` is one of [`SCHEDULES`].
    pub fn new(name: &str, peak: f64, total: u64) -> Result<Schedule> {
        let cosine = match name {
            "cosine" => true,
            "constant" => false,
            other => {
                return Err(LearnError::config(
                    format!("unknown schedule '{other}'"),
                    format!("use one of: {}", crate::registry::names(SCHEDULES)),
                ))
            }
        };
        Ok(Schedule {
            cosine,
            peak,
            total: total.max(1),
        })
    }

    /// The learning rate for step `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        if !self.cosine {
            return self.peak;
        }
        let warmup = (self.total as f64 * 0.03).ceil().max(1.0);
        let s = step as f64;
        if s < warmup {
            return self.peak * (s + 1.0) / warmup;
        }
        let progress = ((s - warmup) / (self.total as f64 - warmup).max(1.0)).min(1.0);
        self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}
