//! What a training run does: options as given (command line or TOML file,
//! every field optional) and the resolved configuration a run records.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{LearnError, Result};

/// Training options as the user gives them. The same names are the
/// `twinsim train` flags and the keys of a `--config` TOML file (unknown keys
/// are an error); flags given on the command line win over the file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainOptions {
    /// Dataset to train on, NAME (fit and val are carved from its train split) (mnist, fashion-mnist, cifar10, cifar100, ./photos) [default: mnist].
    #[cfg_attr(feature = "cli", arg(long))]
    pub dataset: Option<String>,
    /// Encoder: seed, cnn, cnn-wide, resnet, airbench, airbench-half [default: cnn-wide for grey images, airbench-half for colour].
    #[cfg_attr(feature = "cli", arg(long))]
    pub arch: Option<String>,
    /// Loss: seed-contrastive, contrastive, triplet, angular, multi-similarity, supcon,
    /// normalized-softmax, arcface, cosface [default: multi-similarity for grey images, normalized-softmax for colour].
    #[cfg_attr(feature = "cli", arg(long))]
    pub loss: Option<String>,
    /// Triplet mining: batch-all, batch-hard, semi-hard [default: batch-all].
    #[cfg_attr(feature = "cli", arg(long))]
    pub miner: Option<String>,
    /// Loss margin (contrastive, triplet, arcface, cosface) [default: the loss's own].
    #[cfg_attr(feature = "cli", arg(long))]
    pub margin: Option<f64>,
    /// Softmax temperature (supcon, normalized-softmax) [default: the loss's own].
    #[cfg_attr(feature = "cli", arg(long))]
    pub temperature: Option<f64>,
    /// Label smoothing of the proxy losses (normalized-softmax, arcface, cosface) [default: 0].
    #[cfg_attr(feature = "cli", arg(long))]
    pub label_smoothing: Option<f64>,
    /// Batch sampler: pairs, balanced-pairs, pk [default: pairs for seed-contrastive, else pk].
    #[cfg_attr(feature = "cli", arg(long))]
    pub sampler: Option<String>,
    /// Images per class in a pk batch (P = batch-size / K) [default: 32].
    #[cfg_attr(feature = "cli", arg(long))]
    pub per_class_batch: Option<usize>,
    /// Passes over the training data [default: 5 for MNIST, 8 for other grey images, 15 for colour].
    #[cfg_attr(feature = "cli", arg(long))]
    pub epochs: Option<usize>,
    /// Images per batch (pairs count twice) [default: 256, or fewer classes x K for pk batches].
    #[cfg_attr(feature = "cli", arg(long))]
    pub batch_size: Option<usize>,
    /// Peak learning rate [default: 0.3 x batch/256 for colour with sgd, 0.003 for MNIST, else 0.002].
    #[cfg_attr(feature = "cli", arg(long))]
    pub lr: Option<f64>,
    /// Optimizer: adamw, adam, sgd [default: sgd for colour images with a proxy loss, else adamw].
    #[cfg_attr(feature = "cli", arg(long))]
    pub optimizer: Option<String>,
    /// Weight decay (decoupled for adamw) [default: 0.0005 with sgd for colour, else 0.0001].
    #[cfg_attr(feature = "cli", arg(long))]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule: cosine (with warm-up), constant [default: cosine].
    #[cfg_attr(feature = "cli", arg(long))]
    pub schedule: Option<String>,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.999) and save it.
    #[cfg_attr(feature = "cli", arg(long))]
    pub ema: Option<f64>,
    /// Embedding dimension [default: 128; 2 for the seed network].
    #[cfg_attr(feature = "cli", arg(long))]
    pub embedding_dim: Option<i64>,
    /// Embeddings: head (the trained head's output), features (the features before the head,
    /// whitened; better for classes not trained on) [default: head].
    #[cfg_attr(feature = "cli", arg(long))]
    pub embedding: Option<String>,
    /// Seed for weights, batches and augmentation [default: 0].
    #[cfg_attr(feature = "cli", arg(long))]
    pub seed: Option<u64>,
    /// Device: cpu, cuda, cuda:N, auto [default: auto].
    #[cfg_attr(feature = "cli", arg(long))]
    pub device: Option<String>,
    /// Arithmetic: auto (fp16 autocast on GPU, fp32 on CPU), fp32, fp16 [default: auto].
    #[cfg_attr(feature = "cli", arg(long))]
    pub precision: Option<String>,
    /// Same results on every run with the same seed (fixed threads, deterministic kernels).
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub deterministic: Option<bool>,
    /// Augmentation: auto (shift-flip for colour, affine for grey), none, crop-flip, shift, shift-flip, affine [default: auto].
    #[cfg_attr(feature = "cli", arg(long))]
    pub augment: Option<String>,
    /// Share of train held out for the per-epoch validation metric [default: 0.1].
    #[cfg_attr(feature = "cli", arg(long))]
    pub val_fraction: Option<f64>,
    /// Train on these classes only (0-4, cat,dog): leave the others for class-disjoint evaluation.
    #[cfg_attr(feature = "cli", arg(long))]
    pub classes: Option<String>,
    /// Use at most N training images per class.
    #[cfg_attr(feature = "cli", arg(long))]
    pub per_class: Option<usize>,
    /// CPU threads for libtorch [default: all cores].
    #[cfg_attr(feature = "cli", arg(long))]
    pub threads: Option<usize>,
    /// Run directory to write [default: runs/DATASET-ARCH-LOSS-N].
    #[cfg_attr(feature = "cli", arg(long))]
    pub out: Option<PathBuf>,
}

impl TrainOptions {
    /// Reads a TOML file of options; unknown keys are an error naming them.
    pub fn from_toml_file(path: &Path) -> Result<TrainOptions> {
        let text = twinsim_data::read::read_text(path, twinsim_data::read::MAX_TEXT_BYTES).map_err(|e| {
            LearnError::config(
                format!(
                    "cannot read config {}: {}",
                    path.display(),
                    twinsim_data::read::without_path(&e, path)
                ),
                "pass the path of a TOML file of options (batch-size = 256)",
            )
        })?;
        let options: TrainOptions = toml::from_str(&text).map_err(|e| {
            LearnError::config(
                // The whole message: it quotes the line, so it names the key.
                format!("config {}: {e}", path.display()),
                "keys are the `twinsim train` option names, e.g. batch-size = 256 (see twinsim train --help)",
            )
        })?;
        options.validate().map_err(|e| match e {
            LearnError::Config { reason, hint } => {
                LearnError::config(format!("config {}: {reason}", path.display()), hint)
            }
            other => other,
        })?;
        Ok(options)
    }

    /// Refuses a value no run can use (a negative learning rate, a decay of
    /// 2, NaN anywhere, more threads than cores), naming the option and its
    /// range. Checked on each source before they are merged: merging goes
    /// through JSON, where NaN would become "unset" and silently the default.
    pub fn validate(&self) -> Result<()> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let real = [
            (
                "lr",
                self.lr,
                0.0,
                f64::INFINITY,
                false,
                "the learning rate is a positive number, e.g. 0.002",
            ),
            (
                "margin",
                self.margin,
                0.0,
                f64::INFINITY,
                true,
                "a margin is a number of at least 0, e.g. 0.2",
            ),
            (
                "temperature",
                self.temperature,
                0.0,
                f64::INFINITY,
                false,
                "a temperature is a positive number, e.g. 0.1",
            ),
            (
                "label-smoothing",
                self.label_smoothing,
                0.0,
                1.0,
                true,
                "label smoothing is from 0 up to (not including) 1, e.g. 0.1",
            ),
            (
                "weight-decay",
                self.weight_decay,
                0.0,
                f64::INFINITY,
                true,
                "weight decay is a number of at least 0, e.g. 0.0001",
            ),
            (
                "ema",
                self.ema,
                0.0,
                1.0,
                false,
                "an EMA decay is between 0 and 1, e.g. 0.999",
            ),
            (
                "val-fraction",
                self.val_fraction,
                0.0,
                1.0,
                true,
                "the validation share is from 0 up to (not including) 1, e.g. 0.1",
            ),
        ];
        for (name, value, low, high, low_included, hint) in real {
            let Some(v) = value else { continue };
            let above = if low_included { v >= low } else { v > low };
            if !(v.is_finite() && above && v < high) {
                return Err(LearnError::config(format!("{name} = {v} is out of range"), hint));
            }
        }
        // (option, value, least, most, hint)
        let counts = [
            (
                "epochs",
                self.epochs,
                1,
                usize::MAX,
                "train for at least 1 epoch".to_string(),
            ),
            (
                "batch-size",
                self.batch_size,
                2,
                usize::MAX,
                "a batch holds at least 2 images, e.g. 256".to_string(),
            ),
            (
                "per-class-batch",
                self.per_class_batch,
                2,
                usize::MAX,
                "a P x K batch takes K of at least 2 images per class, e.g. 32".to_string(),
            ),
            (
                "per-class",
                self.per_class,
                1,
                usize::MAX,
                "keep at least 1 image per class".to_string(),
            ),
            (
                "threads",
                self.threads,
                1,
                cores,
                format!("use from 1 to {cores} threads: this machine has {cores} cores"),
            ),
        ];
        for (name, value, least, most, hint) in counts {
            if let Some(v) = value.filter(|&v| v < least || v > most) {
                return Err(LearnError::config(format!("{name} = {v} is out of range"), hint));
            }
        }
        Ok(())
    }

    /// `self` with every option it leaves unset taken from `base`.
    pub fn over(self, base: TrainOptions) -> TrainOptions {
        let mut merged = serde_json::to_value(base).expect("options serialise");
        let top = serde_json::to_value(self).expect("options serialise");
        if let (Some(m), Some(t)) = (merged.as_object_mut(), top.as_object()) {
            for (k, v) in t.iter().filter(|(_, v)| !v.is_null()) {
                m.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(merged).expect("merged options deserialise")
    }
}

/// A fully resolved training configuration: what `config.json` records and
/// `--resume` restores.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct TrainConfig {
    pub dataset: String,
    pub arch: String,
    pub loss: String,
    pub miner: Option<String>,
    pub margin: Option<f64>,
    /// Absent from the configs of runs made before the option existed.
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub label_smoothing: Option<f64>,
    pub sampler: String,
    pub per_class_batch: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: String,
    pub weight_decay: f64,
    pub schedule: String,
    pub ema: Option<f64>,
    pub embedding_dim: i64,
    /// Absent from the configs of runs made before the option existed.
    #[serde(default = "head")]
    pub embedding: String,
    pub seed: u64,
    pub device: String,
    pub precision: String,
    pub deterministic: bool,
    pub augment: String,
    pub val_fraction: f64,
    pub classes: Option<String>,
    pub per_class: Option<usize>,
    pub threads: Option<usize>,
    pub out: PathBuf,
    /// How many processes trained the run (data-parallel ranks); a resume
    /// must use as many. Absent from runs made before scale-out: 1.
    #[serde(default = "one")]
    pub world_size: usize,
}

impl TrainOptions {
    /// Fills every unset option with its default; `colour` says whether the
    /// dataset's images have 3 channels (it picks the encoder), `classes`
    /// how many classes have images (it caps P x K batches).
    pub fn resolve(self, colour: bool, classes: usize) -> TrainConfig {
        let dataset = self.dataset.unwrap_or_else(|| "mnist".into());
        let (arch, loss, epochs) = data_defaults(&dataset, colour);
        let arch = self.arch.unwrap_or_else(|| arch.into());
        let loss = self.loss.unwrap_or_else(|| loss.into());
        let optimizer = optimizer_defaults(&dataset, colour, &loss);
        let sampler = self
            .sampler
            .unwrap_or_else(|| if loss == "seed-contrastive" { "pairs" } else { "pk" }.into());
        let embedding_dim = self.embedding_dim.unwrap_or(if arch == "seed" { 2 } else { 128 });
        let out = self.out.unwrap_or_else(|| next_run_dir(&dataset, &arch, &loss));
        let per_class_batch = self.per_class_batch.unwrap_or(32);
        // A P x K batch cannot hold more classes than the data has.
        let batch_size = match (&self.batch_size, sampler.as_str()) {
            (Some(b), _) => *b,
            (None, "pk") => 256.min(classes.max(2) * per_class_batch),
            (None, _) => 256,
        };
        // SGD's rate was tuned at batch 256 and scales with the batch (the
        // linear rule), so a small batch of a small folder does not diverge.
        let lr = match optimizer.name {
            "sgd" => optimizer.lr * batch_size as f64 / 256.0,
            _ => optimizer.lr,
        };
        TrainConfig {
            miner: self.miner,
            margin: self.margin,
            temperature: self.temperature,
            label_smoothing: self.label_smoothing,
            per_class_batch,
            epochs: self.epochs.unwrap_or(epochs),
            batch_size,
            lr: self.lr.unwrap_or(lr),
            optimizer: self.optimizer.unwrap_or_else(|| optimizer.name.into()),
            weight_decay: self.weight_decay.unwrap_or(optimizer.weight_decay),
            schedule: self.schedule.unwrap_or_else(|| "cosine".into()),
            ema: self.ema,
            seed: self.seed.unwrap_or(0),
            device: self.device.unwrap_or_else(|| "auto".into()),
            precision: self.precision.unwrap_or_else(|| "auto".into()),
            deterministic: self.deterministic.unwrap_or(false),
            augment: self.augment.unwrap_or_else(|| "auto".into()),
            val_fraction: self.val_fraction.unwrap_or(0.1),
            classes: self.classes,
            per_class: self.per_class,
            threads: self.threads,
            dataset,
            arch,
            loss,
            sampler,
            embedding_dim,
            embedding: self.embedding.unwrap_or_else(head),
            out,
            world_size: 1,
        }
    }
}

/// Default (encoder, loss, epochs) for a dataset (docs/benchmarks.md,
/// "Speed"). Colour images get airbench's network at half width with
/// normalized softmax for 15 epochs: CIFAR-10 Precision@1 0.86 in about 14
/// minutes on 2 CPU cores, where the quarter-width ResNet-9 reached 0.76.
/// Grey images get cnn-wide with multi-similarity for 8 epochs, MNIST 5.
fn data_defaults(dataset: &str, colour: bool) -> (&'static str, &'static str, usize) {
    match (dataset, colour) {
        (_, true) => ("airbench-half", "normalized-softmax", 15),
        ("mnist", _) => ("cnn-wide", "multi-similarity", 5),
        _ => ("cnn-wide", "multi-similarity", 8),
    }
}

/// A default optimizer with its peak learning rate and weight decay.
struct OptimizerDefaults {
    name: &'static str,
    lr: f64,
    weight_decay: f64,
}

/// The default optimizer for a dataset and loss. Colour images with a
/// proxy loss train with SGD at a high learning rate, as airbench does
/// (better than AdamW on CIFAR-10 in the trials); everything else with
/// AdamW. MNIST reaches the quality of 8 epochs at 2e-3 in 5 at 3e-3, but
/// Fashion-MNIST does not (0.8417 against 0.8510), so only MNIST gets the
/// higher rate.
fn optimizer_defaults(dataset: &str, colour: bool, loss: &str) -> OptimizerDefaults {
    let proxy = matches!(loss, "normalized-softmax" | "arcface" | "cosface");
    let adamw = |lr| OptimizerDefaults {
        name: "adamw",
        lr,
        weight_decay: 1e-4,
    };
    match (dataset, colour) {
        (_, true) if proxy => OptimizerDefaults {
            name: "sgd",
            lr: 0.3,
            weight_decay: 5e-4,
        },
        ("mnist", _) => adamw(3e-3),
        _ => adamw(2e-3),
    }
}

/// The default embedding source.
fn head() -> String {
    "head".into()
}

fn one() -> usize {
    1
}

/// `runs/<dataset>-<arch>-<loss>-<n>` with the first n not taken.
fn next_run_dir(dataset: &str, arch: &str, loss: &str) -> PathBuf {
    let stem: String = dataset
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    (1..)
        .map(|n| PathBuf::from("runs").join(format!("{}-{arch}-{loss}-{n}", stem.trim_matches('_'))))
        .find(|p| !p.exists())
        .expect("some run number is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(dataset: &str, colour: bool) -> TrainConfig {
        TrainOptions {
            dataset: Some(dataset.into()),
            out: Some("unused".into()),
            ..TrainOptions::default()
        }
        .resolve(colour, 10)
    }

    #[test]
    fn only_mnist_gets_the_short_schedule() {
        let schedule = |c: TrainConfig| (c.epochs, c.lr);
        assert_eq!(schedule(resolved("mnist", false)), (5, 3e-3));
        assert_eq!(schedule(resolved("fashion-mnist", false)), (8, 2e-3));
    }

    #[test]
    fn colour_images_get_the_airbench_recipe_and_sgd_only_with_a_proxy_loss() {
        let c = resolved("cifar10", true);
        assert_eq!(
            (c.arch.as_str(), c.loss.as_str(), c.optimizer.as_str()),
            ("airbench-half", "normalized-softmax", "sgd")
        );
        assert_eq!(
            (c.epochs, c.lr, c.weight_decay, c.batch_size),
            (15, 0.3, 5e-4, 256)
        );
        // Smaller batches (a folder of 2 classes: 2 x 32) get a smaller rate.
        let small = TrainOptions {
            dataset: Some("./photos".into()),
            out: Some("unused".into()),
            ..TrainOptions::default()
        }
        .resolve(true, 2);
        assert_eq!((small.batch_size, small.lr), (64, 0.075));
        let ms = TrainOptions {
            dataset: Some("cifar10".into()),
            loss: Some("multi-similarity".into()),
            out: Some("unused".into()),
            ..TrainOptions::default()
        }
        .resolve(true, 10);
        assert_eq!((ms.optimizer.as_str(), ms.lr), ("adamw", 2e-3));
    }

    #[test]
    fn given_options_win_over_the_dataset_defaults() {
        let cfg = TrainOptions {
            epochs: Some(8),
            lr: Some(1e-3),
            out: Some("unused".into()),
            ..TrainOptions::default()
        }
        .resolve(false, 10);
        assert_eq!((cfg.dataset.as_str(), cfg.epochs, cfg.lr), ("mnist", 8, 1e-3));
    }

    #[test]
    fn values_no_run_can_use_are_refused_by_name() {
        let refused = |o: TrainOptions| match o.validate() {
            Err(LearnError::Config { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let with = |f: fn(&mut TrainOptions)| {
            let mut o = TrainOptions::default();
            f(&mut o);
            o
        };
        assert!(refused(with(|o| o.lr = Some(-1.0))).starts_with("lr = -1"));
        assert!(refused(with(|o| o.lr = Some(f64::NAN))).starts_with("lr = NaN"));
        assert!(refused(with(|o| o.ema = Some(2.0))).starts_with("ema = 2"));
        assert!(refused(with(|o| o.margin = Some(f64::NAN))).starts_with("margin"));
        assert!(refused(with(|o| o.per_class_batch = Some(0))).starts_with("per-class-batch = 0"));
        assert!(refused(with(|o| o.threads = Some(0))).starts_with("threads = 0"));
        assert!(refused(with(|o| o.threads = Some(100_000))).starts_with("threads = 100000"));
        assert!(with(|o| o.margin = Some(0.0)).validate().is_ok());
        assert!(with(|o| o.ema = Some(0.999)).validate().is_ok());
        assert!(TrainOptions::default().validate().is_ok());
    }

    #[test]
    fn a_toml_nan_is_refused_not_taken_for_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nan.toml");
        std::fs::write(&path, "lr = nan\n").unwrap();
        let err = TrainOptions::from_toml_file(&path).unwrap_err().to_string();
        assert!(err.contains("lr = NaN is out of range"), "{err}");
    }
}
