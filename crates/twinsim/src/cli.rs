//! The command line: global options and one subcommand per job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Train neural networks that score how similar two images are, then compare,
/// search and measure with them.
#[derive(Debug, Parser)]
#[command(name = "twinsim", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print exactly one JSON object on stdout (logs and progress go to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Folder searched first for datasets (then $TWINSIM_DATA, the user cache,
    /// /usr/share/datasets); downloads go here when given.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The jobs twinsim does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the datasets twinsim knows and where they are, or summarise one.
    Datasets(DatasetsArgs),
    /// Train a similarity model and write a run directory.
    Train(Box<TrainArgs>),
}

/// `twinsim train [OPTIONS]`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub options: twinsim_learn::train::TrainOptions,
    /// A TOML file whose keys are these options (batch-size = 256); flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Continue RUN_DIR from its last checkpoint (same configuration).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// `twinsim datasets [SPEC]`.
#[derive(Debug, Args)]
pub struct DatasetsArgs {
    /// A dataset to load and summarise: NAME[:SPLIT] (mnist, mnist:test,
    /// cifar100:val, ./photos:train). Without it, every dataset is listed.
    pub spec: Option<String>,
    #[command(flatten)]
    pub select: SelectArgs,
}

/// Which part of a dataset to use; shared by every command that reads one.
#[derive(Debug, Args, Clone)]
pub struct SelectArgs {
    /// Keep only these classes: indices, ranges or names (0-4, 0,2,7-9, cat,dog).
    #[arg(long, value_name = "LIST")]
    pub classes: Option<String>,
    /// Keep at most N images of each class (chosen by --seed).
    #[arg(long, value_name = "N")]
    pub per_class: Option<usize>,
    /// Share of train carved out as the `val` split (the rest is `fit`).
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    pub val_fraction: f64,
    /// Seed for the validation split and per-class subsets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub folder: FolderArgs,
}

/// How image folders are read.
#[derive(Debug, Args, Clone)]
pub struct FolderArgs {
    /// Image folders: images are resized to SIZE x SIZE.
    #[arg(long, default_value_t = 32, value_name = "SIZE")]
    pub image_size: usize,
    /// Image folders: 1 (grey) or 3 (RGB) channels.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub channels: u8,
    /// Image folders: decode every image again instead of using the cache.
    #[arg(long)]
    pub no_cache: bool,
}
