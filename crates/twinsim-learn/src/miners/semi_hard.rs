//! Semi-hard mining (Schroff et al. 2015, FaceNet), as PML's
//! `TripletMarginMiner(type_of_triplets="semihard")`.

use tch::{Kind, Tensor};

use super::{row_chunks, Miner, SortedRows};
use crate::distances::Distance;
use crate::losses::{class_masks, Mined};

/// At most this many triplets are expanded at once: the miner's scratch
/// memory stays bounded however many triplets a batch yields.
const EXPAND_CHUNK: i64 = 1 << 18;

/// Every valid triplet whose negative is farther from the anchor than the
/// positive, but by at most `margin`: the triplets whose loss lies in
/// [0, margin), hard enough to teach, not so hard as to be label noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SemiHardMiner {
    margin: f64,
    distance: Distance,
}

impl SemiHardMiner {
    /// `margin` in the units of `distance` (PML's default is 0.2).
    pub fn new(margin: f64, distance: Distance) -> Self {
        Self { margin, distance }
    }

    /// For anchor rows far, pos, neg (R, B): each pair's semi-hard negatives
    /// as a range of the row's negatives sorted by farness: [counts, first,
    /// order], each (R, B) int64 (see [`expand`]).
    fn ranges(&self, far: &Tensor, pos: &Tensor, neg: &Tensor) -> [Tensor; 3] {
        let negatives = SortedRows::new(far, &neg.to_kind(far.kind()));
        // Pair (a, p)'s semi-hard negatives n: far[a,p] < far[a,n] ≤ far[a,p] + margin.
        let first = negatives.rank(far, true);
        let past = negatives.rank(&(far + self.margin), true);
        [(past - &first) * pos, first, negatives.order().shallow_clone()]
    }
}

impl Miner for SemiHardMiner {
    /// embeddings (B, D), labels (B,) → [`Mined::Triplets`], ordered by
    /// anchor, then positive, then the negative's distance. T can reach
    /// B·(K−1)·(B−K) for K images a class: the miner's output is the one
    /// thing here that grows faster than B².
    fn mine(&self, embeddings: &Tensor, labels: &Tensor) -> Mined {
        tch::no_grad(|| {
            let far = self.distance.farness(embeddings);
            let (pos, neg) = class_masks(labels);
            let b = far.size()[0];
            let (mut counts, mut first, mut order) = (Vec::new(), Vec::new(), Vec::new());
            for (start, len) in row_chunks(b, b) {
                let rows = |t: &Tensor| t.narrow(0, start, len);
                let [c, f, o] = self.ranges(&rows(&far), &rows(&pos), &rows(&neg));
                counts.push(c);
                first.push(f);
                order.push(o);
            }
            let cat = |parts: Vec<Tensor>| Tensor::cat(&parts, 0);
            expand(&cat(counts), &cat(first), &cat(order))
        })
    }
}

/// Per anchor-positive pair (a, p), its negatives are
/// `order[a, first[a,p] .. first[a,p] + counts[a,p]]`; all (B, B) int64.
/// Writes them out as explicit triplets, a chunk of anchors at a time into
/// preallocated outputs, so the scratch memory stays small beside them.
fn expand(counts: &Tensor, first: &Tensor, order: &Tensor) -> Mined {
    let per_anchor = Vec::<i64>::try_from(counts.sum_dim_intlist(1, false, Kind::Int64))
        .expect("per-anchor triplet counts are a 1-d int64 tensor");
    let total: i64 = per_anchor.iter().sum();
    let output = || Tensor::empty([total], (Kind::Int64, counts.device()));
    let (anchors, positives, negatives) = (output(), output(), output());
    let mut done = 0;
    for (start, rows, len) in anchor_chunks(&per_anchor) {
        let part = |t: &Tensor| t.narrow(0, start, rows);
        let (a, p, n) = expand_rows(&part(counts), &part(first), &part(order));
        anchors.narrow(0, done, len).copy_(&(a + start));
        positives.narrow(0, done, len).copy_(&p);
        negatives.narrow(0, done, len).copy_(&n);
        done += len;
    }
    Mined::Triplets {
        anchors,
        positives,
        negatives,
    }
}

/// (start row, rows, triplets) of consecutive anchor ranges holding about
/// [`EXPAND_CHUNK`] triplets each (at least one anchor, however many it has).
fn anchor_chunks(per_anchor: &[i64]) -> Vec<(i64, i64, i64)> {
    let mut chunks = Vec::new();
    let (mut start, mut len) = (0, 0);
    for (row, &n) in per_anchor.iter().enumerate() {
        let row = row as i64;
        if len > 0 && len + n > EXPAND_CHUNK {
            chunks.push((start, row - start, len));
            (start, len) = (row, 0);
        }
        len += n;
    }
    if len > 0 {
        chunks.push((start, per_anchor.len() as i64 - start, len));
    }
    chunks
}

/// [`expand`] for one chunk of rows: (rows, B) int64 each → anchors (local
/// row numbers), positives and negatives, each (T,) int64.
fn expand_rows(counts: &Tensor, first: &Tensor, order: &Tensor) -> (Tensor, Tensor, Tensor) {
    let width = counts.size()[1];
    let pairs = counts.view([-1]).nonzero().squeeze_dim(1);
    let per_pair = counts.view([-1]).index_select(0, &pairs);
    let len = per_pair.sum(Kind::Int64).int64_value(&[]);
    let pair_of = Tensor::repeat_interleave(&per_pair, len);
    let pair = pairs.index_select(0, &pair_of);
    // The k-th triplet of its pair takes the pair's k-th negative.
    let pair_start = (per_pair.cumsum(0, Kind::Int64) - &per_pair).index_select(0, &pair_of);
    let k = Tensor::arange(len, (Kind::Int64, counts.device())) - pair_start;
    let anchors = pair.divide_scalar_mode(width, "floor");
    let slot = first.view([-1]).index_select(0, &pair) + k;
    let negatives = order.view([-1]).index_select(0, &(&anchors * width + slot));
    (anchors, pair.remainder(width), negatives)
}
