//! `twinsim embed`: a model's embeddings of a dataset split or of image
//! files, as `.npy` arrays any tool can open.

use std::path::PathBuf;

use serde::Serialize;
use twinsim_data::npy;
use twinsim_learn::distributed::World;
use twinsim_learn::run::{Classes, Run};
use twinsim_learn::{images, similarity};

use crate::cli::{EmbedArgs, GlobalArgs};
use crate::report::print_json;

/// `OUT/meta.json`: what the arrays hold.
#[derive(Serialize)]
struct Meta {
    /// The run directory of the model.
    model: PathBuf,
    /// SHA-256 of the model's weights and card (see `Model::weights_hash`).
    model_hash: String,
    /// `NAME:SPLIT`, or `files`.
    dataset: String,
    /// `cosine` or `euclidean`: how the model compares embeddings.
    metric: &'static str,
    /// Whether each row has norm 1.
    normalized: bool,
    count: usize,
    dim: i64,
    /// Class names, indexed by the labels (empty for files).
    classes: Vec<String>,
    /// The embedded files, row by row (for files only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<PathBuf>,
    embeddings: &'static str,
    labels: &'static str,
}

/// Runs `twinsim embed`.
pub fn run(global: &GlobalArgs, args: &EmbedArgs) -> anyhow::Result<()> {
    crate::output::check_folder(&args.out, args.force)?;
    let run = Run::open(&args.model, super::device(&args.device)?)?;
    let model = &run.model;
    let (images, labels, dataset, classes) = match &args.dataset {
        Some(spec) => {
            let parsed: twinsim_data::DatasetSpec = spec.parse()?;
            let ds = run.data(
                Some(&parsed.name()),
                parsed.split,
                Classes::All,
                &super::data_options(global),
            )?;
            let labels = ds.labels.iter().map(|&l| i64::from(l)).collect();
            let name = format!("{}:{}", parsed.name(), parsed.split.as_str());
            (ds.images, labels, name, ds.classes)
        }
        None => {
            let images = images::from_files(&args.files, &model.card.preprocess)?;
            (images, vec![-1; args.files.len()], "files".into(), Vec::new())
        }
    };
    model.check_images(images.shape())?;
    // Under mpirun or srun the ranks embed shares of the images; rank 0
    // alone writes them.
    let world = World::from_launcher()?;
    let emb = world.embed_images(model, &images, similarity::BATCH);
    if !world.is_root() {
        return Ok(());
    }
    let dim = emb.size()[1];
    let values = Vec::<f32>::try_from(&emb.reshape([-1]))?;
    std::fs::create_dir_all(&args.out).map_err(|e| twinsim_data::DataError::io(&args.out, e))?;
    npy::write(
        &args.out.join("embeddings.npy"),
        &[labels.len(), dim as usize],
        &values,
    )?;
    npy::write(&args.out.join("labels.npy"), &[labels.len()], &labels)?;
    let meta = Meta {
        model: args.model.clone(),
        model_hash: model.weights_hash(),
        dataset,
        metric: model.card.distance.name(),
        normalized: model.card.normalize,
        count: labels.len(),
        dim,
        classes,
        files: if args.dataset.is_none() {
            args.files.clone()
        } else {
            Vec::new()
        },
        embeddings: "embeddings.npy",
        labels: "labels.npy",
    };
    let json = serde_json::to_vec_pretty(&meta)?;
    twinsim_data::atomic::write_bytes(&args.out.join("meta.json"), &json)?;
    if global.json {
        return print_json(&meta);
    }
    println!(
        "{} embeddings of dimension {dim} ({}) written to {}",
        meta.count,
        meta.metric,
        args.out.display()
    );
    Ok(())
}
