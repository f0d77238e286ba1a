//! Everything a run is prepared from before it trains: the data read and
//! split, the configuration resolved (the recipe chosen from the data),
//! the model and its training machinery built, and every check made. A
//! configuration that cannot work fails here, before a run directory is
//! created; [`plan`] stops here (`twinsim train --dry-run`).

use tch::Device;
use twinsim_data::{split, Dataset, DatasetSpec, LoadOptions, Selection, SplitName};

use super::augment::Augment;
use super::config::{TrainConfig, TrainOptions};
use super::fit::TrainRequest;
use super::measure::check_test_each_epoch;
use super::parts::{build, Parts};
use super::precision::Precision;
use super::recipe::DataFacts;
use super::run_dir::RunDir;
use super::schedule::Schedule;
use crate::distributed::{self, World};
use crate::error::{LearnError, Result};
use crate::parse_device;
use crate::samplers::{self, Sampler, SamplerConfig};
use crate::whitening::EMBEDDINGS;

/// The data of a run, read once: the official train split, the parts
/// carved from it, the test split, and the selection that carved them.
pub(super) struct Splits {
    pub train_base: Dataset,
    pub fit: Dataset,
    pub val: Dataset,
    /// `None` for an image folder without a test split.
    pub test: Option<Dataset>,
    pub selection: Selection,
}

/// A run ready to train.
pub(super) struct Prepared {
    /// The run directory and configuration of a run being resumed.
    pub resumed: Option<(RunDir, TrainConfig)>,
    pub cfg: TrainConfig,
    pub parts: Parts,
    pub sampler: Box<dyn Sampler>,
    pub augment: Augment,
    pub precision: Precision,
    pub schedule: Schedule,
    pub device: Device,
    pub data: Splits,
}

/// The configuration `req` would train with, after every check a run
/// makes before it trains; nothing is written.
pub fn plan(req: &TrainRequest) -> Result<TrainConfig> {
    Ok(prepare(req)?.cfg)
}

/// Reads the data, resolves the configuration and builds the run.
pub(super) fn prepare(req: &TrainRequest) -> Result<Prepared> {
    let resumed = req.resume.as_deref().map(RunDir::open).transpose()?;
    let dataset = match &resumed {
        Some((_, cfg)) => cfg.dataset.clone(),
        None => req.options.dataset.clone().unwrap_or_else(|| "mnist".into()),
    };
    let spec: DatasetSpec = dataset.parse()?;
    if spec.split != SplitName::Train {
        return Err(LearnError::config(
            format!(
                "training reads the train split, but --dataset names '{}'",
                spec.split.as_str()
            ),
            format!(
                "pass --dataset {} (training uses its fit part and validates on its val part)",
                spec.name()
            ),
        ));
    }
    let selection = |cfg: Option<&TrainConfig>, opts: &TrainOptions| Selection {
        classes: cfg.map_or(opts.classes.clone(), |c| c.classes.clone()),
        per_class: cfg.map_or(opts.per_class, |c| c.per_class),
        val_fraction: cfg.map_or(opts.val_fraction.unwrap_or(0.1), |c| c.val_fraction),
        seed: cfg.map_or(opts.seed.unwrap_or(0), |c| c.seed),
    };
    let mut data = req.data.clone();
    data.selection = selection(resumed.as_ref().map(|(_, c)| c), &req.options);
    // Train is read once; fit, val and the final evaluation's gallery are carved from it.
    let train_base = twinsim_data::load::load_official(&spec, &data)?;
    let fit = split::apply(train_base.clone(), SplitName::Fit, &data.selection)?;
    let val = split::apply(train_base.clone(), SplitName::Val, &data.selection)?;
    let test = load_test(&spec, &data)?;
    let world = req.world.as_ref();
    let cfg = match &resumed {
        Some((_, cfg)) => cfg.clone(),
        None => TrainConfig {
            world_size: world.size(),
            ..req.options.clone().resolve(&facts(&fit))?
        },
    };
    // Everything that can be wrong with the configuration fails here, before
    // a run directory is created.
    check_world(&cfg, world)?;
    let device = set_up_runtime(&cfg, world)?;
    let parts = build(&cfg, &fit, device)?;
    let sampler = samplers::build(
        &SamplerConfig {
            name: &cfg.sampler,
            batch_size: cfg.batch_size,
            per_class: cfg.per_class_batch,
            seed: cfg.seed,
        },
        &fit.labels,
        fit.classes.len(),
    )?;
    check_pairs(&cfg)?;
    check_embedding(&cfg)?;
    if req.test_each_epoch {
        check_test_each_epoch(&cfg, test.as_ref())?;
    }
    let augment = Augment::parse(&cfg.augment, fit.images.shape().channels as i64)?;
    let precision = Precision::new(&cfg.precision, device)?;
    tracing::info!("precision {}: {}", cfg.precision, precision.name());
    let steps_per_epoch = sampler.epoch(0).len() as u64;
    let schedule = Schedule::new(&cfg.schedule, cfg.lr, steps_per_epoch * cfg.epochs as u64)?;
    Ok(Prepared {
        resumed,
        cfg,
        parts,
        sampler,
        augment,
        precision,
        schedule,
        device,
        data: Splits {
            train_base,
            fit,
            val,
            test,
            selection: data.selection,
        },
    })
}

/// Refuses a world the run cannot be trained on: a resume with another
/// number of ranks than the run had, or a batch the ranks cannot share.
fn check_world(cfg: &TrainConfig, world: &World) -> Result<()> {
    if cfg.world_size != world.size() {
        return Err(LearnError::config(
            format!(
                "{} was trained by {} process(es), but this resume has {}",
                cfg.out.display(),
                cfg.world_size,
                world.size()
            ),
            match cfg.world_size {
                1 => "resume it without mpirun or srun".to_string(),
                n => format!("resume it as it was trained: mpirun -np {n} twinsim train --resume ..."),
            },
        ));
    }
    if world.size() > 1 {
        distributed::check_batch(&cfg.sampler, cfg.batch_size, cfg.per_class_batch, world.size())?;
    }
    Ok(())
}

/// What recipes are chosen from: `ds`'s channels, how many classes have
/// images, and the median of their counts.
fn facts(ds: &Dataset) -> DataFacts {
    let mut counts: Vec<usize> = ds.class_counts().into_iter().filter(|&n| n > 0).collect();
    counts.sort_unstable();
    DataFacts {
        channels: ds.images.shape().channels as i64,
        classes: counts.len(),
        images_per_class: counts.get(counts.len() / 2).copied().unwrap_or(0),
    }
}

/// The test split for the final evaluation, read before training so a
/// problem with it shows at once; `None` for an image folder without one
/// (or a union with such a folder).
fn load_test(spec: &DatasetSpec, data: &LoadOptions) -> Result<Option<Dataset>> {
    if !spec.source.has_test()? {
        return Ok(None);
    }
    Ok(Some(twinsim_data::load(&spec.with_split(SplitName::Test), data)?))
}

/// Threads, seeds and determinism; returns the device. Ranks on one
/// machine share its cores (unless --threads says otherwise) and, under
/// `--device auto`, take its GPUs in turn.
fn set_up_runtime(cfg: &TrainConfig, world: &World) -> Result<Device> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match cfg.threads {
        Some(n) => tch::set_num_threads(n as i32),
        None if world.local_size() > 1 => tch::set_num_threads((cores / world.local_size()).max(1) as i32),
        None => {}
    }
    let mut device = parse_device(&cfg.device)
        .map_err(|e| LearnError::config(e, "pass --device cpu, or a GPU libtorch sees"))?;
    if cfg.device == "auto" && device.is_cuda() && world.size() > 1 {
        device = Device::Cuda(world.local_rank() % crate::device::cuda_device_count().max(1));
    }
    if cfg.deterministic {
        tch::Cuda::cudnn_set_benchmark(false);
    }
    tch::manual_seed(cfg.seed as i64);
    Ok(device)
}

/// Seed-contrastive pairs item i with item i + B/2: only pair samplers batch that way.
fn check_pairs(cfg: &TrainConfig) -> Result<()> {
    if cfg.loss == "seed-contrastive" && !cfg.sampler.ends_with("pairs") {
        return Err(LearnError::config(
            format!(
                "loss seed-contrastive needs batches of pairs, but the sampler is '{}'",
                cfg.sampler
            ),
            "use --sampler pairs (the seed's) or balanced-pairs",
        ));
    }
    Ok(())
}

/// Refuses an embedding source not in [`EMBEDDINGS`].
fn check_embedding(cfg: &TrainConfig) -> Result<()> {
    if EMBEDDINGS.iter().any(|(name, _)| *name == cfg.embedding) {
        return Ok(());
    }
    Err(LearnError::config(
        format!("unknown embedding '{}'", cfg.embedding),
        format!("use one of: {}", crate::registry::names(EMBEDDINGS)),
    ))
}
