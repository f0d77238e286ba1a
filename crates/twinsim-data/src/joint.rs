//! Unions of datasets, `mnist+cifar10`: one dataset holding the images of
//! several, so that one model learns them all.
//!
//! - **Spelling**: parts joined by `+`, each a named dataset, `mnist-sample`
//!   or an image folder (whose path must then hold no `+`); a split names the
//!   whole union (`mnist+cifar10:test`), never one part. A part may appear
//!   once, and a union is never a part.
//! - **Shape**: every image is converted to the union's common shape: the
//!   most channels among the parts, a grey plane repeated as red, green and
//!   blue (what image folders and the images given to a model get), and the
//!   largest height and width, smaller images stretched with the bilinear
//!   (triangle) filter image folders are resized with. A model trained on a
//!   union therefore takes any part's images converted as any other image.
//! - **Classes** stay apart by part: each class name is prefixed with its
//!   part's name (`mnist/7`, `cifar10/cat`; a folder's is its last path
//!   component), and labels follow part after part, so no two parts share
//!   one. [`Dataset::parts`] records which labels each part took, so that
//!   evaluation can tell the parts apart after any selection.

use std::ops::Range;
use std::path::Path;

use image::imageops::{self, FilterType};
use image::GrayImage;
use rayon::prelude::*;

use crate::dataset::{Dataset, ImageShape, Images, Origin};
use crate::error::{DataError, Result};
use crate::load::{self, LoadOptions};
use crate::split::{self, DatasetSpec, Source, SplitName};

/// The most bytes a union's images may take. Converting every part to the
/// largest part's size multiplies the small ones: MNIST beside a folder of
/// 1024x1024 photos would be 60,000 x 3 MiB, 188 GB, from a folder of a
/// few files. 16 GiB holds MNIST, Fashion-MNIST and CIFAR-10 together at
/// 64x64 (190,000 images of 12 KiB, 2.3 GB) several times over.
pub const MAX_BYTES: usize = 16 << 30;

/// What joins the parts of a union in its name.
pub const SEPARATOR: char = '+';

/// One dataset of a union, and the labels its classes took in the union.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The part's name, the prefix of its class names (`mnist`, `photos`).
    pub name: String,
    /// Its classes' labels in the union, consecutive.
    pub classes: Range<u32>,
}

impl Dataset {
    /// The index in [`Dataset::parts`] of the part each image comes from,
    /// found by its label; `None` for a dataset that is not a union.
    pub fn image_parts(&self) -> Option<Vec<u32>> {
        if self.parts.is_empty() {
            return None;
        }
        let mut part_of_label = vec![0; self.classes.len()];
        for (i, part) in self.parts.iter().enumerate() {
            for label in part.classes.clone() {
                part_of_label[label as usize] = i as u32;
            }
        }
        Some(self.labels.iter().map(|&l| part_of_label[l as usize]).collect())
    }
}

/// The union `name` spells (`mnist+cifar10`), refusing empty, duplicate
/// and split-carrying parts.
pub(crate) fn parse(name: &str) -> Result<Source> {
    let mut parts = Vec::new();
    for part in name.split(SEPARATOR) {
        if part.is_empty() {
            return Err(DataError::invalid(
                format!("the union '{name}' has an empty part"),
                "join datasets with single + signs, e.g. mnist+cifar10",
            ));
        }
        if let Some((head, tail)) = part.rsplit_once(':') {
            if split::is_known(head) && tail.parse::<SplitName>().is_ok() {
                return Err(DataError::invalid(
                    format!("'{part}' gives one part of the union '{name}' a split"),
                    "a split follows the whole union, e.g. mnist+cifar10:test",
                ));
            }
        }
        parts.push(Source::single(part)?);
    }
    check(&parts)?;
    Ok(Source::Joint(parts))
}

/// Refuses a union that cannot be joined: fewer than two parts, a part that
/// is a union itself, or two parts whose classes would take the same names.
fn check(parts: &[Source]) -> Result<()> {
    let joined = Source::Joint(parts.to_vec()).name();
    if parts.len() < 2 {
        return Err(DataError::invalid(
            format!("the union '{joined}' has fewer than two parts"),
            "join two datasets or more with +, e.g. mnist+cifar10",
        ));
    }
    if parts.iter().any(|p| matches!(p, Source::Joint(_))) {
        return Err(DataError::invalid(
            format!("the union '{joined}' has a union as a part"),
            "list every dataset once in a single union, e.g. mnist+fashion-mnist+cifar10",
        ));
    }
    let names = parts.iter().map(part_name).collect::<Result<Vec<_>>>()?;
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(DataError::invalid(
                format!("two parts of the union '{joined}' are named '{name}'"),
                "name each dataset once; folders in a union need different last names, \
                 which prefix their class names",
            ));
        }
    }
    if parts.contains(&Source::Sample) && names.iter().any(|n| n == "mnist") {
        return Err(DataError::invalid(
            format!("the union '{joined}' holds mnist twice: mnist-sample is drawn from it"),
            "keep mnist or mnist-sample, not both",
        ));
    }
    Ok(())
}

/// The name a part's classes are prefixed with: the dataset's name, or a
/// folder's last path component.
fn part_name(part: &Source) -> Result<String> {
    let Source::Folder(root) = part else {
        return Ok(part.name());
    };
    // `.` and `..` have no last component of their own: the folder they are has.
    let last = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    last(root)
        .or_else(|| root.canonicalize().ok().as_deref().and_then(last))
        .ok_or_else(|| {
            DataError::invalid(
                format!(
                    "the folder '{}' has no name to prefix its classes with",
                    root.display()
                ),
                "name the folder by a path that ends in its name, e.g. ../photos",
            )
        })
}

/// The official split `split` of every part of the union `parts`, joined.
pub(crate) fn load(parts: &[Source], split: SplitName, opts: &LoadOptions) -> Result<Dataset> {
    check(parts)?;
    // A union is asked for by name: MNIST not found is an error here rather
    // than the embedded sample in its place, which the union's name and
    // numbers would not show.
    let opts = LoadOptions {
        allow_sample: false,
        ..opts.clone()
    };
    let mut named = Vec::with_capacity(parts.len());
    for part in parts {
        let spec = DatasetSpec {
            source: part.clone(),
            split,
        };
        named.push((part_name(part)?, load::load_official(&spec, &opts)?));
    }
    join(named, split.as_str())
}

/// `datasets` (each with its part name) as one split named `split`, in the
/// common shape; each part's images are dropped once converted, so memory
/// holds the parts and the union's buffer, allocated once at its size.
fn join(datasets: Vec<(String, Dataset)>, split: &str) -> Result<Dataset> {
    let shape = common_shape(&datasets)?;
    let count: usize = datasets.iter().map(|(_, d)| d.len()).sum();
    let bytes = count
        .checked_mul(shape.len())
        .filter(|&b| b <= MAX_BYTES)
        .ok_or_else(|| {
            DataError::invalid(
                format!(
                    "the union would hold {count} images of {shape}, more than {} GiB in memory",
                    MAX_BYTES >> 30
                ),
                "join fewer datasets, or give the image folders a smaller image size (every part is converted to the largest)",
            )
        })?;
    let mut pixels = Vec::new();
    pixels.try_reserve_exact(bytes).map_err(|_| {
        DataError::invalid(
            format!("no memory for {count} images of {shape} ({bytes} bytes)"),
            "join fewer datasets, or give the image folders a smaller image size",
        )
    })?;
    pixels.resize(bytes, 0);
    let mut offset = 0;
    let (mut labels, mut classes, mut parts, mut origins) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (name, ds) in datasets {
        let end = offset + ds.len() * shape.len();
        convert(&ds.images, shape, &mut pixels[offset..end]);
        offset = end;
        let first = classes.len() as u32;
        labels.extend(ds.labels.iter().map(|&l| first + l));
        classes.extend(ds.classes.iter().map(|c| format!("{name}/{c}")));
        parts.push(Part {
            classes: first..classes.len() as u32,
            name,
        });
        origins.push(ds.origin);
    }
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    Dataset {
        name: names.join(&SEPARATOR.to_string()),
        split: split.into(),
        images: Images::new(pixels, shape)?,
        labels,
        classes,
        // Coarse labels (CIFAR-100's superclasses) are dropped: the other
        // parts have none, and a second labelling of part of a union would
        // mean nothing for the rest.
        coarse: None,
        origin: Origin::Joint(origins),
        parts,
    }
    .validate()
}

/// The most channels and the largest height and width among `datasets`;
/// refuses channel counts that cannot be converted into each other.
fn common_shape(datasets: &[(String, Dataset)]) -> Result<ImageShape> {
    let shapes: Vec<ImageShape> = datasets.iter().map(|(_, d)| d.images.shape()).collect();
    let common = ImageShape {
        channels: shapes.iter().map(|s| s.channels).max().unwrap_or(1),
        height: shapes.iter().map(|s| s.height).max().unwrap_or(1),
        width: shapes.iter().map(|s| s.width).max().unwrap_or(1),
    };
    for ((name, _), s) in datasets.iter().zip(&shapes) {
        if s.channels != 1 && s.channels != common.channels {
            return Err(DataError::invalid(
                format!(
                    "{name}'s {} channels cannot join another part's {}",
                    s.channels, common.channels
                ),
                "join grey (1-channel) and colour (3-channel) datasets only",
            ));
        }
    }
    Ok(common)
}

/// Writes `images` converted to `to` (at least as many channels, as high
/// and as wide) into `out`, one image per `to.len()` bytes, in parallel.
fn convert(images: &Images, to: ImageShape, out: &mut [u8]) {
    if images.shape() == to {
        out.copy_from_slice(images.as_bytes());
        return;
    }
    out.par_chunks_mut(to.len())
        .enumerate()
        .for_each(|(i, dst)| convert_image(images.image(i), images.shape(), to, dst));
}

/// One (C, H, W) image of shape `from` into `dst`, of shape `to`: each
/// plane resized, then the last plane repeated up to `to`'s channels (only
/// grey images have fewer).
fn convert_image(src: &[u8], from: ImageShape, to: ImageShape, dst: &mut [u8]) {
    let (plane_in, plane_out) = (from.height * from.width, to.height * to.width);
    for (plane, out) in src.chunks_exact(plane_in).zip(dst.chunks_exact_mut(plane_out)) {
        if (from.height, from.width) == (to.height, to.width) {
            out.copy_from_slice(plane);
        } else {
            let img = GrayImage::from_raw(from.width as u32, from.height as u32, plane.to_vec())
                .expect("a plane holds height x width bytes");
            let resized = imageops::resize(&img, to.width as u32, to.height as u32, FilterType::Triangle);
            out.copy_from_slice(resized.as_raw());
        }
    }
    for c in from.channels..to.channels {
        dst.copy_within(
            (from.channels - 1) * plane_out..from.channels * plane_out,
            c * plane_out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dataset of `n` images of `shape`, image i filled with the value i,
    /// labelled i modulo its `classes`.
    fn filled(shape: ImageShape, n: usize, classes: &[&str]) -> Dataset {
        let pixels = (0..n).flat_map(|i| vec![i as u8; shape.len()]).collect();
        Dataset {
            name: "x".into(),
            split: "train".into(),
            images: Images::new(pixels, shape).unwrap(),
            labels: (0..n).map(|i| (i % classes.len()) as u32).collect(),
            classes: classes.iter().map(|c| c.to_string()).collect(),
            coarse: None,
            origin: Origin::Files(Vec::new()),
            parts: Vec::new(),
        }
    }

    fn shape(channels: usize, height: usize, width: usize) -> ImageShape {
        ImageShape {
            channels,
            height,
            width,
        }
    }

    #[test]
    fn parts_join_in_the_largest_shape_with_their_classes_apart() {
        let grey = filled(shape(1, 2, 2), 3, &["0", "1"]);
        let colour = filled(shape(3, 4, 4), 2, &["cat"]);
        let ds = join(vec![("digits".into(), grey), ("photos".into(), colour)], "train").unwrap();
        assert_eq!(ds.name, "digits+photos");
        assert_eq!(ds.images.shape(), shape(3, 4, 4));
        assert_eq!(ds.classes, ["digits/0", "digits/1", "photos/cat"]);
        assert_eq!(ds.labels, [0, 1, 0, 2, 2]);
        assert_eq!(
            ds.parts[1],
            Part {
                name: "photos".into(),
                classes: 2..3
            }
        );
        assert_eq!(ds.image_parts().unwrap(), [0, 0, 0, 1, 1]);
        // A flat grey image stays flat when stretched, in every colour plane.
        assert!(ds.images.image(2).iter().all(|&v| v == 2));
        assert!(ds.images.image(4).iter().all(|&v| v == 1));
        assert_eq!(ds.select(&[4], "val").image_parts().unwrap(), [1]);
    }

    #[test]
    fn grey_planes_are_resized_bilinearly_then_repeated() {
        let from = shape(1, 2, 2);
        let to = shape(3, 4, 4);
        let mut dst = vec![0; to.len()];
        convert_image(&[0, 100, 200, 255], from, to, &mut dst);
        let img = GrayImage::from_raw(2, 2, vec![0, 100, 200, 255]).unwrap();
        let expected = imageops::resize(&img, 4, 4, FilterType::Triangle).into_raw();
        for plane in dst.chunks_exact(16) {
            assert_eq!(plane, expected.as_slice());
        }
    }

    #[test]
    fn channels_that_do_not_convert_are_refused() {
        let two = filled(shape(2, 2, 2), 1, &["a"]);
        let three = filled(shape(3, 2, 2), 1, &["b"]);
        let err = join(vec![("a".into(), two), ("b".into(), three)], "train").unwrap_err();
        assert!(err.to_string().contains("a's 2 channels"), "{err}");
    }

    #[test]
    fn a_union_that_would_not_fit_in_memory_is_refused_before_any_allocation() {
        // 6,000 small grey images beside one huge colour image: converting
        // them to its size would take 6,000 x 3 MiB, 18 GiB, beyond the cap,
        // and nothing that large is allocated to find out.
        let many = filled(shape(1, 2, 2), 6000, &["0"]);
        let huge = filled(shape(3, 1024, 1024), 1, &["cat"]);
        let huge_bytes = 3 * 1024 * 1024;
        assert!(6001 * huge_bytes > MAX_BYTES);
        let err = join(vec![("digits".into(), many), ("photos".into(), huge)], "train").unwrap_err();
        assert!(err.to_string().contains("more than 16 GiB"), "{err}");
    }
}
