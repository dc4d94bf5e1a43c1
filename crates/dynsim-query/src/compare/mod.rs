//! Comparison plans and their lazy, cached evaluation, in four parts: this builder
//! ([`Comparison`]), the planner (`planner`: selections, pairs, checks, shards), the
//! executor (`executor`: cache look-up, preparation, scoring, journal) and the frame
//! assembly (`frame`).

mod executor;
mod frame;
mod planner;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use dynsim_store::{CatalogRow, Store};
use polars::prelude::*;

use crate::cache::ResultKey;
use crate::error::QueryError;
use crate::frames::Selection;
use crate::plan::{PairIndex, Shard};
use crate::spec::{MetricSpec, Preprocess};

/// A comparison: which recordings are paired ([`Pairing`], optionally matched `on` keys),
/// which metrics run on every pair, and which shard of the work this process does. Nothing
/// is read or computed until [`plan`](Self::plan) or [`collect`](Self::collect).
///
/// ```no_run
/// use dynsim_query::{Comparison, MetricSpec, Selection, Store};
/// let store = Store::open("dynsim-store")?;
/// let ckpts = Selection::all(&store)?.filter_sql("\"group\" = 'pretrained'")?;
/// let masters = Selection::all(&store)?.filter_sql("\"group\" = 'master' AND progress = 1")?;
/// let df = Comparison::bipartite(&store, ckpts, masters)
///     .on(["config", "task"])
///     .metric(MetricSpec::parse("dsa:n_delays=33,delay_interval=6,rank=50")?)
///     .metric(MetricSpec::parse("cka")?)
///     .collect()?;
/// # Ok::<(), dynsim_query::QueryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Comparison<'s> {
    store: &'s Store,
    left: Selection,
    right: Option<Selection>,
    on: Vec<String>,
    nearest: Option<String>,
    metrics: Vec<MetricSpec>,
    shard: Shard,
    preprocess: Option<Preprocess>,
}

/// A resolved plan: the rows of both sides (sorted by id), the pairs, and the tasks
/// (pair x metric) of this shard.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Left recordings.
    pub left: Vec<CatalogRow>,
    /// Right recordings (the left ones again for all-pairs plans).
    pub right: Vec<CatalogRow>,
    /// Every pair of the plan (all shards).
    pub pairs: Vec<PairIndex>,
    /// The metrics.
    pub metrics: Vec<MetricSpec>,
    /// This shard's tasks, in (pair, metric) order.
    pub tasks: Vec<Task>,
}

/// One unit of work: a metric on a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Task {
    /// The pair.
    pub pair: PairIndex,
    /// Index into the plan's metrics.
    pub metric: usize,
}

impl Plan {
    /// The cache key of a task.
    pub fn key(&self, t: &Task) -> ResultKey {
        ResultKey {
            left_hash: self.left[t.pair.left].hash.clone(),
            right_hash: self.right[t.pair.right].hash.clone(),
            param_hash: self.metrics[t.metric].param_hash().to_string(),
        }
    }
}

/// What a running [`Comparison::collect_with`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The plan is resolved: `total` tasks, `cached` of them already in the cache.
    Planned {
        /// Tasks of this shard.
        total: usize,
        /// Tasks found in the cache.
        cached: usize,
        /// Up-front preparations (DMD fits, RDMs) needed by the missing tasks.
        fits: usize,
    },
    /// A recording was prepared up front (a DMD fit, an RDM).
    Fitted {
        /// Preparations done.
        done: usize,
        /// Preparations needed.
        total: usize,
    },
    /// A task finished (computed, or failed).
    Computed {
        /// Tasks computed so far in this run.
        done: usize,
        /// Tasks to compute in this run.
        total: usize,
    },
}

/// How [`Comparison::collect_with`] runs.
#[derive(Default)]
pub struct CollectOptions<'p> {
    /// Called on the calling thread for every step.
    pub progress: Option<&'p mut dyn FnMut(Progress)>,
    /// Set it (e.g. from a Ctrl-C handler) to stop scheduling new work: the pairs in flight
    /// finish, every finished result is kept in the cache, and the outcome says `cancelled`.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Bytes of recordings (as f64) held in memory at once for the sample-wise metrics
    /// (Procrustes, CKA) and preprocessed pairs; `None`: [`DATA_BUDGET`]. The missing tasks run
    /// in chunks whose recordings fit it (a chunk holds at least one task).
    pub data_budget: Option<usize>,
}

/// Default of [`CollectOptions::data_budget`]: 2 GiB, about a hundred 200 x 200 x 64
/// recordings.
pub const DATA_BUDGET: usize = 2 << 30;

/// The result of [`Comparison::collect_with`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// One row per task with a result: `left_id`, `right_id`, `metric`, `params` (the
    /// spec's label), `param_hash`, `value`, `unit` (of the value: `rad`, `1 - similarity`,
    /// ...), `lower` and `gap` (DSA's certified lower bound on the value and `value - lower`;
    /// null for other metrics and for the Wasserstein score), `seconds`, `cached`, `extra`
    /// (JSON: every extra of the metric), then `left_<key>` and `right_<key>` for every key
    /// present on that side.
    pub frame: DataFrame,
    /// Tasks of this shard.
    pub total: usize,
    /// Tasks answered from the cache.
    pub cached: usize,
    /// Tasks computed now.
    pub computed: usize,
    /// Up-front preparations (DMD fits, RDMs) computed now.
    pub fits: usize,
    /// True when the run was cancelled before every task was done (the frame then holds
    /// only the finished ones).
    pub cancelled: bool,
}

impl<'s> Comparison<'s> {
    /// Every pair of distinct recordings within `selection`.
    pub fn all_pairs(store: &'s Store, selection: Selection) -> Comparison<'s> {
        Comparison {
            store,
            left: selection,
            right: None,
            on: Vec::new(),
            nearest: None,
            metrics: Vec::new(),
            shard: Shard::ALL,
            preprocess: None,
        }
    }

    /// Every `left` recording against every `right` recording.
    pub fn bipartite(store: &'s Store, left: Selection, right: Selection) -> Comparison<'s> {
        Comparison {
            store,
            left,
            right: Some(right),
            on: Vec::new(),
            nearest: None,
            metrics: Vec::new(),
            shard: Shard::ALL,
            preprocess: None,
        }
    }

    /// Pair only recordings whose keys `keys` are all equal (a recording without one of
    /// them is paired with nothing, as a NULL never matches in SQL).
    pub fn on<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Comparison<'s> {
        self.on.extend(keys.into_iter().map(Into::into));
        self
    }

    /// Pair each left recording with only the right recording (among those matching
    /// [`on`](Comparison::on)) whose numeric key `key` is nearest to its own
    /// ([`Pairing::Nearest`]); for bipartite comparisons.
    pub fn nearest(mut self, key: impl Into<String>) -> Comparison<'s> {
        self.nearest = Some(key.into());
        self
    }

    /// Add a metric.
    pub fn metric(mut self, spec: MetricSpec) -> Comparison<'s> {
        self.metrics.push(spec);
        self
    }

    /// Do only this shard of the tasks.
    pub fn shard(mut self, shard: Shard) -> Comparison<'s> {
        self.shard = shard;
        self
    }

    /// Preprocess both recordings of every pair before every metric (e.g. the study's z-score
    /// and joint PCA, [`Preprocess::ZscoreJointPca`]): the metrics' specs carry it
    /// ([`MetricSpec::with_preprocess`]), so its results are cached apart from the plain
    /// metric's. A DSA spec with preprocessing fits both recordings of each pair anew.
    pub fn preprocess(mut self, preprocess: Preprocess) -> Comparison<'s> {
        self.preprocess = Some(preprocess);
        self
    }

    /// Evaluate: look every task up in the cache, compute the missing ones in parallel
    /// (rayon's global pool) and return the frame.
    pub fn collect(&self) -> Result<DataFrame, QueryError> {
        Ok(self.collect_with(CollectOptions::default())?.frame)
    }

    /// [`collect`](Self::collect) with progress reports and cancellation, returning counts.
    ///
    /// Every metric [prepares](dynsim_metrics::Metric::prepare) each recording once per
    /// distinct preparation (a DSA recording's DMD fit is shared by every DSA spec with the
    /// same DMD parameters). Compact preparations (DMD fits, RDMs) are made up front, in
    /// parallel; sample matrices (Procrustes, CKA, the CCA family) and preprocessed pairs are
    /// made a chunk of tasks at a time within [`CollectOptions::data_budget`]. Every finished
    /// task is journaled at once, so an error, a cancellation or a kill keeps it. The first
    /// error stops the run (after the pairs in flight) and is returned, naming the recording
    /// or the pair.
    pub fn collect_with(&self, opts: CollectOptions<'_>) -> Result<Outcome, QueryError> {
        let plan = self.plan()?;
        executor::run(self.store, plan, opts)
    }
}
