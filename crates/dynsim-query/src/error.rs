//! The error type of `dynsim-query`.

use thiserror::Error;

/// Everything a query can fail at; each says what is wrong and what to do.
#[derive(Debug, Error)]
pub enum QueryError {
    /// A statistic is undefined for the given samples (too few, constant, non-finite).
    #[error("{0}")]
    Stats(String),
    /// polars refused a query or could not read a table.
    #[error("{0}")]
    Polars(String),
    /// A metric specification (`dsa:n_delays=33,rank=50`) is malformed or names an unknown
    /// metric or parameter.
    #[error("metric {spec:?}: {detail}")]
    Spec {
        /// The specification as given.
        spec: String,
        /// What is wrong and what is accepted.
        detail: String,
    },
    /// A comparison plan cannot be built: empty selection, unknown key, a metric that
    /// cannot apply to the selected recordings.
    #[error("{0}")]
    Plan(String),
    /// A metric failed on one pair.
    #[error("{metric} on {left} x {right}: {source}")]
    Metric {
        /// The metric's canonical parameters.
        metric: String,
        /// Left recording id.
        left: String,
        /// Right recording id.
        right: String,
        /// What the metric said.
        source: Box<dynsim_metrics::MetricError>,
    },
    /// A file of the result cache is unreadable.
    #[error(
        "result cache {path}: {detail}; move the file out of results/ (it is not deleted automatically) and run again"
    )]
    Cache {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An output file (`-o x.parquet|x.csv`) cannot be written as asked.
    #[error("{path}: {detail}")]
    Output {
        /// The file asked for.
        path: std::path::PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] dynsim_store::StoreError),
}

impl From<polars::prelude::PolarsError> for QueryError {
    fn from(e: polars::prelude::PolarsError) -> Self {
        QueryError::Polars(e.to_string())
    }
}
