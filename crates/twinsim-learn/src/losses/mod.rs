//! Metric-learning losses, one module each, behind one interface:
//! embeddings (B, D) and labels (B,), optionally the indices a miner chose,
//! give a scalar loss. Built by name with [`build`].
//!
//! Each loss reproduces pytorch-metric-learning (PML), value and gradient:
//! the oracle fixtures in `../shared/oracle` pin them. As in PML, distances
//! compare L2-normalised embeddings ([`crate::distances`]), and pairs or
//! triplets come from the whole batch unless a miner ([`crate::miners`])
//! chose some.

mod angular;
mod arcface;
mod contrastive;
mod cosface;
mod multi_similarity;
mod normalized_softmax;
mod proxies;
mod seed_contrastive;
mod softmax;
mod supcon;
mod triplet;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::distances::Distance;
use crate::miners::{self, Miner};
use crate::registry::names;
use crate::{LearnError, Result};

/// Indices into a batch of B embeddings that a miner chose; a loss given
/// them scores only these tuples (PML's `indices_tuple`). A tuple listed
/// twice counts twice.
#[derive(Debug)]
pub enum Mined {
    /// Triplets `(anchors[i], positives[i], negatives[i])`; each (T,) int64.
    Triplets {
        anchors: Tensor,
        positives: Tensor,
        negatives: Tensor,
    },
    /// Positive pairs `(pos_a[i], pos_b[i])`, each (P,) int64, and negative
    /// pairs `(neg_a[j], neg_b[j])`, each (N,) int64.
    Pairs {
        pos_a: Tensor,
        pos_b: Tensor,
        neg_a: Tensor,
        neg_b: Tensor,
    },
    /// Every valid triplet (a, p, n) whose negative lies in the semi-hard
    /// window `x[a,p] < x[a,n] ≤ x[a,p] + margin`, x the farness under
    /// `distance` (for cosine, `s[a,p] − margin ≤ s[a,n] < s[a,p]`);
    /// described by its rule because the list is Θ(B³). The triplet loss
    /// needs `distance` to be its own; pair losses take the triplets'
    /// (anchor, positive) and (anchor, negative) pairs.
    SemiHard { margin: f64, distance: Distance },
}

impl Mined {
    /// The number of listed triplets, or of listed pairs (positive and
    /// negative); `None` for a rule, whose count depends on the embeddings.
    pub fn listed(&self) -> Option<i64> {
        match self {
            Mined::Triplets { anchors, .. } => Some(anchors.size()[0]),
            Mined::Pairs { pos_a, neg_a, .. } => Some(pos_a.size()[0] + neg_a.size()[0]),
            Mined::SemiHard { .. } => None,
        }
    }

    /// How often each ordered pair is chosen, as positive and as negative
    /// pairs: two (B, B) tensors of `like`'s kind and device. Triplets give
    /// (anchor, positive) and (anchor, negative), as PML turns triplets into
    /// pairs; a rule is applied to `embeddings` (B, D) and `labels` (B,).
    fn pair_counts(&self, embeddings: &Tensor, labels: &Tensor, like: &Tensor) -> (Tensor, Tensor) {
        let (pos_a, pos_b, neg_a, neg_b) = match self {
            Mined::Triplets {
                anchors,
                positives,
                negatives,
            } => (anchors, positives, anchors, negatives),
            Mined::Pairs {
                pos_a,
                pos_b,
                neg_a,
                neg_b,
            } => (pos_a, pos_b, neg_a, neg_b),
            Mined::SemiHard { margin, distance } => {
                return semi_hard_pair_counts(&distance.farness(embeddings), labels, *margin, like)
            }
        };
        (count_matrix(pos_a, pos_b, like), count_matrix(neg_a, neg_b, like))
    }
}

/// far (B, B), labels (B,) → [`Mined::pair_counts`] for the semi-hard
/// window of `margin`, a chunk of anchors at a time.
fn semi_hard_pair_counts(far: &Tensor, labels: &Tensor, margin: f64, like: &Tensor) -> (Tensor, Tensor) {
    tch::no_grad(|| {
        let far = far.detach();
        let (pos, neg) = class_masks(labels);
        let (mut per_pos, mut per_neg) = (Vec::new(), Vec::new());
        for (start, len) in miners::row_chunks(far.size()[0], far.size()[0]) {
            let rows = |t: &Tensor| t.narrow(0, start, len);
            let far = rows(&far);
            let w = miners::semi_hard_window(
                &far,
                &rows(&pos).to_kind(far.kind()),
                &rows(&neg).to_kind(far.kind()),
                &(&far + margin),
                true,
            );
            per_pos.push(w.per_positive);
            per_neg.push(w.per_negative);
        }
        let cat = |parts: Vec<Tensor>| Tensor::cat(&parts, 0).to_kind(like.kind());
        (cat(per_pos), cat(per_neg))
    })
}

/// rows, cols (N,) int64 → (B, B) like `like`: how often each (row, col)
/// occurs.
fn count_matrix(rows: &Tensor, cols: &Tensor, like: &Tensor) -> Tensor {
    let b = like.size()[0];
    let counts = Tensor::zeros([b * b], (like.kind(), like.device()));
    let ones = Tensor::ones([rows.size()[0]], (like.kind(), like.device()));
    counts.index_add(0, &(rows * b + cols), &ones).view([b, b])
}

/// A metric-learning loss.
pub trait Loss: std::fmt::Debug + Send {
    /// embeddings (B, D) float (f32 or f64), labels (B,) int64, optional
    /// mined indices → 0-dim loss tensor of the embeddings' kind,
    /// differentiable with respect to the embeddings (and the loss's own
    /// variables). A batch with nothing to score gives 0, still attached to
    /// the graph, so that `backward` works.
    fn compute(&self, embeddings: &Tensor, labels: &Tensor, mined: Option<&Mined>) -> Tensor;

    /// Whether this loss needs class labels 0..num_classes (the proxy
    /// losses): training checks it before starting.
    fn needs_class_count(&self) -> bool {
        false
    }
}

/// Every loss name with a one-line description, for `--help` and errors.
pub const LOSSES: &[(&str, &str)] = &[
    (
        "seed-contrastive",
        "the seed's contrastive loss on pairs (a_i, b_i) of a batch [a; b]: d² or max(0, margin − d)², margin 5",
    ),
    ("contrastive", "every (or every mined) pair: positives' distance, negatives' max(0, margin − d); margin 1"),
    ("triplet", "max(0, d(a,p) − d(a,n) + margin) over every valid (or mined) triplet; margin 0.2"),
    ("angular", "angular loss: each anchor-positive pair against every negative; alpha 40°"),
    ("multi-similarity", "multi-similarity loss on cosine similarities; alpha 2, beta 50, base 0.5"),
    ("supcon", "supervised contrastive loss on cosine similarities; temperature 0.1"),
    ("normalized-softmax", "softmax over cosines to learned class proxies; temperature 0.05"),
    ("arcface", "ArcFace: class-proxy softmax, target angle + margin 28.6°; scale 64"),
    ("cosface", "CosFace: class-proxy softmax, target cosine − margin 0.35; scale 64"),
    ("softmax", "a plain classifier: softmax over a learned linear map of the embeddings; scale 1"),
];

/// A loss by name with its parameters; every parameter left `None` takes the
/// loss's default (PML's, listed per field), and a parameter the loss does
/// not take is an error.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LossConfig {
    /// One of [`LOSSES`].
    pub name: String,
    /// seed-contrastive: 5 (Euclidean, raw embeddings); contrastive: the
    /// negative margin, 1; triplet: 0.2 (in the units of `distance`);
    /// arcface: 28.6, in degrees, added to the target angle; cosface: 0.35,
    /// subtracted from the target cosine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// contrastive: the distance under which positive pairs cost nothing, 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_margin: Option<f64>,
    /// angular: the angle bound in degrees, 40; multi-similarity: the
    /// positive-pair exponent, 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// multi-similarity: the negative-pair exponent, 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// multi-similarity: the similarity both exponents are taken from, 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<f64>,
    /// supcon: 0.1; normalized-softmax: 0.05. Softmax temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// arcface, cosface: the logit scale, 64; softmax: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// normalized-softmax, arcface, cosface, softmax: the share ε of each target
    /// spread evenly over all classes (label smoothing), 0: the loss is
    /// (1 − ε)·CE + ε·(mean over classes of −log p). Not in PML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f64>,
    /// triplet: one of [`crate::distances::DISTANCES`], "l2" by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<String>,
    /// triplet, contrastive: one of [`crate::miners::MINERS`]; `None` is
    /// batch-all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miner: Option<String>,
}

impl LossConfig {
    /// The loss `name` with every parameter at its default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The miner this config names, ranking triplets with the loss's own
    /// distance and, for triplet, its margin (else PML's miner default,
    /// 0.2); `Ok(None)` for batch-all. Errors where the loss cannot use a
    /// miner.
    pub fn build_miner(&self) -> Result<Option<Box<dyn Miner>>> {
        let Some(miner) = self.miner.as_deref() else {
            return Ok(None);
        };
        let mut params = Params::new(self);
        let (margin, distance) = match self.name.as_str() {
            "triplet" => (params.triplet_margin()?, params.distance()?),
            "contrastive" => (DEFAULT_MINER_MARGIN, Distance::L2),
            // Validates the name; batch-all is no miner, so any loss takes it.
            name => match miners::build(miner, DEFAULT_MINER_MARGIN)? {
                None => return Ok(None),
                Some(_) => {
                    return Err(LearnError::config(
                        format!("loss {name} cannot use the {miner} miner"),
                        "miners work with the triplet and contrastive losses; leave the miner unset for the others",
                    ))
                }
            },
        };
        miners::build_with_distance(miner, margin, distance)
    }
}

/// PML's `TripletMarginMiner` margin, for miners paired with a loss whose
/// margin means something else.
const DEFAULT_MINER_MARGIN: f64 = 0.2;

/// Builds loss `cfg.name`. The proxy losses create their class-weight matrix
/// `W` (embedding_dim, num_classes), PML's layout, as a trainable variable
/// under `vs`, so the optimizer trains it and checkpoints save it. Unknown
/// names, out-of-range parameters, parameters the loss does not take, and a
/// miner it cannot use are configuration errors.
pub fn build(
    cfg: &LossConfig,
    vs: &tch::nn::Path,
    embedding_dim: i64,
    num_classes: i64,
) -> Result<Box<dyn Loss>> {
    let mut p = Params::new(cfg);
    let loss: Box<dyn Loss> = match cfg.name.as_str() {
        "seed-contrastive" => Box::new(seed_contrastive::SeedContrastive {
            margin: p.get("margin", 5.0, Range::NonNegative)?,
        }),
        "contrastive" => Box::new(contrastive::Contrastive {
            pos_margin: p.get("pos_margin", 0.0, Range::NonNegative)?,
            neg_margin: p.get("margin", 1.0, Range::NonNegative)?,
        }),
        "triplet" => Box::new(triplet::Triplet {
            margin: p.triplet_margin()?,
            distance: p.distance()?,
        }),
        "angular" => {
            let alpha_degrees = p.get("alpha", 40.0, Range::AcuteAngle)?;
            Box::new(angular::Angular::new(alpha_degrees))
        }
        "multi-similarity" => Box::new(multi_similarity::MultiSimilarity {
            alpha: p.get("alpha", 2.0, Range::Positive)?,
            beta: p.get("beta", 50.0, Range::Positive)?,
            base: p.get("base", 0.5, Range::Any)?,
        }),
        "supcon" => Box::new(supcon::SupCon {
            temperature: p.get("temperature", 0.1, Range::Positive)?,
        }),
        "normalized-softmax" => Box::new(normalized_softmax::NormalizedSoftmax {
            temperature: p.get("temperature", 0.05, Range::Positive)?,
            proxies: p.proxies(vs, embedding_dim, num_classes)?,
        }),
        "arcface" => Box::new(arcface::ArcFace::new(
            p.get("margin", 28.6, Range::NonNegative)?,
            p.get("scale", 64.0, Range::Positive)?,
            p.proxies(vs, embedding_dim, num_classes)?,
        )),
        "cosface" => Box::new(cosface::CosFace {
            margin: p.get("margin", 0.35, Range::NonNegative)?,
            scale: p.get("scale", 64.0, Range::Positive)?,
            proxies: p.proxies(vs, embedding_dim, num_classes)?,
        }),
        "softmax" => {
            let scale = p.get("scale", 1.0, Range::Positive)?;
            let smoothing = p.get("label_smoothing", 0.0, Range::Share)?;
            Box::new(softmax::Softmax::new(
                vs,
                embedding_dim,
                num_classes,
                scale,
                smoothing,
            )?)
        }
        name => {
            return Err(LearnError::config(
                format!("unknown loss '{name}'"),
                format!("use one of: {}", names(LOSSES)),
            ))
        }
    };
    p.all_read()?;
    cfg.build_miner()?;
    Ok(loss)
}

/// The values a parameter may take.
#[derive(Clone, Copy)]
enum Range {
    Any,
    NonNegative,
    Positive,
    /// Degrees strictly between 0 and 90 (the angular loss takes its tangent).
    AcuteAngle,
    /// A share in [0, 1).
    Share,
}

impl Range {
    fn admits(self, v: f64) -> bool {
        v.is_finite()
            && match self {
                Range::Any => true,
                Range::NonNegative => v >= 0.0,
                Range::Positive => v > 0.0,
                Range::AcuteAngle => v > 0.0 && v < 90.0,
                Range::Share => (0.0..1.0).contains(&v),
            }
    }

    fn describe(self) -> &'static str {
        match self {
            Range::Any => "a finite number",
            Range::NonNegative => "a number ≥ 0",
            Range::Positive => "a number > 0",
            Range::AcuteAngle => "an angle in degrees between 0 and 90 (exclusive)",
            Range::Share => "a number from 0 up to (not including) 1",
        }
    }
}

/// A config's parameters as one loss reads them, remembering which it read
/// so that [`build`] can reject the ones that loss would silently ignore.
struct Params<'a> {
    cfg: &'a LossConfig,
    read: Vec<&'static str>,
}

impl<'a> Params<'a> {
    fn new(cfg: &'a LossConfig) -> Self {
        Self {
            cfg,
            read: Vec::new(),
        }
    }

    /// The numeric parameters, by name.
    fn numbers(&self) -> [(&'static str, Option<f64>); 8] {
        let c = self.cfg;
        [
            ("margin", c.margin),
            ("pos_margin", c.pos_margin),
            ("alpha", c.alpha),
            ("beta", c.beta),
            ("base", c.base),
            ("temperature", c.temperature),
            ("scale", c.scale),
            ("label_smoothing", c.label_smoothing),
        ]
    }

    /// Parameter `key` of [`Params::numbers`], or `default`, checked against
    /// `range`.
    fn get(&mut self, key: &'static str, default: f64, range: Range) -> Result<f64> {
        self.read.push(key);
        let given = self
            .numbers()
            .into_iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v);
        let v = given.unwrap_or(default);
        if range.admits(v) {
            Ok(v)
        } else {
            Err(LearnError::config(
                format!("loss {}: {key} = {v} is out of range", self.cfg.name),
                format!("{key} must be {}; the default is {default}", range.describe()),
            ))
        }
    }

    /// The class proxies of a proxy loss, with its label smoothing.
    fn proxies(
        &mut self,
        vs: &tch::nn::Path,
        embedding_dim: i64,
        num_classes: i64,
    ) -> Result<proxies::Proxies> {
        let smoothing = self.get("label_smoothing", 0.0, Range::Share)?;
        proxies::Proxies::new(vs, embedding_dim, num_classes, smoothing)
    }

    fn triplet_margin(&mut self) -> Result<f64> {
        self.get("margin", 0.2, Range::NonNegative)
    }

    fn distance(&mut self) -> Result<Distance> {
        self.read.push("distance");
        self.cfg
            .distance
            .as_deref()
            .map_or(Ok(Distance::L2), Distance::parse)
    }

    /// Errors on a parameter that was given but that the loss did not read.
    fn all_read(&self) -> Result<()> {
        let given = self
            .numbers()
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k);
        let mut given = given.chain(self.cfg.distance.as_ref().map(|_| "distance"));
        match given.find(|k| !self.read.contains(k)) {
            None => Ok(()),
            Some(key) => Err(LearnError::config(
                format!("loss {} takes no parameter {key}", self.cfg.name),
                match self.read.as_slice() {
                    [] => format!("{} takes no parameters; remove {key}", self.cfg.name),
                    read => format!("{} takes: {}", self.cfg.name, read.join(", ")),
                },
            )),
        }
    }
}

/// labels (B,) → positive and negative pair masks, each (B, B) bool: same
/// class but not the same embedding, and different classes.
pub(crate) fn class_masks(labels: &Tensor) -> (Tensor, Tensor) {
    let same = labels.unsqueeze(1).eq_tensor(&labels.unsqueeze(0));
    let itself = Tensor::eye(labels.size()[0], (Kind::Bool, labels.device()));
    (same.logical_and(&itself.logical_not()), same.logical_not())
}

/// The pairs a pair-based loss scores, as weights (B, B) of `like`'s kind for
/// the positive and the negative pairs: every pair the labels make, or each
/// mined pair as often as it was chosen (from `embeddings` (B, D), for a
/// rule).
fn pair_weights(
    embeddings: &Tensor,
    labels: &Tensor,
    mined: Option<&Mined>,
    like: &Tensor,
) -> (Tensor, Tensor) {
    match mined {
        Some(m) => m.pair_counts(embeddings, labels, like),
        None => {
            let (pos, neg) = class_masks(labels);
            (pos.to_kind(like.kind()), neg.to_kind(like.kind()))
        }
    }
}

/// Row-wise log-sum-exp of `x` (N, M) over the entries where `keep` (N, M)
/// bool holds, with an extra 0 term when `add_one` (so log(1 + Σ exp)); 0
/// for rows that keep nothing. (N,). PML's `lmu.logsumexp`.
fn masked_logsumexp(x: &Tensor, keep: &Tensor, add_one: bool) -> Tensor {
    let mut x = x.masked_fill(&keep.logical_not(), f64::NEG_INFINITY);
    if add_one {
        let zeros = Tensor::zeros([x.size()[0], 1], (x.kind(), x.device()));
        x = Tensor::cat(&[x, zeros], 1);
    }
    x.logsumexp([1], false)
        .masked_fill(&keep.any_dim(1, false).logical_not(), 0.0)
}

/// Whether any element of a bool tensor holds.
fn any(mask: &Tensor) -> bool {
    mask.any().int64_value(&[]) != 0
}

/// 0, of the embeddings' kind and attached to their graph: the loss of a
/// batch with nothing to score (PML's `zero_loss`).
fn zero_loss(embeddings: &Tensor) -> Tensor {
    (embeddings * 0.0).sum(embeddings.kind())
}

/// Guards the losses that score whole batches: [`build`] refuses a miner for
/// them, so mined indices reaching one are a caller's bug.
fn assert_unmined(loss: &str, mined: Option<&Mined>) {
    assert!(
        mined.is_none(),
        "loss {loss} scores whole batches and takes no mined indices"
    );
}
