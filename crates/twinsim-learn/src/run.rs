//! A finished run directory opened for use: the model, the configuration it
//! was trained with, and the data it was trained and held out on, so that
//! evaluation, calibration and reports read exactly the splits and classes
//! training did.

use std::path::{Path, PathBuf};

use tch::Device;
use twinsim_data::split::{self, Source};
use twinsim_data::{Dataset, DatasetSpec, LoadOptions, Origin, Selection, SplitName};

use crate::images;
use crate::model::Model;
use crate::train::run_dir::RunDir;
use crate::train::TrainConfig;
use crate::Result;

/// Which classes of a dataset to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classes {
    /// Every class.
    All,
    /// The classes the model was trained on.
    Trained,
    /// The classes the model never saw (for class-disjoint evaluation).
    Unseen,
}

/// True when `dir` is a run directory `twinsim train` wrote (it holds a
/// model card or a run configuration): its files belong to the run, and no
/// other output may be written among them.
pub fn is_run_dir(dir: &Path) -> bool {
    [crate::model::CARD_FILE, "config.json", crate::model::WEIGHTS_FILE]
        .iter()
        .any(|f| dir.join(f).is_file())
}

/// An opened run directory.
pub struct Run {
    pub dir: PathBuf,
    pub model: Model,
    pub config: TrainConfig,
    /// Where the training images came from (`summary.json`'s
    /// `data_origin`), once training has finished.
    trained_from: Option<String>,
}

impl Run {
    /// Opens the run in `dir` with its model on `device`.
    pub fn open(dir: &Path, device: Device) -> Result<Run> {
        let model = Model::load(dir, device)?;
        let (_, config) = RunDir::open(dir)?;
        let trained_from =
            twinsim_data::read::read_file(&dir.join("summary.json"), twinsim_data::read::MAX_TEXT_BYTES)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .and_then(|summary| summary["data_origin"].as_str().map(String::from));
        Ok(Run {
            dir: dir.to_path_buf(),
            model,
            config,
            trained_from,
        })
    }

    /// The dataset the model was trained on, as `--dataset` spelled it.
    pub fn dataset(&self) -> &str {
        &self.config.dataset
    }

    /// `base` with image folders converted to the model's input and the
    /// run's validation split (fraction and seed), so `val` is the part
    /// training held out.
    pub fn load_options(&self, base: &LoadOptions) -> LoadOptions {
        let mut opts = base.clone();
        opts.folder = twinsim_data::folder::FolderOptions {
            cache_dir: base.folder.cache_dir.clone(),
            ..images::conversion(&self.model.card.preprocess)
        };
        opts.selection = Selection {
            classes: None,
            per_class: None,
            val_fraction: self.config.val_fraction,
            seed: self.config.seed,
        };
        opts
    }

    /// Split `split` of `dataset` (the run's own when `None`), keeping
    /// `classes`. Class filters apply to the run's own dataset only: every
    /// class of another dataset is unseen.
    pub fn data(
        &self,
        dataset: Option<&str>,
        split: SplitName,
        classes: Classes,
        base: &LoadOptions,
    ) -> Result<Dataset> {
        let name = dataset.unwrap_or(self.dataset());
        let spec: DatasetSpec = name.parse()?;
        let spec = spec.with_split(split);
        let opts = self.load_options(base);
        let ds = twinsim_data::load(&spec, &opts)?;
        self.check_not_sample_instead(&spec, &ds)?;
        if !same_source(&spec, &self.dataset().parse()?) || classes == Classes::All {
            return Ok(ds);
        }
        // The run's --classes, read against this dataset's class names.
        let trained = match &self.config.classes {
            Some(list) => split::parse_classes(list, &ds.classes)?,
            None => (0..ds.classes.len() as u32).collect(),
        };
        let labels: Vec<u32> = (0..ds.classes.len() as u32)
            .filter(|l| trained.contains(l) == (classes == Classes::Trained))
            .collect();
        if labels.is_empty() {
            return Err(crate::LearnError::config(
                format!(
                    "{} has no {} classes",
                    name,
                    if classes == Classes::Unseen { "unseen" } else { "trained" }
                ),
                "class-disjoint evaluation and --unseen need a model trained on some classes only (train with --classes 0-4)",
            ));
        }
        Ok(ds.select(&split::of_classes(&ds, &labels), &ds.split.clone()))
    }

    /// Refuses the embedded MNIST sample that loading falls back to when
    /// MNIST is not found, if the model was trained on MNIST's files: its
    /// numbers would describe other data than the user meant.
    fn check_not_sample_instead(&self, spec: &DatasetSpec, ds: &Dataset) -> Result<()> {
        let sample = Origin::EmbeddedSample.to_string();
        let Some(from) = self.trained_from.as_deref().filter(|from| **from != sample) else {
            return Ok(());
        };
        if ds.origin != Origin::EmbeddedSample || matches!(spec.source, Source::Sample) {
            return Ok(());
        }
        Err(crate::LearnError::config(
            format!(
                "{} was not found, and the model was trained on {from}, not on the sample embedded in twinsim",
                spec.name()
            ),
            "pass --data-dir with the folder the dataset is in (or --dataset mnist-sample to measure on the embedded sample on purpose)",
        ))
    }

    /// The split queries come from by default: `test` when the dataset has
    /// one (a union when each of its parts has), else the held-out `val`.
    pub fn query_split(&self, dataset: Option<&str>) -> Result<SplitName> {
        let spec: DatasetSpec = dataset.unwrap_or(self.dataset()).parse()?;
        Ok(match spec.source.has_test()? {
            true => SplitName::Test,
            false => SplitName::Val,
        })
    }
}

/// Whether two specs read the same dataset (whatever their splits).
fn same_source(a: &DatasetSpec, b: &DatasetSpec) -> bool {
    a.name() == b.name()
}
