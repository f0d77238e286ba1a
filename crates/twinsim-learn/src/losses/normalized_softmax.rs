//! PML's `NormalizedSoftmaxLoss` (Zhai & Wu 2018).

use tch::Tensor;

use super::proxies::{Proxies, TargetMargin};
use super::{assert_unmined, Loss, Mined};

/// Cross-entropy of softmax(cosines to the class proxies / temperature).
#[derive(Debug)]
pub(crate) struct NormalizedSoftmax {
    pub(crate) temperature: f64,
    pub(crate) proxies: Proxies,
}

impl Loss for NormalizedSoftmax {
    fn compute(&self, embeddings: &Tensor, labels: &Tensor, mined: Option<&Mined>) -> Tensor {
        assert_unmined("normalized-softmax", mined);
        self.proxies
            .cross_entropy(embeddings, labels, TargetMargin::None, 1.0 / self.temperature)
    }

    fn needs_class_count(&self) -> bool {
        true
    }
}
