//! PML's `MultiSimilarityLoss` (Wang et al. 2019).

use tch::Tensor;

use super::{assert_unmined, class_masks, masked_logsumexp, Loss, Mined};
use crate::distances::Distance;
use crate::reducers::Reducer;

/// Per anchor, with s the cosine similarities:
/// (1/α)·log(1 + Σ_pos exp(−α(s − base))) + (1/β)·log(1 + Σ_neg exp(β(s − base))),
/// averaged over the anchors.
#[derive(Debug)]
pub(crate) struct MultiSimilarity {
    pub(crate) alpha: f64,
    pub(crate) beta: f64,
    pub(crate) base: f64,
}

impl Loss for MultiSimilarity {
    fn compute(&self, embeddings: &Tensor, labels: &Tensor, mined: Option<&Mined>) -> Tensor {
        assert_unmined("multi-similarity", mined);
        let s = Distance::Cosine.matrix(embeddings, embeddings);
        let (pos, neg) = class_masks(labels);
        let pull = masked_logsumexp(&((self.base - &s) * self.alpha), &pos, true) / self.alpha;
        let push = masked_logsumexp(&((s - self.base) * self.beta), &neg, true) / self.beta;
        Reducer::Mean.reduce(&(pull + push))
    }
}
