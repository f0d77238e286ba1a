//! PML's `AngularLoss` (Wang et al. 2017, "Deep Metric Learning with Angular
//! Loss").

use tch::Tensor;

use super::{any, assert_unmined, class_masks, masked_logsumexp, zero_loss, Loss, Mined};
use crate::distances::normalize;
use crate::reducers::Reducer;

/// For every anchor-positive pair (a, p), normalised, against every
/// negative n of the anchor:
/// log(1 + Σₙ exp(4·tan²α·(a + p)·n − 2·(1 + tan²α)·a·p)), averaged over the
/// pairs. As in PML, the negatives n enter un-normalised (only a and p are
/// normalised); the oracle fixture pins this.
#[derive(Debug)]
pub(crate) struct Angular {
    /// tan²(alpha).
    tan2: f64,
}

impl Angular {
    /// `alpha_degrees` in (0, 90): the bound on the angle at the negative.
    pub(crate) fn new(alpha_degrees: f64) -> Self {
        Self {
            tan2: alpha_degrees.to_radians().tan().powi(2),
        }
    }
}

impl Loss for Angular {
    fn compute(&self, embeddings: &Tensor, labels: &Tensor, mined: Option<&Mined>) -> Tensor {
        assert_unmined("angular", mined);
        let (pos, neg) = class_masks(labels);
        let pairs = pos.nonzero();
        if pairs.size()[0] == 0 || !any(&neg) {
            return zero_loss(embeddings);
        }
        let (a, p) = (pairs.select(1, 0), pairs.select(1, 1));
        let anchors = normalize(&embeddings.index_select(0, &a), 1);
        let positives = normalize(&embeddings.index_select(0, &p), 1);
        let ap = (&anchors * &positives).sum_dim_intlist(1, true, embeddings.kind());
        let form = (anchors + positives).matmul(&embeddings.tr()) * (4.0 * self.tan2)
            - ap * (2.0 * (1.0 + self.tan2));
        let negatives = labels
            .index_select(0, &a)
            .unsqueeze(1)
            .ne_tensor(&labels.unsqueeze(0));
        Reducer::Mean.reduce(&masked_logsumexp(&form, &negatives, true))
    }
}
