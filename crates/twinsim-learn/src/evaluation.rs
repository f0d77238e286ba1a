//! Evaluating a trained run on a standard protocol, beside two reference
//! points measured the same way, so its numbers mean something: k-nearest
//! neighbours on raw pixels, and the same network with untrained weights.
//!
//! Protocols:
//! - `gallery`: test images (queries) against the training images (gallery),
//!   on the classes the model was trained on;
//! - `leave-one-out`: test images against each other, each query's own
//!   entry left out;
//! - `class-disjoint`: as `gallery`, on the classes the model never saw.
//!
//! Pair verification uses balanced random pairs of query images.
//!
//! With a gallery, [`EvalOptions::expansion`] re-ranks every embedder with
//! the gallery's unlabelled context (DBA and query expansion, see
//! [`crate::expansion`]) before any metric is computed.
//!
//! On a union of datasets (`mnist+cifar10`) every embedder's scores also
//! hold each part's retrieval metrics and cross-domain confusion rate
//! ([`crate::metrics::domains`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use tch::{Device, Tensor};
use twinsim_data::{Dataset, LoadOptions, SplitName};

use crate::calibration::Calibration;
use crate::distributed::World;
use crate::expansion::Expansion;
use crate::metrics::{verification, Calculator, DomainRetrieval, Retrieval, Verification};
use crate::model::{Distance, Embedding, Model};
use crate::run::{Classes, Run};
use crate::similarity::{self, Pairs};
use crate::{tensor, LearnError, Result};

/// Every protocol with a one-line description.
pub const PROTOCOLS: &[(&str, &str)] = &[
    (
        "gallery",
        "test images against the training images, trained classes",
    ),
    (
        "leave-one-out",
        "test images against each other, each leaving itself out",
    ),
    (
        "class-disjoint",
        "test against training images of the classes the model never saw",
    ),
];

/// Recall@K reported for every evaluation (the deep-metric-learning
/// papers' 1, 2, 4, 8).
pub const RECALL_KS: [i64; 4] = [1, 2, 4, 8];
/// Precision@k reported beside Precision@1.
pub const PRECISION_KS: [i64; 2] = [5, 10];

/// A standard way of pairing queries with a gallery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Gallery,
    LeaveOneOut,
    ClassDisjoint,
}

impl std::str::FromStr for Protocol {
    type Err = LearnError;
    fn from_str(s: &str) -> Result<Protocol> {
        match s {
            "gallery" => Ok(Protocol::Gallery),
            "leave-one-out" => Ok(Protocol::LeaveOneOut),
            "class-disjoint" => Ok(Protocol::ClassDisjoint),
            other => Err(LearnError::config(
                format!("unknown protocol '{other}'"),
                format!("use one of: {}", crate::registry::names(PROTOCOLS)),
            )),
        }
    }
}

impl Protocol {
    /// The protocol as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Gallery => "gallery",
            Protocol::LeaveOneOut => "leave-one-out",
            Protocol::ClassDisjoint => "class-disjoint",
        }
    }
}

/// What to evaluate on, and how.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub protocol: Protocol,
    /// Another dataset than the run's own (all its classes are unseen).
    pub dataset: Option<String>,
    /// The split queries come from (default: [`Run::query_split`]).
    pub split: Option<SplitName>,
    /// Balanced random query pairs for the verification metrics.
    pub pairs: usize,
    /// Seed for the pairs, k-means and the untrained network.
    pub seed: u64,
    /// Also measure the reference points.
    pub baselines: bool,
    /// Gallery context added to every embedder's embeddings (off by
    /// default).
    pub expansion: Expansion,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            protocol: Protocol::Gallery,
            dataset: None,
            split: None,
            pairs: 10_000,
            seed: 0,
            baselines: true,
            expansion: Expansion::default(),
        }
    }
}

/// A protocol's images: queries, and a gallery unless leave-one-out.
pub struct ProtocolData {
    pub queries: Dataset,
    pub gallery: Option<Dataset>,
}

impl ProtocolData {
    /// Loads the images `opts` asks for, with the run's conversion and
    /// validation split; refuses a gallery context the model cannot take
    /// before anything is read or embedded.
    pub fn load(run: &Run, opts: &EvalOptions, base: &LoadOptions) -> Result<ProtocolData> {
        opts.expansion.check(run.model.card.distance)?;
        let dataset = opts.dataset.as_deref();
        let split = match opts.split {
            Some(s) => s,
            None => run.query_split(dataset)?,
        };
        let classes = match opts.protocol {
            Protocol::ClassDisjoint => Classes::Unseen,
            _ => Classes::Trained,
        };
        let queries = run.data(dataset, split, classes, base)?;
        let gallery = match opts.protocol {
            Protocol::LeaveOneOut => None,
            // Val is carved from train, so its gallery is the rest of train.
            _ if split == SplitName::Val => Some(run.data(dataset, SplitName::Fit, classes, base)?),
            _ => Some(run.data(dataset, SplitName::Train, classes, base)?),
        };
        run.model.check_images(queries.images.shape())?;
        Ok(ProtocolData { queries, gallery })
    }
}

/// Embeddings of a protocol's images by one embedder.
pub struct Embedded {
    /// (Nq, D) float on the CPU.
    pub queries: Tensor,
    /// (Ng, D) float on the CPU, unless leave-one-out.
    pub gallery: Option<Tensor>,
    pub distance: Distance,
}

impl Embedded {
    /// `model`'s embeddings of `data`, shared among `world`'s ranks.
    pub fn by_model(model: &Model, data: &ProtocolData, world: &World) -> Embedded {
        let embed = |ds: &Dataset| world.embed_images(model, &ds.images, similarity::BATCH);
        Embedded {
            queries: embed(&data.queries),
            gallery: data.gallery.as_ref().map(embed),
            distance: model.card.distance,
        }
    }

    /// The preprocessed pixels themselves, flattened, compared by L2.
    pub fn raw_pixels(model: &Model, data: &ProtocolData) -> Embedded {
        let flat = |ds: &Dataset| {
            let x = tensor::images_tensor(&ds.images, Device::Cpu);
            model.card.preprocess.apply(&x).view([ds.len() as i64, -1])
        };
        Embedded {
            queries: flat(&data.queries),
            gallery: data.gallery.as_ref().map(flat),
            distance: Distance::Euclidean,
        }
    }
}

/// The metrics of one embedder on one protocol, named as
/// pytorch-metric-learning names them, plus pair verification.
#[derive(Clone, Debug, Serialize)]
pub struct Scores {
    #[serde(flatten)]
    pub retrieval: Retrieval,
    pub pair_roc_auc: f64,
    pub pair_eer: f64,
    /// Accuracy of the same / different decision at `pair_threshold`.
    pub pair_accuracy: f64,
    /// The model's calibrated threshold (a similarity) when it has one;
    /// else the best-accuracy distance threshold on these very pairs.
    pub pair_threshold: f64,
    /// `calibrated` or `best-on-these-pairs` (optimistic).
    pub pair_threshold_rule: &'static str,
    /// True-accept rate at false-accept rates 0.001, 0.01, 0.1.
    pub tar_at_far: BTreeMap<String, f64>,
    /// On a union of datasets, each part that has queries, in the union's
    /// order; empty (and left out of the JSON) otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartScores>,
}

/// One part of a union: the retrieval metrics of its queries, searched
/// against the whole gallery, and the share of them whose nearest
/// neighbour is an image of another part.
#[derive(Clone, Debug, Serialize)]
pub struct PartScores {
    /// The part's name, the prefix of its class names (`mnist`).
    pub part: String,
    #[serde(flatten)]
    pub scores: DomainRetrieval,
}

/// What an evaluation ran on.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    pub protocol: &'static str,
    pub dataset: String,
    pub query_split: String,
    pub queries: usize,
    /// Gallery size (the queries themselves under leave-one-out).
    pub gallery: usize,
    pub distance: &'static str,
    pub pairs: usize,
    /// The gallery context, when one was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expansion: Option<Expansion>,
}

impl Setup {
    /// The evaluation's key in [`METRICS_FILE`]: the protocol, with the
    /// gallery context when there is one, so that evaluations with and
    /// without it are both kept.
    pub fn key(&self) -> String {
        match self.expansion {
            Some(e) => format!("{}+dba{}+qe{}", self.protocol, e.dba, e.query),
            None => self.protocol.to_string(),
        }
    }
}

/// A whole evaluation: the model's metrics (at the top level, so the keys
/// are pytorch-metric-learning's), the set-up, and the reference points.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub setup: Setup,
    #[serde(flatten)]
    pub model: Scores,
    /// `raw_pixels` and `untrained`, on the same protocol and pairs.
    pub baselines: BTreeMap<&'static str, Scores>,
    pub seconds: f64,
}

/// The file in a run directory that keeps each protocol's latest
/// evaluation, keyed by protocol name.
pub const METRICS_FILE: &str = "metrics.json";

/// The evaluations recorded in `run_dir`, keyed by protocol (empty when
/// there are none; a damaged file counts as none, with a warning).
pub fn recorded(run_dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    let path = run_dir.join(METRICS_FILE);
    let Ok(bytes) = twinsim_data::read::read_file(&path, twinsim_data::read::MAX_TEXT_BYTES) else {
        return serde_json::Map::new();
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        tracing::warn!("{} is not valid JSON ({e}); starting it afresh", path.display());
        serde_json::Map::new()
    })
}

/// Stores `result` under its [`Setup::key`] in `run_dir`'s [`METRICS_FILE`],
/// keeping the other protocols' entries; written atomically.
pub fn record(run_dir: &Path, result: &Evaluation) -> Result<()> {
    let mut all = recorded(run_dir);
    let value = serde_json::to_value(result).expect("an evaluation serialises to JSON");
    all.insert(result.setup.key(), value);
    let json = serde_json::to_vec_pretty(&all).expect("JSON values serialise");
    Ok(twinsim_data::atomic::write_bytes(
        &run_dir.join(METRICS_FILE),
        &json,
    )?)
}

/// Evaluates `run`'s model on `data` as `opts` asks.
pub fn evaluate(run: &Run, data: &ProtocolData, opts: &EvalOptions, world: &World) -> Result<Evaluation> {
    evaluate_embedded(run, data, &Embedded::by_model(&run.model, data, world), opts)
}

/// [`evaluate`] with the model's embeddings of `data` already computed
/// (a report embeds once for its pictures and its metrics).
pub fn evaluate_embedded(
    run: &Run,
    data: &ProtocolData,
    emb: &Embedded,
    opts: &EvalOptions,
) -> Result<Evaluation> {
    let start = Instant::now();
    let model = &run.model;
    let calibration = model.calibration();
    let mut baselines = BTreeMap::new();
    let scores = score(emb, data, opts, calibration.as_ref())?;
    if opts.baselines {
        baselines.insert(
            "raw_pixels",
            score(&Embedded::raw_pixels(model, data), data, opts, None)?,
        );
        tch::manual_seed(opts.seed as i64);
        let mut untrained = Model::new(model.card.clone(), model.vs.device())?;
        if model.card.embedding == Embedding::Features {
            // Unfitted whitening embeds every image at the origin; fit it to
            // the images this protocol compares with, as training fits it to
            // the images it trained on.
            untrained.whiten(&data.gallery.as_ref().unwrap_or(&data.queries).images)?;
        }
        baselines.insert(
            "untrained",
            score(
                &Embedded::by_model(&untrained, data, &World::single()),
                data,
                opts,
                None,
            )?,
        );
    }
    Ok(Evaluation {
        setup: Setup {
            protocol: opts.protocol.name(),
            dataset: data.queries.name.clone(),
            query_split: data.queries.split.clone(),
            queries: data.queries.len(),
            gallery: data.gallery.as_ref().map_or(data.queries.len(), Dataset::len),
            distance: model.card.distance.name(),
            pairs: opts.pairs,
            expansion: (!opts.expansion.is_off()).then_some(opts.expansion),
        },
        model: scores,
        baselines,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Every metric of `emb` on `data`, in the gallery context `opts` asks
/// for; the pair decision uses `calibration`'s threshold when given and no
/// context is added (context changes the similarities' scale).
pub fn score(
    emb: &Embedded,
    data: &ProtocolData,
    opts: &EvalOptions,
    calibration: Option<&Calibration>,
) -> Result<Scores> {
    let expanded;
    let (emb, calibration) = if opts.expansion.is_off() {
        (emb, calibration)
    } else {
        expanded = in_context(emb, opts.expansion)?;
        (&expanded, None)
    };
    let labels = |ds: &Dataset| tensor::labels_tensor(&ds.labels, Device::Cpu);
    let q_labels = labels(&data.queries);
    let g_labels = data.gallery.as_ref().map(labels);
    let gallery = emb.gallery.as_ref().zip(g_labels.as_ref());
    let calculator = Calculator::new()
        .precision_at(&PRECISION_KS)
        .recall_at(&RECALL_KS)
        .nmi(true)
        .seed(opts.seed);
    let (retrieval, parts) = match data.queries.image_parts() {
        None => (
            calculator.compute(&emb.queries, &q_labels, gallery, emb.distance)?,
            Vec::new(),
        ),
        Some(q_parts) => by_part(&calculator, emb, data, &q_labels, &q_parts, gallery)?,
    };
    let pairs = Pairs::draw(
        &emb.queries,
        &data.queries.labels,
        emb.distance,
        opts.pairs,
        opts.seed,
    );
    let (scores, same) = (pairs.scores(), pairs.same());
    let v = Verification::compute(&scores, &same)?;
    let (pair_threshold, pair_accuracy, rule) = match calibration {
        Some(c) => (
            c.threshold,
            verification::accuracy_at(&scores, &same, -c.threshold_distance),
            "calibrated",
        ),
        None => (-v.best_threshold, v.best_accuracy, "best-on-these-pairs"),
    };
    Ok(Scores {
        retrieval,
        pair_roc_auc: v.roc_auc,
        pair_eer: v.eer,
        pair_accuracy,
        pair_threshold,
        pair_threshold_rule: rule,
        tar_at_far: v.tar_at_far,
        parts,
    })
}

/// The retrieval metrics of a union of datasets, whole and by part, from
/// one search; `q_parts` holds each query's part.
fn by_part(
    calculator: &Calculator,
    emb: &Embedded,
    data: &ProtocolData,
    q_labels: &Tensor,
    q_parts: &[u32],
    gallery: Option<(&Tensor, &Tensor)>,
) -> Result<(Retrieval, Vec<PartScores>)> {
    let g_parts = match &data.gallery {
        Some(g) if g.parts == data.queries.parts => g.image_parts(),
        Some(_) => {
            return Err(LearnError::config(
                "the queries and the gallery are not parts of the same union",
                "evaluate on one union of datasets, its queries and gallery from the same parts",
            ))
        }
        None => None,
    };
    let gallery = match (gallery, &g_parts) {
        (Some((g, labels)), Some(parts)) => Some((g, labels, parts.as_slice())),
        _ => None,
    };
    let (whole, by_domain) =
        calculator.compute_by_domain(&emb.queries, q_labels, q_parts, gallery, emb.distance)?;
    let parts = by_domain
        .into_iter()
        .map(|scores| PartScores {
            part: data.queries.parts[scores.domain as usize].name.clone(),
            scores,
        })
        .collect();
    Ok((whole, parts))
}

/// `emb` re-ranked with its gallery's context (see [`Expansion::apply`]),
/// compared by cosine.
fn in_context(emb: &Embedded, expansion: Expansion) -> Result<Embedded> {
    let Some(gallery) = emb.gallery.as_ref() else {
        return Err(LearnError::config(
            "DBA and query expansion need a gallery, and leave-one-out has none",
            "use --protocol gallery or --protocol class-disjoint",
        ));
    };
    let (queries, gallery) = expansion.apply(&emb.queries, gallery);
    Ok(Embedded {
        queries,
        gallery: Some(gallery),
        distance: Distance::Cosine,
    })
}
