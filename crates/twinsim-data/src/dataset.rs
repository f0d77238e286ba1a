//! Whole-dataset buffers, independent of any deep-learning framework.
//!
//! A split is held as one contiguous `u8` buffer of shape (N, C, H, W) plus
//! its labels, so that training never decodes per item and a whole split can
//! be copied to a device at once.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{DataError, Result};
use crate::joint::Part;

/// Images of one split: `data` is (N, C, H, W) row-major, one byte per value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    data: Vec<u8>,
    shape: ImageShape,
}

/// The size of every image in a split (channels, height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    /// The largest height or width of the images twinsim trains on and
    /// converts to: 32 times CIFAR's side, and few enough pixels (a million)
    /// that a batch of them still fits in memory. Model cards and image
    /// sizes beyond it are refused.
    pub const MAX_SIDE: usize = 1024;

    /// Bytes in one image: C·H·W.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// True for a degenerate shape with no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

impl Images {
    /// Wraps `data`, which must hold a whole number of `shape`-sized images.
    pub fn new(data: Vec<u8>, shape: ImageShape) -> Result<Self> {
        if shape.is_empty() || data.len() % shape.len() != 0 {
            return Err(DataError::invalid(
                format!("{} bytes do not form whole {shape} images", data.len()),
                "this is a bug in the loader; please report it",
            ));
        }
        Ok(Images { data, shape })
    }

    /// Number of images (N).
    pub fn len(&self) -> usize {
        self.data.len() / self.shape.len()
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The size of each image.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// The whole (N, C, H, W) buffer.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Gives up the (N, C, H, W) buffer without copying it.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// Image `i` as (C, H, W).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.len();
        &self.data[i * n..(i + 1) * n]
    }

    /// A new buffer holding the images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Images {
        let mut data = Vec::with_capacity(indices.len() * self.shape.len());
        for &i in indices {
            data.extend_from_slice(self.image(i));
        }
        Images {
            data,
            shape: self.shape,
        }
    }
}

/// A second labelling of the same images (CIFAR-100's 20 superclasses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoarseLabels {
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
}

/// Where a split's data came from, so every command can say which copy it used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Read from these files or folders.
    Files(Vec<PathBuf>),
    /// The MNIST sample compiled into the binary.
    EmbeddedSample,
    /// A union's parts, each from its own origin, in the union's order.
    Joint(Vec<Origin>),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::EmbeddedSample => write!(f, "the MNIST sample embedded in twinsim"),
            Origin::Files(paths) => {
                let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "{}", shown.join(", "))
            }
            Origin::Joint(parts) => {
                let shown: Vec<String> = parts.iter().map(Origin::to_string).collect();
                write!(f, "{}", shown.join(" + "))
            }
        }
    }
}

/// One split of a dataset: images, one label per image, and the class names
/// the labels index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// The dataset's name, as the CLI spells it (`mnist`, `cifar100`, `folder`).
    pub name: String,
    /// The split, as the CLI spells it (`train`, `test`, `val`...).
    pub split: String,
    pub images: Images,
    /// Class of each image, an index into `classes`; the fine label for CIFAR-100.
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
    /// CIFAR-100's coarse labels; `None` elsewhere.
    pub coarse: Option<CoarseLabels>,
    pub origin: Origin,
    /// A union's parts, in label order (see [`crate::joint`]); empty for a
    /// dataset that is not a union.
    pub parts: Vec<Part>,
}

impl Dataset {
    /// Checks the invariants every loader must establish: one label per image,
    /// every label naming a class.
    pub fn validate(self) -> Result<Self> {
        let fail = |reason: String| {
            Err(DataError::invalid(
                format!("{}:{}: {reason}", self.name, self.split),
                "the dataset's files disagree with each other; re-download them",
            ))
        };
        if self.labels.len() != self.images.len() {
            return fail(format!(
                "{} images but {} labels",
                self.images.len(),
                self.labels.len()
            ));
        }
        if let Some(&bad) = self.labels.iter().find(|&&l| l as usize >= self.classes.len()) {
            return fail(format!(
                "label {bad} out of range for {} classes",
                self.classes.len()
            ));
        }
        let mut next = 0;
        for part in &self.parts {
            if part.classes.start != next || part.classes.is_empty() {
                return fail(format!("part {} does not follow the part before it", part.name));
            }
            next = part.classes.end;
        }
        if !self.parts.is_empty() && next as usize != self.classes.len() {
            return fail(format!("the parts hold {next} of {} classes", self.classes.len()));
        }
        if let Some(c) = &self.coarse {
            if c.labels.len() != self.labels.len() {
                return fail("coarse and fine label counts differ".into());
            }
            if let Some(&bad) = c.labels.iter().find(|&&l| l as usize >= c.classes.len()) {
                return fail(format!("coarse label {bad} out of range"));
            }
        }
        Ok(self)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Images per class, indexed like `classes`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// A new split holding the items at `indices`, in that order, with the
    /// same classes; `split` names it.
    pub fn select(&self, indices: &[usize], split: &str) -> Dataset {
        Dataset {
            name: self.name.clone(),
            split: split.to_string(),
            images: self.images.select(indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
            coarse: self.coarse.as_ref().map(|c| CoarseLabels {
                labels: indices.iter().map(|&i| c.labels[i]).collect(),
                classes: c.classes.clone(),
            }),
            origin: self.origin.clone(),
            parts: self.parts.clone(),
        }
    }
}
