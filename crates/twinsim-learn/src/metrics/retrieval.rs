//! Retrieval metrics, computed per query from whether each of its ranked
//! neighbours shares its label, with the definitions of
//! pytorch-metric-learning's `AccuracyCalculator` (PML 2.9,
//! `k="max_bin_count"`).
//!
//! For a query, R is the number of gallery items with its label (less one
//! under leave-one-out, where the query itself is in the gallery), and k is
//! the largest R over all queries: every query's neighbours are ranked to
//! depth k, so every R-based metric sees all of its relevant positions. A
//! query with R = 0 (a "lone" query: its label is nowhere else in the
//! gallery) is left out of every average, as PML leaves it out; with no
//! other query left, every metric is 0.
//!
//! [`Accumulator`] takes the ranked labels one block of queries at a time
//! and keeps only sums, so a block's (B × k) matches are all that ever
//! exists: for MNIST (10,000 queries, k ≈ 6,742) that is 7 MB per block of
//! 256 instead of 540 MB.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::Protocol;

/// A metric PML computes from each query's ranked neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Whether the nearest neighbour has the query's label.
    PrecisionAt1,
    /// Matches among the R nearest, over R.
    RPrecision,
    /// PML's MAP@R: over the R nearest, the sum of precision at each
    /// matching position (matches so far / position), over R.
    MeanAveragePrecisionAtR,
    /// PML's MAP: the same sum over all k positions, over R (PML ≥ 1.6.1;
    /// older versions divided by the matches found instead).
    MeanAveragePrecision,
    /// 1 / the position of the first match within k, 0 when there is none.
    MeanReciprocalRank,
}

impl Metric {
    /// The five, in PML's order.
    pub const ALL: [Metric; 5] = [
        Metric::PrecisionAt1,
        Metric::RPrecision,
        Metric::MeanAveragePrecisionAtR,
        Metric::MeanAveragePrecision,
        Metric::MeanReciprocalRank,
    ];

    /// Whether the metric needs neighbours ranked to depth k, not just 1.
    fn needs_k(self) -> bool {
        self != Metric::PrecisionAt1
    }
}

/// Retrieval metrics averaged over the queries, with PML's names. A metric
/// not asked for is `None` (or an empty map) and is left out of the JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// Whether queries searched a separate gallery or each other.
    pub protocol: Protocol,
    /// PML's k: the largest R over the queries (see the module docs).
    pub k: i64,
    /// Queries the averages are over: all but the lone ones.
    pub queries: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision_at_1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r_precision: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_average_precision_at_r: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_average_precision: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_reciprocal_rank: Option<f64>,
    /// Share of the k nearest with the query's label, keyed by k (`"5"`);
    /// where the gallery has fewer than k candidates, still over k, as PML.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub precision_at_k: BTreeMap<String, f64>,
    /// Deep metric learning's Recall@K: the share of queries with at least
    /// one match among their k nearest, keyed by k.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recall_at_k: BTreeMap<String, f64>,
    /// NMI between the labels and a k-means clustering of the query
    /// embeddings ([`super::clustering`]), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nmi: Option<f64>,
}

/// Running sums of per-query metric values over blocks of queries.
pub struct Accumulator {
    k: i64,
    precision_ks: Vec<i64>,
    recall_ks: Vec<i64>,
    queries: i64,
    sums: BTreeMap<Metric, f64>,
    precision_sums: Vec<f64>,
    recall_sums: Vec<f64>,
}

impl Accumulator {
    /// Sums for `metrics` and for precision and recall at each of
    /// `precision_ks` and `recall_ks` (all ≥ 1), where PML's k is `k`.
    pub fn new(k: i64, metrics: &[Metric], precision_ks: &[i64], recall_ks: &[i64]) -> Accumulator {
        Accumulator {
            k,
            precision_ks: precision_ks.to_vec(),
            recall_ks: recall_ks.to_vec(),
            queries: 0,
            sums: metrics.iter().map(|&m| (m, 0.0)).collect(),
            precision_sums: vec![0.0; precision_ks.len()],
            recall_sums: vec![0.0; recall_ks.len()],
        }
    }

    /// How many nearest neighbours each query needs ranked for everything
    /// asked: k for the R-based metrics, 1 for precision@1, and each
    /// requested precision/recall k.
    pub fn depth(&self) -> i64 {
        let ranking = self.sums.keys().map(|m| if m.needs_k() { self.k } else { 1 });
        let at_k = self.precision_ks.iter().chain(&self.recall_ks).copied();
        ranking.chain(at_k).max().unwrap_or(0)
    }

    /// Adds a block of B queries. `matches` (B, depth) bool: whether each
    /// query's n-th nearest gallery item has its label, nearest first, to
    /// [`Accumulator::depth`] (or fewer, when the gallery is smaller);
    /// `relevant` (B,) int64: each query's R, 0 for lone queries, which
    /// are skipped.
    pub fn add(&mut self, matches: &Tensor, relevant: &Tensor) {
        let counted = relevant.gt(0).to_kind(Kind::Double);
        self.queries += counted.sum(Kind::Int64).int64_value(&[]);
        let matches = matches.to_kind(Kind::Double);
        let total = |values: Tensor| (values * &counted).sum(Kind::Double).double_value(&[]);
        if !self.sums.is_empty() {
            let ranked = Ranked::new(&matches, relevant, self.k);
            for (&metric, sum) in self.sums.iter_mut() {
                *sum += total(ranked.per_query(metric));
            }
        }
        for (&k, sum) in self.precision_ks.iter().zip(&mut self.precision_sums) {
            *sum += total(first(&matches, k).sum_dim_intlist(1, false, Kind::Double) / k as f64);
        }
        for (&k, sum) in self.recall_ks.iter().zip(&mut self.recall_sums) {
            *sum += total(first(&matches, k).amax(1, false));
        }
    }

    /// The averages over the queries added.
    pub fn finish(self, protocol: Protocol) -> Retrieval {
        let mean = |sum: f64| {
            if self.queries > 0 {
                sum / self.queries as f64
            } else {
                0.0
            }
        };
        let value = |m: Metric| self.sums.get(&m).map(|&s| mean(s));
        let by_k = |ks: &[i64], sums: &[f64]| {
            ks.iter()
                .zip(sums)
                .map(|(k, &s)| (k.to_string(), mean(s)))
                .collect()
        };
        Retrieval {
            protocol,
            k: self.k,
            queries: self.queries,
            precision_at_1: value(Metric::PrecisionAt1),
            r_precision: value(Metric::RPrecision),
            mean_average_precision_at_r: value(Metric::MeanAveragePrecisionAtR),
            mean_average_precision: value(Metric::MeanAveragePrecision),
            mean_reciprocal_rank: value(Metric::MeanReciprocalRank),
            precision_at_k: by_k(&self.precision_ks, &self.precision_sums),
            recall_at_k: by_k(&self.recall_ks, &self.recall_sums),
            nmi: None,
        }
    }
}

/// The first `k` columns of `matches` (fewer when it has fewer).
fn first(matches: &Tensor, k: i64) -> Tensor {
    matches.narrow(1, 0, k.min(matches.size()[1]))
}

/// A block's matches to depth k, with what the R-based metrics share.
struct Ranked {
    /// (B, k) 1.0 where the neighbour matches.
    hits: Tensor,
    /// (B, k) precision at each matching position, 0 elsewhere.
    precision: Tensor,
    /// (B, 1) R, capped at k and at least 1 (lone queries are masked later).
    r: Tensor,
    /// (B, k) 1.0 on each query's first R positions.
    within_r: Tensor,
    /// (1, k) positions 1, 2, …, k.
    positions: Tensor,
}

impl Ranked {
    fn new(matches: &Tensor, relevant: &Tensor, k: i64) -> Ranked {
        let hits = first(matches, k);
        let depth = hits.size()[1];
        let positions = Tensor::arange_start(1, depth + 1, (Kind::Double, hits.device())).unsqueeze(0);
        let precision = hits.cumsum(1, Kind::Double) * &hits / &positions;
        let r = relevant.clamp(1, k.max(1)).to_kind(Kind::Double).unsqueeze(1);
        let within_r = positions.le_tensor(&r).to_kind(Kind::Double);
        Ranked {
            hits,
            precision,
            r,
            within_r,
            positions,
        }
    }

    /// (B,) the metric's value for each query of the block.
    fn per_query(&self, metric: Metric) -> Tensor {
        let row_sum = |t: Tensor| t.sum_dim_intlist(1, false, Kind::Double);
        let per_r = |t: Tensor| row_sum(t) / self.r.squeeze_dim(1);
        match metric {
            Metric::PrecisionAt1 => self.hits.select(1, 0),
            Metric::RPrecision => per_r(&self.hits * &self.within_r),
            Metric::MeanAveragePrecisionAtR => per_r(&self.precision * &self.within_r),
            Metric::MeanAveragePrecision => per_r(self.precision.shallow_clone()),
            // The first match has the largest 1/position among the matches.
            Metric::MeanReciprocalRank => (&self.hits / &self.positions).amax(1, false),
        }
    }
}
