//! Whitened features: embeddings that tell apart classes the model never
//! trained on.
//!
//! Training pulls the head's output into one tight cluster per training
//! class, so an unseen class lands on whichever trained class it resembles
//! and two unseen classes can land on the same one. The pooled features
//! before the head keep more of the image, but their distances are
//! dominated by a few directions. Whitening shrinks the directions in which
//! the *same* image varies when it is shifted, turned or scaled (the
//! nuisance: the spread of augmented views of each training image around
//! its mean view), so what is left is what tells images apart; slant,
//! thickness and position vary alike within digits never trained on. On
//! MNIST trained on 0-4 and tested on 5-9, whitening all the features'
//! variance raised pair ROC-AUC from about 0.84 (the head) to 0.92-0.93, and
//! whitening the nuisance alone to about 0.94 in the sweep
//! (docs/benchmarks.md, "New classes without retraining").

use tch::{Device, Kind, Tensor};

use crate::{LearnError, Result};

/// Embedding sources a model can have, with one-line descriptions.
pub const EMBEDDINGS: &[(&str, &str)] = &[
    (
        "head",
        "the trained head's output: best on the classes trained on",
    ),
    (
        "features",
        "the pooled features before the head, whitened against how augmented views of one image vary: best on classes never trained on",
    ),
];

/// Shrinkage: each principal axis is scaled by 1/√(λ + `SHRINK`·mean λ), so
/// axes of almost no variance (noise) are not blown up. 0.1 gave the best
/// unseen-class ROC-AUC of 1e-3, 1e-2 and 1e-1 in the trials.
pub const SHRINK: f64 = 0.1;

/// The most training images whose features estimate the mean: ample for a
/// few hundred dimensions, and it bounds the time at the end of training.
pub const MAX_IMAGES: usize = 20_000;

/// Augmented views of each image, and images viewed, that estimate the
/// nuisance covariance: 16,000 feature vectors (the sweep's numbers).
pub const VIEWS: usize = 8;
/// See [`VIEWS`].
pub const VIEW_IMAGES: usize = 2_000;

/// The whitening transform x ↦ (x − `mean`)·`matrix`.
#[derive(Debug)]
pub struct Whitening {
    /// (F,)
    pub mean: Tensor,
    /// (F, F)
    pub matrix: Tensor,
}

impl Whitening {
    /// Fits the transform: `mean` is the mean of `features` (N, F); the
    /// matrix whitens the nuisance covariance, the spread of `views`
    /// (V, M, F), V ≥ 2 views of each of M images, around each image's mean
    /// view. On the CPU in double precision; the result is float32.
    pub fn fit(features: &Tensor, views: &Tensor) -> Result<Whitening> {
        let (n, v, m) = (features.size()[0], views.size()[0], views.size()[1]);
        if n < 1 || m < 1 {
            return Err(LearnError::config(
                "whitening needs at least 1 training image",
                "train on more images, or use --embedding head",
            ));
        }
        assert!(v >= 2, "whitening needs at least 2 views of each image");
        let x = features.to_device(Device::Cpu).to_kind(Kind::Double);
        let mean = x.mean_dim(0, false, Kind::Double);
        let views = views.to_device(Device::Cpu).to_kind(Kind::Double);
        let spread = (&views - views.mean_dim(0, true, Kind::Double)).reshape([v * m, -1]);
        let cov = spread.tr().mm(&spread) / (m * (v - 1)) as f64;
        let (eigenvalues, eigenvectors) = cov.linalg_eigh("L");
        let floor = SHRINK * eigenvalues.mean(Kind::Double).double_value(&[]).max(1e-12);
        let scale = (eigenvalues.clamp_min(0.0) + floor).rsqrt();
        Ok(Whitening {
            mean: mean.to_kind(Kind::Float),
            matrix: (eigenvectors * scale.unsqueeze(0)).to_kind(Kind::Float),
        })
    }

    /// (N, F) → (N, F) whitened.
    pub fn apply(&self, features: &Tensor) -> Tensor {
        (features - &self.mean).matmul(&self.matrix)
    }
}
