//! Image folders: `root/<class>/<image>`, or `root/train/<class>/<image>` and
//! `root/test/<class>/<image>`, decoded into one (N, C, H, W) buffer.
//!
//! # Conversion
//!
//! Every image goes through the same steps, so that a folder yields the same
//! pixels whichever program wrote its files:
//!
//! 1. The format is detected from the file's content, never its extension
//!    (PNG, JPEG, BMP, WebP, GIF, TIFF; an animated GIF gives its first frame).
//!    EXIF orientation is not applied, as in torchvision's `ImageFolder`.
//! 2. Colour, to 8 bits per channel. With 3 channels, RGB as PIL's
//!    `convert("RGB")` gives it: alpha is dropped (not composited over a
//!    background), palettes are expanded, 16-bit values are scaled to 8 bits
//!    (v / 257, rounded), grey is replicated, and CMYK JPEGs are converted by
//!    the decoder. With 1 channel, luma from [`image::DynamicImage::to_luma8`]:
//!    Rec. 709 weights, where PIL's `convert("L")` uses Rec. 601, so colour
//!    images may differ from PIL by a few levels.
//! 3. Size: stretched to exactly height × width (the aspect ratio is not kept)
//!    with a triangle filter whose support widens when downscaling, so small
//!    targets are antialiased instead of aliased. An image already at the
//!    target size is not resampled.
//! 4. Layout: the (H, W, C) pixels are transposed to (C, H, W).
//!
//! # Classes and order
//!
//! Class names are the sorted union of the class folders, over all splits,
//! that hold at least one file not hidden (name not starting with `.`), so
//! that a label means the same class in train and test. Files are taken in
//! sorted name order, so a folder always gives the same dataset. Images must
//! sit directly in their class folder; hidden class folders are ignored.
//!
//! # Files that cannot be used
//!
//! Non-images, empty, truncated or damaged files, formats this build cannot
//! decode, and images over [`FolderOptions::max_pixels`] (refused from their
//! header, before any pixel buffer is allocated) are left out of the dataset
//! and named in one warning per load; empty class folders get a warning of
//! their own. A split with no usable image at all is an error.
//!
//! # Cache
//!
//! Decoding a large folder takes seconds, so a decoded split is kept as one
//! file in [`FolderOptions::cache_dir`] and reused while nothing it depends on
//! changed: the options, the split, the class list, and every file's relative
//! path, size and modification time (a directory listing gives them without
//! opening any image). A damaged cache file is rebuilt, never trusted.

mod cache;
mod decode;
mod jpeg;
mod scan;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, ImageShape, Images, Origin};
use crate::error::{DataError, Result};
pub use decode::{decode_bytes, decode_file, MAX_SIDE};
pub use scan::walk;
use scan::{Layout, SplitTree};

/// How many skipped files one warning names before it only counts the rest.
const NAMED_IN_WARNING: usize = 10;

/// What a folder's images are converted to, and where decoded splits are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderOptions {
    /// Output height; every image is stretched to it.
    pub height: usize,
    /// Output width; every image is stretched to it.
    pub width: usize,
    /// 1 (luma) or 3 (RGB).
    pub channels: usize,
    /// Folder for decoded splits (outside the image folder, or it would
    /// become a class); `None` decodes on every load.
    pub cache_dir: Option<PathBuf>,
    /// Largest width × height an image may declare; larger ones are refused
    /// before decoding, so a few-byte "decompression bomb" cannot exhaust memory.
    pub max_pixels: u64,
    /// How images are resized.
    pub filter: Filter,
}

/// The resampling filter that resizes images; both smooth when shrinking
/// (their support widens with the scale), so neither aliases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Filter {
    /// Bilinear (a triangle): what training data has always been resized with.
    #[default]
    Bilinear,
    /// Bicubic (Catmull-Rom): sharper, what FID's Inception input calls for.
    Bicubic,
}

impl Default for FolderOptions {
    /// CIFAR's 32×32 RGB, cached in the user's cache folder, 64 Mpx per image.
    fn default() -> Self {
        FolderOptions {
            height: 32,
            width: 32,
            channels: 3,
            cache_dir: dirs::cache_dir().map(|d| d.join("twinsim").join("folders")),
            max_pixels: 64_000_000,
            filter: Filter::Bilinear,
        }
    }
}

impl FolderOptions {
    /// The shape of every output image.
    pub fn shape(&self) -> ImageShape {
        ImageShape {
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }

    /// Refuses sizes the decoder cannot produce, before any file is read.
    fn validate(&self) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            return Err(DataError::invalid(
                format!("{} channels requested for an image folder", self.channels),
                "use 1 channel (grey) or 3 (RGB)",
            ));
        }
        let side = 1..=usize::from(u16::MAX);
        if !side.contains(&self.height) || !side.contains(&self.width) {
            return Err(DataError::invalid(
                format!(
                    "image size {}x{} requested for an image folder",
                    self.height, self.width
                ),
                "use a height and width between 1 and 65535",
            ));
        }
        if self.max_pixels == 0 {
            return Err(DataError::invalid(
                "max_pixels is 0, which refuses every image",
                "leave it at its default (64 Mpx) or raise it",
            ));
        }
        Ok(())
    }
}

/// A file left out of a dataset, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The file (or folder) as found under the split's folder.
    pub path: PathBuf,
    pub reason: SkipReason,
}

/// Why a file was left out of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The file holds zero bytes.
    Empty,
    /// The content starts like no image format known to the decoder.
    NotAnImage,
    /// A known format (or variant of one) this build cannot decode.
    Unsupported(String),
    /// Truncated, or damaged in a way the decoder reported.
    Damaged(String),
    /// Over [`FolderOptions::max_pixels`] or another decoder limit.
    TooLarge(String),
    /// The operating system refused to list, stat or read it.
    Unreadable(String),
    /// Not where an image belongs: a folder inside a class folder, or a class
    /// folder whose name is not UTF-8.
    Misplaced(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Empty => write!(f, "empty file"),
            SkipReason::NotAnImage => write!(f, "not an image"),
            SkipReason::Unsupported(why) => write!(f, "unsupported: {why}"),
            SkipReason::Damaged(why) => write!(f, "damaged: {why}"),
            SkipReason::TooLarge(why) => write!(f, "refused: {why}"),
            SkipReason::Unreadable(why) => write!(f, "unreadable: {why}"),
            SkipReason::Misplaced(why) => write!(f, "{why}"),
        }
    }
}

/// A loaded split together with what the load found wrong, for callers that
/// report more than the log does.
#[derive(Clone, Debug)]
pub struct FolderLoad {
    /// What [`load`] returns.
    pub dataset: Dataset,
    /// Files left out, in path order.
    pub skipped: Vec<Skipped>,
    /// Class folders of this split holding no file.
    pub empty_classes: Vec<String>,
    /// True when the pixels came from the cache instead of the decoder.
    pub from_cache: bool,
}

/// The splits `root` offers: those of `train` and `test` that exist, or just
/// `train` for a flat folder (which is then the train split).
pub fn splits(root: &Path) -> Result<Vec<String>> {
    Ok(Layout::of(root)?.names())
}

/// The files of one split of an image folder, before any is decoded.
#[derive(Clone, Debug)]
pub struct Listing {
    /// Each file and its label (an index into `classes`), in load order.
    pub files: Vec<(PathBuf, u32)>,
    /// Class names, as [`load`] gives them.
    pub classes: Vec<String>,
    /// Entries refused while listing (folders inside class folders, special files).
    pub skipped: Vec<Skipped>,
}

/// The files of split `split` of the folder `root` with their labels, by
/// the rules [`load`] follows, for callers that decode the files themselves
/// and need to know which file each image came from.
pub fn list(root: &Path, split: &str) -> Result<Listing> {
    let layout = Layout::of(root)?;
    let classes = layout.classes()?;
    let tree = scan::scan(&layout.dir(split)?)?;
    let files = tree
        .labelled(&classes)
        .into_iter()
        .map(|(f, label)| (f.path.clone(), label))
        .collect();
    Ok(Listing {
        files,
        classes,
        skipped: tree.rejected,
    })
}

/// Split `split` of the image folder `root`, converted as `opts` asks; see the
/// [module documentation](self) for the conversion and what is skipped.
pub fn load(root: &Path, split: &str, opts: &FolderOptions) -> Result<Dataset> {
    load_report(root, split, opts).map(|l| l.dataset)
}

/// [`load`], also returning the skipped files and empty class folders, and
/// whether the cache answered.
pub fn load_report(root: &Path, split: &str, opts: &FolderOptions) -> Result<FolderLoad> {
    opts.validate()?;
    let layout = Layout::of(root)?;
    let dir = layout.dir(split)?;
    let classes = layout.classes()?;
    let tree = scan::scan(&dir)?;
    let key = cache::Key::new(&layout, split, opts, &classes, &tree);
    let (decoded, from_cache) = match cached(&key, opts, &classes) {
        Some(d) => (d, true),
        None => (decode_and_store(&key, opts, &classes, &tree)?, false),
    };
    finish(tree, split, opts, classes, decoded, from_cache)
}

/// The decoded split, when the cache holds it for exactly this key.
fn cached(key: &cache::Key, opts: &FolderOptions, classes: &[String]) -> Option<cache::Decoded> {
    let dir = opts.cache_dir.as_deref()?;
    cache::read(&key.path(dir), key, opts.shape(), classes)
}

/// Decodes the split and, when a cache folder is set, keeps the result there.
fn decode_and_store(
    key: &cache::Key,
    opts: &FolderOptions,
    classes: &[String],
    tree: &SplitTree,
) -> Result<cache::Decoded> {
    let started = Instant::now();
    let decoded = decode::split(tree, classes, opts)?;
    tracing::info!(
        "decoded {} images of {} in {:.1} s",
        decoded.labels.len(),
        tree.dir.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(dir) = &opts.cache_dir {
        cache::write(&key.path(dir), key, &decoded, opts.shape(), classes);
    }
    Ok(decoded)
}

/// Warns about what was left out and wraps the pixels in a [`Dataset`].
fn finish(
    tree: SplitTree,
    split: &str,
    opts: &FolderOptions,
    classes: Vec<String>,
    decoded: cache::Decoded,
    from_cache: bool,
) -> Result<FolderLoad> {
    let cache::Decoded {
        labels,
        pixels,
        skipped: not_decoded,
    } = decoded;
    let empty_classes = tree.empty_classes();
    let mut skipped = tree.rejected;
    skipped.extend(not_decoded.into_iter().map(|(rel, reason)| Skipped {
        path: tree.dir.join(rel),
        reason,
    }));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    warn_skipped(&tree.dir, &skipped, labels.len() + skipped.len());
    warn_empty(&tree.dir, &empty_classes);
    if labels.is_empty() {
        return Err(no_images(&tree.dir, skipped.len()));
    }
    let dataset = Dataset {
        name: "folder".into(),
        split: split.into(),
        images: Images::new(pixels, opts.shape())?,
        labels,
        classes,
        coarse: None,
        origin: Origin::Files(vec![tree.dir]),
        parts: Vec::new(),
    }
    .validate()?;
    Ok(FolderLoad {
        dataset,
        skipped,
        empty_classes,
        from_cache,
    })
}

/// One warning naming the first few skipped files, so a folder of thousands
/// of stray files does not flood the log.
fn warn_skipped(dir: &Path, skipped: &[Skipped], total: usize) {
    if skipped.is_empty() {
        return;
    }
    let mut named: Vec<String> = skipped
        .iter()
        .take(NAMED_IN_WARNING)
        .map(|s| {
            format!(
                "{} ({})",
                s.path.strip_prefix(dir).unwrap_or(&s.path).display(),
                s.reason
            )
        })
        .collect();
    if skipped.len() > NAMED_IN_WARNING {
        named.push(format!("and {} more", skipped.len() - NAMED_IN_WARNING));
    }
    tracing::warn!(
        "{}: skipped {} of {total} files: {}",
        dir.display(),
        skipped.len(),
        named.join(", ")
    );
}

/// Warns about class folders holding nothing, which are usually a mistake
/// (images put in the wrong folder) rather than an intent.
fn warn_empty(dir: &Path, empty: &[String]) {
    if !empty.is_empty() {
        tracing::warn!("{}: empty class folders: {}", dir.display(), empty.join(", "));
    }
}

/// The error for a split with nothing usable in it.
fn no_images(dir: &Path, skipped: usize) -> DataError {
    let why = if skipped > 0 {
        format!("; all {skipped} files were skipped (see the warning above)")
    } else {
        String::new()
    };
    DataError::invalid(
        format!("{}: no usable image{why}", dir.display()),
        "an image folder holds one folder per class with the images inside: DIR/<class>/<image>, \
         or DIR/train/<class>/<image> and DIR/test/<class>/<image>",
    )
}
