//! How embeddings are compared, as pytorch-metric-learning (PML) compares
//! them: every distance here first scales embeddings to unit L2 norm, so a
//! loss's margins mean the same thing whatever the encoder's output norm.

use tch::Tensor;

use crate::{LearnError, Result};

/// Norms below this count as zero when normalising (PyTorch's
/// `F.normalize` default), so an all-zero embedding stays zero instead of
/// becoming NaN.
const NORM_EPS: f64 = 1e-12;

/// A comparison between L2-normalised embeddings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Distance {
    /// Euclidean distance (PML's default `LpDistance`): smaller is closer,
    /// in [0, 2].
    #[default]
    L2,
    /// Cosine similarity (PML's `CosineSimilarity`): larger is closer, in
    /// [-1, 1].
    Cosine,
}

/// Every distance name with a one-line description, for `--help` and errors.
pub const DISTANCES: &[(&str, &str)] = &[
    (
        "l2",
        "Euclidean distance between L2-normalised embeddings (smaller = closer)",
    ),
    ("cosine", "cosine similarity (larger = closer)"),
];

impl Distance {
    /// The distance called `name` in [`DISTANCES`].
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "l2" => Ok(Distance::L2),
            "cosine" => Ok(Distance::Cosine),
            _ => Err(LearnError::config(
                format!("unknown distance '{name}'"),
                format!("use one of: {}", crate::registry::names(DISTANCES)),
            )),
        }
    }

    /// Whether larger values mean closer (PML's `is_inverted`).
    pub fn is_similarity(self) -> bool {
        self == Distance::Cosine
    }

    /// (N, D) and (M, D) → (N, M): the distance (or similarity) between
    /// every row of `x` and every row of `y`.
    pub fn matrix(self, x: &Tensor, y: &Tensor) -> Tensor {
        self.between_unit(&normalize(x, 1), &normalize(y, 1))
    }

    /// (B, D) → (B, B): how far apart every two embeddings are, oriented so
    /// that larger always means farther (the similarity negated), which lets
    /// mining and hinge losses be written once for both kinds.
    pub fn farness(self, embeddings: &Tensor) -> Tensor {
        let unit = normalize(embeddings, 1);
        let m = self.between_unit(&unit, &unit);
        if self.is_similarity() {
            -m
        } else {
            m
        }
    }

    fn between_unit(self, x: &Tensor, y: &Tensor) -> Tensor {
        match self {
            // cdist, as PML uses: for batches over 25 rows it takes the
            // matrix-product route, whose gradient at zero distance is zero.
            Distance::L2 => Tensor::cdist(x, y, 2.0, None),
            Distance::Cosine => x.matmul(&y.tr()),
        }
    }
}

/// `x` with every slice along `dim` scaled to unit L2 norm (PyTorch's
/// `F.normalize`); same shape as `x`.
pub fn normalize(x: &Tensor, dim: i64) -> Tensor {
    x / x.norm_scalaropt_dim(2, [dim], true).clamp_min(NORM_EPS)
}
