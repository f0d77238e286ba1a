//! What a training run does: options as given (command line or TOML file,
//! every field optional) and the resolved configuration a run records.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::recipe::{DataFacts, Recipe};
use crate::error::{LearnError, Result};

/// Training options as the user gives them. The same names are the
/// `twinsim train` flags and the keys of a `--config` TOML file (unknown keys
/// are an error); flags given on the command line win over the file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainOptions {
    /// Dataset to train on, NAME (fit and val are carved from its train split) (mnist, fashion-mnist, cifar10, cifar100, ./photos,
    /// or a union: mnist+cifar10) [default: mnist].
    #[cfg_attr(feature = "cli", arg(long))]
    pub dataset: Option<String>,
    /// Recipe: digits, grey, colour, small, the defaults of the options below (listed at the end of
    /// `twinsim train --help`) [default: digits for MNIST, small under 500 images per class, else grey or colour by the
    /// images' channels].
    #[cfg_attr(feature = "cli", arg(long))]
    pub recipe: Option<String>,
    /// Encoder: seed, mlp, cnn, cnn-wide, resnet, airbench, airbench-half [default: the recipe's].
    #[cfg_attr(feature = "cli", arg(long))]
    pub arch: Option<String>,
    /// Loss: seed-contrastive, contrastive, triplet, angular, multi-similarity, supcon,
    /// normalized-softmax, arcface, cosface, softmax [default: the recipe's].
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
    /// Label smoothing of the classifier losses (normalized-softmax, arcface, cosface, softmax) [default: the recipe's with its loss, else 0].
    #[cfg_attr(feature = "cli", arg(long))]
    pub label_smoothing: Option<f64>,
    /// Batch sampler: pairs, balanced-pairs, pk, shuffle [default: the recipe's with its loss (grey and colour
    /// shuffle, else pk); pairs for seed-contrastive; else pk].
    #[cfg_attr(feature = "cli", arg(long))]
    pub sampler: Option<String>,
    /// Images per class in a pk batch (P = batch-size / K) [default: the recipe's: 32, small 8].
    #[cfg_attr(feature = "cli", arg(long))]
    pub per_class_batch: Option<usize>,
    /// Passes over the training data [default: the recipe's: digits 5, grey 8, colour 20, small 80].
    #[cfg_attr(feature = "cli", arg(long))]
    pub epochs: Option<usize>,
    /// Images per batch (pairs count twice) [default: the recipe's: 256, small 64; fewer for pk batches when the data has
    /// fewer classes than P].
    #[cfg_attr(feature = "cli", arg(long))]
    pub batch_size: Option<usize>,
    /// Peak learning rate [default: the recipe's, 0.3 x batch/256 with sgd; 0.002 for adamw with another recipe's loss].
    #[cfg_attr(feature = "cli", arg(long))]
    pub lr: Option<f64>,
    /// Optimizer: adamw, adam, sgd [default: the recipe's; adamw when a loss of another kind is given].
    #[cfg_attr(feature = "cli", arg(long))]
    pub optimizer: Option<String>,
    /// Weight decay (decoupled for adamw) [default: 0.0005 with sgd, else 0.0001].
    #[cfg_attr(feature = "cli", arg(long))]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule: cosine (3% warm-up), triangle (airbench's: 20% warm-up, linear decay), constant
    /// [default: the recipe's with its loss (grey and colour triangle), else cosine].
    #[cfg_attr(feature = "cli", arg(long))]
    pub schedule: Option<String>,
    /// Stop once validation Precision@1 has not improved for N epochs (never in the first half
    /// of the epochs), and keep the best epoch's weights [default: the recipe's: small 10, else
    /// train every epoch].
    #[cfg_attr(feature = "cli", arg(long))]
    pub patience: Option<usize>,
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
    /// Arithmetic: auto (bf16 autocast on a GPU and on CPUs with AVX512-BF16, else fp32), auto-gpu (bf16 on a GPU
    /// only), fp32, bf16, fp16 [default: the recipe's: digits auto-gpu, else auto].
    #[cfg_attr(feature = "cli", arg(long))]
    pub precision: Option<String>,
    /// Same results on every run with the same seed (fixed threads, deterministic kernels).
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    pub deterministic: Option<bool>,
    /// Augmentation: none, crop-flip, shift, shift-flip, shift-flip-erase, affine [default: the recipe's: digits affine,
    /// small shift-flip-erase, else shift-flip].
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
                "patience",
                self.patience,
                1,
                usize::MAX,
                "wait at least 1 epoch for a better validation score, e.g. 10".to_string(),
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
    /// The recipe that gave the defaults. Absent from runs made before
    /// recipes had names.
    #[serde(default)]
    pub recipe: Option<String>,
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
    /// Absent from the configs of runs made before the option existed.
    #[serde(default)]
    pub patience: Option<usize>,
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
    /// Fills every unset option with its default: the recipe's, chosen by
    /// name or from `data`; its classes (how many have images) cap P x K
    /// batches.
    pub fn resolve(self, data: &DataFacts) -> Result<TrainConfig> {
        let dataset = self.dataset.unwrap_or_else(|| "mnist".into());
        let classes = data.classes;
        let recipe = match &self.recipe {
            Some(name) => Recipe::by_name(name)?,
            None => Recipe::for_data(&dataset, data),
        };
        let arch = self.arch.unwrap_or_else(|| recipe.arch.into());
        let loss = self.loss.unwrap_or_else(|| recipe.loss.into());
        // SGD at a high rate was tuned with proxy losses; a pair loss given
        // instead keeps AdamW, with which the pair losses were tuned.
        let sgd_misfit = recipe.optimizer == "sgd" && !Recipe::is_proxy_loss(&loss);
        let optimizer = match sgd_misfit {
            false => *recipe,
            true => Recipe {
                optimizer: "adamw",
                lr: 2e-3,
                weight_decay: 1e-4,
                ..*recipe
            },
        };
        // The recipe's sampler and schedule were tuned with its loss.
        let own_loss = loss == recipe.loss;
        let sampler = self.sampler.unwrap_or_else(|| {
            match loss.as_str() {
                "seed-contrastive" => "pairs",
                _ if own_loss => recipe.sampler,
                _ => "pk",
            }
            .into()
        });
        let embedding_dim = self.embedding_dim.unwrap_or(if arch == "seed" { 2 } else { 128 });
        let out = self.out.unwrap_or_else(|| next_run_dir(&dataset, &arch, &loss));
        let per_class_batch = self.per_class_batch.unwrap_or(recipe.per_class_batch);
        // A P x K batch cannot hold more classes than the data has.
        let batch_size = match (&self.batch_size, sampler.as_str()) {
            (Some(b), _) => *b,
            (None, "pk") => recipe.batch.min(classes.max(2) * per_class_batch),
            (None, _) => recipe.batch,
        };
        let label_smoothing = self
            .label_smoothing
            .or(recipe.label_smoothing.filter(|_| own_loss));
        let schedule = self
            .schedule
            .unwrap_or_else(|| if own_loss { recipe.schedule } else { "cosine" }.into());
        Ok(TrainConfig {
            recipe: Some(recipe.name.into()),
            miner: self.miner,
            margin: self.margin,
            temperature: self.temperature,
            label_smoothing,
            per_class_batch,
            epochs: self.epochs.unwrap_or(recipe.epochs),
            batch_size,
            lr: self.lr.unwrap_or(optimizer.lr_at(batch_size)),
            optimizer: self.optimizer.unwrap_or_else(|| optimizer.optimizer.into()),
            weight_decay: self.weight_decay.unwrap_or(optimizer.weight_decay),
            schedule,
            patience: self.patience.or(recipe.patience),
            ema: self.ema,
            seed: self.seed.unwrap_or(0),
            device: self.device.unwrap_or_else(|| "auto".into()),
            precision: self.precision.unwrap_or_else(|| recipe.precision.into()),
            deterministic: self.deterministic.unwrap_or(false),
            augment: self.augment.unwrap_or_else(|| recipe.augment.into()),
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
        })
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

    /// Full-size data (thousands of images per class).
    fn facts(channels: i64, classes: usize) -> DataFacts {
        DataFacts {
            channels,
            classes,
            images_per_class: 5000,
        }
    }

    fn resolved(dataset: &str, channels: i64) -> TrainConfig {
        TrainOptions {
            dataset: Some(dataset.into()),
            out: Some("unused".into()),
            ..TrainOptions::default()
        }
        .resolve(&facts(channels, 10))
        .unwrap()
    }

    #[test]
    fn digits_and_other_grey_images_get_their_own_recipes() {
        let recipe = |c: TrainConfig| (c.recipe.unwrap(), c.arch, c.augment, c.optimizer, c.epochs, c.lr);
        assert_eq!(
            recipe(resolved("mnist", 1)),
            (
                "digits".into(),
                "cnn-wide".into(),
                "affine".into(),
                "adamw".into(),
                5,
                3e-3
            )
        );
        assert_eq!(
            recipe(resolved("fashion-mnist", 1)),
            (
                "grey".into(),
                "airbench-half".into(),
                "shift-flip".into(),
                "sgd".into(),
                8,
                0.3
            )
        );
        assert_eq!(resolved("fashion-mnist", 1).label_smoothing, Some(0.1));
        // Digits keep float32 on the CPU; the others take bf16 where it runs.
        assert_eq!(resolved("mnist", 1).precision, "auto-gpu");
        assert_eq!(resolved("fashion-mnist", 1).precision, "auto");
        let few = DataFacts {
            channels: 3,
            classes: 10,
            images_per_class: 90,
        };
        let small = TrainOptions {
            dataset: Some("./photos".into()),
            out: Some("unused".into()),
            ..TrainOptions::default()
        }
        .resolve(&few)
        .unwrap();
        assert_eq!(
            (small.recipe.as_deref(), small.precision.as_str()),
            (Some("small"), "auto")
        );
    }

    #[test]
    fn a_named_recipe_wins_over_the_data_and_a_flag_over_the_recipe() {
        let cfg = TrainOptions {
            dataset: Some("./scans".into()),
            recipe: Some("digits".into()),
            epochs: Some(2),
            out: Some("unused".into()),
            ..TrainOptions::default()
        }
        .resolve(&facts(1, 10))
        .unwrap();
        assert_eq!(
            (cfg.arch.as_str(), cfg.augment.as_str(), cfg.epochs),
            ("cnn-wide", "affine", 2)
        );
        let unknown = TrainOptions {
            recipe: Some("clothes".into()),
            ..TrainOptions::default()
        }
        .resolve(&facts(1, 10))
        .unwrap_err();
        assert!(unknown.to_string().contains("unknown recipe 'clothes'"));
    }

    #[test]
    fn another_loss_drops_the_recipes_label_smoothing_and_sgd() {
        let cfg = TrainOptions {
            dataset: Some("fashion-mnist".into()),
            loss: Some("triplet".into()),
            out: Some("unused".into()),
            ..TrainOptions::default()
        }
        .resolve(&facts(1, 10))
        .unwrap();
        assert_eq!(
            (cfg.optimizer.as_str(), cfg.lr, cfg.label_smoothing),
            ("adamw", 2e-3, None)
        );
    }

    #[test]
    fn colour_images_get_the_airbench_recipe_and_sgd_only_with_a_proxy_loss() {
        let c = resolved("cifar10", 3);
        assert_eq!(
            (c.arch.as_str(), c.loss.as_str(), c.optimizer.as_str()),
            ("airbench-half", "normalized-softmax", "sgd")
        );
        assert_eq!(
            (c.epochs, c.lr, c.weight_decay, c.batch_size, c.label_smoothing),
            (20, 0.3, 5e-4, 256, Some(0.1))
        );
        assert_eq!((c.sampler.as_str(), c.schedule.as_str()), ("shuffle", "triangle"));
        // Shuffled batches do not depend on the classes; P x K batches of a
        // folder of 2 classes (2 x 32) are smaller and get a smaller rate.
        let two = |sampler: Option<&str>| {
            TrainOptions {
                dataset: Some("./photos".into()),
                sampler: sampler.map(Into::into),
                out: Some("unused".into()),
                ..TrainOptions::default()
            }
            .resolve(&facts(3, 2))
            .unwrap()
        };
        assert_eq!((two(None).batch_size, two(None).lr), (256, 0.3));
        assert_eq!((two(Some("pk")).batch_size, two(Some("pk")).lr), (64, 0.075));
        let ms = TrainOptions {
            dataset: Some("cifar10".into()),
            loss: Some("multi-similarity".into()),
            out: Some("unused".into()),
            ..TrainOptions::default()
        }
        .resolve(&facts(3, 10))
        .unwrap();
        assert_eq!((ms.optimizer.as_str(), ms.lr), ("adamw", 2e-3));
        // A pair loss needs P x K batches, and keeps the schedule it was tuned with.
        assert_eq!((ms.sampler.as_str(), ms.schedule.as_str()), ("pk", "cosine"));
    }

    #[test]
    fn given_options_win_over_the_dataset_defaults() {
        let cfg = TrainOptions {
            epochs: Some(8),
            lr: Some(1e-3),
            out: Some("unused".into()),
            ..TrainOptions::default()
        }
        .resolve(&facts(1, 10))
        .unwrap();
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
