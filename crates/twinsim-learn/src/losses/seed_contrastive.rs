//! The seed's contrastive loss (Hadsell, Chopra & LeCun 2006), on explicit
//! pairs and raw embeddings, kept so that runs compare with the seed project.

use tch::Tensor;

use super::{assert_unmined, Loss, Mined};

/// The batch is two halves [a; b] of B/2 embeddings each, pair i being
/// (a_i, b_i) with distance d_i = ‖a_i − b_i‖₂ (no normalisation, no
/// epsilon) and y_i = 1 when its labels differ: the loss is
/// mean((1 − y)·d² + y·max(0, margin − d)²).
#[derive(Debug)]
pub(crate) struct SeedContrastive {
    pub(crate) margin: f64,
}

impl Loss for SeedContrastive {
    fn compute(&self, embeddings: &Tensor, labels: &Tensor, mined: Option<&Mined>) -> Tensor {
        assert_unmined("seed-contrastive", mined);
        let b = embeddings.size()[0];
        assert!(
            b % 2 == 0,
            "loss seed-contrastive needs a batch of pairs [a; b], got {b} embeddings"
        );
        let half = |t: &Tensor, i: i64| t.narrow(0, i * b / 2, b / 2);
        // The norm, not sqrt(sum of squares): its gradient at d = 0 is 0, not NaN.
        let d = (half(embeddings, 0) - half(embeddings, 1)).norm_scalaropt_dim(2, [1], false);
        let differ = half(labels, 0)
            .ne_tensor(&half(labels, 1))
            .to_kind(embeddings.kind());
        let same = 1.0 - &differ;
        let pull: Tensor = same * d.square();
        let push: Tensor = differ * (self.margin - d).relu().square();
        (pull + push).mean(embeddings.kind())
    }
}
