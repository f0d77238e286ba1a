//! One module per subcommand; each turns its arguments into library calls.

mod calibrate;
mod compare;
mod datasets;
mod dedup;
mod embed;
mod evaluate;
mod fid;
mod index;
mod report;
mod search;
mod serve;
mod train;

use twinsim_data::folder::FolderOptions;
use twinsim_data::{LoadOptions, Selection};
use twinsim_learn::distributed::World;

use crate::cli::{Cli, Command, DeviceArgs, FolderArgs, GlobalArgs, SelectArgs};

/// Runs the subcommand `cli` names.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Datasets(args) => datasets::run(&cli.global, args),
        Command::Train(args) => train::run(&cli.global, args),
        Command::Evaluate(args) => evaluate::run(&cli.global, args),
        Command::Calibrate(args) => calibrate::run(&cli.global, args),
        Command::Compare(args) => compare::run(&cli.global, args),
        Command::Embed(args) => embed::run(&cli.global, args),
        Command::Report(args) => report::run(&cli.global, args),
        Command::Index(args) => index::run(&cli.global, args),
        Command::Search(args) => search::search(&cli.global, args),
        Command::Identify(args) => search::identify(&cli.global, args),
        Command::Dedup(args) => dedup::run(&cli.global, args),
        Command::Fid(args) => fid::run(&cli.global, args),
        Command::Serve(args) => serve::run(&cli.global, args),
    }
}

/// The device a command that embeds runs on.
pub fn device(args: &DeviceArgs) -> anyhow::Result<twinsim_learn::Device> {
    Ok(twinsim_learn::parse_device(&args.device)
        .map_err(|e| twinsim_learn::LearnError::config(e, "pass --device cpu, or a GPU libtorch sees"))?)
}

/// A progress bar over `len` images on stderr, hidden with --quiet (and by
/// indicatif when stderr is not a terminal).
fn progress(global: &GlobalArgs, len: usize, prefix: &str) -> indicatif::ProgressBar {
    if global.quiet {
        return indicatif::ProgressBar::hidden();
    }
    let style =
        indicatif::ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} images ({per_sec}, {eta})")
            .expect("a valid progress template");
    indicatif::ProgressBar::new(len as u64)
        .with_style(style)
        .with_prefix(prefix.to_string())
}

/// `gallery`'s embeddings by `model`, shared among `world`'s ranks, with a
/// progress bar on stderr (rank 0's).
pub fn embed(
    global: &GlobalArgs,
    model: &twinsim_learn::model::Model,
    gallery: &twinsim_index::gallery::Gallery,
    world: &World,
) -> anyhow::Result<tch::Tensor> {
    let bar = match world.is_root() {
        true => progress(global, gallery.len(), "embedding"),
        false => indicatif::ProgressBar::hidden(),
    };
    let embedded = twinsim_index::gallery::embed(model, gallery, &bar, world)?;
    bar.finish_and_clear();
    Ok(embedded)
}

/// Where commands that use a trained model find data; the model decides
/// how image folders are converted (see `Run::load_options`).
pub fn data_options(global: &GlobalArgs) -> LoadOptions {
    LoadOptions::from_env(global.data_dir.clone())
}

/// The data options of a command that selects part of a dataset.
pub fn select_options(global: &GlobalArgs, select: &SelectArgs) -> LoadOptions {
    let mut opts = load_options(global, &select.folder);
    opts.selection = Selection {
        classes: select.classes.clone(),
        per_class: select.per_class,
        val_fraction: select.val_fraction,
        seed: select.seed,
    };
    opts
}

/// How every command finds datasets and reads image folders.
pub fn load_options(global: &GlobalArgs, folder: &FolderArgs) -> LoadOptions {
    let opts = LoadOptions::from_env(global.data_dir.clone());
    LoadOptions {
        folder: FolderOptions {
            height: folder.image_size,
            width: folder.image_size,
            channels: usize::from(folder.channels),
            cache_dir: if folder.no_cache {
                None
            } else {
                opts.folder.cache_dir.clone()
            },
            ..opts.folder.clone()
        },
        ..opts
    }
}
