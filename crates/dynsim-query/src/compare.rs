//! Comparison plans and their lazy, cached evaluation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dynsim_metrics::{DmdFit, DmdParams, Dsa, MetricError};
use dynsim_store::keys::KeyType;
use dynsim_store::{CatalogRow, KeyValue, Store};
use ndarray::{Array3, ArrayView3};
use polars::prelude::*;
use rayon::prelude::*;
use serde_json::json;

use crate::cache::{ResultCache, ResultKey, ResultRow, MERGE_PARTS_ABOVE};
use crate::error::QueryError;
use crate::frames::Selection;
use crate::plan::{pair_indexes, PairIndex, Pairing, Shard};
use crate::spec::{Metric, MetricSpec, Preprocess};

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
        /// DMD fits needed for the missing DSA tasks.
        fits: usize,
    },
    /// A DMD fit finished.
    Fitted {
        /// Fits done.
        done: usize,
        /// Fits needed.
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
    /// spec's label), `param_hash`, `value`, `seconds`, `cached`, `extra` (JSON), then
    /// `left_<key>` and `right_<key>` for every key present on that side.
    pub frame: DataFrame,
    /// Tasks of this shard.
    pub total: usize,
    /// Tasks answered from the cache.
    pub cached: usize,
    /// Tasks computed now.
    pub computed: usize,
    /// DMD fits computed now.
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

    /// Resolve the selections and build the pairs and this shard's tasks; checks that
    /// every metric can apply to every pair it gets. Reads only the catalogue.
    pub fn plan(&self) -> Result<Plan, QueryError> {
        if self.metrics.is_empty() {
            return Err(QueryError::Plan(
                "no metric given; add one (e.g. --metric dsa:rank=10 or --metric cka)".into(),
            ));
        }
        let mut seen = HashSet::new();
        if let Some(m) = self.metrics.iter().find(|m| !seen.insert(m.param_hash())) {
            return Err(QueryError::Plan(format!("metric {m} is given twice")));
        }
        let catalog = self.store.catalog()?;
        let by_id: HashMap<&str, &CatalogRow> = catalog.rows.iter().map(|r| (r.id.as_str(), r)).collect();
        let rows = |sel: &Selection, side: &str| -> Result<Vec<CatalogRow>, QueryError> {
            let ids = sel.ids()?;
            if ids.is_empty() {
                return Err(QueryError::Plan(format!(
                    "the {side} selection ({}) matches no recording of the {} in the store; check it with \
                     `dynsim ls --where ...`",
                    sel.description(),
                    catalog.rows.len()
                )));
            }
            ids.iter()
                .map(|id| {
                    by_id.get(id.as_str()).map(|r| (*r).clone()).ok_or_else(|| {
                        QueryError::Plan(format!(
                            "recording {id} vanished from the catalogue while planning; run again"
                        ))
                    })
                })
                .collect()
        };
        let known: Vec<String> = catalog.key_columns().into_iter().map(|(k, _)| k).collect();
        if let Some(k) = self.on.iter().find(|k| !known.contains(k)) {
            return Err(QueryError::Plan(format!("--on {k:?}: no such key; the keys are: {}", known.join(", "))));
        }
        if let Some(k) = self.nearest.as_ref().filter(|k| !known.contains(k)) {
            return Err(QueryError::Plan(format!("nearest {k:?}: no such key; the keys are: {}", known.join(", "))));
        }
        let left = rows(&self.left, "left")?;
        let (right, pairing) = match &self.right {
            Some(sel) => {
                let pairing = match &self.nearest {
                    Some(key) => Pairing::Nearest { key: key.clone() },
                    None => Pairing::Bipartite,
                };
                (rows(sel, "right")?, pairing)
            }
            None if self.nearest.is_some() => {
                return Err(QueryError::Plan(
                    "nearest pairing needs two sides: use Comparison::bipartite(store, left, right)".into(),
                ))
            }
            None => (left.clone(), Pairing::AllPairs),
        };
        let pairs = pair_indexes(&left, &right, &pairing, &self.on);
        if pairs.is_empty() {
            let why = match (&pairing, self.on.is_empty()) {
                (Pairing::AllPairs, true) => "all pairs of one recording is no pair; select at least two".to_string(),
                _ => format!("no left and right recordings share their values of {}", self.on.join(", ")),
            };
            return Err(QueryError::Plan(format!("the plan has no pairs: {why}")));
        }
        for m in self.metrics.iter().filter(|m| m.needs_equal_samples()) {
            if let Some(p) = pairs.iter().find(|p| samples(&left[p.left]) != samples(&right[p.right])) {
                let (l, r) = (&left[p.left], &right[p.right]);
                return Err(QueryError::Plan(format!(
                    "{} compares recordings sample by sample, but {} has {} trials x {} time steps and {} has {} x {}; \
                     select recordings of one length (e.g. add \"n_trials = {} AND n_time = {}\" to the selection)",
                    m.name(),
                    l.id,
                    l.shape[0],
                    l.shape[1],
                    r.id,
                    r.shape[0],
                    r.shape[1],
                    l.shape[0],
                    l.shape[1]
                )));
            }
        }
        let metrics: Vec<MetricSpec> = match self.preprocess {
            Some(p) => self.metrics.iter().map(|m| m.clone().with_preprocess(Some(p))).collect(),
            None => self.metrics.clone(),
        };
        let mut tasks = Vec::new();
        for p in &pairs {
            for (mi, m) in metrics.iter().enumerate() {
                if self.shard.owns(&left[p.left].hash, &right[p.right].hash, m.param_hash()) {
                    tasks.push(Task { pair: *p, metric: mi });
                }
            }
        }
        Ok(Plan { left, right, pairs, metrics, tasks })
    }

    /// Evaluate: look every task up in the cache, compute the missing ones in parallel
    /// (rayon's global pool) and return the frame.
    pub fn collect(&self) -> Result<DataFrame, QueryError> {
        Ok(self.collect_with(CollectOptions::default())?.frame)
    }

    /// [`collect`](Self::collect) with progress reports and cancellation, returning counts.
    ///
    /// Missing DSA tasks first fit every recording they need once per distinct DMD
    /// parameter set (in parallel), then compare. Procrustes and CKA load the recordings
    /// they need into memory (as f64), a chunk of tasks at a time within
    /// [`CollectOptions::data_budget`]. Every finished task is journaled at once, so an
    /// error, a cancellation or a kill keeps it. The first metric error stops the run (after
    /// the pairs in flight) and is returned, naming the pair.
    pub fn collect_with(&self, mut opts: CollectOptions<'_>) -> Result<Outcome, QueryError> {
        let plan = self.plan()?;
        let cache = ResultCache::open(self.store)?;
        let mut found = cache.load()?;
        let mut report = |p: Progress| {
            if let Some(f) = opts.progress.as_mut() {
                f(p)
            }
        };
        // Distinct missing tasks (two ids with the same contents share one computation).
        let mut missing: Vec<Task> = Vec::new();
        let mut missing_keys = HashSet::new();
        let mut cached = 0;
        for t in &plan.tasks {
            let key = plan.key(t);
            if found.contains_key(&key) {
                cached += 1;
            } else if missing_keys.insert(key) {
                missing.push(*t);
            }
        }
        let user_cancel = opts.cancel.clone();
        let stop = AtomicBool::new(false);
        let stopped =
            || stop.load(Ordering::Relaxed) || user_cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));

        // DMD fits: one per (content, DMD parameters) needed by a missing DSA task.
        let mut fit_jobs: BTreeMap<(String, String), (CatalogRow, Dsa)> = BTreeMap::new();
        for t in &missing {
            if plan.metrics[t.metric].preprocess().is_some() {
                continue; // fitted per pair, on the preprocessed recordings
            }
            if let Metric::Dsa(p) = plan.metrics[t.metric].metric() {
                let dsa = Dsa::new(*p).map_err(|e| QueryError::Plan(e.to_string()))?;
                for row in [&plan.left[t.pair.left], &plan.right[t.pair.right]] {
                    fit_jobs.entry(fit_key(row, &p.dmd)).or_insert_with(|| (row.clone(), dsa));
                }
            }
        }
        let n_fits = fit_jobs.len();
        report(Progress::Planned { total: plan.tasks.len(), cached, fits: n_fits });
        let jobs: Vec<_> = fit_jobs.into_iter().collect();
        let mut fits: HashMap<(String, String), DmdFit> = HashMap::new();
        let mut first_error: Option<QueryError> = None;
        let mut done = 0;
        par_for_each(
            &jobs,
            &stopped,
            |((_, _), (row, dsa))| -> Result<DmdFit, QueryError> {
                let x = self.store.read_row(row, false)?.data.mapv(f64::from);
                dsa.fit(x.view()).map_err(|e| {
                    QueryError::Plan(format!(
                        "{}: cannot fit recording {} ({} trials x {} time x {} units): {e}",
                        dsa_label(&plan, dsa),
                        row.id,
                        row.shape[0],
                        row.shape[1],
                        row.shape[2]
                    ))
                })
            },
            |i, res| {
                done += 1;
                report(Progress::Fitted { done, total: n_fits });
                match res {
                    Ok(fit) => {
                        fits.insert(jobs[i].0.clone(), fit);
                    }
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        first_error.get_or_insert(e);
                    }
                }
            },
        );
        if let Some(e) = first_error {
            return Err(e);
        }

        // Nothing is written when everything is cached (a read-only store answers too).
        let mut journal = if missing.is_empty() { None } else { Some(cache.journal()?) };
        let total_missing = missing.len();
        let mut computed = 0;
        let mut error: Option<QueryError> = None;
        // The recordings the sample-wise metrics and the preprocessed pairs need are loaded
        // (as f64) per chunk of tasks within the data budget, so memory does not grow with
        // the number of recordings compared.
        let budget = opts.data_budget.unwrap_or(DATA_BUDGET);
        for chunk in data_chunks(&plan, &missing, budget) {
            if error.is_some() || stopped() {
                break;
            }
            // A recording that cannot be read ends the run like a metric error: what earlier
            // chunks computed is kept in the cache.
            let mut data: HashMap<String, Arc<Array3<f64>>> = HashMap::new();
            'load: for t in &chunk {
                for row in data_rows(&plan, t) {
                    if !data.contains_key(&row.hash) && !stopped() {
                        match self.store.read_row(row, false) {
                            Ok(r) => {
                                data.insert(row.hash.clone(), Arc::new(r.data.mapv(f64::from)));
                            }
                            Err(e) => {
                                error = Some(e.into());
                                break 'load;
                            }
                        }
                    }
                }
            }
            if error.is_some() {
                break;
            }
            par_for_each(
                &chunk,
                &stopped,
                |t| compute(&plan, t, &fits, &data),
                |i, res| {
                    let t = &chunk[i];
                    match res {
                        Ok(row) => {
                            found.insert(row.key(), row.clone());
                            if let Some(Err(e)) = journal.as_mut().map(|j| j.append(row)) {
                                stop.store(true, Ordering::Relaxed);
                                error.get_or_insert(e);
                            }
                            computed += 1;
                        }
                        Err(source) => {
                            stop.store(true, Ordering::Relaxed);
                            error.get_or_insert(QueryError::Metric {
                                metric: plan.metrics[t.metric].label(),
                                left: plan.left[t.pair.left].id.clone(),
                                right: plan.right[t.pair.right].id.clone(),
                                source: Box::new(source),
                            });
                        }
                    }
                    report(Progress::Computed { done: computed, total: total_missing });
                },
            );
        }
        if let Some(j) = journal {
            j.finish()?;
            cache.merge_parts(MERGE_PARTS_ABOVE)?;
        }
        if let Some(e) = error {
            return Err(e);
        }
        let cancelled = computed < total_missing;
        let frame = result_frame(&plan, &found, &missing_keys)?;
        Ok(Outcome { frame, total: plan.tasks.len(), cached, computed, fits: fits.len(), cancelled })
    }
}

/// The recordings a task needs in memory: both sides for a sample-wise metric or a
/// preprocessed pair, none for plain DSA (its fits are computed before).
fn data_rows<'p>(plan: &'p Plan, t: &Task) -> Vec<&'p CatalogRow> {
    let m = &plan.metrics[t.metric];
    if m.needs_equal_samples() || m.preprocess().is_some() {
        vec![&plan.left[t.pair.left], &plan.right[t.pair.right]]
    } else {
        Vec::new()
    }
}

/// The missing tasks in chunks whose distinct recordings (as f64, [`data_rows`]) take at
/// most `budget` bytes; a task alone over the budget is a chunk of its own. Tasks are ordered
/// by right recording, then left, so that a recording compared with many (master against
/// every group) is loaded once per chunk.
fn data_chunks(plan: &Plan, missing: &[Task], budget: usize) -> Vec<Vec<Task>> {
    let mut order: Vec<Task> = missing.to_vec();
    order.sort_by_key(|t| (t.pair.right, t.pair.left, t.metric));
    let bytes = |r: &CatalogRow| r.shape.iter().product::<usize>() * std::mem::size_of::<f64>();
    let mut chunks = Vec::new();
    let (mut chunk, mut held, mut size) = (Vec::new(), HashSet::new(), 0usize);
    for t in order {
        let needed = data_rows(plan, &t);
        let more: usize = needed.iter().filter(|r| !held.contains(&r.hash)).map(|r| bytes(r)).sum();
        if !chunk.is_empty() && size + more > budget {
            chunks.push(std::mem::take(&mut chunk));
            held.clear();
            size = 0;
        }
        for r in needed {
            if held.insert(r.hash.clone()) {
                size += bytes(r);
            }
        }
        chunk.push(t);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// A DMD fit is shared by every recording with this content and these DMD parameters.
fn fit_key(row: &CatalogRow, dmd: &DmdParams) -> (String, String) {
    (row.hash.clone(), format!("{dmd:?}"))
}

fn samples(r: &CatalogRow) -> usize {
    r.shape[0] * r.shape[1]
}

fn dsa_label(plan: &Plan, dsa: &Dsa) -> String {
    plan.metrics
        .iter()
        .find(|m| matches!(m.metric(), Metric::Dsa(p) if p == dsa.params()))
        .map_or_else(|| "dsa".to_string(), MetricSpec::label)
}

/// Run `work` over `items` on rayon's pool (skipping items once `stopped()`), delivering
/// each result to `on_result` on the calling thread, in completion order.
fn par_for_each<T: Sync, R: Send>(
    items: &[T],
    stopped: &(dyn Fn() -> bool + Sync),
    work: impl Fn(&T) -> R + Sync,
    mut on_result: impl FnMut(usize, R),
) {
    let (tx, rx) = mpsc::channel::<(usize, R)>();
    std::thread::scope(|s| {
        let work = &work;
        s.spawn(move || {
            items.par_iter().enumerate().for_each_with(tx, |tx, (i, item)| {
                if stopped() {
                    return;
                }
                let _ = tx.send((i, work(item)));
            });
        });
        for (i, r) in rx {
            on_result(i, r);
        }
    });
}

fn compute(
    plan: &Plan,
    t: &Task,
    fits: &HashMap<(String, String), DmdFit>,
    data: &HashMap<String, Arc<Array3<f64>>>,
) -> Result<ResultRow, MetricError> {
    let (l, r) = (&plan.left[t.pair.left], &plan.right[t.pair.right]);
    let spec = &plan.metrics[t.metric];
    let start = Instant::now();
    let missing = |what: &str| MetricError::InvalidParameter {
        name: "recording",
        value: what.to_string(),
        expected: "loaded before computing (internal error)".into(),
    };
    // With preprocessing, the pair's own preprocessed arrays (and DMD fits).
    let pre = match spec.preprocess() {
        Some(pp) => {
            let (x, y) =
                (data.get(&l.hash).ok_or_else(|| missing(&l.id))?, data.get(&r.hash).ok_or_else(|| missing(&r.id))?);
            Some(pp.apply(x.view(), y.view())?)
        }
        None => None,
    };
    let pair = |l: &CatalogRow, r: &CatalogRow| -> Result<(ArrayView3<'_, f64>, ArrayView3<'_, f64>), MetricError> {
        match &pre {
            Some((x, y)) => Ok((x.view(), y.view())),
            None => Ok((
                data.get(&l.hash).ok_or_else(|| missing(&l.id))?.view(),
                data.get(&r.hash).ok_or_else(|| missing(&r.id))?.view(),
            )),
        }
    };
    let (value, extra) = match spec.metric() {
        Metric::Dsa(p) => {
            let dsa = Dsa::new(*p)?;
            let pair_fits;
            let (fa, fb) = match &pre {
                Some((x, y)) => {
                    pair_fits = (dsa.fit(x.view())?, dsa.fit(y.view())?);
                    (&pair_fits.0, &pair_fits.1)
                }
                None => (
                    fits.get(&fit_key(l, &p.dmd)).ok_or_else(|| missing(&l.id))?,
                    fits.get(&fit_key(r, &p.dmd)).ok_or_else(|| missing(&r.id))?,
                ),
            };
            let c = dsa.compare(fa, fb)?;
            let score = format!("{:?}", c.score).to_lowercase();
            let mut extra = json!({
                "score": score, "rank_left": c.ranks.0, "rank_right": c.ranks.1, "fallback_to_wasserstein": c.fallback,
            });
            if let Some(tr) = &c.transform {
                extra["loss"] = json!(tr.loss);
                extra["det"] = json!(tr.det);
                extra["iterations"] = json!(tr.iterations);
            }
            (c.value, extra)
        }
        Metric::Procrustes(m) => {
            let (x, y) = pair(l, r)?;
            (m.distance(x, y)?, json!({}))
        }
        Metric::Cka(c) => {
            let (x, y) = pair(l, r)?;
            let s = c.similarity(x, y)?;
            (s.clamp(-1.0, 1.0).acos(), json!({ "similarity": s }))
        }
    };
    let computed_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    Ok(ResultRow {
        left_hash: l.hash.clone(),
        right_hash: r.hash.clone(),
        param_hash: spec.param_hash().to_string(),
        metric: spec.name().to_string(),
        params: spec.canonical().to_string(),
        value,
        seconds: start.elapsed().as_secs_f64(),
        extra: extra.to_string(),
        left_id: l.id.clone(),
        right_id: r.id.clone(),
        dynsim_version: env!("CARGO_PKG_VERSION").to_string(),
        computed_at,
    })
}

/// The outcome frame: one row per task of the plan that has a result, in plan order.
fn result_frame(
    plan: &Plan,
    found: &HashMap<ResultKey, ResultRow>,
    computed_now: &HashSet<ResultKey>,
) -> Result<DataFrame, QueryError> {
    let mut tasks: Vec<(&Task, &ResultRow, bool)> = Vec::new();
    for t in &plan.tasks {
        let key = plan.key(t);
        if let Some(row) = found.get(&key) {
            tasks.push((t, row, !computed_now.contains(&key)));
        }
    }
    let n = tasks.len();
    let str_col = |name: &str, f: &dyn Fn(&(&Task, &ResultRow, bool)) -> String| -> Column {
        Column::new(name.into(), tasks.iter().map(f).collect::<Vec<String>>())
    };
    let mut cols = vec![
        str_col("left_id", &|(t, _, _)| plan.left[t.pair.left].id.clone()),
        str_col("right_id", &|(t, _, _)| plan.right[t.pair.right].id.clone()),
        str_col("metric", &|(t, _, _)| plan.metrics[t.metric].name().to_string()),
        str_col("params", &|(t, _, _)| plan.metrics[t.metric].label()),
        str_col("param_hash", &|(t, _, _)| plan.metrics[t.metric].param_hash().to_string()),
        Column::new("value".into(), tasks.iter().map(|(_, r, _)| r.value).collect::<Vec<f64>>()),
        Column::new("seconds".into(), tasks.iter().map(|(_, r, _)| r.seconds).collect::<Vec<f64>>()),
        Column::new("cached".into(), tasks.iter().map(|(_, _, c)| *c).collect::<Vec<bool>>()),
        str_col("extra", &|(_, r, _)| r.extra.clone()),
    ];
    for (side, rows, pick) in [
        ("left", &plan.left, (|t: &Task| t.pair.left) as fn(&Task) -> usize),
        ("right", &plan.right, (|t: &Task| t.pair.right) as fn(&Task) -> usize),
    ] {
        for (key, ty) in key_columns(rows) {
            let name = format!("{side}_{key}");
            let vals = tasks.iter().map(|(t, _, _)| rows[pick(t)].keys.get(&key));
            cols.push(match ty {
                KeyType::Int => Column::new(
                    name.into(),
                    vals.map(|v| match v {
                        Some(KeyValue::Int(i)) => Some(*i),
                        _ => None,
                    })
                    .collect::<Vec<Option<i64>>>(),
                ),
                KeyType::Float => {
                    Column::new(name.into(), vals.map(|v| v.and_then(KeyValue::as_f64)).collect::<Vec<Option<f64>>>())
                }
                KeyType::Str => {
                    Column::new(name.into(), vals.map(|v| v.map(KeyValue::to_text)).collect::<Vec<Option<String>>>())
                }
            });
        }
    }
    Ok(DataFrame::new(n, cols)?)
}

/// The keys present in `rows`, standard keys first (in their fixed order), then user keys
/// by name, each with the type that holds all its values.
fn key_columns(rows: &[CatalogRow]) -> Vec<(String, KeyType)> {
    let mut user: BTreeMap<String, KeyType> = BTreeMap::new();
    let mut standard: Vec<(String, KeyType)> = Vec::new();
    for (name, ty) in dynsim_store::keys::STANDARD_KEYS {
        if rows.iter().any(|r| r.keys.contains_key(name)) {
            standard.push((name.to_string(), ty));
        }
    }
    for r in rows {
        for (k, v) in &r.keys {
            if dynsim_store::keys::standard_type(k).is_none() {
                let t = KeyType::of(v);
                user.entry(k.clone()).and_modify(|u| *u = u.unify(t)).or_insert(t);
            }
        }
    }
    standard.extend(user);
    standard
}
