//! The error type of `dynsim-query`.

use thiserror::Error;

/// Everything a query can fail at; each says what is wrong and what to do.
#[derive(Debug, Error)]
pub enum QueryError {
    /// A statistic is undefined for the given samples (too few, constant, non-finite).
    #[error("{0}")]
    Stats(String),
    /// polars refused a query or could not read a table.
    #[error("{context}: {source}")]
    Polars {
        /// What was being done.
        context: String,
        /// polars' error.
        #[source]
        source: polars::prelude::PolarsError,
    },
    /// A frame could not move between polars and Arrow (a column type with no counterpart).
    #[error("{0}")]
    Conversion(String),
    /// A SQL predicate or query is malformed or names an unknown column.
    #[error("predicate {predicate:?}: {detail}")]
    Predicate {
        /// The predicate as given.
        predicate: String,
        /// What is wrong (and the columns there are).
        detail: String,
    },
    /// A metric specification (`dsa:n_delays=33,rank=50`) is malformed or names an unknown
    /// metric or parameter.
    #[error("metric {spec:?}: {detail}")]
    Spec {
        /// The specification as given.
        spec: String,
        /// What is wrong and what is accepted.
        detail: String,
    },
    /// A plan, a shard or a summary is asked for in a form that cannot work (what is wrong and
    /// what to do).
    #[error("{0}")]
    Plan(String),
    /// A comparison has no metric.
    #[error("no metric given; add one (e.g. --metric dsa:rank=10 or --metric cka)")]
    NoMetric,
    /// The same metric (same canonical parameters) is given twice.
    #[error("metric {0} is given twice")]
    DuplicateMetric(String),
    /// A selection matches no recording.
    #[error(
        "the {side} selection ({selection}) matches no recording of the {recordings} in the store; check it with \
         `dynsim ls --where ...`"
    )]
    EmptySelection {
        /// `left` or `right`.
        side: &'static str,
        /// The selection's description.
        selection: String,
        /// Recordings in the store.
        recordings: usize,
    },
    /// A pairing option names a key no recording has.
    #[error("{option} {key:?}: no such key; the keys are: {}", known.join(", "))]
    UnknownKey {
        /// `--on` or `nearest`.
        option: &'static str,
        /// The key given.
        key: String,
        /// The keys there are.
        known: Vec<String>,
    },
    /// The plan pairs nothing.
    #[error("the plan has no pairs: {0}")]
    NoPairs(String),
    /// A metric cannot compare two recordings of the plan (e.g. sample-wise metrics on
    /// recordings of different lengths).
    #[error(
        "{metric} needs {}, but {left} has {} trials x {} time steps and {right} has {} x {}; select recordings \
         that match (e.g. add \"n_trials = {} AND n_time = {}\" to the selection)",
        requirement.describe(), left_shape[0], left_shape[1], right_shape[0], right_shape[1], left_shape[0],
        left_shape[1]
    )]
    Incompatible {
        /// The metric's name.
        metric: &'static str,
        /// What it needs.
        requirement: dynsim_metrics::Matching,
        /// Left recording id.
        left: String,
        /// Its shape (trials, time, units).
        left_shape: [usize; 3],
        /// Right recording id.
        right: String,
        /// Its shape.
        right_shape: [usize; 3],
    },
    /// A recording left the catalogue while a plan was being built.
    #[error("recording {0} vanished from the catalogue while planning; run again")]
    Vanished(String),
    /// A metric could not prepare a recording (e.g. a DMD fit failed).
    #[error(
        "{metric}: cannot prepare recording {recording} ({} trials x {} time x {} units): {source}",
        shape[0], shape[1], shape[2]
    )]
    Prepare {
        /// The metric's label.
        metric: String,
        /// Recording id.
        recording: String,
        /// Its shape.
        shape: [usize; 3],
        /// What the metric said.
        #[source]
        source: Box<dynsim_metrics::MetricError>,
    },
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
    fn from(source: polars::prelude::PolarsError) -> Self {
        QueryError::Polars { context: "polars".into(), source }
    }
}

impl QueryError {
    /// A polars error with what was being done.
    pub fn polars(context: impl Into<String>) -> impl FnOnce(polars::prelude::PolarsError) -> QueryError {
        let context = context.into();
        move |source| QueryError::Polars { context, source }
    }
}
