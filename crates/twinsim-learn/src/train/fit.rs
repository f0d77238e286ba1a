//! The training loop: data and model set-up, epochs, validation, checkpoints.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};
use twinsim_data::split::Source;
use twinsim_data::{split, Dataset, DatasetSpec, LoadOptions, Selection, SplitName};

use super::augment::Augment;
use super::checkpoint::{self, Progress};
use super::config::{TrainConfig, TrainOptions};
use super::ema::Ema;
use super::optimizer::Optimizer;
use super::precision::Precision;
use super::run_dir::{EpochMetrics, RunDir};
use super::schedule::Schedule;
use crate::calibration::{self, CalibrateOptions};
use crate::distributed::{self, Shard, World};
use crate::encoders::EncoderSpec;
use crate::error::{LearnError, Result};
use crate::losses::{self, Loss, LossConfig};
use crate::miners::Miner;
use crate::model::{Distance, Embedding, Model, ModelCard, Preprocess};
use crate::samplers::{self, Sampler, SamplerConfig};
use crate::whitening::EMBEDDINGS;
use crate::{metrics, parse_device, tensor};

/// Images per batch when embedding for evaluation: small enough that each
/// layer's activations stay under glibc's 32 MB mmap threshold and are
/// recycled, instead of being page-faulted in afresh for every batch.
const EVAL_BATCH: usize = 200;

/// What `twinsim train` asks for.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    /// Options from the command line and config file, merged.
    pub options: TrainOptions,
    /// Continue this run directory from its last checkpoint instead.
    pub resume: Option<PathBuf>,
    /// How to find and read data (its selection is set from the config).
    pub data: LoadOptions,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Also measure test Precision@1 (the final protocol) after every
    /// epoch, for time-to-quality curves; the measuring is not counted as
    /// training time and does not change the training.
    pub test_each_epoch: bool,
    /// The data-parallel job this process is a rank of ([`World::single`]
    /// when it trains alone). Only rank 0 writes the run directory.
    pub world: Rc<World>,
}

/// What a finished run achieved; also written to `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub config: TrainConfig,
    pub epochs: Vec<EpochMetrics>,
    /// Precision@1 of test images as queries against the training images as
    /// gallery (the standard protocol), with the run's class selection;
    /// `None` for an image folder without a test split.
    pub test_precision_at_1: Option<f64>,
    /// Where the training data came from.
    pub data_origin: String,
    pub train_images: usize,
}

/// Everything a run trains and checkpoints.
struct Parts {
    model: Model,
    loss_vs: nn::VarStore,
    loss: Box<dyn Loss>,
    miner: Option<Box<dyn Miner>>,
    optimizer: Optimizer,
    ema: Option<Ema>,
}

/// Trains a model as `req` asks; returns when the last epoch is done and the
/// model is saved in the run directory.
pub fn train(req: TrainRequest) -> Result<RunSummary> {
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
            ..req
                .options
                .clone()
                .resolve(fit.images.shape().channels as i64, present_classes(&fit))?
        },
    };
    // Everything that can be wrong with the configuration fails here, before
    // a run directory is created.
    check_world(&cfg, world)?;
    let device = set_up_runtime(&cfg, world)?;
    let mut parts = build(&cfg, &fit, device)?;
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
    let steps_per_epoch = sampler.epoch(0).len() as u64;
    let schedule = Schedule::new(&cfg.schedule, cfg.lr, steps_per_epoch * cfg.epochs as u64)?;
    let dir = match resumed {
        Some((dir, _)) => dir,
        None if world.is_root() => RunDir::create(&cfg.out, &cfg)?,
        None => RunDir {
            path: cfg.out.clone(),
        },
    };
    let mut progress = Progress {
        epochs_done: 0,
        steps: 0,
        train_seconds: 0.0,
    };
    if req.resume.is_some() {
        progress = restore(&dir, &mut parts)?;
    }
    // Every rank starts from rank 0's weights and optimizer state.
    for (_, t) in checkpoint_tensors(&parts) {
        world.broadcast(&t);
    }
    let mut epochs = match world.is_root() {
        true => dir.truncate_metrics(progress.epochs_done)?,
        false => Vec::new(),
    };
    let mut loop_ = Loop {
        precision,
        cfg: &cfg,
        device,
        sampler: sampler.as_ref(),
        augment,
        schedule,
        images: tensor::images_tensor(&fit.images, device),
        labels: tensor::labels_tensor(&fit.labels, device),
        show_progress: req.progress && world.is_root(),
        world,
        shard: Shard::new(
            sampler.epoch(0).first().map_or(0, Vec::len),
            cfg.sampler.ends_with("pairs"),
            world.rank(),
            world.size(),
        )
        .on(device),
    };
    let gallery = split::apply(train_base, SplitName::Train, &data.selection)?;
    for epoch in progress.epochs_done..cfg.epochs {
        let (loss, seconds, images) = loop_.epoch(epoch, &mut parts, &mut progress.steps)?;
        average_statistics(&parts.model, world);
        check_weights(&parts.model)?;
        progress.train_seconds += seconds;
        progress.epochs_done = epoch + 1;
        let m = EpochMetrics {
            epoch: epoch + 1,
            loss,
            val_precision_at_1: with_average(&mut parts, |p| validate(&p.model, &val, world)),
            test_precision_at_1: match (&test, req.test_each_epoch) {
                (Some(test), true) => Some(with_average(&mut parts, |p| {
                    test_precision(&p.model, &gallery, test, world)
                })),
                _ => None,
            },
            lr: schedule.lr(progress.steps.saturating_sub(1)),
            epoch_seconds: seconds,
            train_seconds: progress.train_seconds,
            images_per_second: images as f64 / seconds.max(1e-9),
        };
        tracing::info!(
            "epoch {}: loss {:.4}, val P@1 {:.4}, {:.1}s",
            m.epoch,
            m.loss,
            m.val_precision_at_1,
            seconds
        );
        if world.is_root() {
            dir.append_metrics(&m)?;
            checkpoint::save(&dir.path, &checkpoint_tensors(&parts), &progress)?;
        }
        epochs.push(m);
    }
    finish(
        dir,
        cfg,
        parts,
        epochs,
        Eval { gallery, val, test },
        fit.len(),
        world,
    )
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

/// Averages the batch norms' running statistics over the ranks, which each
/// gathered from its own share of the batches, so every rank evaluates and
/// rank 0 saves statistics of all the data.
fn average_statistics(model: &Model, world: &World) {
    if world.size() == 1 {
        return;
    }
    for (name, t) in named(&model.vs, "", false) {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            world.all_reduce_mean(&t);
        }
    }
}

/// How many classes have images in `ds`.
fn present_classes(ds: &Dataset) -> usize {
    ds.class_counts().iter().filter(|&&n| n > 0).count()
}

/// The test split for the final evaluation, read before training so a
/// problem with it shows at once; `None` for an image folder without one.
fn load_test(spec: &DatasetSpec, data: &LoadOptions) -> Result<Option<Dataset>> {
    if let Source::Folder(root) = &spec.source {
        if !twinsim_data::folder::splits(root)?.iter().any(|s| s == "test") {
            return Ok(None);
        }
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

/// Builds the model, loss, miner, optimizer and weight average.
fn build(cfg: &TrainConfig, fit: &Dataset, device: Device) -> Result<Parts> {
    let shape = fit.images.shape();
    let euclidean = cfg.loss == "seed-contrastive";
    let card = ModelCard {
        format_version: crate::model::FORMAT_VERSION,
        encoder: EncoderSpec {
            arch: cfg.arch.clone(),
            in_channels: shape.channels as i64,
            height: shape.height as i64,
            width: shape.width as i64,
            embedding_dim: cfg.embedding_dim,
        },
        preprocess: Preprocess::fit(&fit.images),
        distance: if euclidean {
            Distance::Euclidean
        } else {
            Distance::Cosine
        },
        normalize: !euclidean,
        // Training shapes the head; `finish` switches to whitened features when asked.
        embedding: Embedding::Head,
        flip_average: Augment::parse(&cfg.augment, shape.channels as i64)?.flips(),
        classes: fit.classes.clone(),
        dataset: cfg.dataset.clone(),
        loss: cfg.loss.clone(),
        extra: Default::default(),
    };
    let model = Model::new(card, device)?;
    model.fit_to_data(&fit.images);
    let loss_vs = nn::VarStore::new(device);
    let loss_cfg: LossConfig = serde_json::from_value(serde_json::json!({
        "name": cfg.loss, "margin": cfg.margin, "miner": cfg.miner,
        "temperature": cfg.temperature, "label_smoothing": cfg.label_smoothing,
    }))
    .map_err(|e| LearnError::config(format!("loss options: {e}"), "see twinsim train --help"))?;
    let loss = losses::build(
        &loss_cfg,
        &loss_vs.root(),
        cfg.embedding_dim,
        fit.classes.len() as i64,
    )?;
    let miner = loss_cfg.build_miner()?;
    let mut params = named(&model.vs, "model.", true);
    params.extend(named(&loss_vs, "loss.", true));
    let optimizer = Optimizer::new(&cfg.optimizer, params, cfg.weight_decay)?;
    let ema = cfg.ema.map(|d| Ema::new(d, &named(&model.vs, "", false)));
    Ok(Parts {
        model,
        loss_vs,
        loss,
        miner,
        optimizer,
        ema,
    })
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

/// A VarStore's variables as (prefix + name, tensor), sorted by name so the
/// order never depends on hashing; `trainable` keeps only those with gradients.
fn named(vs: &nn::VarStore, prefix: &str, trainable: bool) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| !trainable || t.requires_grad())
        .map(|(n, t)| (format!("{prefix}{n}"), t))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

fn checkpoint_tensors(p: &Parts) -> Vec<(String, Tensor)> {
    let mut all = named(&p.model.vs, "model.", false);
    all.extend(named(&p.loss_vs, "loss.", false));
    all.extend(p.optimizer.state());
    if let Some(ema) = &p.ema {
        all.extend(ema.state());
    }
    all
}

/// Loads the run's checkpoint into `parts`; returns the progress it records.
fn restore(dir: &RunDir, parts: &mut Parts) -> Result<Progress> {
    let (saved, progress) = checkpoint::load(&dir.path)?;
    let mut targets = named(&parts.model.vs, "model.", false);
    targets.extend(named(&parts.loss_vs, "loss.", false));
    if let Some(ema) = &parts.ema {
        targets.extend(ema.state());
    }
    checkpoint::restore(&targets, &saved, &dir.path)?;
    parts.optimizer.load_state(&saved)?;
    tracing::info!(
        "resuming {} after epoch {}",
        dir.path.display(),
        progress.epochs_done
    );
    Ok(progress)
}

/// Runs `f` with the weight average swapped into the model (when there is one).
fn with_average<T>(p: &mut Parts, f: impl FnOnce(&mut Parts) -> T) -> T {
    let Some(ema) = &p.ema else {
        return f(p);
    };
    let live = named(&p.model.vs, "", false);
    let saved: Vec<Tensor> = live.iter().map(|(_, t)| t.detach().copy()).collect();
    copy_into(&live, ema.averaged().iter().map(|(_, t)| t));
    let out = f(p);
    copy_into(&live, saved.iter());
    out
}

fn copy_into<'a>(dst: &[(String, Tensor)], src: impl Iterator<Item = &'a Tensor>) {
    tch::no_grad(|| {
        for ((_, d), s) in dst.iter().zip(src) {
            d.shallow_clone().copy_(s);
        }
    });
}

/// Precision@1 of `test`'s images as queries against `gallery`'s (the
/// standard protocol), embedded by `model`.
fn test_precision(model: &Model, gallery: &Dataset, test: &Dataset, world: &World) -> f64 {
    let g = world.embed_images(model, &gallery.images, EVAL_BATCH);
    let q = world.embed_images(model, &test.images, EVAL_BATCH);
    metrics::precision_at_1(
        &q,
        &tensor::labels_tensor(&test.labels, Device::Cpu),
        &g,
        &tensor::labels_tensor(&gallery.labels, Device::Cpu),
        model.card.distance,
        false,
    )
}

/// Refuses a test after every epoch that cannot be made: without a test
/// split, or with whitened features, which are fitted once training ends
/// (fitting them each epoch would draw from the random generator that
/// training draws from, and so change the run).
fn check_test_each_epoch(cfg: &TrainConfig, test: Option<&Dataset>) -> Result<()> {
    if test.is_none() {
        return Err(LearnError::config(
            "--test-each-epoch needs a test split, and this image folder has none",
            "add a test/ folder beside train/, or train without --test-each-epoch",
        ));
    }
    if cfg.embedding == "features" {
        return Err(LearnError::config(
            "--test-each-epoch measures the head's embedding, but --embedding features is whitened only when training ends",
            "train without --test-each-epoch (the final test Precision@1 is still measured)",
        ));
    }
    Ok(())
}

/// Precision@1 of the validation split against itself, leave-one-out.
fn validate(model: &Model, val: &Dataset, world: &World) -> f64 {
    let emb = world.embed_images(model, &val.images, EVAL_BATCH);
    let labels = tensor::labels_tensor(&val.labels, Device::Cpu);
    metrics::precision_at_1(&emb, &labels, &emb, &labels, model.card.distance, true)
}

/// The per-epoch machinery that does not change during a run.
struct Loop<'a> {
    cfg: &'a TrainConfig,
    precision: Precision,
    device: Device,
    sampler: &'a dyn Sampler,
    augment: Augment,
    schedule: Schedule,
    /// The whole training split on the device, uint8 (N, C, H, W), and labels (N,).
    images: Tensor,
    labels: Tensor,
    show_progress: bool,
    world: &'a World,
    /// This rank's share of each batch.
    shard: Shard,
}

impl Loop<'_> {
    /// One epoch; returns (mean loss, seconds, images seen).
    fn epoch(&mut self, epoch: usize, p: &mut Parts, steps: &mut u64) -> Result<(f64, f64, usize)> {
        let batches = self.sampler.epoch(epoch as u64);
        let bar = self.bar(epoch, batches.len());
        let start = Instant::now();
        // The losses' sum stays on the device: reading it waits for the
        // device, so it is read only every SYNC_EVERY steps.
        let mut total = Tensor::zeros([], (Kind::Double, self.device));
        // The epoch's batches go to the device in one copy: a copy from the
        // host waits for the device, so one per step would be a sync per step.
        let flat: Vec<i64> = batches.iter().flatten().map(|&i| i as i64).collect();
        let flat = Tensor::from_slice(&flat).to_device(self.device);
        let (mut mean, mut seen, mut checked) = (0.0, 0usize, *steps);
        for (i, batch) in batches.iter().enumerate() {
            // Per-batch seeds make augmentation repeat exactly after a resume.
            tch::manual_seed(mix(self.cfg.seed, epoch as u64, i as u64));
            let idx = flat.narrow(0, seen as i64, batch.len() as i64);
            total += self.step(&idx, p, *steps);
            *steps += 1;
            seen += batch.len();
            bar.inc(1);
            if (i + 1) % SYNC_EVERY == 0 || i + 1 == batches.len() {
                mean = total.double_value(&[]) / (i + 1) as f64;
                check_finite(mean, checked, *steps)?;
                checked = *steps;
                bar.set_message(format!(
                    "loss {mean:.4}  {:.0} img/s",
                    seen as f64 / start.elapsed().as_secs_f64().max(1e-9)
                ));
            }
        }
        bar.finish_and_clear();
        Ok((mean, start.elapsed().as_secs_f64(), seen))
    }

    /// One optimizer step on the global batch `idx` (B,) int64 on the
    /// device, of which this rank embeds its share; returns the loss
    /// (0-dim, on the device, detached), the same on every rank.
    fn step(&mut self, idx: &Tensor, p: &mut Parts, step: u64) -> Tensor {
        // The whole batch is augmented, then shared, so that the images and
        // their random transforms do not depend on the number of ranks.
        let mut x = self.augment.apply(&self.images.index_select(0, idx));
        if self.world.size() > 1 {
            x = x.index_select(0, &self.shard.positions);
        }
        let y = self.labels.index_select(0, idx);
        let local = self
            .precision
            .enter(|| p.model.embed(&x, true))
            .to_kind(Kind::Float);
        let emb = self.world.gather_batch(&local, &self.shard);
        let mined = p.miner.as_ref().map(|m| m.mine(&emb.detach(), &y));
        let loss = p.loss.compute(&emb, &y, mined.as_ref());
        p.optimizer.zero_grad();
        (&loss * self.precision.scale).backward();
        // The loss's own parameters saw the whole batch on every rank
        // already; the model's gradients are each rank's part of the sum.
        if self.world.size() > 1 {
            self.world.all_reduce_sum(&p.optimizer.gradients("model."));
        }
        let finite = !self.precision.is_scaling() || p.optimizer.unscale(self.precision.scale);
        if self.precision.update(finite) {
            p.optimizer.step(self.schedule.lr(step));
        }
        if let Some(ema) = &mut p.ema {
            ema.update(&named(&p.model.vs, "", false));
        }
        loss.detach()
    }

    fn bar(&self, epoch: usize, len: usize) -> ProgressBar {
        if !self.show_progress {
            return ProgressBar::hidden();
        }
        let bar =
            ProgressBar::new(len as u64).with_prefix(format!("epoch {}/{}", epoch + 1, self.cfg.epochs));
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}  ETA {eta}")
                .expect("template is valid")
                .progress_chars("=> "),
        );
        bar
    }
}

/// Steps between reads of the running loss on the host. Each read waits for
/// the device to finish its queue, which leaves a GPU idle while the host
/// queues the next step; a non-finite loss is still caught within this many
/// steps, long before the epoch's checkpoint.
const SYNC_EVERY: usize = 25;

/// What to do when a run diverges.
const DIVERGED_HINT: &str = "lower --lr (or change the loss); the last checkpoint, from the last finished epoch, is intact and --resume continues from it";

/// Fails when a weight or batch-norm statistic is no longer finite: a run
/// can blow up its activations while its (normalised) loss stays finite,
/// and such a model must not be checkpointed or saved.
fn check_weights(model: &Model) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    match vars
        .iter()
        .find(|(_, t)| t.isfinite().all().int64_value(&[]) == 0)
    {
        None => Ok(()),
        Some((name, _)) => Err(LearnError::Diverged {
            reason: format!("training left {name} with NaN or infinite values"),
            hint: DIVERGED_HINT.into(),
        }),
    }
}

/// Fails when the mean loss `mean` of the steps up to `to` is not finite,
/// naming the steps since the last check (`from`).
fn check_finite(mean: f64, from: u64, to: u64) -> Result<()> {
    if mean.is_finite() {
        return Ok(());
    }
    Err(LearnError::Diverged {
        reason: format!("the loss became {mean} between steps {} and {to}", from + 1),
        hint: DIVERGED_HINT.into(),
    })
}

/// A 64-bit seed from (seed, epoch, batch), well mixed (SplitMix64 finaliser).
fn mix(seed: u64, epoch: u64, batch: u64) -> i64 {
    let mut z = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ batch.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as i64 & i64::MAX
}

/// The data a finished run is calibrated and measured on, with the run's
/// selection: the training split (gallery), the held-out validation split
/// (calibration pairs) and the test split (queries; `None` for an image
/// folder without one).
struct Eval {
    gallery: Dataset,
    val: Dataset,
    test: Option<Dataset>,
}

/// Calibrates the model (the weight average when there is one) on held-out
/// pairs, saves it, measures it on the standard protocol, and writes
/// `summary.json`; `train_images` is how many images were trained on.
fn finish(
    dir: RunDir,
    cfg: TrainConfig,
    mut parts: Parts,
    epochs: Vec<EpochMetrics>,
    data: Eval,
    train_images: usize,
    world: &World,
) -> Result<RunSummary> {
    let Eval { gallery, val, test } = data;
    let test_precision_at_1 = with_average(&mut parts, |p| -> Result<Option<f64>> {
        // Every rank whitens alike (the same model and images), so that all
        // embed the same way below; only rank 0 calibrates and saves.
        if cfg.embedding == "features" {
            p.model.whiten(&gallery.images)?;
        }
        if world.is_root() {
            match calibration::calibrate(&p.model, &val, &CalibrateOptions::default()) {
                Ok(c) => p.model.set_calibration(&c),
                Err(e) => tracing::warn!("the model is saved without calibration: {e}"),
            }
            p.model.save(&dir.path)?;
        }
        Ok(test.map(|test| test_precision(&p.model, &gallery, &test, world)))
    })?;
    let summary = RunSummary {
        run_dir: dir.path.clone(),
        config: cfg,
        epochs,
        test_precision_at_1,
        data_origin: gallery.origin.to_string(),
        train_images,
    };
    if world.is_root() {
        let json = serde_json::to_vec_pretty(&summary).expect("summary serialises");
        twinsim_data::atomic::write_bytes(&dir.path.join("summary.json"), &json)?;
    }
    Ok(summary)
}
