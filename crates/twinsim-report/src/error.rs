//! One error type for every picture and page this crate writes.

use std::path::PathBuf;

/// Shorthand for results whose error is a [`ReportError`].
pub type Result<T, E = ReportError> = std::result::Result<T, E>;

/// What went wrong while drawing or writing part of a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The data handed to a chart, grid or page cannot be drawn as given
    /// (lengths that disagree, a zero-column grid...).
    #[error("{}: {reason}", path.display())]
    InvalidInput {
        /// The picture that was to be written.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// Pixels that do not form the image they claim to be.
    #[error("invalid tile: {reason}")]
    InvalidTile {
        /// What does not fit.
        reason: String,
    },
    /// Data that cannot be projected to 2-D (wrong length, NaN or infinite
    /// values, too many points for exact t-SNE).
    #[error("cannot project: {reason}")]
    InvalidData {
        /// What is wrong with the data.
        reason: String,
    },
    /// The drawing library refused to draw (it reports causes only as text).
    #[error("{}: drawing failed: {reason}", path.display())]
    Draw {
        /// The picture being drawn.
        path: PathBuf,
        /// The drawing library's message.
        reason: String,
    },
    /// The PNG could not be encoded or written.
    #[error("{}: cannot write image: {source}", path.display())]
    Image {
        /// The picture being written.
        path: PathBuf,
        /// The encoder's or the file system's error.
        #[source]
        source: image::ImageError,
    },
    /// The operating system refused a write.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// crash never leaves half a picture or page under its name.
pub(crate) fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    twinsim_data::atomic::write_bytes(path, bytes).map_err(|e| match e {
        twinsim_data::DataError::Io { path, source } => ReportError::Io { path, source },
        other => ReportError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

impl ReportError {
    /// An [`ReportError::InvalidInput`] for the picture at `path`.
    pub fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        ReportError::InvalidInput {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
