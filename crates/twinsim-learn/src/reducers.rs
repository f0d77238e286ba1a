//! How per-element losses (one per pair, triplet or anchor) become the one
//! number training minimises: pytorch-metric-learning's reducers.

use tch::{Kind, Tensor};

/// A reduction of per-element losses to a scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reducer {
    /// The mean over all elements (PML's `MeanReducer`).
    Mean,
    /// The mean over the elements whose loss is > 0 (PML's
    /// `AvgNonZeroReducer`, which is `ThresholdReducer(low=0)`): the many
    /// easy pairs or triplets, at zero loss, do not dilute the hard ones.
    AvgNonZero,
}

impl Reducer {
    /// losses (any shape) → 0-dim. Zero, still attached to the autograd
    /// graph, when no element counts.
    pub fn reduce(self, losses: &Tensor) -> Tensor {
        self.reduce_counted(losses, &losses.ones_like())
    }

    /// Like [`Reducer::reduce`], where element i stands for `counts[i]`
    /// elements (same shape as `losses`, ≥ 0): how PML reduces a pair that a
    /// miner listed twice, and how a (B, B) matrix of losses is reduced over
    /// the pairs a mask selects (count 0 leaves a pair out).
    pub fn reduce_counted(self, losses: &Tensor, counts: &Tensor) -> Tensor {
        let counts = match self {
            Reducer::Mean => counts.shallow_clone(),
            Reducer::AvgNonZero => counts * losses.gt(0.0),
        };
        let total = counts.sum(losses.kind()).clamp_min(1.0);
        (losses * &counts).sum(losses.kind()) / total
    }
}

/// [`Reducer::AvgNonZero`] of hinge losses that were summed outside the
/// autograd graph, because materialising them would take B³ memory (every
/// triplet of a batch). `sum` and `count` (0-dim) are the sum and the number
/// of the non-zero losses, `grad_sum` (same shape as `x`) the gradient of
/// `sum` with respect to `x`. Returns `sum / count`, whose gradient with
/// respect to `x` is `grad_sum / count`: the exact gradient, through a graph
/// no larger than `x`.
pub(crate) fn avg_nonzero_from_sums(sum: &Tensor, count: &Tensor, grad_sum: &Tensor, x: &Tensor) -> Tensor {
    let count = count.clamp_min(1.0);
    let value = (sum / &count).to_kind(x.kind());
    let linear = (grad_sum * x).sum(x.kind()) / count.to_kind(x.kind());
    // linear − linear.detach() is exactly zero, so the value is untouched.
    value + (&linear - linear.detach())
}

/// The kind in which sums over up to B³ elements are accumulated: float64,
/// so that counts beyond 2²⁴ stay exact and cancellation in float32 inputs
/// does not show in the loss.
pub(crate) const SUM_KIND: Kind = Kind::Double;
