//! Turning files into (C, H, W) pixels, in parallel, refusing what is not a
//! usable image instead of failing the whole load.

use std::io::{BufRead, Cursor, Seek};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use image::error::{ImageFormatHint, UnsupportedErrorKind};
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageBuffer, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, Pixel};
use rayon::prelude::*;

use super::cache::Decoded;
use super::jpeg;
use super::scan::{FileEntry, SplitTree};
use super::{Filter, FolderOptions, SkipReason};
use crate::error::{DataError, Result};
use crate::read::{self, MAX_FILE_BYTES};

/// Bytes per pixel of the widest colour type a decoder may produce (RGBA,
/// 32-bit float), to turn the pixel limit into an allocation limit.
const MAX_BYTES_PER_PIXEL: u64 = 16;

/// The longest side an image may have, in pixels: JPEG's own limit, and far
/// beyond any photograph. A 39,000,000 × 1 PNG is 38 KB and within the
/// pixel limit; a side limit refuses it from its header.
pub const MAX_SIDE: u32 = 65_535;

/// Bytes per value of the resampler's intermediate image: `imageops::resize`
/// keeps 4 channels of `f32` between its two passes.
const RESIZE_BYTES_PER_PIXEL: u64 = 16;

/// Decodes every file of the classes in `classes` (sorted), labelling each
/// with its class's index there.
pub(super) fn split(tree: &SplitTree, classes: &[String], opts: &FolderOptions) -> Result<Decoded> {
    let files = tree.labelled(classes);
    let results: Vec<_> = files.par_iter().map(|(f, _)| image(f, opts)).collect();
    let usable = results.iter().filter(|r| r.is_ok()).count();
    let bytes = usable.checked_mul(opts.shape().len()).ok_or_else(|| {
        DataError::invalid(
            format!("{usable} images of {} do not fit in memory", opts.shape()),
            "ask for a smaller image size",
        )
    })?;
    let mut decoded = Decoded {
        labels: Vec::with_capacity(usable),
        pixels: Vec::with_capacity(bytes),
        skipped: Vec::new(),
    };
    for ((file, label), result) in files.iter().zip(results) {
        match result {
            Ok(pixels) => {
                decoded.labels.push(*label);
                decoded.pixels.extend_from_slice(&pixels);
            }
            Err(reason) => decoded.skipped.push((relative(tree, file), reason)),
        }
    }
    Ok(decoded)
}

/// `file`'s path inside its split, as the cache stores it.
fn relative(tree: &SplitTree, file: &FileEntry) -> String {
    let rel = file.path.strip_prefix(&tree.dir).unwrap_or(&file.path);
    rel.to_string_lossy().into_owned()
}

/// One file as (C, H, W) pixels in the requested size and colour.
fn image(file: &FileEntry, opts: &FolderOptions) -> Result<Vec<u8>, SkipReason> {
    decode_file(&file.path, opts)
}

/// The image file at `path` as (C, H, W) pixels converted as `opts` asks
/// (see the [module documentation](super) for the conversion), or why it
/// cannot be used. Only a regular file is read (not `/dev/zero`, not a
/// FIFO), and at most [`MAX_FILE_BYTES`] of it.
pub fn decode_file(path: &Path, opts: &FolderOptions) -> Result<Vec<u8>, SkipReason> {
    read_checked(path).and_then(|bytes| decode_bytes(&bytes, opts))
}

/// The encoded image in `bytes` (any supported format, identified by its
/// content) as (C, H, W) pixels converted as `opts` asks, or why it cannot be
/// used: empty, not an image, truncated, damaged, or declaring more than
/// `opts.max_pixels` pixels (refused from its header, before decoding).
pub fn decode_bytes(bytes: &[u8], opts: &FolderOptions) -> Result<Vec<u8>, SkipReason> {
    if bytes.is_empty() {
        return Err(SkipReason::Empty);
    }
    // A decoder bug triggered by one hostile file must not abort a load of
    // thousands (or a server); the file is reported like any other damaged one.
    catch_unwind(AssertUnwindSafe(|| {
        open(bytes, opts.max_pixels).map(|img| convert(&img, opts))
    }))
    .unwrap_or_else(|_| Err(SkipReason::Damaged("the decoder crashed on it".into())))
}

/// The bytes of the regular file `path`, refused when over [`MAX_FILE_BYTES`].
fn read_checked(path: &Path) -> Result<Vec<u8>, SkipReason> {
    read::read_file(path, MAX_FILE_BYTES).map_err(|e| match e {
        DataError::Refused { .. } => SkipReason::TooLarge(format!("over the {MAX_FILE_BYTES}-byte limit")),
        DataError::Io { source, .. } => unreadable(source),
        // A skip reason is printed beside its path already.
        other => SkipReason::Unreadable(read::without_path(&other, path)),
    })
}

/// Decodes `bytes`, identified by their content, after checking from the
/// header alone that the image declares no more than `max_pixels` pixels.
fn open(bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, SkipReason> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(unreadable)?;
    match reader.format() {
        None => Err(SkipReason::NotAnImage),
        // The JPEG decoder does not report a cut-off file itself.
        Some(ImageFormat::Jpeg) if !jpeg::is_complete(bytes) => Err(SkipReason::Damaged(
            "truncated: the JPEG data ends before its end-of-image marker".into(),
        )),
        Some(_) => decode(reader, max_pixels),
    }
}

/// Decodes with `reader`'s format, refusing oversized images from their
/// declared dimensions before the pixel buffer is allocated.
fn decode<R: BufRead + Seek>(
    mut reader: ImageReader<R>,
    max_pixels: u64,
) -> Result<DynamicImage, SkipReason> {
    reader.limits(limits(max_pixels));
    let decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(SkipReason::TooLarge(format!(
            "declares {width}x{height} pixels, a side over the limit of {MAX_SIDE}"
        )));
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(SkipReason::TooLarge(format!(
            "declares {width}x{height} pixels, over the limit of {max_pixels}"
        )));
    }
    DynamicImage::from_decoder(decoder).map_err(classify)
}

/// A file the operating system would not let us read.
fn unreadable(e: std::io::Error) -> SkipReason {
    SkipReason::Unreadable(e.to_string())
}

/// Decoder limits matching the pixel limit, so that the allocations the
/// decoder makes while reading its header are bounded too.
fn limits(max_pixels: u64) -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL));
    limits
}

/// What a decoder's error means for the user.
fn classify(e: ImageError) -> SkipReason {
    match e {
        ImageError::Unsupported(u) => match u.kind() {
            UnsupportedErrorKind::Format(ImageFormatHint::Unknown) => SkipReason::NotAnImage,
            _ => SkipReason::Unsupported(u.to_string()),
        },
        ImageError::Limits(l) => SkipReason::TooLarge(l.to_string()),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            SkipReason::Damaged("truncated".into())
        }
        other => SkipReason::Damaged(other.to_string()),
    }
}

/// `img` in the requested colour and size, as (C, H, W).
fn convert(img: &DynamicImage, opts: &FolderOptions) -> Vec<u8> {
    match opts.channels {
        1 => planes(img.to_luma8(), opts),
        _ => planes(img.to_rgb8(), opts),
    }
}

/// Resizes `img` to the requested size (unless it is there already) and
/// separates its channels into planes.
fn planes<P: Pixel<Subpixel = u8> + 'static>(img: ImageBuffer<P, Vec<u8>>, opts: &FolderOptions) -> Vec<u8> {
    let (width, height) = (opts.width as u32, opts.height as u32);
    let img = if img.dimensions() == (width, height) {
        img
    } else {
        resize(&img, width, height, opts.filter)
    };
    to_chw(img.into_raw(), usize::from(P::CHANNEL_COUNT))
}

/// `img` resampled to `width` × `height` with `filter`, in whichever pass
/// order keeps the resampler's intermediate image smaller.
///
/// `imageops::resize` resamples the columns first, into an intermediate of
/// the source's width × the target's height in `f32` RGBA: 17 GB for a
/// 39,000,000 × 1 image going to 32 × 32. When that is the larger order,
/// the image is transposed, resampled the other way round, and transposed
/// back, so the intermediate is the target's width × the source's height.
/// The intermediate is then at most √(source pixels × target pixels) × 16
/// bytes (128 MB for a 64-megapixel image to 1024 × 1024; 4 MB to 32 × 32).
/// Ordinary images, whose intermediate is the smaller one already, keep
/// the exact conversion they were trained with.
fn resize<P: Pixel<Subpixel = u8> + 'static>(
    img: &ImageBuffer<P, Vec<u8>>,
    width: u32,
    height: u32,
    filter: Filter,
) -> ImageBuffer<P, Vec<u8>> {
    let filter = match filter {
        Filter::Bilinear => FilterType::Triangle,
        Filter::Bicubic => FilterType::CatmullRom,
    };
    let (src_w, src_h) = img.dimensions();
    let columns_first = u64::from(src_w) * u64::from(height) * RESIZE_BYTES_PER_PIXEL;
    let rows_first = u64::from(width) * u64::from(src_h) * RESIZE_BYTES_PER_PIXEL;
    if columns_first <= rows_first {
        imageops::resize(img, width, height, filter)
    } else {
        let transposed = imageops::rotate90(img);
        imageops::rotate270(&imageops::resize(&transposed, height, width, filter))
    }
}

/// Transposes interleaved (H, W, C) bytes to planar (C, H, W).
fn to_chw(hwc: Vec<u8>, channels: usize) -> Vec<u8> {
    if channels == 1 {
        return hwc;
    }
    let plane = hwc.len() / channels;
    let mut chw = vec![0; hwc.len()];
    for (i, pixel) in hwc.chunks_exact(channels).enumerate() {
        for (c, &value) in pixel.iter().enumerate() {
            chw[c * plane + i] = value;
        }
    }
    chw
}
