//! Which part of a dataset a command works on: the `NAME[:SPLIT]` syntax
//! used everywhere (NAME may be a union, `mnist+cifar10`: [`crate::joint`]),
//! class selections (`--classes 0-4`), a validation split carved from train
//! by seed, and a per-class subset.

use std::path::PathBuf;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::catalog::{self, DatasetInfo};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::joint;

/// A split as the CLI names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitName {
    /// The official training split, whole.
    Train,
    /// The official test split.
    Test,
    /// A validation split carved from train, stratified by class, by seed.
    Val,
    /// Train without its validation part: what to train on while validating.
    Fit,
}

impl SplitName {
    /// Every split name, as spelled on the command line.
    pub const ALL: [SplitName; 4] = [SplitName::Train, SplitName::Test, SplitName::Val, SplitName::Fit];

    /// The spelling on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Test => "test",
            SplitName::Val => "val",
            SplitName::Fit => "fit",
        }
    }

    /// The official split the data is read from (val and fit come from train).
    pub fn base(self) -> SplitName {
        match self {
            SplitName::Test => SplitName::Test,
            _ => SplitName::Train,
        }
    }
}

impl FromStr for SplitName {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        SplitName::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| {
                DataError::invalid(
                    format!("unknown split '{s}'"),
                    "splits are train, test, val (carved from train) and fit (train without val)",
                )
            })
    }
}

/// Where a dataset comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A dataset twinsim knows by name.
    Named(&'static DatasetInfo),
    /// The MNIST sample compiled into the binary (`mnist-sample`).
    Sample,
    /// A user's image folder.
    Folder(PathBuf),
    /// The union of several sources (none itself a union), trained on as
    /// one dataset: `mnist+cifar10`.
    Joint(Vec<Source>),
}

impl Source {
    /// The source `name` spells (no split): a known dataset, `mnist-sample`,
    /// an image folder, or a union of those joined by `+` (unless `name` is
    /// an existing folder, whose name may hold a `+`).
    pub fn parse(name: &str) -> Result<Source> {
        if name.contains(joint::SEPARATOR) && !std::path::Path::new(name).is_dir() {
            return joint::parse(name);
        }
        Source::single(name)
    }

    /// A source that is not a union: a NAME that is not a known dataset but
    /// contains a `/` or names an existing directory is an image folder.
    pub(crate) fn single(name: &str) -> Result<Source> {
        if name == "mnist-sample" {
            Ok(Source::Sample)
        } else if let Some(info) = catalog::find(name).filter(|i| i.name != "folder") {
            Ok(Source::Named(info))
        } else if name.contains('/') || std::path::Path::new(name).is_dir() {
            Ok(Source::Folder(PathBuf::from(name)))
        } else {
            let known: Vec<&str> = catalog::DATASETS
                .iter()
                .map(|d| d.name)
                .filter(|n| *n != "folder")
                .collect();
            Err(DataError::invalid(
                format!("unknown dataset '{name}'"),
                format!(
                    "use one of {}, mnist-sample, the path of an image folder (e.g. ./photos:train), \
                     or several of them joined by + (e.g. mnist+cifar10)",
                    known.join(", ")
                ),
            ))
        }
    }

    /// The source's name as shown to users, and as it parses back.
    pub fn name(&self) -> String {
        match self {
            Source::Named(info) => info.name.to_string(),
            Source::Sample => "mnist-sample".into(),
            Source::Folder(p) => p.display().to_string(),
            Source::Joint(parts) => {
                let names: Vec<String> = parts.iter().map(Source::name).collect();
                names.join(&joint::SEPARATOR.to_string())
            }
        }
    }

    /// Whether the source has a test split: every named dataset has one, a
    /// folder when it holds `test/`, a union when each of its parts has.
    pub fn has_test(&self) -> Result<bool> {
        match self {
            Source::Named(_) | Source::Sample => Ok(true),
            Source::Folder(root) => Ok(crate::folder::splits(root)?.iter().any(|s| s == "test")),
            Source::Joint(parts) => {
                for part in parts {
                    if !part.has_test()? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }
}

/// `NAME[:SPLIT]`: `mnist`, `mnist:test`, `cifar100:val`, `./photos:train`,
/// `mnist-sample`, `mnist+cifar10:test` (the split applies to the whole
/// union). See [`Source::parse`] for NAME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetSpec {
    pub source: Source,
    pub split: SplitName,
}

impl DatasetSpec {
    /// The dataset's name as shown to users.
    pub fn name(&self) -> String {
        self.source.name()
    }

    /// The same dataset, another split.
    pub fn with_split(&self, split: SplitName) -> DatasetSpec {
        DatasetSpec {
            source: self.source.clone(),
            split,
        }
    }
}

impl std::fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name(), self.split.as_str())
    }
}

impl FromStr for DatasetSpec {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        let (name, split) = match s.rsplit_once(':') {
            Some((name, split)) if SplitName::from_str(split).is_ok() => (name, split.parse()?),
            // Known datasets (one, or a union of them) with something after
            // the colon: the split is what is wrong, and parsing it says so.
            // After a `+` it is not a split but a part's (joint::parse says).
            Some((name, split))
                if !split.contains(joint::SEPARATOR) && name.split(joint::SEPARATOR).all(is_known) =>
            {
                (name, split.parse()?)
            }
            _ => (s, SplitName::Train),
        };
        Ok(DatasetSpec {
            source: Source::parse(name)?,
            split,
        })
    }
}

/// Whether `name` is a dataset twinsim knows by name (not a path).
pub(crate) fn is_known(name: &str) -> bool {
    name == "mnist-sample" || catalog::find(name).is_some_and(|i| i.name != "folder")
}

/// What to keep of a split after loading it.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// `--classes`: keep these classes only (names or indices, e.g. `0-4`).
    pub classes: Option<String>,
    /// `--per-class N`: keep at most N images of each class, chosen by seed.
    pub per_class: Option<usize>,
    /// Share of train carved out as the validation split.
    pub val_fraction: f64,
    /// Seed for the validation split and the per-class subset.
    pub seed: u64,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            classes: None,
            per_class: None,
            val_fraction: 0.1,
            seed: 0,
        }
    }
}

/// Parses a class list against `classes`: comma-separated indices, index
/// ranges (`0-4`) and class names (`cat,dog`). Returns sorted label indices.
pub fn parse_classes(list: &str, classes: &[String]) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        out.extend(parse_class_part(part, classes)?);
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        return Err(DataError::invalid(
            format!("--classes '{list}' selects no class"),
            "give indices, ranges or names, e.g. --classes 0-4 or --classes cat,dog",
        ));
    }
    Ok(out)
}

fn parse_class_part(part: &str, classes: &[String]) -> Result<Vec<u32>> {
    if let Some(i) = classes.iter().position(|c| c == part) {
        return Ok(vec![i as u32]);
    }
    let index = |s: &str| -> Result<u32> {
        match s.trim().parse::<u32>() {
            Ok(i) if (i as usize) < classes.len() => Ok(i),
            _ => Err(DataError::invalid(
                format!("'{s}' is not a class of this dataset"),
                format!(
                    "classes are indices 0-{} or names: {}",
                    classes.len().saturating_sub(1),
                    preview(classes)
                ),
            )),
        }
    };
    match part.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (index(a)?, index(b)?);
            if a > b {
                return Err(DataError::invalid(
                    format!("class range '{part}' is empty"),
                    "write ranges low-high, e.g. 0-4",
                ));
            }
            Ok((a..=b).collect())
        }
        None => Ok(vec![index(part)?]),
    }
}

fn preview(classes: &[String]) -> String {
    let shown: Vec<&str> = classes.iter().take(12).map(String::as_str).collect();
    let more = if classes.len() > 12 { ", ..." } else { "" };
    format!("{}{more}", shown.join(", "))
}

/// Splits train's indices into (fit, val), stratified: each class gives
/// `round(fraction · count)` images to val, chosen by `seed`. Both lists
/// are sorted, so the split keeps the dataset's order.
pub fn carve_validation(ds: &Dataset, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fit = Vec::with_capacity(ds.len());
    let mut val = Vec::new();
    for mut members in by_class(ds) {
        members.shuffle(&mut rng);
        let n_val = (fraction * members.len() as f64).round() as usize;
        val.extend_from_slice(&members[..n_val]);
        fit.extend_from_slice(&members[n_val..]);
    }
    fit.sort_unstable();
    val.sort_unstable();
    (fit, val)
}

/// At most `n` indices of each class, chosen by `seed`, in dataset order.
pub fn per_class(ds: &Dataset, n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_c1a5);
    let mut keep = Vec::new();
    for mut members in by_class(ds) {
        members.shuffle(&mut rng);
        keep.extend(members.into_iter().take(n));
    }
    keep.sort_unstable();
    keep
}

/// Indices of the items whose label is in `classes` (sorted).
pub fn of_classes(ds: &Dataset, classes: &[u32]) -> Vec<usize> {
    (0..ds.len())
        .filter(|&i| classes.binary_search(&ds.labels[i]).is_ok())
        .collect()
}

fn by_class(ds: &Dataset) -> Vec<Vec<usize>> {
    let mut groups = vec![Vec::new(); ds.classes.len()];
    for (i, &l) in ds.labels.iter().enumerate() {
        groups[l as usize].push(i);
    }
    groups
}

/// Applies `split` (carving val/fit from a loaded train split) and `sel` to
/// `base`, the official split `split.base()` as loaded. Class labels keep
/// their indices, so a class-disjoint selection still names its classes.
pub fn apply(base: Dataset, split: SplitName, sel: &Selection) -> Result<Dataset> {
    if !(0.0..1.0).contains(&sel.val_fraction) {
        return Err(DataError::invalid(
            format!("validation fraction {} is outside [0, 1)", sel.val_fraction),
            "use e.g. --val-fraction 0.1",
        ));
    }
    let mut ds = match split {
        SplitName::Val | SplitName::Fit => {
            let (fit, val) = carve_validation(&base, sel.val_fraction, sel.seed);
            let keep = if split == SplitName::Val { val } else { fit };
            base.select(&keep, split.as_str())
        }
        _ => base,
    };
    if let Some(list) = &sel.classes {
        let classes = parse_classes(list, &ds.classes)?;
        ds = ds.select(&of_classes(&ds, &classes), &ds.split.clone());
    }
    if let Some(n) = sel.per_class {
        ds = ds.select(&per_class(&ds, n, sel.seed), &ds.split.clone());
    }
    if ds.is_empty() {
        return Err(DataError::invalid(
            format!("{}:{} is empty after selection", ds.name, ds.split),
            "check --classes, --per-class and --val-fraction",
        ));
    }
    Ok(ds)
}
