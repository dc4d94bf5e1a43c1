//! The compositional-learning test case (the seed study's main result): networks that learned
//! AntiPDMDelay through different curricula ([`groups`]) compared with a network trained on it
//! directly ("master").
//!
//! - [`groups`]: the eleven curriculum groups (what each pretrains on, what stays frozen);
//! - [`plan`]: presets, hyper-parameter configurations, runs, run ids and shards;
//! - [`training`]: training every run of a plan (or of one shard) into `<store>/runs/<id>/`,
//!   in parallel, skipping finished runs and resuming killed ones;
//! - [`recording`]: every training checkpoint's states on AntiPDMDelay's test trials, into
//!   the store, in the study's intended reading or as its code computed them;
//! - [`comparisons`]: the study's comparisons (to master, group x group, over learning) as
//!   cached `dynsim-query` comparisons;
//! - [`summary`]: the study's statistics on them (mean ± SEM, Student and Welch with
//!   Benjamini-Hochberg, regressions over learning).

pub mod comparisons;
pub mod groups;
pub mod plan;
pub mod recording;
pub mod report;
pub mod summary;
pub mod training;

pub use comparisons::{comparison, study_metrics, Kind, STUDY_DELAY_INTERVAL, STUDY_N_DELAYS, STUDY_RANK};
pub use dynsim_query::Shard;
pub use groups::{Group, Pool};
pub use plan::{plan, select, ArchChoice, Configuration, Init, Preset, Run, Schedule};
pub use recording::{checkpoint_keys, record_runs, unrecorded, Analysis, CheckpointAt, RecordReport};
pub use summary::{summarize, Summary};
pub use training::{train_runs, TrainEvent, TrainReport};

/// Errors of the compositional test case.
#[derive(Debug, thiserror::Error)]
pub enum CompositionalError {
    /// An option or configuration value is invalid.
    #[error("{0}")]
    Config(String),
    /// Training a network failed (the run's id and folder say which).
    #[error("run {id} ({what}) in {dir}: {source}")]
    Train {
        /// The run's id.
        id: String,
        /// Configuration and group.
        what: String,
        /// The run folder.
        dir: std::path::PathBuf,
        /// What failed.
        source: Box<dynsim_nets::NetError>,
    },
    /// A comparison could not be planned or run.
    #[error(transparent)]
    Query(Box<dynsim_query::QueryError>),
    /// The store failed (reading the catalogue, ingesting recordings).
    #[error(transparent)]
    Store(Box<dynsim_store::StoreError>),
}

impl From<dynsim_query::QueryError> for CompositionalError {
    fn from(e: dynsim_query::QueryError) -> Self {
        CompositionalError::Query(Box::new(e))
    }
}

impl From<dynsim_query::polars::prelude::PolarsError> for CompositionalError {
    fn from(e: dynsim_query::polars::prelude::PolarsError) -> Self {
        CompositionalError::Query(Box::new(e.into()))
    }
}

impl From<dynsim_store::StoreError> for CompositionalError {
    fn from(e: dynsim_store::StoreError) -> Self {
        CompositionalError::Store(Box::new(e))
    }
}
