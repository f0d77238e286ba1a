//! PML's `SupConLoss` (Khosla et al. 2020, supervised contrastive).

use tch::{Kind, Tensor};

use super::{any, assert_unmined, class_masks, masked_logsumexp, zero_loss, Loss, Mined};
use crate::distances::Distance;
use crate::reducers::Reducer;

/// Per anchor: minus the mean, over its positives, of the log-softmax of
/// cosine similarity / temperature among all the other embeddings; averaged
/// over the anchors with a non-zero loss (those with positives).
#[derive(Debug)]
pub(crate) struct SupCon {
    pub(crate) temperature: f64,
}

impl Loss for SupCon {
    fn compute(&self, embeddings: &Tensor, labels: &Tensor, mined: Option<&Mined>) -> Tensor {
        assert_unmined("supcon", mined);
        let (pos, neg) = class_masks(labels);
        if !(any(&pos) && any(&neg)) {
            return zero_loss(embeddings);
        }
        let logits = Distance::Cosine.matrix(embeddings, embeddings) / self.temperature;
        let others = pos.logical_or(&neg);
        let log_prob = &logits - masked_logsumexp(&logits, &others, false).unsqueeze(1);
        let kind = embeddings.kind();
        let pos = pos.to_kind(kind);
        let per_anchor = (&pos * log_prob).sum_dim_intlist(1, false, kind);
        // PML's guard against anchors without positives (their sum is 0).
        let tiny = if kind == Kind::Double {
            f64::MIN_POSITIVE
        } else {
            f64::from(f32::MIN_POSITIVE)
        };
        let mean_log_prob = per_anchor / (pos.sum_dim_intlist(1, false, kind) + tiny);
        Reducer::AvgNonZero.reduce(&-mean_log_prob)
    }
}
