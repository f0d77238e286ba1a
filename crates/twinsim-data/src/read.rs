//! Reading files whole, gzip or not, with a cap on how much they may expand to.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// Refuse to hold more than this many bytes of one file in memory (CIFAR-100's
/// python archive, the largest payload twinsim reads, expands to ~180 MB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// The bytes of `path`, decompressed when they start with the gzip magic
/// number; refuses files whose (decompressed) size exceeds `max` bytes.
pub fn read_maybe_gz(path: &Path, max: u64) -> Result<Vec<u8>> {
    let raw = read_capped(
        path,
        std::fs::File::open(path).map_err(|e| DataError::io(path, e))?,
        max,
    )?;
    if is_gzip(&raw) {
        read_capped(path, MultiGzDecoder::new(raw.as_slice()), max)
    } else {
        Ok(raw)
    }
}

/// True when `bytes` start with gzip's magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Reads all of `reader` (attributed to `path` in errors), failing once more
/// than `max` bytes arrive. A truncated gzip stream is reported as corrupt.
pub fn read_capped(path: &Path, reader: impl Read, max: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    reader
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::InvalidInput => {
                DataError::corrupt(path, format!("truncated or damaged compressed data ({e})"))
            }
            _ => DataError::io(path, e),
        })?;
    if out.len() as u64 > max {
        return Err(DataError::refused(
            path,
            format!("content larger than the {max}-byte limit"),
        ));
    }
    Ok(out)
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
