//! The training loop: data and model set-up, epochs, validation, checkpoints.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tch::{Device, Kind, Tensor};
use twinsim_data::{split, Dataset, LoadOptions, SplitName};

use super::augment::Augment;
use super::checkpoint::{self, Progress};
use super::config::{TrainConfig, TrainOptions};
use super::early_stop::{self, EarlyStop};
use super::measure::{test_precision, validate};
use super::parts::{checkpoint_tensors, named, with_average, Parts};
use super::plan::{prepare, Prepared, Splits};
use super::precision::Precision;
use super::run_dir::{EpochMetrics, RunDir};
use super::schedule::Schedule;
use crate::calibration::{self, CalibrateOptions};
use crate::distributed::{Shard, World};
use crate::error::{LearnError, Result};
use crate::model::Model;
use crate::samplers::Sampler;
use crate::tensor;

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
    /// The epoch whose weights were saved, when early stopping kept an
    /// earlier epoch's than the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_epoch: Option<usize>,
    /// Precision@1 of test images as queries against the training images as
    /// gallery (the standard protocol), with the run's class selection;
    /// `None` for an image folder without a test split.
    pub test_precision_at_1: Option<f64>,
    /// Where the training data came from.
    pub data_origin: String,
    pub train_images: usize,
}

/// Trains a model as `req` asks; returns when the last epoch is done and the
/// model is saved in the run directory.
pub fn train(req: TrainRequest) -> Result<RunSummary> {
    let Prepared {
        resumed,
        cfg,
        mut parts,
        sampler,
        augment,
        precision,
        schedule,
        device,
        data,
    } = prepare(&req)?;
    let Splits {
        train_base,
        fit,
        val,
        test,
        selection,
    } = data;
    let world = req.world.as_ref();
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
    let gallery = split::apply(train_base, SplitName::Train, &selection)?;
    let mut stop = cfg
        .patience
        .map(|n| EarlyStop::new(n, cfg.epochs, &epochs, &dir.path))
        .transpose()?;
    for epoch in progress.epochs_done..cfg.epochs {
        if let Some(s) = stop.as_ref().filter(|s| s.should_stop(epoch)) {
            tracing::info!(
                "stopping early: validation Precision@1 has not improved since epoch {}",
                s.best_epoch()
            );
            break;
        }
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
        }
        if let Some(stop) = &mut stop {
            if stop.record(&m) {
                keep_best(stop, &mut parts, &dir, world)?;
            }
        }
        if world.is_root() {
            checkpoint::save(&dir.path, &checkpoint_tensors(&parts), &progress)?;
        }
        epochs.push(m);
    }
    let kept_epoch = match &stop {
        Some(stop) => use_best(stop, &mut parts, &dir, progress.epochs_done)?,
        None => None,
    };
    finish(
        dir,
        cfg,
        parts,
        History { epochs, kept_epoch },
        Eval { gallery, val, test },
        fit.len(),
        world,
    )
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

/// Loads the run's checkpoint into `parts`; returns the progress it records.
fn restore(dir: &RunDir, parts: &mut Parts) -> Result<Progress> {
    let (saved, progress) = checkpoint::load(&dir.path)?;
    let mut targets = named(&parts.model.vs, "model.", false);
    targets.extend(named(&parts.loss_vs, "loss.", false));
    if let Some(ema) = &parts.ema {
        targets.extend(ema.state());
    }
    checkpoint::restore(&targets, &saved, &checkpoint::path(&dir.path))?;
    parts.optimizer.load_state(&saved)?;
    tracing::info!(
        "resuming {} after epoch {}",
        dir.path.display(),
        progress.epochs_done
    );
    Ok(progress)
}

/// Keeps the model's weights (the weight average's, when there is one) as
/// the best epoch's, in memory on every rank and on disk from rank 0 (the
/// file is written before the checkpoint that counts the epoch, so a resume
/// never knows an epoch as the best without its weights).
fn keep_best(stop: &mut EarlyStop, parts: &mut Parts, dir: &RunDir, world: &World) -> Result<()> {
    let weights: Vec<(String, Tensor)> = with_average(parts, |p| {
        named(&p.model.vs, "", false)
            .into_iter()
            .map(|(n, t)| (n, t.detach().copy()))
            .collect()
    });
    if world.is_root() {
        early_stop::save(&dir.path, &weights)?;
    }
    stop.keep(weights);
    Ok(())
}

/// Puts the best epoch's weights back in the model when a later epoch
/// ended the run, and returns that epoch. They are the weight average's
/// already, so the average is dropped and the model is saved as it is.
fn use_best(stop: &EarlyStop, parts: &mut Parts, dir: &RunDir, epochs_done: usize) -> Result<Option<usize>> {
    if stop.best_epoch() == epochs_done || stop.weights().is_empty() {
        return Ok(None);
    }
    early_stop::restore(&dir.path, stop.weights(), &named(&parts.model.vs, "", false))?;
    parts.ema = None;
    Ok(Some(stop.best_epoch()))
}

/// The epochs a run trained, and the one whose weights it kept (see
/// [`RunSummary::kept_epoch`]).
struct History {
    epochs: Vec<EpochMetrics>,
    kept_epoch: Option<usize>,
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
    history: History,
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
        epochs: history.epochs,
        kept_epoch: history.kept_epoch,
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
