//! Exact nearest-neighbour search, a block of queries at a time, so a
//! 60,000 × 60,000 distance matrix never exists: a block's scores are
//! `block × gallery` values, ranked with torch's (multithreaded) matmul and
//! top-k, then dropped.
//!
//! Order: by distance, nearest first; items at exactly the same distance
//! come in gallery order (lower index first), whatever order torch's top-k
//! returns them in, so results are reproducible across devices and block
//! sizes.

use tch::{Device, Kind, Tensor};

use super::blocks;
use crate::model::Distance;

/// Queries per block unless the caller asks otherwise: a block's scores are
/// `CHUNK × gallery` values (60 MB of float32 against MNIST's 60,000
/// training images).
pub const CHUNK: i64 = 256;

/// A gallery prepared for searching: what every block of queries reuses.
pub struct Search {
    /// (D, G) the gallery transposed; doubled for Euclidean, so that one
    /// `addmm` gives 2q·g − ‖g‖² (doubling is exact in floating point).
    right: Tensor,
    /// −‖g‖² per gallery item (G,) for Euclidean; `None` for cosine.
    bias: Option<Tensor>,
    exclude_self: bool,
}

impl Search {
    /// A search of `gallery` (G, D) float, on any device. `Distance::Cosine`
    /// ranks by dot product, so the embeddings must be L2-normalised;
    /// `Distance::Euclidean` ranks by L2 distance. With `exclude_self`
    /// (leave-one-out), query i is gallery item i and is never its own
    /// neighbour.
    pub fn new(gallery: &Tensor, distance: Distance, exclude_self: bool) -> Search {
        let (right, bias) = match distance {
            Distance::Cosine => (gallery.tr(), None),
            Distance::Euclidean => {
                let sq = gallery.square().sum_dim_intlist(1, false, gallery.kind());
                ((gallery * 2.0).tr(), Some(sq.neg()))
            }
        };
        Search {
            right,
            bias,
            exclude_self,
        }
    }

    /// Gallery items a query can have as neighbours.
    pub fn candidates(&self) -> i64 {
        self.right.size()[1] - i64::from(self.exclude_self)
    }

    /// The `k` nearest gallery items of the queries `block` (B, D), which
    /// are queries `start..start + B` of the whole set: indices (B, k) int64
    /// on the gallery's device, nearest first. `k` must not exceed
    /// [`Search::candidates`].
    pub fn nearest(&self, block: &Tensor, start: i64, k: i64) -> Tensor {
        if k == 0 {
            return Tensor::zeros([block.size()[0], 0], (Kind::Int64, self.right.device()));
        }
        top_k(&self.scores(block, start), k)
    }

    /// (B, G) scores, larger = nearer: the dot product for cosine; for
    /// Euclidean −‖q − g‖² + ‖q‖², since a query's own norm shifts its whole
    /// row and cannot change the row's order. A query's own entry is −∞
    /// under leave-one-out.
    fn scores(&self, block: &Tensor, start: i64) -> Tensor {
        let mut score = match &self.bias {
            Some(bias) => bias.addmm(block, &self.right),
            None => block.matmul(&self.right),
        };
        if self.exclude_self {
            let rows = Tensor::arange(block.size()[0], (Kind::Int64, score.device()));
            let _ = score.index_put_(
                &[Some(&rows), Some(&(&rows + start))],
                &Tensor::from(f64::NEG_INFINITY)
                    .to_kind(score.kind())
                    .to_device(score.device()),
                false,
            );
        }
        score
    }
}

/// The `k` nearest gallery items of each query: indices (Nq, k) int64 on the
/// CPU, nearest first, ties in gallery order. `query` (Nq, D) and `gallery`
/// (G, D) are float on one device; `exclude_self` is leave-one-out (query i
/// is gallery item i). `k` must not exceed the gallery items available.
pub fn nearest(query: &Tensor, gallery: &Tensor, k: i64, distance: Distance, exclude_self: bool) -> Tensor {
    let search = Search::new(gallery, distance, exclude_self);
    let found: Vec<Tensor> = blocks(query.size()[0], CHUNK)
        .map(|(start, len)| {
            search
                .nearest(&query.narrow(0, start, len), start, k)
                .to_device(Device::Cpu)
        })
        .collect();
    if found.is_empty() {
        return Tensor::zeros([0, k], (Kind::Int64, Device::Cpu));
    }
    Tensor::cat(&found, 0)
}

/// The column indices (B, k) of each row's k largest scores, largest
/// first, equal scores in index order (torch's top-k promises neither which
/// of several equal items it keeps nor their order). Only the rows with
/// equal scores among their k, or at the cut, are reworked.
fn top_k(score: &Tensor, k: i64) -> Tensor {
    // One more than asked shows whether a tie straddles the cut.
    let probe = (k + 1).min(score.size()[1]);
    let (values, indices) = score.topk(probe, 1, true, true);
    let kth = values.narrow(1, k - 1, 1);
    let mut indices = indices.narrow(1, 0, k);
    let straddles = if probe > k {
        values.narrow(1, k, 1).eq_tensor(&kth).squeeze_dim(1)
    } else {
        Tensor::zeros([score.size()[0]], (Kind::Bool, score.device()))
    };
    let fix = straddles.nonzero().squeeze_dim(1);
    if fix.size()[0] > 0 {
        let set = lowest_at_cut(&score.index_select(0, &fix), &kth.index_select(0, &fix), k);
        indices = indices.index_copy(0, &fix, &set);
    }
    let top = values.narrow(1, 0, k);
    let side_by_side = top
        .narrow(1, 1, k - 1)
        .eq_tensor(&top.narrow(1, 0, k - 1))
        .any_dim(1, false);
    let rework = side_by_side.logical_or(&straddles).nonzero().squeeze_dim(1);
    if rework.size()[0] == 0 {
        return indices;
    }
    let chosen = indices.index_select(0, &rework);
    let scores = score.gather(1, &indices, false).index_select(0, &rework);
    indices.index_copy(0, &rework, &order_by_score_then_index(&scores, &chosen))
}

/// Each row's k items (B, k), in index order: every item scoring above the
/// row's k-th score `kth` (B, 1), then the lowest-index items equal to it.
fn lowest_at_cut(score: &Tensor, kth: &Tensor, k: i64) -> Tensor {
    let above = score.gt_tensor(kth);
    let at = score.eq_tensor(kth);
    let room = above.sum_dim_intlist(1, true, Kind::Int64).neg() + k;
    // Each tied item's rank among its row's ties, in index order.
    let rank = at.cumsum(1, Kind::Int);
    let keep = above.logical_or(&at.logical_and(&rank.le_tensor(&room)));
    keep.nonzero().select(1, 1).view([-1, k])
}

/// `indices` (R, k) reordered by their `scores` (R, k), descending, equal
/// scores by ascending index.
fn order_by_score_then_index(scores: &Tensor, indices: &Tensor) -> Tensor {
    let (by_index, perm) = indices.sort(1, false);
    let (_, order) = scores.gather(1, &perm, false).sort_stable(true, 1, true);
    by_index.gather(1, &order, false)
}
