//! A finished run directory opened for use: the model, the configuration it
//! was trained with, and the data it was trained and held out on, so that
//! evaluation, calibration and reports read exactly the splits and classes
//! training did.

use std::path::{Path, PathBuf};

use tch::Device;
use twinsim_data::split::{self, Source};
use twinsim_data::{Dataset, DatasetSpec, LoadOptions, Selection, SplitName};

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

/// An opened run directory.
pub struct Run {
    pub dir: PathBuf,
    pub model: Model,
    pub config: TrainConfig,
}

impl Run {
    /// Opens the run in `dir` with its model on `device`.
    pub fn open(dir: &Path, device: Device) -> Result<Run> {
        let model = Model::load(dir, device)?;
        let (_, config) = RunDir::open(dir)?;
        Ok(Run {
            dir: dir.to_path_buf(),
            model,
            config,
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

    /// The split queries come from by default: `test` when the dataset has
    /// one, else the held-out `val`.
    pub fn query_split(&self, dataset: Option<&str>) -> Result<SplitName> {
        let spec: DatasetSpec = dataset.unwrap_or(self.dataset()).parse()?;
        if let Source::Folder(root) = &spec.source {
            if !twinsim_data::folder::splits(root)?.iter().any(|s| s == "test") {
                return Ok(SplitName::Val);
            }
        }
        Ok(SplitName::Test)
    }
}

/// Whether two specs read the same dataset (whatever their splits).
fn same_source(a: &DatasetSpec, b: &DatasetSpec) -> bool {
    a.name() == b.name()
}
