//! One error type for building, reading and searching indexes.

use std::path::PathBuf;

/// Shorthand for results whose error is an [`IndexError`].
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// What went wrong with an index. The message says what is wrong;
/// [`IndexError::hint`] says what to change.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A request that cannot be answered (k of 0, an empty gallery...).
    #[error("{reason}")]
    Invalid { reason: String, hint: String },
    /// An index file that cannot be used: damaged, truncated, or made by
    /// another model.
    #[error("{}: {reason}", path.display())]
    BadIndex {
        path: PathBuf,
        reason: String,
        hint: String,
    },
    /// An error from the model or libtorch.
    #[error(transparent)]
    Learn(#[from] twinsim_learn::LearnError),
    /// An error reading data or writing files.
    #[error(transparent)]
    Data(#[from] twinsim_data::DataError),
}

impl IndexError {
    /// What the user can change, when known.
    pub fn hint(&self) -> Option<String> {
        match self {
            IndexError::Invalid { hint, .. } | IndexError::BadIndex { hint, .. } => Some(hint.clone()),
            IndexError::Learn(e) => e.hint(),
            IndexError::Data(e) => e.hint(),
        }
    }

    /// A request that cannot be answered, with its fix.
    pub fn invalid(reason: impl Into<String>, hint: impl Into<String>) -> Self {
        IndexError::Invalid {
            reason: reason.into(),
            hint: hint.into(),
        }
    }

    /// An index file that cannot be used, with its fix.
    pub fn bad_index(path: impl Into<PathBuf>, reason: impl Into<String>, hint: impl Into<String>) -> Self {
        IndexError::BadIndex {
            path: path.into(),
            reason: reason.into(),
            hint: hint.into(),
        }
    }
}
