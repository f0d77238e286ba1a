//! Batch-hard mining (Hermans et al. 2017, "In Defense of the Triplet
//! Loss"), as PML's `BatchHardMiner`.

use tch::Tensor;

use super::Miner;
use crate::distances::Distance;
use crate::losses::{class_masks, Mined};

/// One triplet per anchor: its farthest positive and its nearest negative,
/// for every anchor that has both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHardMiner {
    distance: Distance,
}

impl BatchHardMiner {
    /// Ranks pairs by `distance`, as the loss that uses the triplets does.
    pub fn new(distance: Distance) -> Self {
        Self { distance }
    }
}

impl Miner for BatchHardMiner {
    /// embeddings (B, D), labels (B,) → [`Mined::Triplets`] of T ≤ B triplets.
    fn mine(&self, embeddings: &Tensor, labels: &Tensor) -> Mined {
        tch::no_grad(|| {
            let far = self.distance.farness(embeddings);
            let (pos, neg) = class_masks(labels);
            let hardest_pos = far
                .masked_fill(&pos.logical_not(), f64::NEG_INFINITY)
                .argmax(1, false);
            let hardest_neg = far
                .masked_fill(&neg.logical_not(), f64::INFINITY)
                .argmin(1, false);
            let anchors = anchors_with_triplets(&pos, &neg).nonzero().squeeze_dim(1);
            Mined::Triplets {
                positives: hardest_pos.index_select(0, &anchors),
                negatives: hardest_neg.index_select(0, &anchors),
                anchors,
            }
        })
    }
}

/// Positive and negative masks (B, B) → (B,) bool: the anchors with at
/// least one positive and one negative, the only ones a triplet can start
/// from.
fn anchors_with_triplets(positives: &Tensor, negatives: &Tensor) -> Tensor {
    positives
        .any_dim(1, false)
        .logical_and(&negatives.any_dim(1, false))
}
