//! `twinsim fid A B --model RUN_DIR`: the Fréchet distance and KID between
//! two sets of images on a trained model's features.

use std::path::Path;

use serde::Serialize;
use twinsim_index::gallery::{self, Gallery, Subset};
use twinsim_learn::fid::{frechet, kid, Statistics};
use twinsim_learn::run::Run;

use crate::cli::{FidArgs, GlobalArgs};
use crate::report::print_json;

/// What `twinsim fid` prints.
#[derive(Serialize)]
struct Out {
    fid: f64,
    kid: f64,
    kid_std: f64,
    kid_subsets: usize,
    kid_subset_size: usize,
    n_a: usize,
    n_b: usize,
    /// The features compared, in words.
    features: String,
}

/// Runs `twinsim fid`.
pub fn run(global: &GlobalArgs, args: &FidArgs) -> anyhow::Result<()> {
    let run = Run::open(&args.model, super::device(&args.device)?)?;
    let a = features(global, &run, &args.a)?;
    let b = features(global, &run, &args.b)?;
    let fid = frechet::distance(&Statistics::of(&a)?, &Statistics::of(&b)?)?;
    let k = kid::kid(&a, &b, args.kid_subsets, args.kid_subset_size, args.seed);
    let card = &run.model.card;
    let out = Out {
        fid,
        kid: k.mean,
        kid_std: k.std,
        kid_subsets: k.subsets,
        kid_subset_size: k.subset_size,
        n_a: a.size()[0] as usize,
        n_b: b.size()[0] as usize,
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
    println!(
        "FID {:.4}  KID {:.6} ± {:.6} ({} subsets of {})  on {} images against {}",
        out.fid, out.kid, out.kid_std, out.kid_subsets, out.kid_subset_size, out.n_a, out.n_b
    );
    println!(
        "features: {} (not Inception: compare only with FIDs on the same model)",
        out.features
    );
    Ok(())
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
    let bar = super::progress(global, images.len(), "embedding");
    let embedded = gallery::embed(&run.model, &images, &bar)?;
    bar.finish_and_clear();
    Ok(embedded)
}
