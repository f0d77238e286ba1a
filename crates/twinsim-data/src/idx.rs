//! The IDX format of MNIST and Fashion-MNIST.
//!
//! An IDX file is a 4-byte magic number (two zero bytes, a type byte, the
//! number of dimensions), one big-endian `u32` per dimension, then the values.
//! Only unsigned-byte files are read: images (3 dimensions: N, H, W) and
//! labels (1 dimension: N).

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, ImageShape, Images, Origin};
use crate::error::{DataError, Result};
use crate::read;

/// Type byte of unsigned-byte data, the only type the datasets use.
const UNSIGNED_BYTE: u8 = 0x08;

/// Reads an image file (magic 0x00000803) into (N, 1, H, W) images.
pub fn parse_images(path: &Path, bytes: &[u8]) -> Result<Images> {
    let header = Header::parse(path, bytes, 3)?;
    images_from(path, &header, bytes[header.len..].to_vec())
}

/// Reads a label file (magic 0x00000801) into one label per item.
pub fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u32>> {
    let header = Header::parse(path, bytes, 1)?;
    Ok(bytes[header.len..].iter().map(|&l| u32::from(l)).collect())
}

/// Loads one split from its image and label files (each gzipped or not),
/// checking the SHA-256 of their decompressed content against
/// `checksums` (images, labels) when given, so that a copy recompressed by
/// someone else is still recognised.
pub fn load_split(
    name: &str,
    split: &str,
    images: &Path,
    labels: &Path,
    classes: &[&str],
    checksums: Option<(&str, &str)>,
) -> Result<Dataset> {
    let (image_bytes, label_bytes) = rayon::join(
        || read_verified(images, checksums.map(|c| c.0)),
        || read_verified(labels, checksums.map(|c| c.1)),
    );
    let (image_bytes, label_bytes) = (image_bytes?, label_bytes?);
    Dataset {
        name: name.to_string(),
        split: split.to_string(),
        images: parse_owned_images(images, image_bytes)?,
        labels: parse_labels(labels, &label_bytes)?,
        classes: classes.iter().map(|c| c.to_string()).collect(),
        coarse: None,
        origin: Origin::Files(vec![images.to_path_buf(), labels.to_path_buf()]),
        parts: Vec::new(),
    }
    .validate()
}

/// The decompressed bytes of `path`, whose SHA-256 must be `expected` when given.
fn read_verified(path: &Path, expected: Option<&str>) -> Result<Vec<u8>> {
    let bytes = read::read_maybe_gz(path, read::MAX_FILE_BYTES)?;
    if let Some(expected) = expected {
        let actual = read::sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(DataError::Checksum {
                path: PathBuf::from(path),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    Ok(bytes)
}

/// Like [`parse_images`], but reuses `bytes` as the image buffer: dropping the
/// header shifts the payload in place instead of copying it to a new buffer.
fn parse_owned_images(path: &Path, mut bytes: Vec<u8>) -> Result<Images> {
    let header = Header::parse(path, &bytes, 3)?;
    bytes.drain(..header.len);
    images_from(path, &header, bytes)
}

/// Wraps an image file's payload, whose size the header has already checked.
fn images_from(path: &Path, header: &Header, payload: Vec<u8>) -> Result<Images> {
    let shape = ImageShape {
        channels: 1,
        height: header.dims[1],
        width: header.dims[2],
    };
    Images::new(payload, shape).map_err(|e| DataError::corrupt(path, e.to_string()))
}

/// An IDX header whose dimensions agree with the payload that follows it.
struct Header {
    /// Bytes taken by the header itself: the payload starts here.
    len: usize,
    dims: Vec<usize>,
}

impl Header {
    /// Checks the magic number, the dimension count `ndims` and that the
    /// payload holds exactly the product of the dimensions in bytes.
    fn parse(path: &Path, bytes: &[u8], ndims: usize) -> Result<Header> {
        let corrupt = |reason: String| Err(DataError::corrupt(path, reason));
        let len = 4 + 4 * ndims;
        let Some(&[m0, m1, m2, m3]) = bytes.first_chunk::<4>() else {
            return corrupt(format!("{} bytes is too short for an IDX file", bytes.len()));
        };
        let expected_magic = (u32::from(UNSIGNED_BYTE) << 8) | ndims as u32;
        let magic = u32::from_be_bytes([m0, m1, m2, m3]);
        if magic != expected_magic {
            return corrupt(magic_mismatch(magic, expected_magic, ndims));
        }
        if bytes.len() < len {
            return corrupt(format!(
                "{} bytes is too short for an IDX header of {len} bytes",
                bytes.len()
            ));
        }
        let dims: Vec<usize> = bytes[4..len]
            .chunks_exact(4)
            .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
            .collect();
        if dims.contains(&0) {
            return corrupt(format!("dimensions {dims:?} include a zero"));
        }
        let payload = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if payload != Some(bytes.len() - len) {
            return corrupt(format!(
                "header says {dims:?} ({} bytes) but {} bytes follow it",
                payload.map_or_else(|| "too many".to_string(), |p| p.to_string()),
                bytes.len() - len
            ));
        }
        Ok(Header { len, dims })
    }
}

/// Explains which part of an unexpected magic number is wrong, since "wrong
/// magic" alone does not tell a label file given as images from a damaged file.
fn magic_mismatch(magic: u32, expected: u32, ndims: usize) -> String {
    let [zero1, zero2, kind, found_dims] = magic.to_be_bytes();
    let what = if zero1 != 0 || zero2 != 0 {
        "not an IDX file".to_string()
    } else if kind != UNSIGNED_BYTE {
        format!("data type 0x{kind:02x} instead of unsigned byte (0x08)")
    } else {
        format!("{found_dims} dimensions instead of {ndims}")
    };
    format!("magic number 0x{magic:08x} instead of 0x{expected:08x}: {what}")
}
