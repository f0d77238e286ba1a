//! Pair verification: given a score per pair (higher = more similar) and
//! whether the pair is really of one class, how well a threshold on the
//! score separates same pairs from different ones. Everything is in f64 and
//! agrees with scikit-learn (`roc_curve`, `roc_auc_score`) and numpy
//! (`interp`) on the same inputs.
//!
//! A threshold `t` accepts a pair (calls it "same") when `score ≥ t`. True
//! accepts are same pairs accepted, false accepts different pairs accepted;
//! TAR and FAR are their shares of the same and of the different pairs.

use std::collections::{BTreeMap, HashMap};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{LearnError, Result};

/// The false-accept rates [`Verification`] reports the true-accept rate at.
pub const FARS: [f64; 3] = [1e-3, 1e-2, 1e-1];

/// A ROC curve as scikit-learn's `roc_curve(drop_intermediate=True)` gives
/// it: one point per kept threshold, from `(0, 0)` at `+∞` to `(1, 1)` at the
/// lowest score. The three vectors have the same length.
#[derive(Clone, Debug, PartialEq)]
pub struct RocCurve {
    /// False-accept rate at each threshold, non-decreasing.
    pub fpr: Vec<f64>,
    /// True-accept rate at each threshold, non-decreasing.
    pub tpr: Vec<f64>,
    /// The thresholds, decreasing; the first is `+∞` (accept nothing).
    pub thresholds: Vec<f64>,
}

/// What one threshold does on a set of pairs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    /// Share of all pairs decided right.
    pub accuracy: f64,
    /// Share of different pairs accepted (NaN when there are none).
    pub false_accept_rate: f64,
    /// Share of same pairs accepted (NaN when there are none).
    pub true_accept_rate: f64,
}

/// The verification summary of a set of scored pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Pairs scored.
    pub pairs: usize,
    /// Area under the ROC curve ([`roc_auc`]).
    pub roc_auc: f64,
    /// Equal error rate ([`RocCurve::eer`]).
    pub eer: f64,
    /// The best accuracy any threshold reaches, and that threshold
    /// ([`best_threshold`]).
    pub best_accuracy: f64,
    pub best_threshold: f64,
    /// True-accept rate at each false-accept rate of [`FARS`], keyed by the
    /// rate as Rust prints it (`"0.001"`), interpolated as [`RocCurve::tar_at_far`] does.
    pub tar_at_far: BTreeMap<String, f64>,
}

impl Verification {
    /// Summarises `scores` (higher = more similar) of pairs whose `same`
    /// flags say which are of one class. Needs pairs of both kinds.
    pub fn compute(scores: &[f64], same: &[bool]) -> Result<Verification> {
        let curve = roc_curve(scores, same)?;
        let (best_threshold, best_accuracy) = best_threshold(scores, same);
        Ok(Verification {
            pairs: scores.len(),
            roc_auc: curve.auc(),
            eer: curve.eer(),
            best_accuracy,
            best_threshold,
            tar_at_far: FARS
                .iter()
                .map(|&f| (f.to_string(), curve.tar_at_far(f)))
                .collect(),
        })
    }
}

/// The ROC curve of `scores` against `same`, point for point as
/// scikit-learn's `roc_curve` with `drop_intermediate=True` computes it.
/// Errors when the lengths differ, a score is NaN, or either kind of pair is
/// missing (the rates would divide by zero).
pub fn roc_curve(scores: &[f64], same: &[bool]) -> Result<RocCurve> {
    if scores.len() != same.len() {
        return Err(LearnError::config(
            format!("{} scores but {} same/different flags", scores.len(), same.len()),
            "pass one flag per scored pair",
        ));
    }
    let counts = Cumulative::new(scores, same);
    let (positives, negatives) = counts.totals();
    if positives == 0.0 || negatives == 0.0 || scores.iter().any(|s| s.is_nan()) {
        return Err(LearnError::config(
            format!(
                "a ROC curve needs same and different pairs and no NaN score; got {positives} same, \
                 {negatives} different among {} scores",
                scores.len()
            ),
            "score pairs of both kinds (balanced_pairs draws them)",
        ));
    }
    let keep = corners(&counts.fps, &counts.tps);
    // Each series starts at the point "accept nothing"; rates are counts over totals.
    let points = |first: f64, counts: &[f64], total: f64| -> Vec<f64> {
        std::iter::once(first)
            .chain(keep.iter().map(|&i| counts[i] / total))
            .collect()
    };
    Ok(RocCurve {
        fpr: points(0.0, &counts.fps, negatives),
        tpr: points(0.0, &counts.tps, positives),
        thresholds: points(f64::INFINITY, &counts.thresholds, 1.0),
    })
}

/// ROC AUC as scikit-learn's `roc_auc_score` computes it: the trapezoid
/// rule over [`roc_curve`], which counts tied same/different pairs as half
/// right.
pub fn roc_auc(scores: &[f64], same: &[bool]) -> Result<f64> {
    Ok(roc_curve(scores, same)?.auc())
}

/// The equal error rate ([`RocCurve::eer`]) of `scores` against `same`.
pub fn eer(scores: &[f64], same: &[bool]) -> Result<f64> {
    Ok(roc_curve(scores, same)?.eer())
}

/// The true-accept rate at false-accept rate `far` ([`RocCurve::tar_at_far`]).
pub fn tar_at_far(scores: &[f64], same: &[bool], far: f64) -> Result<f64> {
    Ok(roc_curve(scores, same)?.tar_at_far(far))
}

impl RocCurve {
    /// The area under the curve by the trapezoid rule (numpy's `trapz`).
    pub fn auc(&self) -> f64 {
        let x = &self.fpr;
        let y = &self.tpr;
        (1..x.len())
            .map(|i| (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0)
            .sum()
    }

    /// The equal error rate on the curve's points: at the first point where
    /// |FNR − FPR| is smallest (FNR = 1 − TPR), the mean of the two. The
    /// curve's points are not interpolated between, as the oracle does.
    pub fn eer(&self) -> f64 {
        let gap = |i: usize| ((1.0 - self.tpr[i]) - self.fpr[i]).abs();
        let i = (0..self.fpr.len()).fold(0, |best, i| if gap(i) < gap(best) { i } else { best });
        (self.fpr[i] + (1.0 - self.tpr[i])) / 2.0
    }

    /// The true-accept rate at false-accept rate `far`, read off the curve
    /// as `numpy.interp(far, fpr, tpr)` does: at the last point with
    /// FPR ≤ `far`, interpolated linearly towards the next point when that
    /// point's FPR is larger (so a vertical step counts at its top).
    pub fn tar_at_far(&self, far: f64) -> f64 {
        let (x, y) = (&self.fpr, &self.tpr);
        let Some(j) = x.iter().rposition(|&f| f <= far) else {
            return y[0];
        };
        if j + 1 == x.len() || x[j] == far {
            return y[j];
        }
        // numpy's arithmetic order, so results agree to the last bit.
        let slope = (y[j + 1] - y[j]) / (x[j + 1] - x[j]);
        slope * (far - x[j]) + y[j]
    }
}

/// The threshold with the highest accuracy on these pairs, and that
/// accuracy. Candidate thresholds split the distinct scores into accepted
/// and rejected; the one returned lies midway between the lowest accepted
/// score and the highest rejected one, so it generalises to scores in
/// between (the lowest score itself when every pair is accepted; just above
/// the highest score when none is). Among equally accurate thresholds the
/// highest wins. Panics if the lengths differ.
pub fn best_threshold(scores: &[f64], same: &[bool]) -> (f64, f64) {
    let counts = Cumulative::new(scores, same);
    let (positives, negatives) = counts.totals();
    let n = positives + negatives;
    // Cut 0 accepts nothing; cut i + 1 accepts scores ≥ thresholds[i].
    let accuracy = |cut: usize| match cut {
        0 => negatives / n,
        _ => (counts.tps[cut - 1] + negatives - counts.fps[cut - 1]) / n,
    };
    let best = (0..=counts.thresholds.len()).fold(0, |b, c| if accuracy(c) > accuracy(b) { c } else { b });
    (counts.cut_threshold(best), accuracy(best))
}

/// The lowest threshold (the one accepting the most pairs) whose
/// false-accept rate on these pairs is at most `far`, placed between scores
/// as [`best_threshold`] places it. With no different pairs every threshold
/// qualifies and the lowest score is returned. Panics if the lengths differ.
pub fn threshold_at_far(scores: &[f64], same: &[bool], far: f64) -> f64 {
    let counts = Cumulative::new(scores, same);
    let (_, negatives) = counts.totals();
    // Cut 0 (accept nothing) always qualifies; FAR only grows with the cut.
    let cut = counts
        .fps
        .iter()
        .take_while(|&&f| negatives == 0.0 || f / negatives <= far)
        .count();
    counts.cut_threshold(cut)
}

/// Accuracy, false-accept and true-accept rates of accepting pairs whose
/// score is at least `threshold`. Panics if the lengths differ.
pub fn rates_at(scores: &[f64], same: &[bool], threshold: f64) -> Rates {
    assert_eq!(scores.len(), same.len(), "one same/different flag per score");
    let (mut tp, mut fp, mut positives) = (0usize, 0usize, 0usize);
    for (&s, &y) in scores.iter().zip(same) {
        let accepted = s >= threshold;
        positives += usize::from(y);
        tp += usize::from(y && accepted);
        fp += usize::from(!y && accepted);
    }
    let negatives = same.len() - positives;
    let correct = tp + (negatives - fp);
    Rates {
        accuracy: correct as f64 / same.len() as f64,
        false_accept_rate: fp as f64 / negatives as f64,
        true_accept_rate: tp as f64 / positives as f64,
    }
}

/// The share of pairs decided right when pairs scoring at least
/// `threshold` are called the same.
pub fn accuracy_at(scores: &[f64], same: &[bool], threshold: f64) -> f64 {
    rates_at(scores, same, threshold).accuracy
}

/// `n` random pairs `(i, j, same)` of items of `labels` (i ≠ j), half of
/// them (`n / 2`, rounded down) of one class and the rest of two different
/// classes, in random order; the same `seed` gives the same pairs. The
/// first item of a same pair is uniform over the items whose class has
/// another member, the second uniform over those other members; the first
/// item of a different pair is uniform over all items, the second over the
/// items of other classes. Pairs are drawn independently, so one may repeat.
///
/// When no class has two members there are no same pairs to draw, and all
/// `n` pairs are different; when there is a single class, all are same;
/// with fewer than two items the result is empty.
pub fn balanced_pairs(labels: &[i64], n: usize, seed: u64) -> Vec<(usize, usize, bool)> {
    let classes = Classes::new(labels);
    let can_same = !classes.pairable.is_empty();
    let can_differ = classes.starts.len() > 2;
    let same_count = match (can_same, can_differ) {
        (true, true) => n / 2,
        (true, false) => n,
        (false, true) => 0,
        (false, false) => return Vec::new(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pairs: Vec<_> = (0..n)
        .map(|p| {
            if p < same_count {
                classes.same_pair(&mut rng)
            } else {
                classes.different_pair(&mut rng)
            }
        })
        .collect();
    pairs.shuffle(&mut rng);
    pairs
}

/// Items grouped by class, for drawing pairs in O(1) each.
struct Classes {
    /// Item indices sorted by class; class c occupies `starts[c]..starts[c + 1]`.
    order: Vec<usize>,
    starts: Vec<usize>,
    /// Per item: its class (index into `starts`) and its place in `order`.
    class_of: Vec<usize>,
    place: Vec<usize>,
    /// Items whose class has at least one other member.
    pairable: Vec<usize>,
}

impl Classes {
    fn new(labels: &[i64]) -> Classes {
        let mut ids: HashMap<i64, usize> = HashMap::new();
        let class_of: Vec<usize> = labels
            .iter()
            .map(|l| {
                let next = ids.len();
                *ids.entry(*l).or_insert(next)
            })
            .collect();
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.sort_by_key(|&i| class_of[i]);
        let mut starts = vec![0; ids.len() + 1];
        for &c in &class_of {
            starts[c + 1] += 1;
        }
        for c in 0..ids.len() {
            starts[c + 1] += starts[c];
        }
        let mut place = vec![0; labels.len()];
        for (p, &i) in order.iter().enumerate() {
            place[i] = p;
        }
        let size = |i: usize| starts[class_of[i] + 1] - starts[class_of[i]];
        let pairable = (0..labels.len()).filter(|&i| size(i) > 1).collect();
        Classes {
            order,
            starts,
            class_of,
            place,
            pairable,
        }
    }

    fn same_pair(&self, rng: &mut ChaCha8Rng) -> (usize, usize, bool) {
        let i = self.pairable[rng.random_range(0..self.pairable.len())];
        let (start, end) = self.span(i);
        // Draw among the class's other members by skipping i's own place.
        let r = start + rng.random_range(0..end - start - 1);
        let j = self.order[if r < self.place[i] { r } else { r + 1 }];
        (i, j, true)
    }

    fn different_pair(&self, rng: &mut ChaCha8Rng) -> (usize, usize, bool) {
        let i = rng.random_range(0..self.order.len());
        let (start, end) = self.span(i);
        // Draw among the items outside i's class by skipping its block.
        let r = rng.random_range(0..self.order.len() - (end - start));
        let j = self.order[if r < start { r } else { r + end - start }];
        (i, j, false)
    }

    /// Where item i's class lies in `order`.
    fn span(&self, i: usize) -> (usize, usize) {
        let c = self.class_of[i];
        (self.starts[c], self.starts[c + 1])
    }
}

/// Scikit-learn's `_binary_clf_curve`: the distinct scores, highest first,
/// and how many same (`tps`) and different (`fps`) pairs score at least each.
struct Cumulative {
    thresholds: Vec<f64>,
    tps: Vec<f64>,
    fps: Vec<f64>,
}

impl Cumulative {
    fn new(scores: &[f64], same: &[bool]) -> Cumulative {
        assert_eq!(scores.len(), same.len(), "one same/different flag per score");
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut c = Cumulative {
            thresholds: Vec::new(),
            tps: Vec::new(),
            fps: Vec::new(),
        };
        let (mut tp, mut fp) = (0.0, 0.0);
        for (rank, &i) in order.iter().enumerate() {
            if same[i] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            // Tied scores form one threshold: record only after the last of a run.
            let last_of_run = order.get(rank + 1).is_none_or(|&next| scores[next] != scores[i]);
            if last_of_run {
                c.thresholds.push(scores[i]);
                c.tps.push(tp);
                c.fps.push(fp);
            }
        }
        c
    }

    /// All same pairs and all different pairs.
    fn totals(&self) -> (f64, f64) {
        (
            self.tps.last().copied().unwrap_or(0.0),
            self.fps.last().copied().unwrap_or(0.0),
        )
    }

    /// A threshold for cut `cut` (0 accepts nothing, `i + 1` accepts scores
    /// ≥ `thresholds[i]`), midway to the next lower score.
    fn cut_threshold(&self, cut: usize) -> f64 {
        let t = &self.thresholds;
        match cut {
            0 => t.first().map_or(f64::INFINITY, |&top| next_up(top)),
            c if c == t.len() => t[c - 1],
            c => {
                let (accepted, rejected) = (t[c - 1], t[c]);
                let mid = accepted / 2.0 + rejected / 2.0;
                // Adjacent floats have no midpoint; the accepted score still separates.
                if mid > rejected {
                    mid
                } else {
                    accepted
                }
            }
        }
    }
}

/// The indices scikit-learn keeps with `drop_intermediate=True`: the first
/// and last points and every point where the curve bends (a nonzero second
/// difference of either count).
fn corners(fps: &[f64], tps: &[f64]) -> Vec<usize> {
    let n = fps.len();
    if n <= 2 {
        return (0..n).collect();
    }
    let bends = |v: &[f64], i: usize| v[i + 1] - 2.0 * v[i] + v[i - 1] != 0.0;
    (0..n)
        .filter(|&i| i == 0 || i == n - 1 || bends(fps, i) || bends(tps, i))
        .collect()
}

/// The smallest f64 above `x` (`f64::next_up`, which needs a newer Rust than
/// this crate's minimum).
fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let bits = x.to_bits();
    f64::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 })
}
