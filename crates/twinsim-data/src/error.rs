//! One error type for everything that reads, finds or fetches data.
//!
//! Every variant names the file (or URL) at fault, and [`DataError::hint`]
//! says what the user can do about it: the CLI prints both.

use std::path::PathBuf;

/// Shorthand for results whose error is a [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// What went wrong while reading, finding or fetching a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused a read or write.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file exists but its content is not what its format promises
    /// (truncated, wrong magic number, header disagreeing with the payload...).
    #[error("{}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// The file's SHA-256 is not the one the dataset is published with.
    #[error("{}: checksum mismatch (expected sha256 {expected}, got {actual})", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// The file asks for something twinsim refuses to do: an archive member
    /// leaving the target, a pickle global outside the allow-list, an image
    /// larger than the decoder limits.
    #[error("{}: refused: {reason}", path.display())]
    Refused { path: PathBuf, reason: String },
    /// A path that must be a regular file is a folder, a FIFO, a socket or a
    /// device (`/dev/zero` would be read without end, a FIFO would block).
    #[error("{}: is {kind}, not a regular file", path.display())]
    NotAFile { path: PathBuf, kind: &'static str },
    /// A single image (a query, one side of a pair) that cannot be used.
    #[error("{}: {reason}", path.display())]
    BadImage {
        path: PathBuf,
        reason: crate::folder::SkipReason,
    },
    /// The dataset's files are in none of the places searched and could not be
    /// downloaded.
    #[error("dataset '{dataset}' not found")]
    NotFound {
        dataset: String,
        searched: Vec<PathBuf>,
        files: Vec<String>,
        urls: Vec<String>,
        download_errors: Vec<String>,
    },
    /// A download failed (every mirror is reported separately in `NotFound`).
    #[error("download of {url} failed: {reason}")]
    Download { url: String, reason: String },
    /// The request itself is wrong: an unknown dataset, a malformed split or
    /// class list, an empty selection.
    #[error("{reason}")]
    Invalid { reason: String, hint: String },
}

impl DataError {
    /// What the user can do to fix the problem, when twinsim knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            DataError::Io { source, .. } => io_hint(source),
            DataError::Corrupt { path, .. } | DataError::Checksum { path, .. } => Some(if crate::catalog::is_published(path) {
                format!(
                    "the file is damaged or not the published one: delete {} and run again to download a fresh copy",
                    path.display()
                )
            } else {
                "the file is damaged or not in the format expected: pass a complete file of the right kind".into()
            }),
            DataError::NotAFile { .. } => {
                Some("pass the path of a regular file (folders, FIFOs and devices are not read)".into())
            }
            DataError::Refused { .. } => Some(
                "this file is not one twinsim can read safely; obtain the dataset from its official source".into(),
            ),
            DataError::NotFound {
                searched,
                files,
                urls,
                download_errors,
                ..
            } => {
                let mut s = String::from("searched:\n");
                for p in searched {
                    s += &format!("    {}\n", p.display());
                }
                s += "  for the files:\n";
                for f in files {
                    s += &format!("    {f}\n");
                }
                if !urls.is_empty() {
                    s += "  which are published at:\n";
                    for u in urls {
                        s += &format!("    {u}\n");
                    }
                }
                for e in download_errors {
                    s += &format!("  download failed: {e}\n");
                }
                s += "  put the files in one of those folders, or pass --data-dir DIR (or set TWINSIM_DATA)";
                Some(s)
            }
            DataError::BadImage { reason, .. } => Some(match reason {
                crate::folder::SkipReason::TooLarge(_) => format!(
                    "resize the image: twinsim reads images of at most 64 megapixels and {} pixels a side",
                    crate::folder::MAX_SIDE
                ),
                crate::folder::SkipReason::Unreadable(_) => {
                    "pass the path of an image file you may read (not a folder, FIFO or device)".into()
                }
                _ => "pass a PNG, JPEG, BMP, WebP, GIF or TIFF image; any size and colour is converted to the model's".into(),
            }),
            DataError::Download { .. } => {
                Some("check the network, or download the file by hand and pass --data-dir".into())
            }
            DataError::Invalid { hint, .. } => Some(hint.clone()),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// A format violation in `path`.
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Content of `path` that twinsim refuses to process.
    pub fn refused(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Refused {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The image at `path` (a file, or a name for uploaded bytes) cannot be used.
    pub fn bad_image(path: impl Into<PathBuf>, reason: crate::folder::SkipReason) -> Self {
        DataError::BadImage {
            path: path.into(),
            reason,
        }
    }

    /// A mistake in what the user asked for.
    pub fn invalid(reason: impl Into<String>, hint: impl Into<String>) -> Self {
        DataError::Invalid {
            reason: reason.into(),
            hint: hint.into(),
        }
    }
}

/// What to do about the operating system's refusals that a user can fix.
fn io_hint(e: &std::io::Error) -> Option<String> {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => Some("check the path: no such file or folder".into()),
        ErrorKind::PermissionDenied => {
            Some("check the file's permissions, or use a path you may read and write".into())
        }
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            Some("the disk is full: free some space, or write somewhere else".into())
        }
        ErrorKind::ReadOnlyFilesystem => Some("the disk is read-only: write somewhere else".into()),
        ErrorKind::IsADirectory => Some("pass a file's path, not a folder's".into()),
        _ => None,
    }
}
