//! Execution: look the tasks up in the cache, prepare the recordings the missing ones need
//! (once per recording and preparation), score the pairs in parallel and journal every
//! result at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dynsim_metrics::{MetricError, Prepared, Scored};
use dynsim_store::{CatalogRow, Store};
use ndarray::Array3;
use rayon::prelude::*;

use super::frame::result_frame;
use super::{CollectOptions, Outcome, Plan, Progress, Task, DATA_BUDGET};
use crate::cache::{ResultCache, ResultRow, MERGE_PARTS_ABOVE};
use crate::error::QueryError;
use crate::spec::MetricSpec;

/// A prepared recording is shared by every task with this content and this preparation
/// ([`dynsim_metrics::Metric::prepare_key`]: the sample-wise metrics share one sample
/// matrix per recording, DSA specs with the same DMD parameters one fit).
type PrepKey = (String, String);

fn prep_key(row: &CatalogRow, spec: &MetricSpec) -> PrepKey {
    (row.hash.clone(), spec.metric().prepare_key())
}

/// How a task gets its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Both recordings prepared up front (compact preparations).
    UpFront,
    /// Both recordings prepared in the task's chunk (sample matrices).
    Chunked,
    /// Raw recordings loaded in the chunk, preprocessed as a pair, then prepared.
    Pair,
}

fn route(spec: &MetricSpec) -> Route {
    if spec.preprocess().is_some() {
        Route::Pair
    } else if spec.metric().compact() {
        Route::UpFront
    } else {
        Route::Chunked
    }
}

pub(super) fn run(store: &Store, plan: Plan, mut opts: CollectOptions<'_>) -> Result<Outcome, QueryError> {
    let cache = ResultCache::open(store)?;
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
    let stopped = || stop.load(Ordering::Relaxed) || user_cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));

    // Up-front preparations: one per (content, preparation) a missing task needs.
    let mut jobs: BTreeMap<PrepKey, (&CatalogRow, &MetricSpec)> = BTreeMap::new();
    for t in missing.iter().filter(|t| route(&plan.metrics[t.metric]) == Route::UpFront) {
        let spec = &plan.metrics[t.metric];
        for row in [&plan.left[t.pair.left], &plan.right[t.pair.right]] {
            jobs.entry(prep_key(row, spec)).or_insert((row, spec));
        }
    }
    let n_fits = jobs.len();
    report(Progress::Planned { total: plan.tasks.len(), cached, fits: n_fits });
    let jobs: Vec<_> = jobs.into_iter().collect();
    let mut prepared: HashMap<PrepKey, Arc<Prepared>> = HashMap::new();
    let mut first_error: Option<QueryError> = None;
    let mut done = 0;
    par_for_each(
        &jobs,
        &stopped,
        |(_, (row, spec))| prepare(store, row, spec, None),
        |i, res| {
            done += 1;
            report(Progress::Fitted { done, total: n_fits });
            match res {
                Ok(p) => {
                    prepared.insert(jobs[i].0.clone(), Arc::new(p));
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
    // What the chunked tasks need is made per chunk within the data budget, so memory does
    // not grow with the number of recordings compared.
    let budget = opts.data_budget.unwrap_or(DATA_BUDGET);
    for chunk in data_chunks(&plan, &missing, budget) {
        if error.is_some() || stopped() {
            break;
        }
        // What the chunk's tasks need: sample matrices, and raw recordings for preprocessed
        // pairs.
        let mut local: BTreeMap<PrepKey, (&CatalogRow, &MetricSpec)> = BTreeMap::new();
        let mut raw_rows: BTreeMap<String, &CatalogRow> = BTreeMap::new();
        for t in &chunk {
            let spec = &plan.metrics[t.metric];
            for row in [&plan.left[t.pair.left], &plan.right[t.pair.right]] {
                match route(spec) {
                    Route::Chunked => {
                        local.entry(prep_key(row, spec)).or_insert((row, spec));
                    }
                    Route::Pair => {
                        raw_rows.entry(row.hash.clone()).or_insert(row);
                    }
                    Route::UpFront => {}
                }
            }
        }
        // Raw recordings of preprocessed pairs. A recording that cannot be read ends the run
        // like a metric error: what earlier chunks computed is kept in the cache.
        let mut raw: HashMap<String, Arc<Array3<f64>>> = HashMap::new();
        for (hash, row) in raw_rows {
            if error.is_some() || stopped() {
                break;
            }
            match store.read_row(row, false) {
                Ok(r) => {
                    raw.insert(hash, Arc::new(r.data.mapv(f64::from)));
                }
                Err(e) => error = Some(e.into()),
            }
        }
        if error.is_some() {
            break;
        }
        // Sample matrices, in parallel; a recording already read for a preprocessed pair is
        // not read again.
        let local: Vec<_> = local.into_iter().collect();
        let mut chunk_prepared: HashMap<PrepKey, Arc<Prepared>> = HashMap::new();
        par_for_each(
            &local,
            &stopped,
            |(_, (row, spec))| prepare(store, row, spec, raw.get(&row.hash).map(|x| x.as_ref())),
            |i, res| match res {
                Ok(p) => {
                    chunk_prepared.insert(local[i].0.clone(), Arc::new(p));
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    error.get_or_insert(e);
                }
            },
        );
        let inputs = Inputs { up_front: &prepared, chunk: &chunk_prepared, raw: &raw };
        par_for_each(
            &chunk,
            &stopped,
            |t| compute(&plan, t, &inputs),
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
    Ok(Outcome { frame, total: plan.tasks.len(), cached, computed, fits: prepared.len(), cancelled })
}

/// Prepare a recording for a metric (read from the store unless `raw` holds it already); a
/// failure names the recording.
fn prepare(
    store: &Store,
    row: &CatalogRow,
    spec: &MetricSpec,
    raw: Option<&Array3<f64>>,
) -> Result<Prepared, QueryError> {
    let read;
    let x = match raw {
        Some(x) => x,
        None => {
            read = store.read_row(row, false)?.data.mapv(f64::from);
            &read
        }
    };
    spec.metric().prepare(x.view()).map_err(|source| QueryError::Prepare {
        metric: spec.label(),
        recording: row.id.clone(),
        shape: row.shape,
        source: Box::new(source),
    })
}

/// What the tasks of a chunk read their inputs from.
struct Inputs<'a> {
    up_front: &'a HashMap<PrepKey, Arc<Prepared>>,
    chunk: &'a HashMap<PrepKey, Arc<Prepared>>,
    raw: &'a HashMap<String, Arc<Array3<f64>>>,
}

/// The recordings a task needs in this chunk's memory (as f64): both sides unless its
/// metric's preparations are made up front.
fn data_rows<'p>(plan: &'p Plan, t: &Task) -> Vec<&'p CatalogRow> {
    if route(&plan.metrics[t.metric]) == Route::UpFront {
        Vec::new()
    } else {
        vec![&plan.left[t.pair.left], &plan.right[t.pair.right]]
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

fn compute(plan: &Plan, t: &Task, inputs: &Inputs<'_>) -> Result<ResultRow, MetricError> {
    let (l, r) = (&plan.left[t.pair.left], &plan.right[t.pair.right]);
    let spec = &plan.metrics[t.metric];
    let metric = spec.metric();
    let start = Instant::now();
    let missing = |what: &str| MetricError::InvalidParameter {
        name: "recording",
        value: what.to_string(),
        expected: "prepared before scoring (internal error)".into(),
    };
    let Scored { value, extras } = match route(spec) {
        Route::Pair => {
            let pp = spec.preprocess().ok_or_else(|| missing("preprocessing"))?;
            let x = inputs.raw.get(&l.hash).ok_or_else(|| missing(&l.id))?;
            let y = inputs.raw.get(&r.hash).ok_or_else(|| missing(&r.id))?;
            let (x, y) = pp.apply(x.view(), y.view())?;
            metric.compare(x.view(), y.view())?
        }
        route => {
            let map = if route == Route::UpFront { inputs.up_front } else { inputs.chunk };
            let a = map.get(&prep_key(l, spec)).ok_or_else(|| missing(&l.id))?;
            let b = map.get(&prep_key(r, spec)).ok_or_else(|| missing(&r.id))?;
            metric.score(a, b)?
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
        extra: serde_json::Value::Object(extras).to_string(),
        left_id: l.id.clone(),
        right_id: r.id.clone(),
        dynsim_version: env!("CARGO_PKG_VERSION").to_string(),
        computed_at,
    })
}
