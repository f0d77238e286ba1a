//! How well embeddings cluster by class: k-means on the embeddings (k = the
//! number of classes), then the normalised mutual information between the
//! clusters and the labels, as scikit-learn's
//! `normalized_mutual_info_score` computes it (arithmetic mean of the two
//! entropies, natural log). PML's `NMI` is the same measure on faiss's
//! k-means; k-means finds a local optimum that depends on the
//! implementation and the seed, so the two agree closely, not exactly.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::{LearnError, Result};

/// Lloyd iterations at most per restart.
pub const MAX_ITERATIONS: usize = 100;
/// Restarts (each from its own k-means++ seeding) unless asked otherwise;
/// the one with the lowest inertia wins.
pub const RESTARTS: usize = 3;

/// Embeddings per block when measuring distances to the centres, so
/// `N × k` distances never exist at once for large k.
const BLOCK: i64 = 8192;

/// K-means with k-means++ seeding and Lloyd iterations, reproducible from a
/// seed: the same seed, data and device give the same clusters.
#[derive(Clone, Debug)]
pub struct KMeans {
    /// Clusters to find.
    pub k: i64,
    /// Seeds the k-means++ draws of every restart.
    pub seed: u64,
    /// Independent runs; the lowest inertia wins.
    pub restarts: usize,
}

/// A k-means result.
#[derive(Debug)]
pub struct Clusters {
    /// (N,) int64 on the data's device: each embedding's cluster, in 0..k.
    pub assignments: Tensor,
    /// (k, D) the cluster centres, in the data's kind and device.
    pub centres: Tensor,
    /// Sum of squared distances from each embedding to its centre.
    pub inertia: f64,
}

impl KMeans {
    /// `k` clusters, seed 0, [`RESTARTS`] restarts.
    pub fn new(k: i64) -> KMeans {
        KMeans {
            k,
            seed: 0,
            restarts: RESTARTS,
        }
    }

    /// Clusters `x` (N, D) float. Each restart seeds with k-means++ and
    /// iterates until no assignment changes or [`MAX_ITERATIONS`]; a cluster
    /// left empty keeps its previous centre. Errors unless 1 ≤ k ≤ N.
    pub fn fit(&self, x: &Tensor) -> Result<Clusters> {
        let n = x.size()[0];
        if self.k < 1 || self.k > n {
            return Err(LearnError::config(
                format!("k-means needs 1 ≤ k ≤ the {n} embeddings; got k = {}", self.k),
                "cluster at least as many embeddings as there are classes",
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut best: Option<Clusters> = None;
        for _ in 0..self.restarts.max(1) {
            let run = lloyd(x, plus_plus(x, self.k, &mut rng));
            if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
                best = Some(run);
            }
        }
        Ok(best.expect("at least one restart ran"))
    }
}

/// NMI of a k-means clustering of `embeddings` (N, D), with as many
/// clusters as `labels` has distinct values, against `labels` (N values).
pub fn kmeans_nmi(embeddings: &Tensor, labels: &[i64], seed: u64) -> Result<f64> {
    let mut distinct = labels.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let mut kmeans = KMeans::new(distinct.len() as i64);
    kmeans.seed = seed;
    let clusters = kmeans.fit(embeddings)?;
    let predicted = Vec::<i64>::try_from(clusters.assignments.to_device(tch::Device::Cpu))?;
    nmi(labels, &predicted)
}

/// Normalised mutual information between two labelings of the same items,
/// as scikit-learn's `normalized_mutual_info_score` (arithmetic average):
/// 1 when they are the same up to renaming, also when both put everything
/// in one group; 0 when one of them does and the other does not. Errors
/// when the lengths differ.
pub fn nmi(labels_true: &[i64], labels_pred: &[i64]) -> Result<f64> {
    if labels_true.len() != labels_pred.len() {
        return Err(LearnError::config(
            format!(
                "NMI compares two labelings of the same items; got {} and {} labels",
                labels_true.len(),
                labels_pred.len()
            ),
            "pass one predicted label per true label",
        ));
    }
    let (rows, cols) = (counts(labels_true), counts(labels_pred));
    if rows.len() == cols.len() && rows.len() <= 1 {
        return Ok(1.0);
    }
    let mi = mutual_information(labels_true, labels_pred, &rows, &cols);
    if mi == 0.0 {
        return Ok(0.0);
    }
    let normaliser = (entropy(&rows) + entropy(&cols)) / 2.0;
    Ok(mi / normaliser)
}

/// How many items carry each label.
fn counts(labels: &[i64]) -> BTreeMap<i64, f64> {
    let mut c = BTreeMap::new();
    for &l in labels {
        *c.entry(l).or_insert(0.0) += 1.0;
    }
    c
}

/// Scikit-learn's `entropy` from label counts (natural log).
fn entropy(counts: &BTreeMap<i64, f64>) -> f64 {
    if counts.len() <= 1 {
        return 0.0;
    }
    let total: f64 = counts.values().sum();
    -counts
        .values()
        .map(|&c| (c / total) * (c.ln() - total.ln()))
        .sum::<f64>()
}

/// Scikit-learn's `mutual_info_score`, term for term: each nonzero cell of
/// the contingency table contributes `p·(ln(n_ij) − ln N) + p·(ln N + ln N −
/// ln(a_i·b_j))`, terms below machine epsilon count as 0, and the total is
/// clipped at 0.
fn mutual_information(
    labels_true: &[i64],
    labels_pred: &[i64],
    rows: &BTreeMap<i64, f64>,
    cols: &BTreeMap<i64, f64>,
) -> f64 {
    if rows.len() == 1 || cols.len() == 1 {
        return 0.0;
    }
    let mut cells: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    for pair in labels_true.iter().copied().zip(labels_pred.iter().copied()) {
        *cells.entry(pair).or_insert(0.0) += 1.0;
    }
    let n = labels_true.len() as f64;
    let mi: f64 = cells
        .iter()
        .map(|(&(t, p), &c)| {
            let share = c / n;
            let log_outer = -(rows[&t] * cols[&p]).ln() + n.ln() + n.ln();
            let term = share * (c.ln() - n.ln()) + share * log_outer;
            if term.abs() < f64::EPSILON {
                0.0
            } else {
                term
            }
        })
        .sum();
    mi.max(0.0)
}

/// k-means++ seeding: the first centre uniform over the embeddings, each
/// next one drawn with probability proportional to its squared distance to
/// the nearest centre so far. Returns (k, D) centres.
fn plus_plus(x: &Tensor, k: i64, rng: &mut ChaCha8Rng) -> Tensor {
    let n = x.size()[0];
    let mut chosen = vec![rng.random_range(0..n)];
    let mut d2 = squared_distances(x, &x.get(chosen[0]));
    while (chosen.len() as i64) < k {
        let next = draw_proportional(&d2, rng);
        chosen.push(next);
        d2 = d2.minimum(&squared_distances(x, &x.get(next)));
    }
    x.index_select(0, &Tensor::from_slice(&chosen).to_device(x.device()))
}

/// (N,) squared distances from every row of `x` (N, D) to `c` (D,).
fn squared_distances(x: &Tensor, c: &Tensor) -> Tensor {
    (x - c).square().sum_dim_intlist(1, false, x.kind())
}

/// An index drawn with probability proportional to `weights` (N,); uniform
/// when they are all 0 (every embedding already sits on a centre).
fn draw_proportional(weights: &Tensor, rng: &mut ChaCha8Rng) -> i64 {
    let w = Vec::<f64>::try_from(weights.to_kind(Kind::Double).to_device(tch::Device::Cpu))
        .expect("k-means++ weights are a vector");
    let total: f64 = w.iter().sum();
    if total <= 0.0 {
        return rng.random_range(0..w.len() as i64);
    }
    let target = rng.random::<f64>() * total;
    let mut cumulative = 0.0;
    for (i, &wi) in w.iter().enumerate() {
        cumulative += wi;
        if cumulative > target {
            return i as i64;
        }
    }
    // Rounding can leave the target at the very end: take the last weighted item.
    w.iter().rposition(|&wi| wi > 0.0).expect("total > 0") as i64
}

/// Lloyd's iterations from `centres` (k, D) until no assignment changes or
/// [`MAX_ITERATIONS`]; the assignments returned are always those of the
/// centres returned.
fn lloyd(x: &Tensor, mut centres: Tensor) -> Clusters {
    let (mut assignments, mut d2) = assign(x, &centres);
    for _ in 0..MAX_ITERATIONS {
        centres = means(x, &assignments, &centres);
        let (next, next_d2) = assign(x, &centres);
        let settled = next.equal(&assignments);
        (assignments, d2) = (next, next_d2);
        if settled {
            break;
        }
    }
    Clusters {
        assignments,
        centres,
        inertia: d2.sum(Kind::Double).double_value(&[]),
    }
}

/// Each row of `x` (N, D)'s nearest centre (N,) int64 and its squared
/// distance (N,), a block of rows at a time.
fn assign(x: &Tensor, centres: &Tensor) -> (Tensor, Tensor) {
    let c_sq = centres.square().sum_dim_intlist(1, false, x.kind());
    let n = x.size()[0];
    let (labels, d2): (Vec<Tensor>, Vec<Tensor>) = (0..n)
        .step_by(BLOCK as usize)
        .map(|start| {
            let block = x.narrow(0, start, BLOCK.min(n - start));
            let x_sq = block.square().sum_dim_intlist(1, true, x.kind());
            let d2 = (x_sq - block.matmul(&centres.tr()) * 2.0 + &c_sq).clamp_min(0.0);
            let (min, arg) = d2.min_dim(1, false);
            (arg, min)
        })
        .unzip();
    (Tensor::cat(&labels, 0), Tensor::cat(&d2, 0))
}

/// The mean of each cluster's rows; an empty cluster keeps its old centre.
fn means(x: &Tensor, assignments: &Tensor, old: &Tensor) -> Tensor {
    let k = old.size()[0];
    let sums = Tensor::zeros_like(old).index_add(0, assignments, x);
    let ones = Tensor::ones([x.size()[0]], (x.kind(), x.device()));
    let sizes = Tensor::zeros([k], (x.kind(), x.device()))
        .index_add(0, assignments, &ones)
        .unsqueeze(1);
    (sums / sizes.clamp_min(1.0)).where_self(&sizes.gt(0.0), old)
}
