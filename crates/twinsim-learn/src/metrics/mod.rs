//! Evaluation metrics on embeddings, agreeing with the libraries the field
//! trusts: pytorch-metric-learning's `AccuracyCalculator` for retrieval,
//! scikit-learn for ROC curves and NMI. One concept per module:
//!
//! - [`neighbours`]: exact nearest-neighbour search, a block of queries at a
//!   time, ties in gallery order;
//! - [`retrieval`]: per-query retrieval metrics from the ranked neighbours'
//!   labels, summed block by block;
//! - [`verification`]: ROC, AUC, EER, TAR@FAR and thresholds on scored pairs;
//! - [`clustering`]: k-means and NMI;
//! - [`domains`]: a union's parts apart: each part's retrieval metrics and
//!   how often its queries' nearest neighbour is in another part.
//!
//! [`Calculator`] ties the first two (and NMI) together: queries against a
//! gallery, or against each other leaving each one out.

pub mod clustering;
pub mod domains;
pub mod neighbours;
pub mod retrieval;
pub mod verification;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

pub use domains::DomainRetrieval;
pub use neighbours::{nearest, CHUNK};
pub use retrieval::{Metric, Retrieval};
pub use verification::{balanced_pairs, RocCurve, Verification};

use crate::model::Distance;
use crate::{LearnError, Result};

/// How queries are matched against the gallery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Queries search a separate gallery (test images against the training
    /// images, say).
    QueryVsGallery,
    /// The queries are the gallery, and each query's own entry is left out.
    LeaveOneOut,
}

/// Computes retrieval metrics as PML's `AccuracyCalculator` does, with
/// `k="max_bin_count"`; set up by chaining its options, as in
/// `Calculator::new().precision_at(&[1, 5]).recall_at(&[1, 2, 4, 8]).nmi(true)`.
#[derive(Clone, Debug)]
pub struct Calculator {
    metrics: Vec<Metric>,
    precision_ks: Vec<i64>,
    recall_ks: Vec<i64>,
    nmi: bool,
    seed: u64,
    chunk: i64,
}

impl Default for Calculator {
    fn default() -> Self {
        Calculator {
            metrics: Metric::ALL.to_vec(),
            precision_ks: Vec::new(),
            recall_ks: Vec::new(),
            nmi: false,
            seed: 0,
            chunk: CHUNK,
        }
    }
}

impl Calculator {
    /// PML's five ranking metrics ([`Metric::ALL`]), no precision/recall at
    /// other k, no NMI.
    pub fn new() -> Calculator {
        Calculator::default()
    }

    /// Computes only these ranking metrics. Asking for precision@1 alone
    /// needs only each query's nearest neighbour, which is much cheaper
    /// than the depth k the others need.
    pub fn metrics(mut self, metrics: &[Metric]) -> Calculator {
        self.metrics = metrics.to_vec();
        self
    }

    /// Also computes precision at each of these k (each ≥ 1).
    pub fn precision_at(mut self, ks: &[i64]) -> Calculator {
        self.precision_ks = ks.to_vec();
        self
    }

    /// Also computes Recall@K at each of these k (each ≥ 1).
    pub fn recall_at(mut self, ks: &[i64]) -> Calculator {
        self.recall_ks = ks.to_vec();
        self
    }

    /// Also computes NMI of a k-means clustering of the query embeddings.
    pub fn nmi(mut self, on: bool) -> Calculator {
        self.nmi = on;
        self
    }

    /// Seeds the k-means of NMI.
    pub fn seed(mut self, seed: u64) -> Calculator {
        self.seed = seed;
        self
    }

    /// Queries per block of the search ([`CHUNK`] by default): memory
    /// against speed; results do not depend on it.
    pub fn chunk_size(mut self, queries: i64) -> Calculator {
        self.chunk = queries.max(1);
        self
    }

    /// The metrics of `query` (Nq, D) float embeddings with `query_labels`
    /// (Nq,) int64 against `gallery`, a pair of embeddings (G, D) and
    /// labels (G,), or, with `None`, against the queries themselves, each
    /// leaving itself out. Embeddings may live on any one device; for
    /// `Distance::Cosine` they must be L2-normalised.
    pub fn compute(
        &self,
        query: &Tensor,
        query_labels: &Tensor,
        gallery: Option<(&Tensor, &Tensor)>,
        distance: Distance,
    ) -> Result<Retrieval> {
        match gallery {
            Some((g, g_labels)) => self.run(
                query,
                query_labels,
                g,
                g_labels,
                Protocol::QueryVsGallery,
                distance,
            ),
            None => self.run(
                query,
                query_labels,
                query,
                query_labels,
                Protocol::LeaveOneOut,
                distance,
            ),
        }
    }

    /// [`Calculator::compute`] with the gallery explicit; under
    /// leave-one-out, query i is gallery item i.
    fn run(
        &self,
        query: &Tensor,
        query_labels: &Tensor,
        gallery: &Tensor,
        gallery_labels: &Tensor,
        protocol: Protocol,
        distance: Distance,
    ) -> Result<Retrieval> {
        let labels = self.check(query, query_labels, gallery, gallery_labels, protocol)?;
        let loo = protocol == Protocol::LeaveOneOut;
        let relevant = relevant_counts(&labels, &cpu_labels(gallery_labels)?, loo);
        let mut acc = self.accumulator(&relevant);
        let relevant = Tensor::from_slice(&relevant).to_device(gallery.device());
        let ranked = Ranking {
            query,
            labels: &labels,
            gallery,
            gallery_labels,
            distance,
            leave_one_out: loo,
        };
        self.rank(&ranked, acc.depth(), |start, _, matches| {
            acc.add(matches, &relevant.narrow(0, start, matches.size()[0]));
        });
        let mut result = acc.finish(protocol);
        if self.nmi {
            result.nmi = Some(clustering::kmeans_nmi(query, &labels, self.seed)?);
        }
        Ok(result)
    }

    /// The sums for queries whose R are `relevant`; PML's k is the largest.
    fn accumulator(&self, relevant: &[i64]) -> retrieval::Accumulator {
        let k = relevant.iter().copied().max().unwrap_or(0);
        retrieval::Accumulator::new(k, &self.metrics, &self.precision_ks, &self.recall_ks)
    }

    /// Ranks each query's `depth` nearest gallery items (fewer when the
    /// gallery has fewer), a block at a time, and hands `visit` each block:
    /// its first query's index, the neighbours' indices (B, d) and whether
    /// each has its query's label (B, d), both on the gallery's device.
    fn rank(&self, r: &Ranking<'_>, depth: i64, mut visit: impl FnMut(i64, &Tensor, &Tensor)) {
        let search = neighbours::Search::new(r.gallery, r.distance, r.leave_one_out);
        let depth = depth.min(search.candidates());
        if depth == 0 {
            return;
        }
        let device = r.gallery.device();
        let gallery_labels = r.gallery_labels.to_device(device);
        let query_labels = Tensor::from_slice(r.labels).to_device(device);
        for (start, len) in blocks(r.labels.len() as i64, self.chunk) {
            let nn = search.nearest(&r.query.narrow(0, start, len), start, depth);
            let matches = label_matches(&nn, &gallery_labels, &query_labels.narrow(0, start, len));
            visit(start, &nn, &matches);
        }
    }

    /// Refuses inputs that do not fit together; returns the query labels.
    fn check(
        &self,
        query: &Tensor,
        query_labels: &Tensor,
        gallery: &Tensor,
        gallery_labels: &Tensor,
        protocol: Protocol,
    ) -> Result<Vec<i64>> {
        let labels = cpu_labels(query_labels)?;
        let (nq, ng) = (query.size()[0], gallery.size()[0]);
        let problem = if labels.len() as i64 != nq || gallery_labels.size() != [ng] {
            Some(format!(
                "{nq} queries with {} labels, {ng} gallery items with {:?} labels",
                labels.len(),
                gallery_labels.size()
            ))
        } else if protocol == Protocol::LeaveOneOut && nq > ng {
            Some(format!(
                "leave-one-out needs the {nq} queries among the {ng} gallery items"
            ))
        } else if self.precision_ks.iter().chain(&self.recall_ks).any(|&k| k < 1) {
            Some(format!(
                "precision/recall at k needs every k ≥ 1; got {:?} and {:?}",
                self.precision_ks, self.recall_ks
            ))
        } else {
            None
        };
        match problem {
            Some(reason) => Err(LearnError::config(
                reason,
                "pass (N, D) embeddings with (N,) int64 labels, and k of at least 1",
            )),
            None => Ok(labels),
        }
    }
}

/// What one search ranks: queries (with their labels, checked) against a
/// gallery, or against each other leaving each one out.
struct Ranking<'a> {
    query: &'a Tensor,
    labels: &'a [i64],
    gallery: &'a Tensor,
    gallery_labels: &'a Tensor,
    distance: Distance,
    leave_one_out: bool,
}

/// Precision@1 of `query` against `gallery` (leave-one-out when
/// `exclude_self`: query i is then gallery item i), over the queries whose
/// label the gallery holds (PML leaves the others out). Embeddings (N, D),
/// labels (N,) int64. Panics on inputs that do not fit together.
pub fn precision_at_1(
    query: &Tensor,
    query_labels: &Tensor,
    gallery: &Tensor,
    gallery_labels: &Tensor,
    distance: Distance,
    exclude_self: bool,
) -> f64 {
    let protocol = if exclude_self {
        Protocol::LeaveOneOut
    } else {
        Protocol::QueryVsGallery
    };
    let result = Calculator::new()
        .metrics(&[Metric::PrecisionAt1])
        .run(query, query_labels, gallery, gallery_labels, protocol, distance)
        .unwrap_or_else(|e| panic!("precision@1: {e}"));
    result.precision_at_1.unwrap_or(0.0)
}

/// (B, depth) bool: whether each ranked neighbour in `nn` (B, depth) has
/// its query's label, from `gallery_labels` (G,) and the block's labels (B,).
fn label_matches(nn: &Tensor, gallery_labels: &Tensor, block_labels: &Tensor) -> Tensor {
    gallery_labels
        .index_select(0, &nn.reshape([-1]))
        .view(nn.size().as_slice())
        .eq_tensor(&block_labels.unsqueeze(1))
}

/// Labels (N,) int64 as a vector.
fn cpu_labels(labels: &Tensor) -> Result<Vec<i64>> {
    Ok(Vec::<i64>::try_from(
        labels.to_device(Device::Cpu).to_kind(Kind::Int64).view([-1]),
    )?)
}

/// Each query's R: gallery items with its label, less one for itself under
/// leave-one-out (0 for a lone query).
fn relevant_counts(query_labels: &[i64], gallery_labels: &[i64], leave_one_out: bool) -> Vec<i64> {
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    for &l in gallery_labels {
        *counts.entry(l).or_insert(0) += 1;
    }
    let own = i64::from(leave_one_out);
    query_labels
        .iter()
        .map(|l| (counts.get(l).copied().unwrap_or(0) - own).max(0))
        .collect()
}

/// `(start, len)` of consecutive blocks of at most `size` of `n` items.
pub fn blocks(n: i64, size: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..n)
        .step_by(size as usize)
        .map(move |start| (start, size.min(n - start)))
}
