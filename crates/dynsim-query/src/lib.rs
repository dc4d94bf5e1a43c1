//! # dynsim-query
//!
//! The query layer over a dynsim store: compare recordings like a dataframe.
//!
//! - [`Selection`]: a lazy polars selection of recordings (filters by polars expressions or
//!   SQL predicates on any key), [`sql`] over the tables `recordings` and `results`.
//! - [`Comparison`]: a pairing plan (all pairs, bipartite, matched `on` keys) with one or
//!   more metrics ([`MetricSpec`]: DSA, Procrustes, CKA, RSA, CCA, SVCCA, PWCCA with
//!   parameters; every metric a [`Metric`] object), evaluated lazily: only pairs missing from
//!   the store's result cache ([`cache`]) are computed, in parallel, each recording prepared
//!   once per metric preparation (e.g. one DMD fit per parameter set); the result is a polars
//!   `DataFrame` with `left_*` / `right_*` key columns. [`Shard`] splits a plan over
//!   processes or machines (SLURM arrays).
//! - [`io`]: frames to and from Parquet and CSV files through the store's Arrow stack
//!   (polars itself is built without file formats).
//! - [`stats`]: the seed study's statistics (mean and SEM, Welch's t-test,
//!   Benjamini-Hochberg, linear regression), on samples and on frames ([`summary`]).

#![warn(missing_docs)]

pub mod cache;
mod compare;
mod error;
pub mod frames;
pub mod io;
pub mod plan;
pub mod spec;
pub mod stats;
pub mod summary;

pub use compare::{CollectOptions, Comparison, Outcome, Plan, Progress, Task};
pub use dynsim_metrics::{Metric, METRICS};
pub use dynsim_store::Store;
pub use error::QueryError;
pub use frames::{recordings, results, sql, Selection};
pub use plan::{Pairing, Shard};
/// polars, as dynsim uses it (the same version), for expressions on selections and results.
pub use polars;
pub use spec::{MetricSpec, Preprocess};
