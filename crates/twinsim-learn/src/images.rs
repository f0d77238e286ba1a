//! Images from outside a dataset (files given on the command line, uploaded
//! bytes) turned into what a model takes: decoded from any supported format
//! and converted to the model's channel count and size exactly as image
//! folders are for training (see [`twinsim_data::folder`]).

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use twinsim_data::folder::{self, FolderOptions, SkipReason};
use twinsim_data::{DataError, ImageShape, Images};

use crate::model::Preprocess;
use crate::Result;

/// The conversion that gives a model's input size and colour.
pub fn conversion(preprocess: &Preprocess) -> FolderOptions {
    FolderOptions {
        channels: preprocess.channels as usize,
        height: preprocess.height as usize,
        width: preprocess.width as usize,
        cache_dir: None,
        ..FolderOptions::default()
    }
}

/// The image files at `paths`, decoded in parallel and converted for a
/// model with `preprocess`, in order. The first file that cannot be used
/// is the error, naming the file and why.
pub fn from_files(paths: &[PathBuf], preprocess: &Preprocess) -> Result<Images> {
    stack(decode_each(paths, preprocess), conversion(preprocess).shape())
}

/// Each file at `paths` decoded in parallel and converted for a model with
/// `preprocess`: its (C, H, W) pixels, or why it cannot be used.
pub fn decode_each(
    paths: &[PathBuf],
    preprocess: &Preprocess,
) -> Vec<std::result::Result<Vec<u8>, DataError>> {
    let opts = conversion(preprocess);
    paths
        .par_iter()
        .map(|p| folder::decode_file(p, &opts).map_err(|r| bad(p, r)))
        .collect()
}

/// Encoded images (`(name, bytes)`: the name only appears in errors, never
/// as a path) decoded in parallel and converted for a model with
/// `preprocess`, in order.
pub fn from_bytes(images: &[(&str, &[u8])], preprocess: &Preprocess) -> Result<Images> {
    let opts = conversion(preprocess);
    let decoded: Vec<_> = images
        .par_iter()
        .map(|(name, bytes)| folder::decode_bytes(bytes, &opts).map_err(|r| bad(Path::new(name), r)))
        .collect();
    stack(decoded, opts.shape())
}

/// One (N, C, H, W) buffer from per-image pixels, or the first error.
fn stack(decoded: Vec<std::result::Result<Vec<u8>, DataError>>, shape: ImageShape) -> Result<Images> {
    let mut pixels = Vec::with_capacity(decoded.len() * shape.len());
    for image in decoded {
        pixels.extend(image?);
    }
    Ok(Images::new(pixels, shape)?)
}

/// The error for an image that cannot be used.
fn bad(path: &Path, reason: SkipReason) -> DataError {
    DataError::bad_image(path, reason)
}
