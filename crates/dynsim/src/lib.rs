//! # dynsim
//!
//! The facade over dynsim's crates, and what a Rust notebook loads: `use dynsim::prelude::*;`
//! brings the store, selections, comparisons, metric specs, statistics, the metrics and
//! polars into scope.
//!
//! - [`metrics`]: DSA, Procrustes / shape metrics, CKA (numerics only).
//! - [`store`]: the activation store (ingest HDF5 / Parquet / NumPy, catalogue, export).
//! - [`query`]: lazy selections, comparison plans, the result cache, statistics.
//! - [`testcases`]: the seed study's Lorenz test cases.
//! - [`nets`]: the study's tasks and networks (candle): training, checkpoints, recording.
//!
//! ```no_run
//! use dynsim::prelude::*;
//! let store = Store::open_or_init("dynsim-store")?.0;
//! let df = Comparison::all_pairs(&store, Selection::all(&store)?)
//!     .metric(MetricSpec::parse("dsa:n_delays=10,delay_interval=2,rank=12")?)
//!     .collect()?;
//! println!("{df}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub use dynsim_metrics as metrics;
pub use dynsim_nets as nets;
pub use dynsim_query as query;
/// polars, the version dynsim uses.
pub use dynsim_query::polars;
pub use dynsim_store as store;
pub use dynsim_testcases as testcases;
pub use ndarray;

/// Everything an analysis needs in one `use`.
pub mod prelude {
    pub use dynsim_metrics::prelude::*;
    pub use dynsim_query::io::{read_parquet, write_frame};
    pub use dynsim_query::polars::prelude::*;
    pub use dynsim_query::summary::{mean_sem_by, regression_by, student_by, welch_by};
    pub use dynsim_query::{sql, CollectOptions, Comparison, MetricSpec, Outcome, Selection, Shard};
    pub use dynsim_store::{IngestOptions, Layout, Store};
}

#[cfg(test)]
mod tests {
    use super::prelude::*;

    #[test]
    fn the_prelude_is_enough_for_a_comparison() {
        let dir = std::env::temp_dir().join(format!("dynsim-facade-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::init(&dir).expect("init");
        let file = std::path::PathBuf::from(
            std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
        )
        .join("../../data/ingest/study.h5");
        let opts = IngestOptions {
            layout: Some(Layout::parse("/{group}/checkpoint_{checkpoint}/{task}").expect("layout")),
            ..IngestOptions::default()
        };
        store.ingest(&[file], &opts, &mut |_| {}).expect("ingest");
        let go = Selection::all(&store).expect("all").filter(col("task").eq(lit("go")));
        let df =
            Comparison::all_pairs(&store, go).metric(MetricSpec::parse("cka").expect("cka")).collect().expect("cka");
        assert_eq!(df.height(), 15);
        let by = mean_sem_by(&df, &["left_group"], "value").expect("summary");
        assert_eq!(by.height(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
