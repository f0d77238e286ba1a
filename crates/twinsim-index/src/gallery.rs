//! What goes into an index: images with class names and sources, from a
//! dataset split, an image folder (`DIR/<class>/<image>`) or files given
//! one by one, converted exactly as the model's training data was; and the
//! images back from their sources, for pictures of search results.

use std::collections::hash_map::{Entry, HashMap};
use std::path::{Path, PathBuf};

use tch::Tensor;
use twinsim_data::split::{self, SplitName};
use twinsim_data::{DatasetSpec, Images, LoadOptions};
use twinsim_learn::distributed::World;
use twinsim_learn::model::Model;
use twinsim_learn::run::{Classes, Run};
use twinsim_learn::{images, similarity};

use crate::error::{IndexError, Result};

/// Images to enrol: row i is `images` image i, of class `labels[i]`, from
/// `sources[i]`.
pub struct Gallery {
    pub images: Images,
    pub labels: Vec<String>,
    pub sources: Vec<String>,
}

/// Part of a dataset split to enrol.
#[derive(Clone, Debug, Default)]
pub struct Subset {
    /// Only these classes (`0-4`, `cat,dog`).
    pub classes: Option<String>,
    /// At most this many images of each class, chosen by `seed`.
    pub per_class: Option<usize>,
    pub seed: u64,
}

impl Gallery {
    /// Split `spec` (`NAME[:SPLIT]`, train by default) of a dataset, read
    /// as the run reads data, keeping `subset`. Sources are `NAME:SPLIT#i`,
    /// i the image's position in the whole split.
    pub fn dataset(run: &Run, spec: &str, subset: &Subset, base: &LoadOptions) -> Result<Gallery> {
        let parsed: DatasetSpec = spec.parse()?;
        let ds = run.data(Some(&parsed.name()), parsed.split, Classes::All, base)?;
        let mut keep: Vec<usize> = (0..ds.len()).collect();
        if let Some(list) = &subset.classes {
            keep = split::of_classes(&ds, &split::parse_classes(list, &ds.classes)?);
        }
        if let Some(n) = subset.per_class {
            let chosen = split::per_class(&ds.select(&keep, &ds.split), n, subset.seed);
            keep = chosen.into_iter().map(|i| keep[i]).collect();
        }
        let prefix = format!("{}:{}", parsed.name(), parsed.split.as_str());
        Ok(Gallery {
            images: ds.images.select(&keep),
            labels: keep
                .iter()
                .map(|&i| ds.classes[ds.labels[i] as usize].clone())
                .collect(),
            sources: keep.iter().map(|&i| format!("{prefix}#{i}")).collect(),
        })
    }

    /// Every image of the folder `dir`, laid out `DIR/<class>/<image>` (the
    /// class is the folder's name), converted for `model`. Files that are
    /// not usable images are left out with a warning naming them.
    pub fn folder(dir: &Path, model: &Model) -> Result<Gallery> {
        let listing = twinsim_data::folder::list(dir, "train")?;
        let refused: Vec<String> = listing
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.path.display(), s.reason))
            .collect();
        let labels = listing
            .files
            .iter()
            .map(|(_, l)| listing.classes[*l as usize].clone());
        let paths = listing.files.iter().map(|(p, _)| p.clone());
        decode_usable(paths.collect(), labels.collect(), refused, model)
    }

    /// Every file under `dir`, at any depth, that is a usable image, with no
    /// class (label `""`); the others are left out with a warning.
    pub fn unlabelled(dir: &Path, model: &Model) -> Result<Gallery> {
        let paths = twinsim_data::folder::walk(dir)?;
        let labels = vec![String::new(); paths.len()];
        decode_usable(paths, labels, Vec::new(), model)
    }

    /// The image files `paths`, all of class `label`. An unreadable file is
    /// an error naming it: files named one by one are meant to be enrolled.
    pub fn files(paths: &[PathBuf], label: &str, model: &Model) -> Result<Gallery> {
        Ok(Gallery {
            images: images::from_files(paths, &model.card.preprocess)?,
            labels: vec![label.to_string(); paths.len()],
            sources: paths.iter().map(|p| p.display().to_string()).collect(),
        })
    }

    /// Images in the gallery.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The files `paths` (of classes `labels`) that decode, converted for
/// `model`; one warning names the others and `refused`, entries already
/// left out.
fn decode_usable(
    paths: Vec<PathBuf>,
    labels: Vec<String>,
    mut refused: Vec<String>,
    model: &Model,
) -> Result<Gallery> {
    let decoded = images::decode_each(&paths, &model.card.preprocess);
    let mut gallery = (Vec::new(), Vec::new(), Vec::new());
    for ((path, label), result) in paths.iter().zip(labels).zip(decoded) {
        match result {
            Ok(pixels) => {
                gallery.0.extend(pixels);
                gallery.1.push(label);
                gallery.2.push(path.display().to_string());
            }
            Err(e) => refused.push(e.to_string()),
        }
    }
    if !refused.is_empty() {
        let named: Vec<&str> = refused
            .iter()
            .take(NAMED_IN_WARNING)
            .map(String::as_str)
            .collect();
        let rest = refused.len() - named.len();
        let rest = if rest > 0 {
            format!("; and {rest} more")
        } else {
            String::new()
        };
        tracing::warn!("left out {} files: {}{rest}", refused.len(), named.join("; "));
    }
    Ok(Gallery {
        images: Images::new(gallery.0, images::conversion(&model.card.preprocess).shape())?,
        labels: gallery.1,
        sources: gallery.2,
    })
}

/// How many unusable files a warning names before it only counts the rest.
const NAMED_IN_WARNING: usize = 10;

/// `gallery`'s embeddings by `model`: (N, D) float32 on the CPU, embedded
/// in batches shared among `world`'s ranks, ticking `progress` once per image.
pub fn embed(
    model: &Model,
    gallery: &Gallery,
    progress: &indicatif::ProgressBar,
    world: &World,
) -> Result<Tensor> {
    model.check_images(gallery.images.shape())?;
    let parts: Vec<Tensor> = (0..gallery.len())
        .step_by(ENROL_BATCH)
        .map(|start| {
            let chosen: Vec<usize> = (start..gallery.len().min(start + ENROL_BATCH)).collect();
            let e = world.embed_images(model, &gallery.images.select(&chosen), similarity::BATCH);
            progress.inc(chosen.len() as u64);
            e
        })
        .collect();
    Ok(match parts.is_empty() {
        true => Tensor::zeros([0, model.dim()], (tch::Kind::Float, tch::Device::Cpu)),
        false => Tensor::cat(&parts, 0),
    })
}

/// Images embedded between two ticks of the progress bar.
const ENROL_BATCH: usize = 4096;

/// The images `sources` name, in order: files are decoded for `run`'s
/// model, `NAME:SPLIT#i` read from the dataset (each split loaded once).
pub fn images_of(sources: &[String], run: &Run, base: &LoadOptions) -> Result<Images> {
    let mut loaded: HashMap<String, twinsim_data::Dataset> = HashMap::new();
    let mut pixels = Vec::new();
    for source in sources {
        match dataset_item(source) {
            Some((spec, i)) => {
                let ds = match loaded.entry(spec.clone()) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let parsed: DatasetSpec = spec.parse()?;
                        e.insert(run.data(Some(&parsed.name()), parsed.split, Classes::All, base)?)
                    }
                };
                if i >= ds.len() {
                    return Err(IndexError::invalid(
                        format!("{source}: {spec} has only {} images", ds.len()),
                        "the dataset changed since the index was built; build it again",
                    ));
                }
                pixels.extend_from_slice(ds.images.image(i));
            }
            None => pixels.extend(
                images::from_files(&[PathBuf::from(source)], &run.model.card.preprocess)?.into_bytes(),
            ),
        }
    }
    let shape = images::conversion(&run.model.card.preprocess).shape();
    Ok(Images::new(pixels, shape)?)
}

/// `(NAME:SPLIT, i)` for a dataset source `NAME:SPLIT#i`; `None` for a path.
fn dataset_item(source: &str) -> Option<(String, usize)> {
    let (spec, i) = source.rsplit_once('#')?;
    let (_, split) = spec.rsplit_once(':')?;
    split.parse::<SplitName>().ok()?;
    Some((spec.to_string(), i.parse().ok()?))
}
