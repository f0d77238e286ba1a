//! twinsim's datasets, read by twinsim's own code into whole-dataset buffers.
//!
//! Data flows: [`locate`] finds (or [`download`]s) a dataset's files, a format
//! reader ([`idx`], [`cifar`], [`folder`]) turns them into a [`Dataset`]
//! (one contiguous (N, C, H, W) `u8` buffer plus labels), [`joint`] joins
//! several into one, and [`split`] selects the part a command asked for.
//! [`torch_file`] reads PyTorch checkpoints (pretrained weights) with the
//! same restricted unpickler that reads CIFAR's python download.

pub mod archive;
pub mod atomic;
pub mod catalog;
pub mod cifar;
pub mod dataset;
pub mod download;
pub mod error;
pub mod folder;
pub mod idx;
pub mod joint;
pub mod load;
pub mod locate;
pub mod npy;
pub mod npz;
mod pickle;
pub mod read;
pub mod sample;
pub mod split;
pub mod torch_file;

pub use dataset::{CoarseLabels, Dataset, ImageShape, Images, Origin};
pub use error::{DataError, Result};
pub use load::{load, LoadOptions};
pub use split::{DatasetSpec, Selection, SplitName};
