//! Semi-hard mining (Schroff et al. 2015, FaceNet), as PML's
//! `TripletMarginMiner(type_of_triplets="semihard")`.
//!
//! The miner returns its rule, not its triplets: a batch of B = 1024 in 32
//! classes has some 15 million semi-hard triplets, and listing them would
//! take 350 MB of indices. The losses count them per pair instead
//! ([`window`]), in O(B²) memory.

use tch::Tensor;

use super::{Miner, SortedRows};
use crate::distances::Distance;
use crate::losses::Mined;
use crate::reducers::SUM_KIND;

/// Every valid triplet whose negative is farther from the anchor than the
/// positive, but by at most `margin`: the triplets whose loss lies in
/// [0, margin), hard enough to teach, not so hard as to be label noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SemiHardMiner {
    margin: f64,
    distance: Distance,
}

impl SemiHardMiner {
    /// `margin` in the units of `distance` (PML's default is 0.2).
    pub fn new(margin: f64, distance: Distance) -> Self {
        Self { margin, distance }
    }
}

impl Miner for SemiHardMiner {
    /// → [`Mined::SemiHard`] with this miner's margin and distance, whatever
    /// the batch: the loss applies the rule to the same embeddings.
    fn mine(&self, _embeddings: &Tensor, _labels: &Tensor) -> Mined {
        Mined::SemiHard {
            margin: self.margin,
            distance: self.distance,
        }
    }
}

/// The semi-hard triplets of some anchor rows, counted per pair.
pub(crate) struct Window {
    /// Each anchor row's negatives, sorted by farness.
    pub(crate) negatives: SortedRows,
    /// (R, B) int64: pair (a, p)'s negatives in the window are the sorted
    /// entries `first[a,p] .. past[a,p]` of row a of `negatives`.
    pub(crate) first: Tensor,
    /// (R, B) int64, ≥ `first`: see `first`.
    pub(crate) past: Tensor,
    /// (R, B) float64: per (a, p), the triplets (a, p, ·) in the window,
    /// each weighted `pos[a,p]·neg[a,n]`.
    pub(crate) per_positive: Tensor,
    /// (R, B) float64: per (a, n), the triplets (a, ·, n) in the window,
    /// weighted the same way.
    pub(crate) per_negative: Tensor,
}

/// For anchor rows far, pos, neg and top (R, B), pos and neg weights of
/// far's kind: the triplets with `far[a,p] < far[a,n] ≤ top[a,p]` (`<` at
/// the top unless `inclusive`). PML's semi-hard window is
/// `top = far + margin`, inclusive; the triplet loss narrows it to where its
/// hinge is non-zero. `top` must be ≥ `far`.
pub(crate) fn window(far: &Tensor, pos: &Tensor, neg: &Tensor, top: &Tensor, inclusive: bool) -> Window {
    let negatives = SortedRows::new(far, neg);
    let first = negatives.rank(far, true);
    // An empty window where top rounds down onto far.
    let past = negatives.rank(top, inclusive).maximum(&first);
    let per_pair = negatives.weight_below(&past) - negatives.weight_below(&first);
    // Per (a, n): the positives below it, less those whose top is below it
    // too — the same comparisons as for the pairs, so both sides agree.
    let below = SortedRows::new(far, pos);
    let tops_below = SortedRows::new(top, pos);
    let per_neg = below.weight_below(&below.rank(far, false))
        - tops_below.weight_below(&tops_below.rank(far, !inclusive));
    Window {
        per_positive: per_pair * pos.to_kind(SUM_KIND),
        per_negative: per_neg.clamp_min(0.0) * neg.to_kind(SUM_KIND),
        negatives,
        first,
        past,
    }
}
