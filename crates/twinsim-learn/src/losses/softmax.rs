//! Plain softmax cross-entropy over a linear classifier on the embeddings:
//! how airbench94 and every image classifier train. Not a PML loss (PML's
//! proxy losses normalise both sides, [`super::normalized_softmax`]); kept
//! beside them because a classifier's penultimate features are the strongest
//! simple embedding baseline (benchmarks/peers/airbench.py).

use tch::nn::{self, Init};
use tch::{Reduction, Tensor};

use super::{assert_unmined, Loss, Mined};
use crate::{LearnError, Result};

/// Cross-entropy of softmax(scale · embeddings · W), W (D, C) learned, no
/// bias, nothing normalised.
pub(crate) struct Softmax {
    /// The classifier W (embedding_dim, num_classes).
    w: Tensor,
    scale: f64,
    /// Label smoothing ε of the cross-entropy.
    smoothing: f64,
}

impl Softmax {
    /// Creates W as trainable variable "W" under `vs`, uniform in
    /// ±1/√D as torch's `nn.Linear` starts.
    pub(crate) fn new(
        vs: &nn::Path,
        embedding_dim: i64,
        num_classes: i64,
        scale: f64,
        smoothing: f64,
    ) -> Result<Self> {
        if embedding_dim < 1 || num_classes < 2 {
            return Err(LearnError::config(
                format!("a classifier loss needs an embedding size ≥ 1 and ≥ 2 classes, got {embedding_dim} and {num_classes}"),
                "train on a dataset with at least two classes",
            ));
        }
        let bound = 1.0 / (embedding_dim as f64).sqrt();
        let w = vs.f_var(
            "W",
            &[embedding_dim, num_classes],
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        Ok(Self { w, scale, smoothing })
    }
}

impl Loss for Softmax {
    fn compute(&self, embeddings: &Tensor, labels: &Tensor, mined: Option<&Mined>) -> Tensor {
        assert_unmined("softmax", mined);
        let logits = embeddings.matmul(&self.w.to_kind(embeddings.kind())) * self.scale;
        logits.cross_entropy_loss(labels, None::<Tensor>, Reduction::Mean, -100, self.smoothing)
    }

    fn needs_class_count(&self) -> bool {
        true
    }
}

impl std::fmt::Debug for Softmax {
    // W's values would flood a log; its shape says which model it belongs to.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Softmax")
            .field("w_shape", &self.w.size())
            .field("scale", &self.scale)
            .field("smoothing", &self.smoothing)
            .finish()
    }
}
