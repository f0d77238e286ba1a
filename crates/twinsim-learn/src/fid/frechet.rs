//! The Fréchet distance between two Gaussians N(μ1, Σ1) and N(μ2, Σ2):
//!
//! ‖μ1 − μ2‖² + Tr Σ1 + Tr Σ2 − 2 Tr √(Σ1 Σ2)
//!
//! pytorch-fid takes √(Σ1 Σ2) with scipy's general `sqrtm`. Here the trace
//! comes from symmetric matrices only: with S = √Σ1 (from Σ1's
//! eigenvectors, negative eigenvalues of rounding clamped to 0), Σ1 Σ2 is
//! similar to S Σ2 S, which is symmetric and positive semi-definite, so
//! Tr √(Σ1 Σ2) = Σ √λ over the eigenvalues λ of S Σ2 S. A singular Σ1 gets
//! the usual safeguard first: a small offset added to both diagonals.

use tch::{Kind, Tensor};

use super::Statistics;
use crate::{LearnError, Result};

/// The offset added to both covariances' diagonals when Σ1 is singular,
/// as pytorch-fid does when its `sqrtm` fails.
pub const OFFSET: f64 = 1e-6;

/// The Fréchet distance between the Gaussians of `a` and `b`.
pub fn distance(a: &Statistics, b: &Statistics) -> Result<f64> {
    if a.dim() != b.dim() {
        return Err(LearnError::config(
            format!("the statistics have {}-d and {}-d features", a.dim(), b.dim()),
            "compare sets described by the same features (the same model or Inception)",
        ));
    }
    let diff = (&a.mu - &b.mu).square().sum(Kind::Double).double_value(&[]);
    let traces = a.sigma.trace().double_value(&[]) + b.sigma.trace().double_value(&[]);
    let root = trace_sqrt_product(&a.sigma, &b.sigma).or_else(|| {
        tracing::warn!("FID: a covariance is singular; adding {OFFSET} to the diagonals");
        let eye = Tensor::eye(a.dim(), (Kind::Double, tch::Device::Cpu)) * OFFSET;
        trace_sqrt_product(&(&a.sigma + &eye), &(&b.sigma + &eye))
    });
    let fid = root.map(|r| diff + traces - 2.0 * r);
    match fid {
        Some(fid) if fid.is_finite() => Ok(fid.max(0.0)),
        _ => Err(LearnError::config(
            "the Fréchet distance is not finite: the covariances are degenerate",
            "use more images than feature dimensions, and check the features for constant values",
        )),
    }
}

/// Tr √(Σ1 Σ2) for symmetric positive semi-definite Σ1, Σ2, or `None`
/// when Σ1 is singular or the result is not finite.
fn trace_sqrt_product(s1: &Tensor, s2: &Tensor) -> Option<f64> {
    let (values, vectors) = s1.linalg_eigh("L");
    let top = values.max().double_value(&[]);
    let least = values.min().double_value(&[]);
    if top.is_nan() || top <= 0.0 || least <= top * 1e-12 {
        return None;
    }
    let root = vectors
        .matmul(&values.clamp_min(0.0).sqrt().diag_embed(0, -2, -1))
        .matmul(&vectors.tr());
    let inner = root.matmul(s2).matmul(&root);
    let inner = (&inner + inner.tr()) / 2.0;
    let (lambda, _) = inner.linalg_eigh("L");
    let trace = lambda.clamp_min(0.0).sqrt().sum(Kind::Double).double_value(&[]);
    trace.is_finite().then_some(trace)
}
