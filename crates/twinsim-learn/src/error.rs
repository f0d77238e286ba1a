//! One error type for building, training, saving and loading models.

use std::path::PathBuf;

/// Shorthand for results whose error is a [`LearnError`].
pub type Result<T, E = LearnError> = std::result::Result<T, E>;

/// What went wrong in the learning core. Each variant's message says what is
/// wrong; [`LearnError::hint`] says what to change.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// A configuration that cannot work, caught before training starts.
    #[error("{reason}")]
    Config { reason: String, hint: String },
    /// A saved model or checkpoint that cannot be used.
    #[error("{}: {reason}", path.display())]
    BadModel {
        path: PathBuf,
        reason: String,
        hint: String,
    },
    /// Training diverged (NaN or infinite loss).
    #[error("{reason}")]
    Diverged { reason: String, hint: String },
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// An error reading data or writing files.
    #[error(transparent)]
    Data(#[from] twinsim_data::DataError),
    /// An error drawing or writing a report's pictures and page.
    #[error(transparent)]
    Report(#[from] twinsim_report::ReportError),
}

impl LearnError {
    /// What the user can change, when known.
    pub fn hint(&self) -> Option<String> {
        match self {
            LearnError::Config { hint, .. }
            | LearnError::BadModel { hint, .. }
            | LearnError::Diverged { hint, .. } => Some(hint.clone()),
            LearnError::Data(e) => e.hint(),
            LearnError::Torch(_) | LearnError::Report(_) => None,
        }
    }

    /// A configuration mistake with its fix.
    pub fn config(reason: impl Into<String>, hint: impl Into<String>) -> Self {
        LearnError::Config {
            reason: reason.into(),
            hint: hint.into(),
        }
    }

    /// A model file that cannot be used, with its fix.
    pub fn bad_model(path: impl Into<PathBuf>, reason: impl Into<String>, hint: impl Into<String>) -> Self {
        LearnError::BadModel {
            path: path.into(),
            reason: reason.into(),
            hint: hint.into(),
        }
    }
}
