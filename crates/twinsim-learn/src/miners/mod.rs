//! Miners choose which triplets of a batch a loss should see (PML's miners).
//! Built by name with [`build`].
//!
//! Nothing here builds a (B, B, B) tensor: each anchor's negatives are sorted
//! once by distance (`SortedRows`), and "which negatives fall within reach
//! of this anchor-positive pair" becomes a binary search, O(B² log B) time and
//! O(B²) memory. The batch-all triplet loss asks the same question, and so
//! do the losses given the semi-hard rule ([`Mined::SemiHard`]).

mod batch_hard;
mod semi_hard;

pub use batch_hard::BatchHardMiner;
pub(crate) use semi_hard::window as semi_hard_window;
pub use semi_hard::SemiHardMiner;

use tch::Tensor;

use crate::distances::Distance;
use crate::losses::Mined;
use crate::reducers::SUM_KIND;
use crate::registry::names;
use crate::{LearnError, Result};

/// Chooses tuples of a batch for a loss.
pub trait Miner: std::fmt::Debug + Send {
    /// embeddings (B, D) float, labels (B,) int64 → the chosen indices into
    /// the batch. Never differentiable: mining only selects.
    fn mine(&self, embeddings: &Tensor, labels: &Tensor) -> Mined;
}

/// Every miner name with a one-line description, for `--help` and errors.
pub const MINERS: &[(&str, &str)] = &[
    (
        "batch-all",
        "no mining: the loss sees every valid pair or triplet of the batch",
    ),
    (
        "batch-hard",
        "per anchor, its farthest positive with its nearest negative (Hermans et al. 2017)",
    ),
    (
        "semi-hard",
        "triplets whose negative is farther than the positive, but within the margin (FaceNet)",
    ),
];

/// The miner called `name` in [`MINERS`], comparing embeddings by normalised
/// L2 distance; `Ok(None)` for `batch-all`, which is no miner at all.
/// `margin` is the semi-hard window (same units as the distance).
pub fn build(name: &str, margin: f64) -> Result<Option<Box<dyn Miner>>> {
    build_with_distance(name, margin, Distance::L2)
}

/// Like [`build`], for a loss that compares embeddings with `distance`: a
/// miner must rank triplets the way its loss scores them.
pub fn build_with_distance(name: &str, margin: f64, distance: Distance) -> Result<Option<Box<dyn Miner>>> {
    match name {
        "batch-all" => Ok(None),
        "batch-hard" => Ok(Some(Box::new(BatchHardMiner::new(distance)))),
        "semi-hard" => {
            if !(margin.is_finite() && margin > 0.0) {
                return Err(LearnError::config(
                    format!("the semi-hard miner needs a positive margin, got {margin}"),
                    "set the loss margin to a positive number, e.g. 0.2",
                ));
            }
            Ok(Some(Box::new(SemiHardMiner::new(margin, distance))))
        }
        _ => Err(LearnError::config(
            format!("unknown miner '{name}'"),
            format!("use one of: {}", names(MINERS)),
        )),
    }
}

/// Per-anchor work on (B, B) matrices is done this many elements at a time,
/// so its (rows, B) temporaries stay a few megabytes whatever B is.
const ROW_CHUNK: i64 = 1 << 18;

/// Consecutive row ranges (start, len) of a (rows, width) matrix, each of
/// about [`ROW_CHUNK`] elements (at least one row).
pub(crate) fn row_chunks(rows: i64, width: i64) -> impl Iterator<Item = (i64, i64)> {
    let step = (ROW_CHUNK / width.max(1)).max(1);
    (0..rows)
        .step_by(step as usize)
        .map(move |start| (start, step.min(rows - start)))
}

/// Each row's kept entries in ascending order, so that "how many kept
/// entries of row r lie below q, and what do they add up to" costs one
/// binary search.
pub(crate) struct SortedRows {
    /// (R, M): kept values ascending, then +∞ for the entries left out.
    sorted: Tensor,
    /// (R, M): the weight of each sorted entry, 0 for those left out.
    weights: Tensor,
}

impl SortedRows {
    /// values (R, M) and weights (R, M) ≥ 0 of the same kind; entries of
    /// weight 0 are left out.
    pub(crate) fn new(values: &Tensor, weights: &Tensor) -> Self {
        let (sorted, order) = values.masked_fill(&weights.eq(0.0), f64::INFINITY).sort(1, false);
        let weights = weights.gather(1, &order, false);
        Self { sorted, weights }
    }

    /// queries (R, Q) → (R, Q) int64: how many kept entries of each query's
    /// row are < the query, or ≤ it when `inclusive`; also the position of
    /// the first sorted entry past it.
    pub(crate) fn rank(&self, queries: &Tensor, inclusive: bool) -> Tensor {
        let side = if inclusive { "right" } else { "left" };
        queries
            .contiguous()
            .searchsorted(&self.sorted, false, inclusive, side, None::<Tensor>)
    }

    /// ranks (R, Q) → (R, Q) float64: the total weight of the first `ranks`
    /// sorted entries of each row.
    pub(crate) fn weight_below(&self, ranks: &Tensor) -> Tensor {
        prefix_sums(&self.weights).gather(1, ranks, false)
    }

    /// ranks (R, Q) → (R, Q) float64: the weighted sum of the values of the
    /// first `ranks` sorted entries of each row.
    pub(crate) fn value_below(&self, ranks: &Tensor) -> Tensor {
        // Left-out entries hold +∞ and weight 0: their product must be 0.
        let values = self.sorted.masked_fill(&self.weights.eq(0.0), 0.0);
        prefix_sums(&(&self.weights * values)).gather(1, ranks, false)
    }

    /// (R, 1) float64: the total weight of each row's kept entries.
    pub(crate) fn weight_total(&self) -> Tensor {
        self.weights.sum_dim_intlist(1, true, SUM_KIND)
    }
}

/// (R, M) → (R, M + 1) float64: 0, then the running sums along each row.
fn prefix_sums(x: &Tensor) -> Tensor {
    let zero = Tensor::zeros([x.size()[0], 1], (SUM_KIND, x.device()));
    Tensor::cat(&[zero, x.cumsum(1, SUM_KIND)], 1)
}
