//! The error type of `dynsim-store`.

use std::path::PathBuf;
use thiserror::Error;

/// Everything reading or writing a file can fail at; each names the file and the fix.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The operating system refused (missing file, permissions, disk full).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid `.npy` file of a supported kind.
    #[error("{path}: {detail}")]
    Npy {
        /// The file (or a name for an in-memory buffer).
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
}
