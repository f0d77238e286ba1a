//! Decoded splits kept on disk, so that a folder is decoded once.
//!
//! A cache file is named after the folder (its canonical path), the split and
//! the options, so a changed folder overwrites its old entry instead of
//! piling up another copy. Inside, a digest of everything the pixels depend
//! on decides whether the file may be used: the cache format version, the
//! options, the split, the class list and every file's relative path, size
//! and modification time, all of which a directory listing gives without
//! reading any image. A file modified without changing size or modification
//! time is therefore not noticed.
//!
//! Layout, little-endian:
//!
//! ```text
//! "TWSFOLDR"  magic, 8 bytes
//! u32         format version
//! u32         header length H
//! H bytes     JSON header: digest, classes, shape, n, skipped files
//! n × u32     labels
//! n × C×H×W   pixels, (N, C, H, W)
//! ```
//!
//! Every length is checked against the file's size before anything is
//! allocated, and any disagreement makes the load decode the folder again.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::scan::{Layout, SplitTree};
use super::{Filter, FolderOptions, SkipReason};
use crate::atomic;
use crate::dataset::ImageShape;
use crate::error::{DataError, Result};
use crate::read::hex;

const MAGIC: &[u8; 8] = b"TWSFOLDR";

/// Bump whenever decoding or conversion changes (including a decoder upgrade
/// that changes pixels), so that old caches are rebuilt rather than trusted.
const VERSION: u32 = 1;

/// Magic, version and header length.
const PREFIX_LEN: u64 = 16;

/// A JSON header longer than this is damage, not a list of skipped files.
const MAX_HEADER_LEN: u64 = 256 << 20;

/// A decoded split: what the cache stores and the decoder produces.
pub(super) struct Decoded {
    pub labels: Vec<u32>,
    /// (N, C, H, W).
    pub pixels: Vec<u8>,
    /// Path inside the split, and why it was left out.
    pub skipped: Vec<(String, SkipReason)>,
}

/// Which cache file belongs to a load, and the digest its content must carry.
pub(super) struct Key {
    name: String,
    digest: String,
}

impl Key {
    /// Stats nothing itself: everything comes from the listing in `tree`.
    pub(super) fn new(
        layout: &Layout,
        split: &str,
        opts: &FolderOptions,
        classes: &[String],
        tree: &SplitTree,
    ) -> Key {
        let root = fs::canonicalize(layout.root()).unwrap_or_else(|_| layout.root().to_path_buf());
        let mut hasher = Sha256::new();
        hasher.update(MAGIC);
        hasher.update(VERSION.to_le_bytes());
        field(&mut hasher, root.as_os_str().as_encoded_bytes());
        field(&mut hasher, split.as_bytes());
        for n in [
            opts.height as u64,
            opts.width as u64,
            opts.channels as u64,
            opts.max_pixels,
        ] {
            hasher.update(n.to_le_bytes());
        }
        // Only a non-default filter enters the key, so caches made before
        // the option existed stay valid.
        if opts.filter != Filter::Bilinear {
            field(&mut hasher, format!("{:?}", opts.filter).as_bytes());
        }
        let name = hex(&hasher.clone().finalize())[..32].to_string();
        hash_contents(&mut hasher, classes, tree);
        Key {
            name,
            digest: hex(&hasher.finalize()),
        }
    }

    /// The cache file for this load inside `dir`.
    pub(super) fn path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.bin", self.name))
    }
}

/// Feeds the class list and every file's identity into `hasher`.
fn hash_contents(hasher: &mut Sha256, classes: &[String], tree: &SplitTree) {
    hasher.update((classes.len() as u64).to_le_bytes());
    for class in classes {
        field(hasher, class.as_bytes());
    }
    for file in tree.classes.iter().flat_map(|c| &c.files) {
        let rel = file.path.strip_prefix(&tree.dir).unwrap_or(&file.path);
        field(hasher, rel.as_os_str().as_encoded_bytes());
        hasher.update(file.len.to_le_bytes());
        hasher.update(nanos_since_epoch(file.modified).to_le_bytes());
    }
}

/// Length-prefixed, so that no two different sequences hash alike.
fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// A modification time as one number; files the system gives none for all
/// share one value, so only their size and name tell changes apart.
fn nanos_since_epoch(time: Option<SystemTime>) -> i128 {
    match time.map(|t| t.duration_since(UNIX_EPOCH)) {
        Some(Ok(after)) => after.as_nanos() as i128,
        Some(Err(before)) => -(before.duration().as_nanos() as i128),
        None => i128::MIN,
    }
}

/// The JSON part of a cache file.
#[derive(Serialize, Deserialize)]
struct Header {
    digest: String,
    classes: Vec<String>,
    shape: (usize, usize, usize),
    n: u64,
    skipped: Vec<(String, SkipReason)>,
}

/// The decoded split in `path`, if it is there, intact, and made for `key`;
/// anything else is logged at debug level and answered with `None`.
pub(super) fn read(path: &Path, key: &Key, shape: ImageShape, classes: &[String]) -> Option<Decoded> {
    match try_read(path, key, shape, classes) {
        Ok(decoded) => {
            tracing::debug!("{}: decoded images from the cache", path.display());
            Some(decoded)
        }
        Err(why) => {
            tracing::debug!("{}: cache not used ({why}); decoding", path.display());
            None
        }
    }
}

/// [`read`], saying why the file cannot be used.
fn try_read(path: &Path, key: &Key, shape: ImageShape, classes: &[String]) -> Result<Decoded, String> {
    let mut file = crate::read::open_file(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let header_len = read_prefix(&mut file, file_len)?;
    let header: Header = serde_json::from_slice(&read_bytes(&mut file, header_len)?)
        .map_err(|e| format!("bad header: {e}"))?;
    if header.digest != key.digest {
        return Err("made from other files or options".into());
    }
    if header.shape != (shape.channels, shape.height, shape.width) || header.classes != classes {
        return Err("header disagrees with its digest".into());
    }
    let expected = payload_len(header.n, shape)
        .and_then(|payload| payload.checked_add(PREFIX_LEN + header_len))
        .ok_or("absurd image count")?;
    if expected != file_len {
        return Err(format!("{file_len} bytes where {expected} were expected"));
    }
    let labels = read_labels(&mut file, header.n, classes.len())?;
    let pixels = read_bytes(&mut file, header.n * shape.len() as u64)?;
    Ok(Decoded {
        labels,
        pixels,
        skipped: header.skipped,
    })
}

/// Checks magic and version and returns the header length.
fn read_prefix(file: &mut File, file_len: u64) -> Result<u64, String> {
    let mut prefix = [0; PREFIX_LEN as usize];
    file.read_exact(&mut prefix).map_err(|e| e.to_string())?;
    if &prefix[..8] != MAGIC {
        return Err("not a twinsim cache file".into());
    }
    let version = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    if version != VERSION {
        return Err(format!("cache format {version}, not {VERSION}"));
    }
    let header_len = u64::from(u32::from_le_bytes([
        prefix[12], prefix[13], prefix[14], prefix[15],
    ]));
    if header_len > MAX_HEADER_LEN || PREFIX_LEN + header_len > file_len {
        return Err(format!(
            "header length {header_len} impossible for the file's size"
        ));
    }
    Ok(header_len)
}

/// Bytes of labels and pixels for `n` images, if that fits in a `u64`.
fn payload_len(n: u64, shape: ImageShape) -> Option<u64> {
    n.checked_mul(4 + shape.len() as u64)
}

/// `n` labels, each checked to name one of `classes` classes.
fn read_labels(file: &mut File, n: u64, classes: usize) -> Result<Vec<u32>, String> {
    let bytes = read_bytes(file, n * 4)?;
    let labels: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    match labels.iter().find(|&&l| l as usize >= classes) {
        Some(bad) => Err(format!("label {bad} out of range")),
        None => Ok(labels),
    }
}

/// Exactly `len` bytes; callers have checked `len` against the file's size.
fn read_bytes(file: &mut File, len: u64) -> Result<Vec<u8>, String> {
    let len = usize::try_from(len).map_err(|_| "too large for this machine".to_string())?;
    let mut bytes = vec![0; len];
    file.read_exact(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Stores `decoded` as `path`, atomically, so that a reader (or a crash)
/// sees either the old file or the whole new one; failing only costs the next
/// load a decode, so it is a warning, not an error.
pub(super) fn write(path: &Path, key: &Key, decoded: &Decoded, shape: ImageShape, classes: &[String]) {
    let written = path
        .parent()
        .map_or(Ok(()), |dir| {
            fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))
        })
        .and_then(|()| atomic::write_with(path, |tmp| write_file(tmp, key, decoded, shape, classes)));
    if let Err(e) = written {
        tracing::warn!(
            "could not write the cache file {}: {e}; the next load decodes again",
            path.display()
        );
    }
}

/// The whole cache file.
fn write_file(tmp: &Path, key: &Key, decoded: &Decoded, shape: ImageShape, classes: &[String]) -> Result<()> {
    let header = serde_json::to_vec(&Header {
        digest: key.digest.clone(),
        classes: classes.to_vec(),
        shape: (shape.channels, shape.height, shape.width),
        n: decoded.labels.len() as u64,
        skipped: decoded.skipped.clone(),
    })
    .map_err(|e| DataError::io(tmp, e.into()))?;
    let header_len =
        u32::try_from(header.len()).map_err(|_| DataError::corrupt(tmp, "cache header too long"))?;
    let labels: Vec<u8> = decoded.labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    let write = || -> io::Result<()> {
        let mut out = BufWriter::new(File::create(tmp)?);
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&header_len.to_le_bytes())?;
        out.write_all(&header)?;
        out.write_all(&labels)?;
        out.write_all(&decoded.pixels)?;
        out.flush()
    };
    write().map_err(|e| DataError::io(tmp, e))
}
