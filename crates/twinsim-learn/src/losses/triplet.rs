//! PML's `TripletMarginLoss` with its default `AvgNonZeroReducer`, without
//! ever materialising the triplets.
//!
//! A batch of B = 1024 in 32 classes has 31 million valid triplets: a
//! per-triplet graph would take gigabytes. The loss is a sum of hinges
//! `max(0, x[a,p] − x[a,n] + margin)` over the (B, B) farness matrix x, so its
//! value, its non-zero count and its gradient with respect to x (for each
//! pair, how many active triplets it appears in) are computed outside the
//! graph in O(B²) memory, and [`avg_nonzero_from_sums`] turns them into a
//! loss whose graph is x's alone.

use tch::Tensor;

use super::{pair_weights, Loss, Mined};
use crate::distances::Distance;
use crate::miners::{row_chunks, SortedRows};
use crate::reducers::{avg_nonzero_from_sums, SUM_KIND};

/// Listed triplets are scored this many at a time, so scratch memory stays
/// bounded however many a miner returns.
const LISTED_CHUNK: i64 = 1 << 18;

/// `max(0, x[a,p] − x[a,n] + margin)` averaged over the non-zero triplets,
/// where x is the distance, or the negated similarity, under `distance`.
/// With the cosine distance (PML's `CosineSimilarity`) the hinge reads
/// `max(0, s[a,n] − s[a,p] + margin)`.
#[derive(Debug)]
pub(crate) struct Triplet {
    pub(crate) margin: f64,
    pub(crate) distance: Distance,
}

/// A triplet loss summed outside the graph.
struct HingeSums {
    /// 0-dim float64: the sum of the non-zero hinges.
    sum: Tensor,
    /// 0-dim float64: how many hinges are non-zero.
    count: Tensor,
    /// (B, B): the gradient of `sum` with respect to the farness matrix.
    grad: Tensor,
}

impl Loss for Triplet {
    fn compute(&self, embeddings: &Tensor, labels: &Tensor, mined: Option<&Mined>) -> Tensor {
        let far = self.distance.farness(embeddings);
        let sums = tch::no_grad(|| {
            let far = far.detach();
            match mined {
                Some(Mined::Triplets {
                    anchors,
                    positives,
                    negatives,
                }) => self.listed(&far, anchors, positives, negatives),
                other => {
                    let (pos, neg) = pair_weights(labels, other, &far);
                    self.all(&far, &pos, &neg)
                }
            }
        });
        avg_nonzero_from_sums(&sums.sum, &sums.count, &sums.grad, &far)
    }
}

impl Triplet {
    /// Every triplet (a, p, n), counted `pos[a,p]·neg[a,n]` times; far, pos,
    /// neg (B, B). A chunk of anchors at a time: each anchor's triplets
    /// involve its own row only.
    fn all(&self, far: &Tensor, pos: &Tensor, neg: &Tensor) -> HingeSums {
        let b = far.size()[0];
        let mut sum = Tensor::zeros([], (SUM_KIND, far.device()));
        let mut count = sum.zeros_like();
        let mut grad = Vec::new();
        for (start, len) in row_chunks(b, b) {
            let rows = |t: &Tensor| t.narrow(0, start, len);
            let part = self.all_in_rows(&rows(far), &rows(pos), &rows(neg));
            sum += part.sum;
            count += part.count;
            grad.push(part.grad);
        }
        HingeSums {
            sum,
            count,
            grad: Tensor::cat(&grad, 0),
        }
    }

    /// [`Triplet::all`] for the anchor rows far, pos, neg (R, B). Triplet
    /// (a, p, n) is active when `far[a,n] < reach[a,p] = far[a,p] + margin`:
    /// with each anchor's negatives sorted, the active ones for a pair
    /// (a, p) are a prefix, found by binary search.
    fn all_in_rows(&self, far: &Tensor, pos: &Tensor, neg: &Tensor) -> HingeSums {
        let reach = far + self.margin;
        let negatives = SortedRows::new(far, neg);
        let within = negatives.rank(&reach, false);
        // Per (a, p): the active negatives' count and summed farness.
        let active_neg = negatives.weight_below(&within);
        let active_far = negatives.value_below(&within);
        // Per (a, n): the positives whose reach exceeds far[a, n], counted as
        // the complement of those whose reach is ≤ it — the same comparison.
        let positives = SortedRows::new(&reach, pos);
        let active_pos = positives.weight_total() - positives.weight_below(&positives.rank(far, true));
        let pos = pos.to_kind(SUM_KIND);
        let neg = neg.to_kind(SUM_KIND);
        let hinge_sum = &pos * (&active_neg * reach.to_kind(SUM_KIND) - active_far);
        let grad = &pos * &active_neg - neg * active_pos;
        HingeSums {
            sum: hinge_sum.sum(SUM_KIND),
            count: (pos * active_neg).sum(SUM_KIND),
            grad: grad.to_kind(far.kind()),
        }
    }

    /// The listed triplets (T,) int64 each, scored as PML scores them, a
    /// chunk at a time.
    fn listed(&self, far: &Tensor, anchors: &Tensor, positives: &Tensor, negatives: &Tensor) -> HingeSums {
        let b = far.size()[0];
        let flat = far.view([-1]);
        let mut grad = far.zeros_like().view([-1]);
        let mut sum = Tensor::zeros([], (SUM_KIND, far.device()));
        let mut count = sum.zeros_like();
        let total = anchors.size()[0];
        for start in (0..total).step_by(LISTED_CHUNK as usize) {
            let len = LISTED_CHUNK.min(total - start);
            let anchor_row = anchors.narrow(0, start, len) * b;
            let ap = &anchor_row + positives.narrow(0, start, len);
            let an = anchor_row + negatives.narrow(0, start, len);
            let hinge = flat.index_select(0, &ap) - flat.index_select(0, &an) + self.margin;
            let active = hinge.gt(0.0).to_kind(far.kind());
            sum += (&hinge * &active).sum(SUM_KIND);
            count += active.sum(SUM_KIND);
            grad = grad.index_add(0, &ap, &active).index_add(0, &an, &-active);
        }
        HingeSums {
            sum,
            count,
            grad: grad.view([b, b]),
        }
    }
}
