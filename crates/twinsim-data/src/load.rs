//! One call from a [`DatasetSpec`] to a [`Dataset`]: find the files, read
//! them with the right format reader, then select the split and classes.

use std::path::Path;

use crate::catalog::{Checksum, DatasetInfo, Layout};
use crate::cifar::{self, CifarSplit};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::folder::{self, FolderOptions};
use crate::idx;
use crate::joint;
use crate::locate::Locator;
use crate::sample;
use crate::split::{self, DatasetSpec, Selection, Source, SplitName};

/// Everything that decides how a dataset is found and read.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub locator: Locator,
    pub folder: FolderOptions,
    pub selection: Selection,
    /// Fall back to the embedded MNIST sample when MNIST itself can be
    /// neither found nor downloaded (with a warning).
    pub allow_sample: bool,
}

impl LoadOptions {
    /// Options from the environment, `data_dir` (`--data-dir`) first.
    pub fn from_env(data_dir: Option<std::path::PathBuf>) -> Self {
        LoadOptions {
            locator: Locator::from_env(data_dir),
            folder: FolderOptions::default(),
            selection: Selection::default(),
            allow_sample: true,
        }
    }
}

/// Loads the split and selection `spec` and `opts` ask for.
pub fn load(spec: &DatasetSpec, opts: &LoadOptions) -> Result<Dataset> {
    let base = load_official(spec, opts)?;
    split::apply(base, spec.split, &opts.selection)
}

/// Loads the whole official split (`train` or `test`) that `spec.split`
/// comes from, before any selection: what to load once when several splits
/// are carved from it (see [`split::apply`]).
pub fn load_official(spec: &DatasetSpec, opts: &LoadOptions) -> Result<Dataset> {
    let split = spec.split.base();
    match &spec.source {
        Source::Sample => sample::load(split),
        Source::Folder(root) => folder::load(root, split.as_str(), &opts.folder),
        Source::Joint(parts) => joint::load(parts, split, opts),
        Source::Named(info) => match info.layout {
            Layout::Idx => load_idx(info, split, opts),
            Layout::Cifar { fine_classes } => {
                let found = opts.locator.locate(info)?;
                let path = &found.paths[0];
                let cifar_split = match split {
                    SplitName::Test => CifarSplit::Test,
                    _ => CifarSplit::Train,
                };
                cifar::load(
                    info.name,
                    fine_classes,
                    path,
                    cifar_split,
                    official_md5(info, path),
                )
            }
            Layout::Folder => Err(DataError::invalid(
                "the 'folder' dataset needs a path",
                "name the folder itself, e.g. --dataset ./photos:train",
            )),
        },
    }
}

fn load_idx(info: &DatasetInfo, split: SplitName, opts: &LoadOptions) -> Result<Dataset> {
    let found = match opts.locator.locate(info) {
        Ok(found) => found,
        Err(err @ DataError::NotFound { .. })
            if info.name == "mnist" && opts.allow_sample && !opts.locator.has_named_root() =>
        {
            // Once per process: a command loading several splits says it once.
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| tracing::warn!(
                "{err}; using the MNIST sample embedded in twinsim (8,000 train / 2,000 test images) instead. \
                 For the full dataset pass --data-dir or let twinsim download it"
            ));
            return sample::load(split);
        }
        Err(err) => return Err(err),
    };
    let (images, labels) = match split {
        SplitName::Test => (2, 3),
        _ => (0, 1),
    };
    let sha = |i: usize| match info.files[i].checksum {
        Checksum::DecompressedSha256(s) => Some(s),
        Checksum::ArchiveMd5(_) => None,
    };
    idx::load_split(
        info.name,
        split.as_str(),
        &found.paths[images],
        &found.paths[labels],
        info.classes,
        sha(images).zip(sha(labels)),
    )
}

/// The published MD5 of `path` when it is one of `info`'s tarballs.
fn official_md5(info: &DatasetInfo, path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    info.files
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| match f.checksum {
            Checksum::ArchiveMd5(md5) => Some(md5),
            Checksum::DecompressedSha256(_) => None,
        })
}
