//! Reading files whole, gzip or not, with a cap on how much they may expand to.
//!
//! Every file twinsim reads is opened through [`open_file`], which refuses
//! anything but a regular file before reading a byte: `/dev/zero` would
//! otherwise be read until memory runs out (its reported length is 0), and
//! a FIFO would block the command forever.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// Refuse to hold more than this many bytes of one file in memory (CIFAR-100's
/// python archive, the largest payload twinsim reads, expands to ~180 MB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Refuse to read more than this many bytes of a small text file: a model
/// card, a run's configuration, a TOML config. The largest twinsim writes
/// (a card with CIFAR-100's class names) is a few kilobytes.
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// The bytes of `path`, decompressed when they start with the gzip magic
/// number; refuses files whose (decompressed) size exceeds `max` bytes.
pub fn read_maybe_gz(path: &Path, max: u64) -> Result<Vec<u8>> {
    let raw = read_file(path, max)?;
    if is_gzip(&raw) {
        read_capped(path, MultiGzDecoder::new(raw.as_slice()), max)
    } else {
        Ok(raw)
    }
}

/// Opens `path` for reading, refusing (with [`DataError::NotAFile`]) a
/// folder, FIFO, socket or device. The open itself never blocks: it is
/// non-blocking, which a FIFO with no writer would otherwise do, and
/// changes nothing for the regular file that passes the check.
pub fn open_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| DataError::io(path, e))?;
    let meta = file.metadata().map_err(|e| DataError::io(path, e))?;
    match special_kind(&meta) {
        None => Ok(file),
        Some(kind) => Err(DataError::NotAFile {
            path: path.to_path_buf(),
            kind,
        }),
    }
}

/// The whole of the regular file `path`, refused when it holds more than
/// `max` bytes (checked as it is read, so a file that grows is caught too).
pub fn read_file(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = open_file(path)?;
    read_capped(path, file, max)
}

/// The whole of the regular file `path` as UTF-8 text, at most `max` bytes.
pub fn read_text(path: &Path, max: u64) -> Result<String> {
    String::from_utf8(read_file(path, max)?)
        .map_err(|e| DataError::corrupt(path, format!("not UTF-8 text ({e})")))
}

/// `e`'s message without the leading "PATH: " that data errors carry, for
/// a message that names `path` itself.
pub fn without_path(e: &DataError, path: &Path) -> String {
    let message = e.to_string();
    let prefix = format!("{}: ", path.display());
    message.strip_prefix(&prefix).unwrap_or(&message).to_string()
}

/// What a non-regular file is, for messages; `None` for a regular file.
fn special_kind(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a folder")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else {
        Some("not a regular file")
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
