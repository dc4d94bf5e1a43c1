//! The error type of `dynsim-store`.
//!
//! Every variant says what is wrong, where (file, dataset path, recording id or key), and
//! what to do about it. An error during ingest never changes the store: see
//! [`Store::ingest`](crate::Store::ingest).

use std::path::PathBuf;
use thiserror::Error;

/// Everything reading, writing or ingesting can fail at.
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
    /// The file is not a valid `.npy` / `.npz` file of a supported kind.
    #[error("{path}: {detail}")]
    Npy {
        /// The file (or a name for an in-memory buffer).
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// An HDF5 file could not be read (truncated, corrupt, or an unsupported feature).
    #[error("{path}{}: {detail}", dataset.as_deref().map(|d| format!(", dataset {d}")).unwrap_or_default())]
    Hdf5 {
        /// The file.
        path: PathBuf,
        /// The dataset or group inside the file, when known.
        dataset: Option<String>,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A Parquet file could not be read or written, or does not have the expected columns.
    #[error("{path}: {detail}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// The input was read but its content cannot become a recording (non-finite values,
    /// ragged trials, wrong rank or dtype, no data).
    #[error("{path}, {location}: {detail}")]
    BadInput {
        /// The file.
        path: PathBuf,
        /// Where in the file: dataset path, array name or the keys of a table group.
        location: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// The directory is not a dynsim store, or its format version is not this library's.
    #[error("{path}: {detail}")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A file inside the store is damaged or inconsistent with the catalogue.
    #[error("{path}: {detail}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A key (from `--key`, a layout pattern, an attribute or a column) is invalid or
    /// conflicts with the catalogue.
    #[error("key {key:?}: {detail}")]
    Key {
        /// The key name.
        key: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A `--layout` pattern is malformed or matches nothing.
    #[error("layout {pattern:?}: {detail}")]
    Layout {
        /// The pattern as given.
        pattern: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// No recording (or more than one) has this id or id prefix.
    #[error("recording {id:?}: {detail}")]
    UnknownRecording {
        /// The id or prefix asked for.
        id: String,
        /// What is wrong and what to do.
        detail: String,
    },
}

impl StoreError {
    /// Wrap an I/O error with the path it concerns (for `map_err`).
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }

    pub(crate) fn parquet(path: impl Into<PathBuf>) -> impl FnOnce(parquet::errors::ParquetError) -> StoreError {
        let path = path.into();
        move |e| StoreError::Parquet { path, detail: e.to_string() }
    }

    pub(crate) fn arrow(path: impl Into<PathBuf>) -> impl FnOnce(arrow_schema::ArrowError) -> StoreError {
        let path = path.into();
        move |e| StoreError::Parquet { path, detail: e.to_string() }
    }
}
