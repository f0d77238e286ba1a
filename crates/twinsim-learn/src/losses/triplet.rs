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

use super::{class_masks, pair_weights, Loss, Mined};
use crate::distances::Distance;
use crate::miners::{row_chunks, semi_hard_window, SortedRows};
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
                Some(&Mined::SemiHard { margin, distance }) => {
                    // The window is found by sorting this loss's own farness.
                    assert_eq!(
                        distance, self.distance,
                        "the semi-hard rule must use the triplet loss's distance"
                    );
                    let (pos, neg) = class_masks(labels);
                    let kind = far.kind();
                    self.by_anchors(&far, &pos.to_kind(kind), &neg.to_kind(kind), |f, p, n| {
                        self.semi_hard_in_rows(f, p, n, margin)
                    })
                }
                other => {
                    let (pos, neg) = pair_weights(embeddings, labels, other, &far);
                    self.by_anchors(&far, &pos, &neg, |f, p, n| self.all_in_rows(f, p, n))
                }
            }
        });
        avg_nonzero_from_sums(&sums.sum, &sums.count, &sums.grad, &far)
    }
}

impl Triplet {
    /// Triplets (a, p, n) counted `pos[a,p]·neg[a,n]` times; far, pos, neg
    /// (B, B), scored by `in_rows` ([`Triplet::all_in_rows`] or
    /// [`Triplet::semi_hard_in_rows`]) a chunk of anchors at a time: each
    /// anchor's triplets involve its own row only.
    fn by_anchors(
        &self,
        far: &Tensor,
        pos: &Tensor,
        neg: &Tensor,
        in_rows: impl Fn(&Tensor, &Tensor, &Tensor) -> HingeSums,
    ) -> HingeSums {
        let b = far.size()[0];
        let mut sum = Tensor::zeros([], (SUM_KIND, far.device()));
        let mut count = sum.zeros_like();
        let mut grad = Vec::new();
        for (start, len) in row_chunks(b, b) {
            let rows = |t: &Tensor| t.narrow(0, start, len);
            let part = in_rows(&rows(far), &rows(pos), &rows(neg));
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

    /// Every triplet, for the anchor rows far, pos, neg (R, B). Triplet
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

    /// The triplets of the semi-hard window of `margin`, for the anchor rows
    /// far, pos, neg (R, B). Every hinge in the window is ≥ 0, so the
    /// window cut where the hinge turns 0 (at this loss's margin, if
    /// narrower) holds exactly the non-zero ones, each a contiguous run of
    /// the anchor's sorted negatives.
    fn semi_hard_in_rows(&self, far: &Tensor, pos: &Tensor, neg: &Tensor, margin: f64) -> HingeSums {
        let reach = far + self.margin;
        let w = if margin < self.margin {
            semi_hard_window(far, pos, neg, &(far + margin), true)
        } else {
            semi_hard_window(far, pos, neg, &reach, false)
        };
        let window_far = w.negatives.value_below(&w.past) - w.negatives.value_below(&w.first);
        let pos = pos.to_kind(SUM_KIND);
        let hinge_sum = &w.per_positive * reach.to_kind(SUM_KIND) - pos * window_far;
        HingeSums {
            sum: hinge_sum.sum(SUM_KIND),
            count: w.per_positive.sum(SUM_KIND),
            grad: (&w.per_positive - &w.per_negative).to_kind(far.kind()),
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
