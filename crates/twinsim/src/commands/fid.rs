//! `twinsim fid A B (--model RUN_DIR | --inception WEIGHTS)`: the Fréchet
//! distance and KID between two sets of images, on a trained model's
//! features or on Inception-v3's (standard FID).

use std::path::{Path, PathBuf};

use serde::Serialize;
use twinsim_index::gallery::{Gallery, Subset};
use twinsim_learn::distributed::World;
use twinsim_learn::fid::inception::{self, Inception};
use twinsim_learn::fid::{frechet, kid, Statistics};
use twinsim_learn::run::Run;

use crate::cli::{FidArgs, GlobalArgs};
use crate::report::print_json;

/// What `twinsim fid` prints. KID needs the features themselves, so it is
/// absent (null) when a side is a statistics file.
#[derive(Serialize)]
struct Out {
    fid: f64,
    kid: Option<f64>,
    kid_std: Option<f64>,
    kid_subsets: Option<usize>,
    kid_subset_size: Option<usize>,
    /// Images on each side; absent for a statistics file.
    n_a: Option<usize>,
    n_b: Option<usize>,
    /// The features compared, in words.
    features: String,
}

/// One side: its statistics, and its features when computed here.
struct Side {
    stats: Statistics,
    features: Option<tch::Tensor>,
}

/// What turns images into the features compared.
enum Extractor {
    /// A trained twinsim model's embeddings.
    Model(Box<Run>),
    /// Inception-v3's pool features, with the weights read from `weights`.
    Inception { net: Box<Inception>, weights: PathBuf },
}

impl Extractor {
    /// The extractor `args` name (clap makes it exactly one of the two).
    fn open(args: &FidArgs) -> anyhow::Result<Extractor> {
        let device = super::device(&args.device)?;
        match (&args.model, &args.inception) {
            (Some(dir), _) => Ok(Extractor::Model(Box::new(Run::open(dir, device)?))),
            (None, Some(weights)) => Ok(Extractor::Inception {
                net: Box::new(Inception::load(weights, device)?),
                weights: weights.clone(),
            }),
            (None, None) => anyhow::bail!(twinsim_learn::LearnError::config(
                "no features to compare",
                "pass --model RUN_DIR (a trained model) or --inception WEIGHTS (standard FID)",
            )),
        }
    }

    /// The width of the features.
    fn dim(&self) -> i64 {
        match self {
            Extractor::Model(run) => run.model.dim(),
            Extractor::Inception { .. } => inception::FEATURES,
        }
    }

    /// The features, in words.
    fn describe(&self) -> String {
        match self {
            Extractor::Model(run) => {
                let card = &run.model.card;
                format!(
                    "twinsim model {} ({} {}, {}-d embeddings)",
                    run.dir.display(),
                    card.encoder.arch,
                    card.dataset,
                    run.model.dim()
                )
            }
            Extractor::Inception { weights, .. } => format!(
                "Inception-v3 pool features (2048-d, weights {})",
                weights.display()
            ),
        }
    }

    /// The features of the set `spec`: a folder when one is there, else a
    /// dataset split.
    fn features(&self, global: &GlobalArgs, spec: &str) -> anyhow::Result<tch::Tensor> {
        let features = match self {
            Extractor::Model(run) => model_features(global, run, spec)?,
            Extractor::Inception { net, .. } => inception_features(global, net, spec)?,
        };
        if features.size()[0] < 2 {
            anyhow::bail!(twinsim_learn::LearnError::config(
                format!("{spec} holds {} usable images", features.size()[0]),
                "FID compares sets: give each at least 2 images (thousands for a meaningful value)",
            ));
        }
        Ok(features)
    }
}

/// True when `spec` names saved statistics rather than images.
fn is_stats(spec: &str) -> bool {
    spec.ends_with(".npz")
}

/// Runs `twinsim fid`.
pub fn run(global: &GlobalArgs, args: &FidArgs) -> anyhow::Result<()> {
    for path in [&args.save_stats, &args.save_stats_b].into_iter().flatten() {
        crate::output::check_file(path, args.force)?;
    }
    // Two statistics files are compared as they are, as pytorch-fid does:
    // no features need computing, so no model is needed.
    let extractor = match (
        is_stats(&args.a) && is_stats(&args.b),
        &args.model,
        &args.inception,
    ) {
        (true, None, None) => None,
        _ => Some(Extractor::open(args)?),
    };
    let a = side(global, extractor.as_ref(), &args.a)?;
    let b = side(global, extractor.as_ref(), &args.b)?;
    for (side, path) in [(&a, &args.save_stats), (&b, &args.save_stats_b)] {
        if let Some(path) = path {
            side.stats.save(path)?;
        }
    }
    let fid = frechet::distance(&a.stats, &b.stats)?;
    let k = match (&a.features, &b.features) {
        (Some(fa), Some(fb)) => Some(kid::kid(
            fa,
            fb,
            args.kid_subsets,
            args.kid_subset_size,
            args.seed,
        )),
        _ => None,
    };
    let out = Out {
        fid,
        kid: k.map(|k| k.mean),
        kid_std: k.map(|k| k.std),
        kid_subsets: k.map(|k| k.subsets),
        kid_subset_size: k.map(|k| k.subset_size),
        n_a: a.features.as_ref().map(|_| a.stats.count),
        n_b: b.features.as_ref().map(|_| b.stats.count),
        features: extractor.as_ref().map_or_else(
            || "those the statistics were computed with".into(),
            Extractor::describe,
        ),
    };
    if global.json {
        return print_json(&out);
    }
    let kid = match k {
        Some(k) => format!(
            "KID {:.6} ± {:.6} ({} subsets of {})",
            k.mean, k.std, k.subsets, k.subset_size
        ),
        None => "KID needs images on both sides".into(),
    };
    let count = |n: Option<usize>, spec: &str| {
        n.map_or_else(|| format!("the statistics in {spec}"), |n| format!("{n} images"))
    };
    println!(
        "FID {:.4}  {kid}  on {} against {}",
        out.fid,
        count(out.n_a, &args.a),
        count(out.n_b, &args.b)
    );
    match extractor {
        None => println!("features: {}", out.features),
        Some(Extractor::Model(_)) => println!(
            "features: {} (not Inception: compare only with FIDs on the same model)",
            out.features
        ),
        Some(Extractor::Inception { .. }) => println!(
            "features: {} (images resized to 299x299 bicubic; pytorch-fid resizes bilinearly, so its values differ a little)",
            out.features
        ),
    }
    Ok(())
}

/// The side `spec`: a statistics file, or images to embed.
fn side(global: &GlobalArgs, extractor: Option<&Extractor>, spec: &str) -> anyhow::Result<Side> {
    if is_stats(spec) {
        let stats = Statistics::load(Path::new(spec))?;
        let Some(extractor) = extractor else {
            return Ok(Side {
                stats,
                features: None,
            });
        };
        if stats.dim() != extractor.dim() {
            anyhow::bail!(twinsim_learn::LearnError::config(
                format!(
                    "{spec} holds {}-d statistics but the features here are {}-d",
                    stats.dim(),
                    extractor.dim()
                ),
                "compare statistics made with the same features (twinsim fid --save-stats) or pass image sets",
            ));
        }
        return Ok(Side {
            stats,
            features: None,
        });
    }
    let Some(extractor) = extractor else {
        anyhow::bail!(twinsim_learn::LearnError::config(
            format!("{spec} is images, and no features were named to compare them by"),
            "pass --model RUN_DIR (a trained model) or --inception WEIGHTS (standard FID)",
        ));
    };
    let features = extractor.features(global, spec)?;
    Ok(Side {
        stats: Statistics::of(&features)?,
        features: Some(features),
    })
}

/// The model's embeddings of the set `spec`.
fn model_features(global: &GlobalArgs, run: &Run, spec: &str) -> anyhow::Result<tch::Tensor> {
    let images = if Path::new(spec).is_dir() {
        Gallery::unlabelled(Path::new(spec), &run.model)?
    } else {
        Gallery::dataset(run, spec, &Subset::default(), &super::data_options(global))?
    };
    super::embed(global, &run.model, &images, &World::single())
}

/// Inception's pool features of the set `spec`: the files of a folder (at
/// any depth) or a dataset split, read as it is stored and resized here.
fn inception_features(global: &GlobalArgs, net: &Inception, spec: &str) -> anyhow::Result<tch::Tensor> {
    let dir = Path::new(spec);
    if dir.is_dir() {
        let paths = twinsim_data::folder::walk(dir)?;
        let bar = super::progress(global, paths.len(), "Inception");
        let (features, skipped) = net.embed_files(&paths, &bar);
        bar.finish_and_clear();
        if !skipped.is_empty() {
            tracing::warn!(
                "{} files of {spec} are not usable images and were left out, e.g. {}: {}",
                skipped.len(),
                skipped[0].0.display(),
                skipped[0].1
            );
        }
        return Ok(features);
    }
    let ds = twinsim_data::load(&spec.parse()?, &super::data_options(global))?;
    let bar = super::progress(global, ds.len(), "Inception");
    let features = net.embed(&ds.images, &bar);
    bar.finish_and_clear();
    Ok(features)
}
