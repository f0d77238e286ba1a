//! Approximate search for large galleries: usearch's HNSW graph (a
//! well-kept C++ library with SIMD distance kernels), built from the
//! index's embeddings when an index is opened for search and never read
//! from a file, so no graph bytes from disk are ever parsed by C++ code.
//!
//! Parameters, as usearch and the HNSW paper name them: `connectivity` (M,
//! links per node), `expansion_add` (efConstruction) and `expansion_search`
//! (ef): larger values give better recall for more time and memory.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use twinsim_learn::model::Distance;
use usearch::{Index as Graph, IndexOptions, MetricKind, ScalarKind};

use crate::error::{IndexError, Result};
use crate::index::Neighbour;

/// The graph's parameters, stored with the index.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HnswParams {
    pub connectivity: usize,
    pub expansion_add: usize,
    pub expansion_search: usize,
}

/// The most links per node: usearch's graphs are used with 8 to 64; more
/// only costs memory (a connectivity of 1e8 asked usearch for terabytes).
pub const MAX_CONNECTIVITY: usize = 256;
/// The most candidates kept while building or searching.
pub const MAX_EXPANSION: usize = 65_536;

impl HnswParams {
    /// Refuses parameters outside the ranges above, saying which.
    pub fn check(&self) -> Result<(), String> {
        let within = |name: &str, v: usize, low: usize, high: usize| {
            if (low..=high).contains(&v) {
                Ok(())
            } else {
                Err(format!("HNSW {name} {v} is outside {low}..={high}"))
            }
        };
        within("connectivity", self.connectivity, 2, MAX_CONNECTIVITY)?;
        within("expansion_add", self.expansion_add, 1, MAX_EXPANSION)?;
        within("expansion_search", self.expansion_search, 1, MAX_EXPANSION)
    }
}

impl Default for HnswParams {
    /// usearch's own defaults: recall@10 0.998 on MNIST's 60,000
    /// embeddings; random vectors need a far larger `expansion_search`
    /// (docs/benchmarks.md, "Search").
    fn default() -> Self {
        HnswParams {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 64,
        }
    }
}

/// A built graph over a gallery's rows.
pub struct Hnsw {
    graph: Graph,
    metric: Distance,
}

impl std::fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hnsw({} rows, {:?})", self.graph.size(), self.metric)
    }
}

impl Hnsw {
    /// Builds the graph over `rows` (N, D) float32 on the CPU (unit length
    /// for cosine), row i under key i. Rows are added one at a time: graphs
    /// built by concurrent adds missed true neighbours that a sequential
    /// build finds (index.rs's test caught it in about half its runs).
    pub fn build(rows: &Tensor, metric: Distance, params: HnswParams) -> Result<Hnsw> {
        let (n, dim) = (rows.size()[0] as usize, rows.size()[1] as usize);
        let options = IndexOptions {
            dimensions: dim,
            metric: match metric {
                Distance::Cosine => MetricKind::Cos,
                Distance::Euclidean => MetricKind::L2sq,
            },
            quantization: ScalarKind::F32,
            connectivity: params.connectivity,
            expansion_add: params.expansion_add,
            expansion_search: params.expansion_search,
            multi: false,
        };
        let graph = Graph::new(&options).map_err(|e| usearch_error("create", e))?;
        graph
            .reserve_capacity_and_threads(n, rayon::current_num_threads())
            .map_err(|e| usearch_error("reserve", e))?;
        // Searches run in parallel (read-only), hence the threads reserved.
        let values = Vec::<f32>::try_from(&rows.reshape([-1])).expect("CPU float32 rows");
        values
            .chunks(dim.max(1))
            .enumerate()
            .try_for_each(|(i, row)| graph.add(i as u64, row))
            .map_err(|e| usearch_error("add", e))?;
        Ok(Hnsw { graph, metric })
    }

    /// Changes how many candidates a search keeps (ef), without rebuilding.
    pub fn set_expansion_search(&self, expansion_search: usize) {
        self.graph.change_expansion_search(expansion_search);
    }

    /// The (about) `k` nearest rows of each query of `queries` (Nq, D),
    /// nearest first, searched in parallel.
    pub fn search(&self, queries: &Tensor, k: usize) -> Result<Vec<Vec<Neighbour>>> {
        let dim = queries.size()[1] as usize;
        let values = Vec::<f32>::try_from(&queries.reshape([-1])).expect("CPU float32 rows");
        values
            .par_chunks(dim.max(1))
            .map(|q| {
                let found = self.graph.search(q, k).map_err(|e| usearch_error("search", e))?;
                Ok(found
                    .keys
                    .iter()
                    .zip(&found.distances)
                    .map(|(&key, &d)| Neighbour {
                        item: key as usize,
                        distance: self.distance(d),
                    })
                    .collect())
            })
            .collect()
    }

    /// usearch's distance as the model measures it: 1 − cosine already; the
    /// squared L2 distance's root.
    fn distance(&self, d: f32) -> f64 {
        match self.metric {
            Distance::Cosine => f64::from(d).max(0.0),
            Distance::Euclidean => f64::from(d).max(0.0).sqrt(),
        }
    }
}

/// An error from usearch, which only resources (memory) should cause.
fn usearch_error(what: &str, e: impl std::fmt::Display) -> IndexError {
    IndexError::invalid(
        format!("the approximate index could not {what}: {e}"),
        "build the index with exact search instead (twinsim index build --backend exact), or free memory",
    )
}
