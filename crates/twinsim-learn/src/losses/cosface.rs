//! PML's `CosFaceLoss` (Wang et al. 2018, large margin cosine loss).

use tch::Tensor;

use super::proxies::{Proxies, TargetMargin};
use super::{assert_unmined, Loss, Mined};

/// Cross-entropy of softmax(scale · cosines to the class proxies), the
/// target class's cosine lowered by `margin`.
#[derive(Debug)]
pub(crate) struct CosFace {
    pub(crate) margin: f64,
    pub(crate) scale: f64,
    pub(crate) proxies: Proxies,
}

impl Loss for CosFace {
    fn compute(&self, embeddings: &Tensor, labels: &Tensor, mined: Option<&Mined>) -> Tensor {
        assert_unmined("cosface", mined);
        self.proxies
            .cross_entropy(embeddings, labels, TargetMargin::Cosine(self.margin), self.scale)
    }

    fn needs_class_count(&self) -> bool {
        true
    }
}
