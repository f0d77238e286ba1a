//! `twinsim fid A B --model RUN_DIR`: the Fréchet distance and KID between
//! two sets of images on a trained model's features.

use std::path::Path;

use serde::Serialize;
use twinsim_index::gallery::{Gallery, Subset};
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

/// Runs `twinsim fid`.
pub fn run(global: &GlobalArgs, args: &FidArgs) -> anyhow::Result<()> {
    let run = Run::open(&args.model, super::device(&args.device)?)?;
    let a = side(global, &run, &args.a)?;
    let b = side(global, &run, &args.b)?;
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
    let card = &run.model.card;
    let out = Out {
        fid,
        kid: k.map(|k| k.mean),
        kid_std: k.map(|k| k.std),
        kid_subsets: k.map(|k| k.subsets),
        kid_subset_size: k.map(|k| k.subset_size),
        n_a: a.features.as_ref().map(|_| a.stats.count),
        n_b: b.features.as_ref().map(|_| b.stats.count),
        features: format!(
            "twinsim model {} ({} {}, {}-d embeddings)",
            args.model.display(),
            card.encoder.arch,
            card.dataset,
            run.model.dim()
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
    println!(
        "features: {} (not Inception: compare only with FIDs on the same model)",
        out.features
    );
    Ok(())
}

/// The side `spec`: a statistics file, or images to embed.
fn side(global: &GlobalArgs, run: &Run, spec: &str) -> anyhow::Result<Side> {
    if spec.ends_with(".npz") {
        let stats = Statistics::load(Path::new(spec))?;
        if stats.dim() != run.model.dim() {
            anyhow::bail!(twinsim_learn::LearnError::config(
                format!(
                    "{spec} holds {}-d statistics but the model embeds {}-d features",
                    stats.dim(),
                    run.model.dim()
                ),
                "compare statistics made with the same model (twinsim fid --save-stats) or pass image sets",
            ));
        }
        return Ok(Side {
            stats,
            features: None,
        });
    }
    let features = features(global, run, spec)?;
    Ok(Side {
        stats: Statistics::of(&features)?,
        features: Some(features),
    })
}

/// The model's embeddings of the set `spec`: a folder when one is there,
/// else a dataset split.
fn features(global: &GlobalArgs, run: &Run, spec: &str) -> anyhow::Result<tch::Tensor> {
    let images = if Path::new(spec).is_dir() {
        Gallery::unlabelled(Path::new(spec), &run.model)?
    } else {
        Gallery::dataset(run, spec, &Subset::default(), &super::data_options(global))?
    };
    if images.len() < 2 {
        anyhow::bail!(twinsim_learn::LearnError::config(
            format!("{spec} holds {} usable images", images.len()),
            "FID compares sets: give each at least 2 images (thousands for a meaningful value)",
        ));
    }
    super::embed(global, &run.model, &images)
}
