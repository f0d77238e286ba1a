//! Scoring pairs of images with a trained, calibrated model: embed both
//! sides, measure their distance, read it as a similarity in [0, 1] and a
//! same / different decision.

use serde::Serialize;
use tch::Tensor;
use twinsim_data::Images;

use crate::calibration::Calibration;
use crate::model::Model;

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
