//! Retrieval metrics on embeddings, with nearest-neighbour search done in
//! chunks of queries so a 60,000 × 60,000 distance matrix never exists.

use tch::{Kind, Tensor};

use crate::model::Distance;

/// Queries per chunk: a chunk's distance block is `CHUNK × gallery` floats
/// (60 MB against MNIST's 60,000 training images).
const CHUNK: i64 = 256;

/// The `k` nearest gallery items of each query: indices (Nq, k) int64, nearest
/// first. `exclude_self` is for leave-one-out (query i is gallery item i).
/// Embeddings are (N, D) float on any device; results are on the CPU.
pub fn nearest(query: &Tensor, gallery: &Tensor, k: i64, distance: Distance, exclude_self: bool) -> Tensor {
    let nq = query.size()[0];
    let gallery_sq = gallery.square().sum_dim_intlist(1, false, Kind::Float);
    let mut out = Vec::new();
    for start in (0..nq).step_by(CHUNK as usize) {
        let len = CHUNK.min(nq - start);
        let q = query.narrow(0, start, len);
        let dot = q.matmul(&gallery.tr());
        // Larger score = nearer, for both distances (the constant ‖q‖² is dropped).
        let mut score = match distance {
            Distance::Cosine => dot,
            Distance::Euclidean => dot * 2.0 - &gallery_sq,
        };
        if exclude_self {
            let rows = Tensor::arange(len, (Kind::Int64, score.device()));
            let _ = score.index_put_(
                &[Some(&rows), Some(&(&rows + start))],
                &Tensor::from(f32::NEG_INFINITY).to_device(score.device()),
                false,
            );
        }
        out.push(score.topk(k, 1, true, true).1.to_device(tch::Device::Cpu));
    }
    Tensor::cat(&out, 0)
}

/// Precision@1: the share of queries whose nearest gallery item has their label.
/// Labels are (N,) int64.
pub fn precision_at_1(
    query: &Tensor,
    query_labels: &Tensor,
    gallery: &Tensor,
    gallery_labels: &Tensor,
    distance: Distance,
    exclude_self: bool,
) -> f64 {
    let nn = nearest(query, gallery, 1, distance, exclude_self).squeeze_dim(1);
    let predicted = gallery_labels.to_device(tch::Device::Cpu).index_select(0, &nn);
    predicted
        .eq_tensor(&query_labels.to_device(tch::Device::Cpu))
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[])
}
