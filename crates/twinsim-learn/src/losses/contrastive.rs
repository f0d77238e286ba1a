//! PML's `ContrastiveLoss`: hinge losses on pair distances.

use tch::Tensor;

use super::{pair_weights, Loss, Mined};
use crate::distances::Distance;
use crate::reducers::Reducer;

/// Positive pairs cost max(0, d − pos_margin), negative pairs
/// max(0, neg_margin − d), d the L2 distance of normalised embeddings; each
/// kind is averaged over its non-zero pairs and the two averages added. All
/// ordered pairs of the batch, or the mined ones (triplets give their
/// (anchor, positive) and (anchor, negative) pairs, the semi-hard rule's
/// included).
#[derive(Debug)]
pub(crate) struct Contrastive {
    pub(crate) pos_margin: f64,
    pub(crate) neg_margin: f64,
}

impl Loss for Contrastive {
    fn compute(&self, embeddings: &Tensor, labels: &Tensor, mined: Option<&Mined>) -> Tensor {
        let d = Distance::L2.farness(embeddings);
        let (pos, neg) = pair_weights(embeddings, labels, mined, &d);
        let pull = (&d - self.pos_margin).relu();
        let push = (self.neg_margin - &d).relu();
        Reducer::AvgNonZero.reduce_counted(&pull, &pos) + Reducer::AvgNonZero.reduce_counted(&push, &neg)
    }
}
