//! Errors of the release tools, with exit codes that match the bootstrapper's
//! where the meaning is the same (2 usage, 4 integrity or trust, 6 storage).

use std::path::{Path, PathBuf};

/// Result with [`ReleaseError`].
pub type Result<T, E = ReleaseError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// A bad flag, input folder or variant id (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The repository or a signature is not sound (exit 4).
    #[error("{0}")]
    Integrity(String),
    /// A key could not be read, written or used (exit 2).
    #[error("{0}")]
    Key(String),
    /// File system failure naming the path (exit 6).
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ReleaseError {
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        ReleaseError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            ReleaseError::Usage(_) | ReleaseError::Key(_) => 2,
            ReleaseError::Integrity(_) => 4,
            ReleaseError::Io { .. } => 6,
        }
    }
}
