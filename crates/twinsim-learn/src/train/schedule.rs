//! Learning rate over the course of a run.

use crate::error::{LearnError, Result};

/// Every schedule name with a one-line description.
pub const SCHEDULES: &[(&str, &str)] = &[
    (
        "cosine",
        "linear warm-up over the first 3% of steps, then cosine decay to zero",
    ),
    (
        "triangle",
        "from a fifth of the peak up to it over the first 20% of steps, then linear decay to zero (airbench's)",
    ),
    ("constant", "the same learning rate throughout"),
];

/// The shapes of [`SCHEDULES`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    Cosine,
    Triangle,
    Constant,
}

/// A learning-rate schedule over `total` steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    shape: Shape,
    peak: f64,
    total: u64,
}

impl Schedule {
    /// `name` is one of [`SCHEDULES`].
    pub fn new(name: &str, peak: f64, total: u64) -> Result<Schedule> {
        let shape = match name {
            "cosine" => Shape::Cosine,
            "triangle" => Shape::Triangle,
            "constant" => Shape::Constant,
            other => {
                return Err(LearnError::config(
                    format!("unknown schedule '{other}'"),
                    format!("use one of: {}", crate::registry::names(SCHEDULES)),
                ))
            }
        };
        Ok(Schedule {
            shape,
            peak,
            total: total.max(1),
        })
    }

    /// The learning rate for step `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        match self.shape {
            Shape::Constant => self.peak,
            Shape::Cosine => self.cosine(step),
            Shape::Triangle => self.triangle(step),
        }
    }

    fn cosine(&self, step: u64) -> f64 {
        let warmup = (self.total as f64 * 0.03).ceil().max(1.0);
        let s = step as f64;
        if s < warmup {
            return self.peak * (s + 1.0) / warmup;
        }
        let progress = ((s - warmup) / (self.total as f64 - warmup).max(1.0)).min(1.0);
        self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    /// airbench94's shape: numpy's `interp(step, [0, 0.2·total, total],
    /// [0.2, 1, 0])` times the peak. Its long warm-up suits SGD at a high
    /// rate on a network that starts near the identity (Dirac convolutions).
    fn triangle(&self, step: u64) -> f64 {
        let total = self.total as f64;
        let top = (0.2 * total).floor().max(1.0);
        let s = (step as f64).min(total);
        let share = if s < top {
            0.2 + 0.8 * s / top
        } else {
            (total - s) / (total - top).max(1.0)
        };
        self.peak * share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_triangle_rises_from_a_fifth_to_the_peak_and_falls_to_zero() {
        let s = Schedule::new("triangle", 2.0, 100).unwrap();
        for (step, want) in [(0, 0.4), (10, 1.2), (20, 2.0), (60, 1.0), (100, 0.0), (500, 0.0)] {
            assert!(
                (s.lr(step) - want).abs() < 1e-12,
                "step {step}: {} not {want}",
                s.lr(step)
            );
        }
    }

    #[test]
    fn an_unknown_schedule_names_the_known_ones() {
        let e = Schedule::new("step", 1.0, 10).unwrap_err();
        assert!(e.to_string().contains("'step'"), "{e}");
        let hint = e.hint().unwrap();
        assert!(hint.contains("triangle") && hint.contains("cosine"), "{hint}");
    }
}
