//! What the proxy losses (normalized-softmax, arcface, cosface) share: a
//! learned matrix of class proxies and a softmax cross-entropy over the
//! embeddings' cosines to them, the target class's cosine moved by a margin.

use tch::nn::{self, Init};
use tch::{Reduction, Tensor};

use crate::distances::Distance;
use crate::{LearnError, Result};

/// The class-weight matrix W (embedding_dim, num_classes), PML's layout:
/// column c is class c's proxy, normalised inside the loss.
pub(crate) struct Proxies {
    w: Tensor,
    /// Label smoothing ε of the cross-entropy.
    smoothing: f64,
}

/// How the target class's cosine c is changed before the softmax: the
/// margin that makes the proxy losses demand more than being nearest.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TargetMargin {
    /// c itself (normalized softmax).
    None,
    /// c − m (CosFace).
    Cosine(f64),
    /// cos(arccos(c) + m), m in radians (ArcFace).
    Angle(f64),
}

impl Proxies {
    /// Creates W as trainable variable "W" under `vs`, standard normal as in
    /// PML; the cross-entropy smooths its targets by `smoothing`.
    pub(crate) fn new(vs: &nn::Path, embedding_dim: i64, num_classes: i64, smoothing: f64) -> Result<Self> {
        if embedding_dim < 1 || num_classes < 2 {
            return Err(LearnError::config(
                format!("a proxy loss needs an embedding size ≥ 1 and ≥ 2 classes, got {embedding_dim} and {num_classes}"),
                "train on a dataset with at least two classes",
            ));
        }
        let w = vs.f_var(
            "W",
            &[embedding_dim, num_classes],
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        Ok(Self { w, smoothing })
    }

    /// embeddings (B, D), labels (B,) int64 in 0..num_classes → the mean
    /// cross-entropy of softmax(scale · cosines to the proxies), the target
    /// class's cosine changed by `margin`; 0-dim.
    pub(crate) fn cross_entropy(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        margin: TargetMargin,
        scale: f64,
    ) -> Tensor {
        // PML casts W to the embeddings' kind too; the cast is differentiable.
        let w = self.w.to_kind(embeddings.kind());
        let cos = Distance::Cosine.matrix(embeddings, &w.tr());
        let logits = match margin {
            TargetMargin::None => cos,
            TargetMargin::Cosine(m) => with_target(&cos, labels, |c| c - m),
            TargetMargin::Angle(m) => with_target(&cos, labels, |c| (c.clamp(-1.0, 1.0).acos() + m).cos()),
        };
        (logits * scale).cross_entropy_loss(labels, None::<Tensor>, Reduction::Mean, -100, self.smoothing)
    }
}

/// cos (B, C) with each row's target entry `c = cos[i, labels[i]]` replaced by
/// `f(c)`, written as cos + one_hot·(f(c) − c) as PML does.
fn with_target(cos: &Tensor, labels: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let target = cos.gather(1, &labels.unsqueeze(1), false);
    let one_hot = labels.one_hot(cos.size()[1]).to_kind(cos.kind());
    cos + one_hot * (f(&target) - target)
}

impl std::fmt::Debug for Proxies {
    // W's values would flood a log; its shape says which model it belongs to.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxies")
            .field("w_shape", &self.w.size())
            .field("smoothing", &self.smoothing)
            .finish()
    }
}
