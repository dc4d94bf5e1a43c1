//! Training the runs of a plan: each into its own folder `<store>/runs/<id>/`, several at once
//! (one thread per network, as `dynsim train`), deterministic per run.
//!
//! A run whose last checkpoint closes the training phase is skipped without loading it; any
//! other run is handed to `dynsim_nets::train::train`, which resumes from its last complete
//! checkpoint, so a study killed at any moment continues where it stopped and ends with the
//! same files as an uninterrupted one.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use dynsim_nets::train::{self, Outcome, Progress};
use dynsim_nets::{checkpoint, Device};

use super::plan::Run;
use super::CompositionalError;

/// What [`train_runs`] reports as it goes (from the worker threads).
#[derive(Clone, Debug)]
pub enum TrainEvent<'a> {
    /// A run was found finished and skipped.
    Skipped(&'a Run),
    /// A run starts (or resumes).
    Started(&'a Run),
    /// A batch of a run was trained.
    Batch(&'a Run, Progress),
    /// A run finished training.
    Finished(&'a Run),
}

/// How a call to [`train_runs`] ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainReport {
    /// Ids of the runs trained (or resumed) to the end by this call.
    pub trained: Vec<String>,
    /// Ids of the runs that were already finished.
    pub skipped: Vec<String>,
    /// Whether `stop` ended the call early (finished runs stay finished; the others resume).
    pub stopped: bool,
}

/// Whether the run folder holds a finished run: its last checkpoint is of the training phase
/// and closes it.
pub fn is_finished(dir: &Path) -> Result<bool, dynsim_nets::NetError> {
    closes_training(&train::checkpoints(dir)?)
}

/// Whether the last of a run's checkpoints (in training order, as `train::checkpoints` lists
/// them) closes the training phase.
pub(crate) fn closes_training(checkpoints: &[std::path::PathBuf]) -> Result<bool, dynsim_nets::NetError> {
    let Some(last) = checkpoints.last() else { return Ok(false) };
    Ok(checkpoint::read_meta(last)?.is_some_and(|m| m.phase == "train" && m.phase_done))
}

/// Trains every run in `runs` under `store_root`, `threads` networks at a time (at least 1).
/// Setting `stop` ends the call after the current batch of each network. The first failing
/// run stops the others and is returned.
pub fn train_runs(
    runs: &[&Run],
    store_root: &Path,
    threads: usize,
    stop: &AtomicBool,
    events: &(dyn Fn(TrainEvent<'_>) + Sync),
) -> Result<TrainReport, CompositionalError> {
    let next = AtomicUsize::new(0);
    let report = Mutex::new(TrainReport::default());
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<CompositionalError>> = Mutex::new(None);
    let worker = || {
        // candle's products run on the current rayon pool: one thread per network.
        let Ok(pool) = rayon::ThreadPoolBuilder::new().num_threads(1).build() else {
            failed.store(true, Ordering::SeqCst);
            return;
        };
        loop {
            if stop.load(Ordering::SeqCst) || failed.load(Ordering::SeqCst) {
                return;
            }
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(run) = runs.get(i).copied() else { return };
            let dir = run.dir(store_root);
            let fail = |source| run.error(store_root, source);
            let outcome = match is_finished(&dir) {
                Ok(true) => {
                    events(TrainEvent::Skipped(run));
                    lock(&report).skipped.push(run.id());
                    continue;
                }
                Ok(false) => {
                    events(TrainEvent::Started(run));
                    pool.install(|| {
                        train::train(
                            &run.config,
                            &dir,
                            &Device::Cpu,
                            &mut |p| events(TrainEvent::Batch(run, p.clone())),
                            stop,
                        )
                    })
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(Outcome::Done(_)) => {
                    events(TrainEvent::Finished(run));
                    lock(&report).trained.push(run.id());
                }
                Ok(Outcome::Stopped) => return,
                Err(e) => {
                    failed.store(true, Ordering::SeqCst);
                    lock(&first_error).get_or_insert(fail(e));
                    return;
                }
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(worker);
        }
    });
    if let Some(e) = lock(&first_error).take() {
        return Err(e);
    }
    if failed.load(Ordering::SeqCst) {
        return Err(CompositionalError::Config("could not build a one-thread pool for training".into()));
    }
    let mut report = lock(&report).clone();
    report.stopped = stop.load(Ordering::SeqCst);
    Ok(report)
}

/// A mutex's content; a poisoned one (a worker panicked) still holds valid data here.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
