//! `twinsim train`: options in, run directory out.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use twinsim_learn::distributed::World;
use twinsim_learn::report::{self, ReportOptions};
use twinsim_learn::run::Run;
use twinsim_learn::train::{self, Recipe, TrainOptions, TrainRequest};

use crate::cli::{FolderArgs, GlobalArgs, TrainArgs};
use crate::report::print_json;

/// Runs `twinsim train`.
pub fn run(global: &GlobalArgs, args: &TrainArgs) -> anyhow::Result<()> {
    let mut options = args.options.clone();
    options.validate()?;
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
    // Under mpirun or srun this process is one rank of a data-parallel job;
    // rank 0 alone writes the run and prints.
    let world = Rc::new(World::from_launcher()?);
    let request = TrainRequest {
        options,
        resume: args.resume.clone(),
        data,
        progress: !global.quiet && std::io::stderr().is_terminal(),
        test_each_epoch: args.test_each_epoch,
        world: world.clone(),
    };
    if args.dry_run {
        return print_plan(global, &train::plan(&request)?);
    }
    let summary = train::train(request)?;
    if !world.is_root() {
        return Ok(());
    }
    let report = match args.report {
        true => Some(write_report(global, &args.folder, &summary.run_dir)?),
        false => None,
    };
    if global.json {
        return print_json(&summary);
    }
    // The test column only for a run tested after every epoch.
    let tested = summary.epochs.iter().any(|e| e.test_precision_at_1.is_some());
    let test_head = if tested { "test P@1  " } else { "" };
    println!("epoch  loss      val P@1   {test_head}seconds  images/s");
    for e in &summary.epochs {
        let test = match e.test_precision_at_1 {
            Some(p) => format!("{p:<8.4}  "),
            None if tested => format!("{:<8}  ", "-"),
            None => String::new(),
        };
        println!(
            "{:>5}  {:<8.4}  {:<8.4}  {test}{:>7.1}  {:>8.0}",
            e.epoch, e.loss, e.val_precision_at_1, e.epoch_seconds, e.images_per_second
        );
    }
    if let Some(kept) = summary.kept_epoch {
        println!(
            "\nstopped early: validation Precision@1 stopped improving; the model is epoch {kept}'s, the best on validation"
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
    if let Some(recipe) = summary
        .config
        .recipe
        .as_deref()
        .and_then(|n| Recipe::by_name(n).ok())
    {
        println!("recipe {}: {}", recipe.name, recipe.describe());
    }
    println!("model written to {}", summary.run_dir.display());
    if let Some(page) = report {
        println!("report written to {}", page.display());
    }
    // The example digits only suit a model of digits.
    let example = match summary.config.dataset.as_str() {
        "mnist" | "mnist-sample" => "examples/digits/seven-a.png examples/digits/two.png",
        _ => "A.png B.png",
    };
    println!(
        "try: twinsim compare {example} --model {}",
        summary.run_dir.display()
    );
    Ok(())
}

/// What a dry run found: the configuration a run would train with.
fn print_plan(global: &GlobalArgs, cfg: &train::TrainConfig) -> anyhow::Result<()> {
    if global.json {
        return print_json(cfg);
    }
    if let Some(recipe) = cfg.recipe.as_deref().and_then(|n| Recipe::by_name(n).ok()) {
        println!("recipe {}: {}", recipe.name, recipe.describe());
    }
    if let serde_json::Value::Object(fields) = serde_json::to_value(cfg)? {
        for (key, value) in fields.iter().filter(|(_, v)| !v.is_null()) {
            println!("  {key}: {value}");
        }
    }
    println!("dry run: nothing was trained or written");
    Ok(())
}

/// The report of the run just trained, from the same data.
fn write_report(global: &GlobalArgs, folder: &FolderArgs, run_dir: &Path) -> anyhow::Result<PathBuf> {
    let (_, config) = train::RunDir::open(run_dir)?;
    let device = twinsim_learn::parse_device(&config.device)
        .map_err(|e| twinsim_learn::LearnError::config(e, "pass --device cpu"))?;
    let run = Run::open(run_dir, device)?;
    let opts = ReportOptions {
        out: run_dir.join("report"),
        ..ReportOptions::default()
    };
    Ok(report::write(&run, &opts, &super::load_options(global, folder))?)
}
