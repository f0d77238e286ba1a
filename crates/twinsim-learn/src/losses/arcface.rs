//! PML's `ArcFaceLoss` (Deng et al. 2019, additive angular margin).

use tch::Tensor;

use super::proxies::{Proxies, TargetMargin};
use super::{assert_unmined, Loss, Mined};

/// Cross-entropy of softmax(scale · cosines to the class proxies), the
/// target class's angle widened by a margin.
#[derive(Debug)]
pub(crate) struct ArcFace {
    /// The margin in radians.
    margin: f64,
    scale: f64,
    proxies: Proxies,
}

impl ArcFace {
    /// `margin_degrees` as PML takes it (28.6° ≈ 0.5 rad).
    pub(crate) fn new(margin_degrees: f64, scale: f64, proxies: Proxies) -> Self {
        Self {
            margin: margin_degrees.to_radians(),
            scale,
            proxies,
        }
    }
}

impl Loss for ArcFace {
    fn compute(&self, embeddings: &Tensor, labels: &Tensor, mined: Option<&Mined>) -> Tensor {
        assert_unmined("arcface", mined);
        self.proxies
            .cross_entropy(embeddings, labels, TargetMargin::Angle(self.margin), self.scale)
    }

    fn needs_class_count(&self) -> bool {
        true
    }
}
