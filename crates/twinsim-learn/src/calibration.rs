//! A calibrated similarity: a mapping from embedding distance to a number in
//! [0, 1] that reads as a probability, and a decision threshold on it.
//!
//! The mapping is Platt scaling, `similarity = 1 / (1 + exp(−(a + b·d)))`,
//! fitted by maximum likelihood on held-out pairs (half same-class, half
//! different) with Platt's smoothed targets, `(N₊+1)/(N₊+2)` and `1/(N₋+2)`,
//! so a model that separates its pairs perfectly still gets finite
//! coefficients. The similarity is then the chance that a pair is of one
//! class when same and different pairs are equally likely. The threshold is
//! chosen on the same pairs, for the best accuracy or for a false-accept rate
//! the user asks for; it is stored as a similarity, which is what users see.

use serde::{Deserialize, Serialize};

use twinsim_data::Dataset;

use crate::metrics::verification;
use crate::model::Model;
use crate::similarity::{self, Pairs};
use crate::{LearnError, Result};

/// Pairs drawn for a calibration unless the caller asks otherwise.
pub const DEFAULT_PAIRS: usize = 10_000;

/// The key under which a model card's `extra` map holds its calibration.
pub const CARD_KEY: &str = "calibration";

/// How the decision threshold is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ThresholdRule {
    /// The threshold with the highest accuracy on the calibration pairs.
    BestAccuracy,
    /// The most accepting threshold whose false-accept rate (different pairs
    /// called the same) is at most this.
    FalseAcceptRate(f64),
}

impl ThresholdRule {
    /// The rule as stored and printed: `best-accuracy` or `far=0.001`.
    pub fn name(&self) -> String {
        match self {
            ThresholdRule::BestAccuracy => "best-accuracy".into(),
            ThresholdRule::FalseAcceptRate(f) => format!("far={f}"),
        }
    }
}

/// A fitted calibration, stored in the model card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Always `platt` (logistic in the distance) for now.
    pub method: String,
    /// Intercept of the logistic mapping.
    pub a: f64,
    /// Slope of the logistic mapping on the distance (negative: farther is
    /// less similar).
    pub b: f64,
    /// Pairs whose similarity is at least this are called the same.
    pub threshold: f64,
    /// The embedding distance at the threshold.
    pub threshold_distance: f64,
    /// How the threshold was chosen ([`ThresholdRule::name`]).
    pub rule: String,
    /// On the calibration pairs, at the threshold: share of pairs decided
    /// right, share of different pairs accepted, share of same pairs accepted.
    pub accuracy: f64,
    pub false_accept_rate: f64,
    pub true_accept_rate: f64,
    /// The data the pairs were drawn from, and how many pairs of each kind.
    pub data: String,
    pub same_pairs: usize,
    pub different_pairs: usize,
}

impl Calibration {
    /// Fits the mapping and the threshold on pair `distances` whose
    /// `same` flags say which pairs are of one class. Needs at least one pair
    /// of each kind, and a model that puts same pairs nearer on the whole.
    pub fn fit(distances: &[f64], same: &[bool], rule: ThresholdRule, data: String) -> Result<Calibration> {
        let same_pairs = same.iter().filter(|&&s| s).count();
        let different_pairs = same.len() - same_pairs;
        if same_pairs == 0 || different_pairs == 0 || distances.len() != same.len() {
            return Err(LearnError::config(
                format!("calibration needs same and different pairs; got {same_pairs} same and {different_pairs} different"),
                "calibrate on data with at least two classes and two images in some class",
            ));
        }
        if let ThresholdRule::FalseAcceptRate(f) = rule {
            if !(0.0..1.0).contains(&f) {
                return Err(LearnError::config(
                    format!("false-accept rate {f} is outside [0, 1)"),
                    "pass --far as a fraction, such as 0.001",
                ));
            }
        }
        let (a, b) = platt(distances, same);
        if !(b < 0.0 && a.is_finite()) {
            return Err(LearnError::config(
                "the model does not put same-class pairs nearer than different-class ones on these data",
                "train the model longer, or calibrate on data like the data it was trained on",
            ));
        }
        // Verification scores are "higher = more similar".
        let scores: Vec<f64> = distances.iter().map(|d| -d).collect();
        let score_threshold = match rule {
            ThresholdRule::BestAccuracy => verification::best_threshold(&scores, same).0,
            ThresholdRule::FalseAcceptRate(f) => verification::threshold_at_far(&scores, same, f),
        };
        let threshold_distance = -score_threshold;
        let rates = verification::rates_at(&scores, same, score_threshold);
        Ok(Calibration {
            method: "platt".into(),
            a,
            b,
            threshold: sigmoid(a + b * threshold_distance),
            threshold_distance,
            rule: rule.name(),
            accuracy: rates.accuracy,
            false_accept_rate: rates.false_accept_rate,
            true_accept_rate: rates.true_accept_rate,
            data,
            same_pairs,
            different_pairs,
        })
    }

    /// The similarity in [0, 1] of two embeddings at `distance`.
    pub fn similarity(&self, distance: f64) -> f64 {
        sigmoid(self.a + self.b * distance)
    }

    /// Whether two embeddings at `distance` are called the same class.
    pub fn same(&self, distance: f64) -> bool {
        distance <= self.threshold_distance
    }
}

/// What to calibrate on.
#[derive(Clone, Debug)]
pub struct CalibrateOptions {
    /// Balanced random pairs to draw (half same-class).
    pub pairs: usize,
    /// Seed for drawing them.
    pub seed: u64,
    pub rule: ThresholdRule,
}

impl Default for CalibrateOptions {
    fn default() -> Self {
        CalibrateOptions {
            pairs: DEFAULT_PAIRS,
            seed: 0,
            rule: ThresholdRule::BestAccuracy,
        }
    }
}

/// Calibrates `model` on balanced random pairs of `data` (images it was not
/// trained on): embeds them, measures the pairs' distances and fits
/// [`Calibration::fit`].
pub fn calibrate(model: &Model, data: &Dataset, opts: &CalibrateOptions) -> Result<Calibration> {
    let emb = model.embed_images(&data.images, similarity::BATCH);
    let pairs = Pairs::draw(&emb, &data.labels, model.card.distance, opts.pairs, opts.seed);
    let counts = data.class_counts();
    let present: Vec<&str> = (data.classes.iter().zip(&counts))
        .filter(|(_, &n)| n > 0)
        .map(|(c, _)| c.as_str())
        .collect();
    // Name the classes when only some are there (trained or unseen ones).
    let classes = if present.len() < data.classes.len() {
        format!(", classes {}", present.join(","))
    } else {
        String::new()
    };
    let source = format!("{}:{}{classes} ({} images)", data.name, data.split, data.len());
    Calibration::fit(&pairs.distances, &pairs.same(), opts.rule, source)
}

/// The logistic function, written so neither tail overflows.
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Platt's fit of `P(same | d) = sigmoid(a + b·d)`: Newton's method on the
/// cross-entropy against smoothed targets, on standardised distances for
/// conditioning, with step halving so every step lowers the loss.
fn platt(distances: &[f64], same: &[bool]) -> (f64, f64) {
    let n = distances.len() as f64;
    let mean = distances.iter().sum::<f64>() / n;
    let var = distances.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n;
    let scale = if var > 0.0 { var.sqrt() } else { 1.0 };
    let x: Vec<f64> = distances.iter().map(|d| (d - mean) / scale).collect();
    let positives = same.iter().filter(|&&s| s).count() as f64;
    let negatives = n - positives;
    let hi = (positives + 1.0) / (positives + 2.0);
    let lo = 1.0 / (negatives + 2.0);
    let t: Vec<f64> = same.iter().map(|&s| if s { hi } else { lo }).collect();
    let loss = |a: f64, b: f64| -> f64 {
        x.iter()
            .zip(&t)
            .map(|(&xi, &ti)| {
                let z = a + b * xi;
                // −[t·log σ(z) + (1−t)·log(1−σ(z))], stable in both tails.
                z.max(0.0) - ti * z + (-z.abs()).exp().ln_1p()
            })
            .sum()
    };
    let (mut a, mut b) = ((positives + 1.0).ln() - (negatives + 1.0).ln(), 0.0);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
        for (&xi, &ti) in x.iter().zip(&t) {
            let p = sigmoid(a + b * xi);
            let w = p * (1.0 - p);
            ga += p - ti;
            gb += (p - ti) * xi;
            haa += w;
            hab += w * xi;
            hbb += w * xi * xi;
        }
        let det = haa * hbb - hab * hab;
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        let mut step = 1.0;
        while step > 1e-10 {
            let next = loss(a - step * da, b - step * db);
            if next <= current {
                a -= step * da;
                b -= step * db;
                let done = current - next < 1e-12 * current.abs().max(1.0);
                current = next;
                if done {
                    return unstandardise(a, b, mean, scale);
                }
                break;
            }
            step /= 2.0;
        }
        if step <= 1e-10 {
            break;
        }
    }
    unstandardise(a, b, mean, scale)
}

/// Coefficients on standardised distances `(d − mean)/scale` → on raw ones.
fn unstandardise(a: f64, b: f64, mean: f64, scale: f64) -> (f64, f64) {
    (a - b * mean / scale, b / scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logistic data drawn from known coefficients give those coefficients
    /// back (to sampling error), and the threshold falls between the groups.
    #[test]
    fn recovers_a_known_logistic_mapping() {
        // Deterministic "random" distances in [0, 2] and outcomes drawn by
        // comparing the true probability with a low-discrepancy sequence.
        let (a_true, b_true) = (6.0, -6.0);
        let n = 20_000;
        let d: Vec<f64> = (0..n).map(|i| 2.0 * ((i as f64 * 0.618_034) % 1.0)).collect();
        let same: Vec<bool> = (0..n)
            .map(|i| ((i as f64 * 0.414_213_5) % 1.0) < sigmoid(a_true + b_true * d[i]))
            .collect();
        let (a, b) = platt(&d, &same);
        assert!(
            (a - a_true).abs() < 0.3 && (b - b_true).abs() < 0.3,
            "a {a}, b {b}"
        );
    }

    /// Perfectly separated pairs still give finite coefficients and a
    /// threshold between the groups with accuracy 1.
    #[test]
    fn separable_pairs_stay_finite() {
        let d = [0.1, 0.2, 0.3, 0.9, 1.0, 1.1];
        let same = [true, true, true, false, false, false];
        let c = Calibration::fit(&d, &same, ThresholdRule::BestAccuracy, "t".into()).unwrap();
        assert!(c.a.is_finite() && c.b < 0.0);
        assert!(c.threshold_distance > 0.3 && c.threshold_distance < 0.9, "{c:?}");
        assert_eq!(c.accuracy, 1.0);
        assert!(c.similarity(0.1) > 0.5 && c.similarity(1.1) < 0.5);
        assert!(c.same(0.2) && !c.same(1.0));
    }

    /// A model that puts different pairs nearer is refused, not calibrated
    /// upside down.
    #[test]
    fn an_inverted_model_is_refused() {
        let d = [1.0, 1.1, 0.1, 0.2];
        let same = [true, true, false, false];
        let err = Calibration::fit(&d, &same, ThresholdRule::BestAccuracy, "t".into()).unwrap_err();
        assert!(err.to_string().contains("does not put same-class pairs nearer"));
    }

    #[test]
    fn sigmoid_is_stable_in_both_tails() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
    }
}
