//! Scoring pairs of images with a trained, calibrated model: embed both
//! sides, measure their distance, read it as a similarity in [0, 1] and a
//! same / different decision.

use serde::Serialize;
use tch::{Kind, Tensor};
use twinsim_data::Images;

use crate::calibration::Calibration;
use crate::metrics::verification;
use crate::model::{Distance, Model};

/// Images embedded per forward pass.
pub const BATCH: usize = 256;

/// One scored pair.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// Calibrated similarity in [0, 1].
    pub similarity: f64,
    /// Whether the pair is called the same class (similarity ≥ threshold).
    pub same: bool,
    /// The decision threshold, on the similarity scale.
    pub threshold: f64,
    /// The embedding distance the similarity was read from.
    pub distance: f64,
}

/// Balanced random pairs of embedded images and their distances: what
/// calibration fits on and verification metrics score.
#[derive(Clone, Debug)]
pub struct Pairs {
    /// (query i, query j, same class).
    pub pairs: Vec<(usize, usize, bool)>,
    pub distances: Vec<f64>,
}

impl Pairs {
    /// Distances of `n` balanced random pairs of `queries` (N, D) labelled
    /// `labels`, drawn with `seed`.
    pub fn draw(queries: &Tensor, labels: &[u32], distance: Distance, n: usize, seed: u64) -> Pairs {
        let labels: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
        let pairs = verification::balanced_pairs(&labels, n, seed);
        let side = |pick: fn(&(usize, usize, bool)) -> usize| {
            let idx: Vec<i64> = pairs.iter().map(|p| pick(p) as i64).collect();
            queries.index_select(0, &Tensor::from_slice(&idx))
        };
        let d = distance
            .rows(&side(|p| p.0), &side(|p| p.1))
            .to_kind(Kind::Double);
        let distances = Vec::<f64>::try_from(&d).expect("a CPU tensor converts to f64 values");
        Pairs { pairs, distances }
    }

    /// Whether each pair is of one class.
    pub fn same(&self) -> Vec<bool> {
        self.pairs.iter().map(|p| p.2).collect()
    }

    /// Verification scores: higher = more similar.
    pub fn scores(&self) -> Vec<f64> {
        self.distances.iter().map(|d| -d).collect()
    }
}

/// Scores pair i as (`a[i]`, `b[i]`); `a` and `b` hold the same number of
/// images, of the model's input size (see [`crate::images`]).
pub fn compare(model: &Model, calibration: &Calibration, a: &Images, b: &Images) -> Vec<Comparison> {
    let ea = model.embed_images(a, BATCH);
    let eb = model.embed_images(b, BATCH);
    distances(model, &ea, &eb)
        .into_iter()
        .map(|d| score(calibration, d))
        .collect()
}

/// The distance between row i of `a` and of `b`, both (N, D), as the model
/// measures it.
pub fn distances(model: &Model, a: &Tensor, b: &Tensor) -> Vec<f64> {
    let d = model.card.distance.rows(a, b).to_kind(tch::Kind::Double);
    Vec::<f64>::try_from(&d).expect("a CPU tensor converts to f64 values")
}

/// The comparison of two embeddings at `distance`.
pub fn score(calibration: &Calibration, distance: f64) -> Comparison {
    Comparison {
        similarity: calibration.similarity(distance),
        same: calibration.same(distance),
        threshold: calibration.threshold,
        distance,
    }
}
