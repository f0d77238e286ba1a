//! `twinsim train`: options in, run directory out.

use std::io::IsTerminal;

use twinsim_learn::train::{self, TrainOptions, TrainRequest};

use crate::cli::{GlobalArgs, TrainArgs};
use crate::report::print_json;

/// Runs `twinsim train`.
pub fn run(global: &GlobalArgs, args: &TrainArgs) -> anyhow::Result<()> {
    let mut options = args.options.clone();
    if let Some(path) = &args.config {
        options = options.over(TrainOptions::from_toml_file(path)?);
    }
    if args.resume.is_some() && options != TrainOptions::default() {
        anyhow::bail!(twinsim_learn::LearnError::config(
            "--resume continues a run with its own configuration; other training options were given",
            "drop the other options, or start a new run with --out",
        ));
    }
    let data = super::load_options(global, &args.folder);
    let summary = train::train(TrainRequest {
        options,
        resume: args.resume.clone(),
        data,
        progress: !global.quiet && std::io::stderr().is_terminal(),
    })?;
    if global.json {
        return print_json(&summary);
    }
    println!("epoch  loss      val P@1   seconds  images/s");
    for e in &summary.epochs {
        println!(
            "{:>5}  {:<8.4}  {:<8.4}  {:>7.1}  {:>8.0}",
            e.epoch, e.loss, e.val_precision_at_1, e.epoch_seconds, e.images_per_second
        );
    }
    match summary.test_precision_at_1 {
        Some(p1) => println!("\ntest Precision@1 {p1:.4} (test images vs the training images as gallery)"),
        None => println!("\nno test split: see the validation Precision@1 above"),
    }
    println!(
        "{} training images from {}",
        summary.train_images, summary.data_origin
    );
    println!("model written to {}", summary.run_dir.display());
    Ok(())
}
