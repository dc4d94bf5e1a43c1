//! Recording trained runs into the store: every checkpoint of a run's training phase (for
//! `untrained`, its one starting checkpoint) on the fixed test trials of AntiPDMDelay.
//!
//! Three readings of the study ([`Analysis`]):
//! - [`Analysis::Intended`] (default): `trials x time x units` over the stimulus period
//!   (steps 25..225 of the 350-step test trial, 200 steps: enough for DSA's 33 delays at
//!   interval 6, which span 193 steps), the same trials for every network, so delay
//!   embedding runs along time as DSA means it to;
//! - [`Analysis::WholeTrial`]: as intended, over the whole 350-step test trial (fixation,
//!   stimulus, delay, decision);
//! - [`Analysis::Repal`]: what the study's code computed: steps `[0, 200)` of the trial
//!   (fixation and early stimulus) stored time-major, `time x trials x units`, so that DSA
//!   reads time steps as trials and embeds along the trial order. (Its third difference, a
//!   different trial subset per network, is not reproduced: every network sees the same
//!   trials.)
//!
//! Keys of each recording: `model` (architecture), `config` (the configuration's name),
//! `group`, `seed` (the replicate), `run` (the run id), `phase`, `checkpoint` (epoch),
//! `progress` (epoch / last epoch of the training phase; 1 for `untrained`), `task`,
//! `analysis`, `trials`. A recording already in the store (same run, checkpoint, analysis and
//! trials) is not computed again.

use std::collections::HashSet;
use std::path::PathBuf;

use dynsim_nets::record::{record, Window};
use dynsim_nets::{checkpoint, train, DType, Device, Rule};
use dynsim_store::{ArrayRecording, IngestOptions, KeyValue, Keys, Store};

use super::plan::Run;
use super::CompositionalError;

/// Which reading of the study a recording follows (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Analysis {
    /// Stimulus period, trials x time x units.
    #[default]
    Intended,
    /// Steps 0..200, time x trials x units (the study's code).
    Repal,
    /// The whole 350-step test trial (fixation, stimulus, delay, decision), trials x time x
    /// units: the intended reading over every period, so the delay and the response, where the
    /// recurrent weights have to hold and turn the evidence, are part of the dynamics compared.
    WholeTrial,
}

impl Analysis {
    /// Every analysis, in the report's order.
    pub const ALL: [Analysis; 3] = [Analysis::Intended, Analysis::Repal, Analysis::WholeTrial];

    /// Parses `intended`, `repal` or `whole_trial`.
    pub fn parse(text: &str) -> Result<Analysis, CompositionalError> {
        Analysis::ALL.into_iter().find(|a| a.name() == text).ok_or_else(|| {
            CompositionalError::Config(format!("--analysis {text}: give intended, repal or whole_trial"))
        })
    }

    /// Parses a comma-separated list of analyses, `both` (intended and repal) or `all`;
    /// duplicates are dropped, the order kept.
    pub fn parse_list(text: &str) -> Result<Vec<Analysis>, CompositionalError> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim) {
            let more = match part {
                "both" => vec![Analysis::Intended, Analysis::Repal],
                "all" => Analysis::ALL.to_vec(),
                other => vec![Analysis::parse(other).map_err(|e| {
                    CompositionalError::Config(format!("{e}, a comma-separated list of them, both or all"))
                })?],
            };
            for a in more {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        Ok(out)
    }

    /// `intended`, `repal` or `whole_trial` (the `analysis` key).
    pub fn name(self) -> &'static str {
        match self {
            Analysis::Intended => "intended",
            Analysis::Repal => "repal",
            Analysis::WholeTrial => "whole_trial",
        }
    }

    /// The steps of each test trial kept.
    pub fn window(self) -> Window {
        match self {
            Analysis::Intended => Window::Period("stimulus".into()),
            Analysis::Repal => Window::Steps(0..200),
            Analysis::WholeTrial => Window::Whole,
        }
    }
}

/// What [`record_runs`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordReport {
    /// Recordings computed and added.
    pub added: usize,
    /// Recordings that were already in the store.
    pub present: usize,
}

/// The training-phase checkpoints of a finished run, in epoch order.
fn train_checkpoints(run: &Run, store_root: &std::path::Path) -> Result<Vec<PathBuf>, CompositionalError> {
    let dir = run.dir(store_root);
    let fail = |source| run.error(store_root, source);
    let all = train::checkpoints(&dir).map_err(fail)?;
    let mine: Vec<PathBuf> =
        all.into_iter().filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("train-"))).collect();
    if mine.is_empty() {
        return Err(fail(dynsim_nets::NetError::Config("no training checkpoints: train the run first".into())));
    }
    // A stopped run's checkpoints would get progress values of a shorter training.
    if !super::training::closes_training(&mine).map_err(fail)? {
        return Err(fail(dynsim_nets::NetError::Config(
            "the run is not finished (its last checkpoint does not close the training phase): train the run first"
                .into(),
        )));
    }
    Ok(mine)
}

/// The catalogue's (run, checkpoint) pairs already recorded with this analysis and trials.
fn recorded(store: &Store, analysis: Analysis, trials: usize) -> Result<HashSet<(String, i64)>, CompositionalError> {
    let cat = store.catalog()?;
    let text = |k: &Keys, name: &str| match k.get(name) {
        Some(KeyValue::Str(s)) => Some(s.clone()),
        _ => None,
    };
    Ok(cat
        .rows
        .iter()
        .filter(|r| {
            text(&r.keys, "analysis").as_deref() == Some(analysis.name())
                && r.keys.get("trials") == Some(&KeyValue::Int(trials as i64))
        })
        .filter_map(|r| match (text(&r.keys, "run"), r.keys.get("checkpoint")) {
            (Some(run), Some(KeyValue::Int(c))) => Some((run, *c)),
            _ => None,
        })
        .collect())
}

/// Records every training checkpoint of `runs` (finished runs under `store.root()`) on the
/// first `trials` test trials of AntiPDMDelay, and ingests them with their keys (module docs),
/// one catalogue update per run. `progress` is called after each checkpoint.
pub fn record_runs(
    runs: &[&Run],
    store: &Store,
    analysis: Analysis,
    trials: usize,
    progress: &mut dyn FnMut(&Run, usize, usize),
) -> Result<RecordReport, CompositionalError> {
    if trials == 0 {
        return Err(CompositionalError::Config("record at least 1 trial".into()));
    }
    let done = recorded(store, analysis, trials)?;
    let mut report = RecordReport::default();
    let rule = Rule::AntiPdmDelay;
    for run in runs {
        let paths = train_checkpoints(run, store.root())?;
        let last_epoch = paths.len() - 1;
        let mut batch = Vec::new();
        for (epoch, path) in paths.iter().enumerate() {
            progress(run, epoch, paths.len());
            if done.contains(&(run.id(), epoch as i64)) {
                report.present += 1;
                continue;
            }
            let fail = |source| run.error(store.root(), source);
            let (net, meta) = checkpoint::load(path, DType::F64, &Device::Cpu).map_err(fail)?;
            if meta.epoch != epoch {
                return Err(fail(dynsim_nets::NetError::Config(format!(
                    "checkpoint {} holds epoch {}; the run folder is not one dynsim wrote",
                    path.display(),
                    meta.epoch
                ))));
            }
            let rec = record(&net, &rule, &analysis.window(), trials).map_err(fail)?;
            let (values, shape) = match analysis {
                Analysis::Intended | Analysis::WholeTrial => (rec.values, rec.shape),
                Analysis::Repal => time_major(&rec.values, rec.shape),
            };
            batch.push(ArrayRecording {
                values,
                shape,
                keys: keys(run, epoch, last_epoch, analysis, trials),
                source: format!(
                    "dynsim compositional: run {} {}, {} test trials 0..{trials}, steps {}..{}{}",
                    run.id(),
                    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    rule.name(),
                    rec.steps.start,
                    rec.steps.end,
                    if analysis == Analysis::Repal { ", time-major" } else { "" }
                ),
            });
        }
        if !batch.is_empty() {
            let rep = store.ingest_arrays(batch, &IngestOptions::default(), &mut |_| {})?;
            report.added += rep.added.len();
            report.present += rep.already_present.len();
        }
    }
    Ok(report)
}

/// The runs of `runs` whose training checkpoints are not all recorded with this analysis and
/// number of trials (a run that is not finished counts as not recorded). Reads the run folders'
/// listings and the catalogue only: the check before comparing in a separate step.
pub fn unrecorded<'r>(
    runs: &[&'r Run],
    store: &Store,
    analysis: Analysis,
    trials: usize,
) -> Result<Vec<&'r Run>, CompositionalError> {
    let done = recorded(store, analysis, trials)?;
    let mut out = Vec::new();
    for run in runs {
        let complete = match train_checkpoints(run, store.root()) {
            Ok(paths) => (0..paths.len()).all(|epoch| done.contains(&(run.id(), epoch as i64))),
            Err(CompositionalError::Train { .. }) => false,
            Err(e) => return Err(e),
        };
        if !complete {
            out.push(*run);
        }
    }
    Ok(out)
}

/// `[trials, time, units]` C-order values as `[time, trials, units]`.
fn time_major(values: &[f32], [b, t, u]: [usize; 3]) -> (Vec<f32>, [usize; 3]) {
    let mut out = Vec::with_capacity(values.len());
    for s in 0..t {
        for trial in 0..b {
            let at = (trial * t + s) * u;
            out.extend_from_slice(&values[at..at + u]);
        }
    }
    (out, [t, b, u])
}

fn keys(run: &Run, epoch: usize, last_epoch: usize, analysis: Analysis, trials: usize) -> Keys {
    let mut k = checkpoint_keys(
        &run.config,
        run.group.name(),
        run.seed,
        "train",
        CheckpointAt { epoch, last_epoch },
        Rule::AntiPdmDelay,
        trials,
    );
    k.insert("analysis".into(), KeyValue::Str(analysis.name().into()));
    k
}

/// A checkpoint's epoch and the last epoch of its phase (`progress` = epoch / last epoch, 1
/// when the phase has no epoch).
#[derive(Clone, Copy, Debug)]
pub struct CheckpointAt {
    /// The checkpoint's epoch.
    pub epoch: usize,
    /// The last epoch of its phase.
    pub last_epoch: usize,
}

/// The keys every recording of a trained network's checkpoint carries, the same for
/// `dynsim testcase compositional` and `dynsim record`: `model` (architecture), `config` (the
/// configuration's name, [`Configuration::name`](super::plan::Configuration::name)), `group`,
/// `seed`, `run` (the run id, [`RunConfig::id`](dynsim_nets::train::RunConfig::id)), `phase`,
/// `checkpoint` (epoch), `progress`, `task` and `trials`.
pub fn checkpoint_keys(
    run: &dynsim_nets::train::RunConfig,
    group: &str,
    seed: u64,
    phase: &str,
    at: CheckpointAt,
    task: Rule,
    trials: usize,
) -> Keys {
    let mut k = Keys::new();
    let s = |v: &str| KeyValue::Str(v.to_string());
    k.insert("model".into(), s(run.net.arch.name()));
    k.insert("config".into(), s(&super::plan::Configuration::of(run).name()));
    k.insert("group".into(), s(group));
    k.insert("seed".into(), KeyValue::Int(seed as i64));
    k.insert("run".into(), s(&run.id()));
    k.insert("phase".into(), s(phase));
    k.insert("checkpoint".into(), KeyValue::Int(at.epoch as i64));
    let progress = if at.last_epoch == 0 { 1.0 } else { at.epoch as f64 / at.last_epoch as f64 };
    k.insert("progress".into(), KeyValue::Float(progress));
    k.insert("task".into(), s(task.name()));
    k.insert("trials".into(), KeyValue::Int(trials as i64));
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_major_swaps_trials_and_time() {
        let (b, t, u) = (2, 3, 2);
        let v: Vec<f32> = (0..b * t * u).map(|i| i as f32).collect();
        let (w, shape) = time_major(&v, [b, t, u]);
        assert_eq!(shape, [t, b, u]);
        for trial in 0..b {
            for s in 0..t {
                for k in 0..u {
                    assert_eq!(w[(s * b + trial) * u + k], v[(trial * t + s) * u + k]);
                }
            }
        }
    }
}
