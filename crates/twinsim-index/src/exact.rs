//! Exact search: every query against every gallery item, a block of queries
//! at a time with libtorch's (SIMD, multithreaded) matrix products, so the
//! full query × gallery matrix never exists. The ranking is the evaluation
//! metrics' own ([`twinsim_learn::metrics::neighbours`]): nearest first,
//! ties in gallery order.

use tch::{Device, Kind, Tensor};
use twinsim_learn::metrics::blocks;
use twinsim_learn::metrics::neighbours::{Search, CHUNK};
use twinsim_learn::model::Distance;

use crate::index::Neighbour;

/// The `k` nearest rows of `gallery` (G, D) for each row of `queries`
/// (Nq, D), both float32 and, for cosine, of unit length. With
/// `exclude_self` query i is gallery row i and never its own neighbour.
/// `k` must not exceed the candidates.
pub fn search(
    gallery: &Tensor,
    queries: &Tensor,
    metric: Distance,
    k: usize,
    exclude_self: bool,
) -> Vec<Vec<Neighbour>> {
    let search = Search::new(gallery, metric, exclude_self);
    let mut found = Vec::with_capacity(queries.size()[0] as usize);
    for (start, len) in blocks(queries.size()[0], CHUNK) {
        let block = queries.narrow(0, start, len);
        let items = search.nearest(&block, start, k as i64);
        let distances = block_distances(gallery, &block, &items, metric);
        let items = Vec::<i64>::try_from(&items.reshape([-1])).expect("CPU int64 indices");
        let distances = Vec::<f64>::try_from(&distances.reshape([-1])).expect("CPU float distances");
        found.extend(
            items
                .chunks(k)
                .zip(distances.chunks(k))
                .map(|(items, distances)| {
                    items
                        .iter()
                        .zip(distances)
                        .map(|(&item, &distance)| Neighbour {
                            item: item as usize,
                            distance,
                        })
                        .collect()
                }),
        );
    }
    found
}

/// The distance of each query of `block` (B, D) to each of its found items
/// `items` (B, k): (B, k) float64 on the CPU.
fn block_distances(gallery: &Tensor, block: &Tensor, items: &Tensor, metric: Distance) -> Tensor {
    let (b, k) = (items.size()[0], items.size()[1]);
    let rows = gallery.index_select(0, &items.reshape([-1]));
    let queries = block
        .unsqueeze(1)
        .expand([b, k, block.size()[1]], false)
        .reshape([b * k, -1]);
    metric
        .rows(&queries, &rows)
        .clamp_min(0.0)
        .to_kind(Kind::Double)
        .to_device(Device::Cpu)
        .view([b, k])
}
