//! Training with curricula and frozen weights, as the seed study:
//!
//! - loss: mean cross-entropy over every step of the batch + `l2 · Σ_p ‖p‖_F` (frozen
//!   parameters included); Adam (β 0.9 / 0.999, ε 1e-8, no weight decay), as PyTorch's;
//! - an epoch: for each rule of the phase's rule set in order, one pass over that rule's
//!   training samples (`samples_per_rule`, in batches); then the decision-step accuracy of
//!   every rule on its fixed evaluation set, `perf_min` the minimum over rules; a phase stops
//!   when `perf_min > stop_accuracy` or after `max_epochs`;
//! - curriculum: an optional pretraining phase on a rule set (every weight trains), then the
//!   training phase on its rules (the study: AntiPDMDelay) with a fresh optimiser; **frozen**
//!   means that in the training phase only the input weights train (RNN and GRU: `weight_ih`,
//!   every gate block and the rule columns included; Mamba: the input Linear `embedding.*`).
//!   Frozen without pretraining keeps every other weight at its random initialisation (the
//!   study's `master_frozen` group);
//! - checkpoints after every epoch (and an epoch-0 one with the phase's starting weights),
//!   written atomically, with the optimiser state beside each; a killed run resumes from its
//!   last checkpoint and, being deterministic on one thread, ends with the same files as an
//!   uninterrupted one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor, Var, D};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointMeta, FORMAT_VERSION};
use crate::model::{Arch, NetConfig, Network};
use crate::task::{Batch, Rule, Split, Task};
use crate::{NetError, Result};

/// Everything that defines a training run; its JSON is stored in the run folder and in every
/// checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The network.
    pub net: NetConfig,
    /// Adam's learning rate.
    pub lr: f64,
    /// Samples per batch.
    pub batch: usize,
    /// Weight of `Σ‖p‖_F` in the loss.
    pub l2: f64,
    /// Rules of the pretraining phase, in order (empty: no pretraining).
    pub pretrain_rules: Vec<Rule>,
    /// Rules of the training phase, in order.
    pub train_rules: Vec<Rule>,
    /// Whether only the input weights train in the training phase.
    pub frozen: bool,
    /// Seed of the initial weights and of the training samples.
    pub seed: u64,
    /// Epochs per phase at most.
    pub max_epochs: usize,
    /// Training samples per rule and epoch.
    pub samples_per_rule: usize,
    /// Evaluation samples per rule (the fixed held-out set).
    pub eval_per_rule: usize,
    /// A phase stops once the minimum accuracy over its rules exceeds this.
    pub stop_accuracy: f64,
    /// `f32` (the study's precision) or `f64`.
    pub dtype: String,
}

impl RunConfig {
    /// The study's settings for a network: lr 1e-3, batch 64, l2 1e-4, AntiPDMDelay after no
    /// pretraining, seed 0, 50 epochs, 8,000 training and 2,000 evaluation samples per rule,
    /// stop above 0.99, f32.
    pub fn study(net: NetConfig) -> RunConfig {
        RunConfig {
            net,
            lr: 1e-3,
            batch: 64,
            l2: 1e-4,
            pretrain_rules: Vec::new(),
            train_rules: vec![Rule::AntiPdmDelay],
            frozen: false,
            seed: 0,
            max_epochs: 50,
            samples_per_rule: 8000,
            eval_per_rule: 2000,
            stop_accuracy: 0.99,
            dtype: "f32".into(),
        }
    }

    /// Checks every value; the error names the bad one.
    pub fn validate(&self) -> Result<()> {
        self.net.validate()?;
        let bad = |s: String| Err(NetError::Config(s));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("the learning rate must be a positive number (got {})", self.lr));
        }
        if self.batch == 0 {
            return bad("the batch size must be at least 1".into());
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad(format!("l2 must be a number ≥ 0 (got {})", self.l2));
        }
        if self.train_rules.is_empty() {
            return bad("the training phase needs at least one rule".into());
        }
        if self.samples_per_rule == 0 || self.eval_per_rule == 0 {
            return bad("samples per rule and evaluation samples per rule must be at least 1".into());
        }
        self.dtype()?;
        Ok(())
    }

    /// The run's identity: FNV-1a (64 bit) of its JSON (fields in declaration order), as 16
    /// hex digits. Two runs share it only if every setting is equal.
    pub fn id(&self) -> String {
        format!("{:016x}", fnv1a(serde_json::to_string(self).unwrap_or_default().as_bytes()))
    }

    /// The compute dtype.
    pub fn dtype(&self) -> Result<DType> {
        match self.dtype.as_str() {
            "f32" => Ok(DType::F32),
            "f64" => Ok(DType::F64),
            other => Err(NetError::Config(format!("dtype must be f32 or f64 (got `{other}`)"))),
        }
    }

    /// The phases of the curriculum: (name, rules, names of the parameters that train).
    pub fn phases(&self) -> Vec<Phase> {
        let all: Vec<String> = self.net.parameters().into_iter().map(|p| p.name).collect();
        let mut phases = Vec::new();
        if !self.pretrain_rules.is_empty() {
            phases.push(Phase {
                name: "pretrain",
                index: 0,
                rules: self.pretrain_rules.clone(),
                trainable: all.clone(),
            });
        }
        let trainable = if self.frozen { input_parameters(&self.net) } else { all };
        phases.push(Phase { name: "train", index: 1, rules: self.train_rules.clone(), trainable });
        phases
    }
}

/// FNV-1a, 64 bit, of `bytes`: the stable hash behind [`RunConfig::id`] (and seeds derived
/// from names), the same in every version and on every platform.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The parameters that train when a network is frozen: the input weights.
pub fn input_parameters(net: &NetConfig) -> Vec<String> {
    match net.arch {
        Arch::LeakyRnn | Arch::LeakyGru => vec!["weight_ih".into()],
        Arch::Mamba => vec!["embedding.weight".into(), "embedding.bias".into()],
    }
}

/// One phase of a curriculum.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// `pretrain` or `train`.
    pub name: &'static str,
    /// 0 or 1 (selects the training samples' random stream).
    pub index: u32,
    /// Rules trained in order each epoch.
    pub rules: Vec<Rule>,
    /// Names of the parameters that train.
    pub trainable: Vec<String>,
}

/// Adam as PyTorch's (no weight decay, no amsgrad): `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `p ← p − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)`. Its state saves and loads exactly.
pub struct Adam {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
    lr: f64,
}

/// Adam's β₁.
pub const BETA1: f64 = 0.9;
/// Adam's β₂.
pub const BETA2: f64 = 0.999;
/// Adam's ε.
pub const EPS: f64 = 1e-8;

impl Adam {
    /// A fresh optimiser over the given parameters.
    pub fn new(vars: Vec<(String, Var)>, lr: f64) -> Result<Adam> {
        let m = vars.iter().map(|(_, v)| v.as_tensor().zeros_like()).collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Adam { vars, m, v, step: 0, lr })
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update from the gradients (parameters without a gradient are left alone).
    pub fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let c1 = 1.0 - BETA1.powi(t);
        let c2 = 1.0 - BETA2.powi(t);
        for (k, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let m = ((&self.m[k] * BETA1)? + (g * (1.0 - BETA1))?)?;
            let v = ((&self.v[k] * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let denom = ((&v / c2)?.sqrt()? + EPS)?;
            let update = ((&m / c1)? / denom)?;
            var.set(&(var.as_tensor() - (update * self.lr)?)?)?;
            self.m[k] = m;
            self.v[k] = v;
        }
        Ok(())
    }

    /// The state as named tensors (`exp_avg.<name>`, `exp_avg_sq.<name>`, `step`).
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (k, (name, _)) in self.vars.iter().enumerate() {
            out.push((format!("exp_avg.{name}"), self.m[k].clone()));
            out.push((format!("exp_avg_sq.{name}"), self.v[k].clone()));
        }
        out.push(("step".into(), Tensor::new(&[self.step as f64], &Device::Cpu)?));
        Ok(out)
    }

    /// Restores a state written by [`Adam::state`] for the same parameters.
    pub fn load_state(&mut self, state: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        let get = |key: &str| state.get(key).ok_or_else(|| NetError::Config(format!("optimiser state has no `{key}`")));
        for (k, (name, var)) in self.vars.iter().enumerate() {
            for (slot, key) in
                [(&mut self.m[k], format!("exp_avg.{name}")), (&mut self.v[k], format!("exp_avg_sq.{name}"))]
            {
                let t = get(&key)?;
                if t.dims() != var.dims() {
                    return Err(NetError::Config(format!(
                        "optimiser state `{key}` has shape {:?}, expected {:?}",
                        t.dims(),
                        var.dims()
                    )));
                }
                *slot = t.to_dtype(var.dtype())?.to_device(var.device())?;
            }
        }
        let step = get("step")?.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        self.step = step.first().copied().unwrap_or(0.0) as u64;
        Ok(())
    }
}

/// What the training loop reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// `pretrain` or `train`.
    pub phase: &'static str,
    /// Epoch being run (1-based).
    pub epoch: usize,
    /// The phase's epoch limit.
    pub max_epochs: usize,
    /// Batches done in this epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Loss of the last batch.
    pub loss: f64,
    /// `perf_min` after the previous epoch (NaN before any).
    pub perf_min: f64,
}

/// How a call to [`train`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Every phase is done; the checkpoints, in order.
    Done(Vec<PathBuf>),
    /// Stopped on request (`stop` was set); the last checkpoint stays valid and a rerun resumes.
    Stopped,
}

/// The run folder's description of itself.
#[derive(Serialize, Deserialize)]
struct RunFile {
    format: u32,
    run: RunConfig,
}

/// File in the run folder holding its configuration.
pub const RUN_FILE: &str = "run.json";

/// Checkpoints of a run folder, in training order (pretraining first, then by epoch).
pub fn checkpoints(out: &Path) -> Result<Vec<PathBuf>> {
    let dir = out.join("checkpoints");
    let mut found: Vec<(u8, usize, PathBuf)> = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetError::Io { path: dir, what: "listing".into(), source: e }),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".safetensors") else { continue };
        if stem.ends_with(".optim") || name.starts_with('.') {
            continue;
        }
        let Some((phase, epoch)) = stem.rsplit_once('-') else { continue };
        let order = match phase {
            "pretrain" => 0,
            "train" => 1,
            _ => continue,
        };
        if let Ok(epoch) = epoch.parse::<usize>() {
            found.push((order, epoch, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, _, p)| p).collect())
}

/// Decision-step accuracy of `net` on the first `n` samples of `rule`'s evaluation set: the
/// fraction of decision steps whose largest logit is the label.
pub fn accuracy(net: &Network, rule: Rule, n: usize) -> Result<f64> {
    let (mut right, mut total) = (0usize, 0usize);
    let chunk = 256;
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        let batch = Batch::eval(&rule, start as u64..end as u64)?;
        let pred = predictions(net, &batch)?;
        for ((p, l), m) in pred.iter().zip(&batch.labels).zip(&batch.mask) {
            if *m {
                total += 1;
                right += usize::from(p == l);
            }
        }
    }
    Ok(if total == 0 { f64::NAN } else { right as f64 / total as f64 })
}

/// Decision-step accuracy on the first `n` fixed test trials of `rule`, per coherence:
/// `(coherence, accuracy)` in increasing coherence. At coherence 0 both stimuli are equal and
/// the answer is a coin flip, so the accuracy over all trials cannot reach much above 0.9.
pub fn accuracy_by_coherence(net: &Network, rule: Rule, n: usize) -> Result<Vec<(f64, f64)>> {
    let mut tally: Vec<(f64, usize, usize)> = crate::task::COHERENCES.iter().map(|&c| (c, 0, 0)).collect();
    let chunk = 256;
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        let batch = Batch::test(&rule, start as u64..end as u64)?;
        let pred = predictions(net, &batch)?;
        for (i, trial) in batch.trials.iter().enumerate() {
            let Some(slot) = tally.iter_mut().find(|t| t.0 == trial.coherence) else { continue };
            for s in 0..batch.steps {
                let k = i * batch.steps + s;
                if batch.mask[k] {
                    slot.2 += 1;
                    slot.1 += usize::from(pred[k] == batch.labels[k]);
                }
            }
        }
    }
    Ok(tally.into_iter().filter(|t| t.2 > 0).map(|(c, r, t)| (c, r as f64 / t as f64)).collect())
}

/// The class with the largest logit at every step of every sample (`batch · steps`, row-major).
fn predictions(net: &Network, batch: &Batch) -> Result<Vec<u32>> {
    let x = inputs_tensor(batch, net.dtype(), net.device())?;
    Ok(net.forward(&x, false)?.logits.argmax(D::Minus1)?.flatten_all()?.to_vec1::<u32>()?)
}

/// A batch's inputs as a `batch × steps × n_inputs` tensor.
pub fn inputs_tensor(batch: &Batch, dtype: DType, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(batch.inputs.clone(), (batch.batch, batch.steps, batch.n_inputs), device)?.to_dtype(dtype)?)
}

/// A batch's labels as a `batch × steps` u32 tensor.
pub fn labels_tensor(batch: &Batch, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(batch.labels.clone(), (batch.batch, batch.steps), device)?)
}

/// Trains (or resumes) the run `config` in the folder `out`: see the module docs. `progress`
/// is called after every batch; setting `stop` ends the call after the current batch, keeping
/// the last checkpoint.
pub fn train(
    config: &RunConfig,
    out: &Path,
    device: &Device,
    progress: &mut dyn FnMut(&Progress),
    stop: &AtomicBool,
) -> Result<Outcome> {
    config.validate()?;
    let dtype = config.dtype()?;
    prepare_folder(config, out)?;
    let run_json = serde_json::to_value(config).map_err(|e| NetError::Config(e.to_string()))?;
    let existing = checkpoints(out)?;
    let mut net = Network::init(config.net.clone(), config.seed, dtype, device)?;
    let mut written = Vec::new();
    for phase in config.phases() {
        let mine: Vec<&PathBuf> = existing
            .iter()
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{}-", phase.name))))
            .collect();
        let trainable = |net: &Network| -> Vec<(String, Var)> {
            net.params().iter().filter(|(n, _)| phase.trainable.contains(n)).cloned().collect()
        };
        let (mut adam, start, mut last_perf) = match mine.last() {
            Some(path) => {
                let (loaded, meta) = checkpoint::load(path, dtype, device)?;
                net = loaded;
                remove_stale_optimiser_states(out, phase.name, path)?;
                written.extend(mine.iter().map(|p| (*p).clone()));
                if meta.phase_done {
                    continue;
                }
                let mut adam = Adam::new(trainable(&net), config.lr)?;
                if meta.epoch > 0 {
                    let optim = checkpoint::optim_path(path);
                    let (state, _) = checkpoint::read(&optim, device)?;
                    adam.load_state(&state)
                        .map_err(|e| NetError::Checkpoint { path: optim.clone(), why: e.to_string() })?;
                }
                (adam, meta.epoch + 1, meta.perf_min())
            }
            None => {
                let accuracy = evaluate(&net, &phase.rules, config.eval_per_rule)?;
                let meta = meta_for(config, &run_json, &phase, 0, accuracy, None, config.max_epochs == 0);
                let path = out.join("checkpoints").join(checkpoint::file_name(phase.name, 0));
                checkpoint::save(&net, &meta, &path)?;
                written.push(path);
                if meta.phase_done {
                    continue;
                }
                (Adam::new(trainable(&net), config.lr)?, 1, meta.perf_min())
            }
        };
        let batches_per_rule = config.samples_per_rule.div_ceil(config.batch);
        let batches = batches_per_rule * phase.rules.len();
        for epoch in start..=config.max_epochs {
            let mut loss_sum = 0.0;
            let mut done_batches = 0;
            for rule in &phase.rules {
                for k in 0..batches_per_rule {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(Outcome::Stopped);
                    }
                    let lo = (k * config.batch) as u64;
                    let hi = ((k + 1) * config.batch).min(config.samples_per_rule) as u64;
                    let split = Split::Train { phase: phase.index, epoch: epoch as u32 };
                    let batch = Batch::train(rule as &dyn Task, config.seed, split, lo..hi)?;
                    let x = inputs_tensor(&batch, dtype, device)?;
                    let y = labels_tensor(&batch, device)?;
                    let logits = net.forward(&x, false)?.logits;
                    let (loss, _, _) = net.loss(&logits, &y, config.l2)?;
                    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                    if !value.is_finite() {
                        return Err(NetError::Config(format!(
                            "the loss became {value} in {} epoch {epoch} ({} batch {k}); lower the learning rate",
                            phase.name,
                            rule.name()
                        )));
                    }
                    adam.step(&loss.backward()?)?;
                    loss_sum += value;
                    done_batches += 1;
                    progress(&Progress {
                        phase: phase.name,
                        epoch,
                        max_epochs: config.max_epochs,
                        batch: done_batches,
                        batches,
                        loss: value,
                        perf_min: last_perf,
                    });
                }
            }
            let accuracy = evaluate(&net, &phase.rules, config.eval_per_rule)?;
            let perf = accuracy.iter().map(|(_, a)| *a).fold(f64::INFINITY, f64::min);
            let done = perf > config.stop_accuracy || epoch == config.max_epochs;
            let meta = meta_for(config, &run_json, &phase, epoch, accuracy, Some(loss_sum / done_batches as f64), done);
            last_perf = perf;
            let path = out.join("checkpoints").join(checkpoint::file_name(phase.name, epoch));
            // The optimiser state first, then the checkpoint that refers to it: a crash between
            // the two leaves an unused state file, never a checkpoint without its state.
            checkpoint::save_tensors(&adam.state()?, &checkpoint::optim_path(&path))?;
            checkpoint::save(&net, &meta, &path)?;
            if epoch > 1 {
                let previous = out.join("checkpoints").join(checkpoint::file_name(phase.name, epoch - 1));
                let _ = std::fs::remove_file(checkpoint::optim_path(&previous));
            }
            written.push(path);
            if done {
                break;
            }
        }
    }
    Ok(Outcome::Done(written))
}

/// Removes the optimiser states of `phase` other than the one beside `keep` (the checkpoint a
/// resumed run continues from). An uninterrupted run keeps only its phase's last state; a kill
/// between writing a checkpoint and removing the previous state would otherwise leave that
/// previous state behind for good.
fn remove_stale_optimiser_states(out: &Path, phase: &str, keep: &Path) -> Result<()> {
    let dir = out.join("checkpoints");
    let keep = checkpoint::optim_path(keep);
    let entries =
        std::fs::read_dir(&dir).map_err(|e| NetError::Io { path: dir.clone(), what: "listing".into(), source: e })?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{phase}-")) && name.ends_with(".optim.safetensors") && e.path() != keep {
            std::fs::remove_file(e.path()).map_err(|err| NetError::Io {
                path: e.path(),
                what: "removing the stale optimiser state".into(),
                source: err,
            })?;
        }
    }
    Ok(())
}

fn evaluate(net: &Network, rules: &[Rule], n: usize) -> Result<Vec<(String, f64)>> {
    rules.iter().map(|r| Ok((r.name().to_string(), accuracy(net, *r, n)?))).collect()
}

fn meta_for(
    config: &RunConfig,
    run: &serde_json::Value,
    phase: &Phase,
    epoch: usize,
    accuracy: Vec<(String, f64)>,
    loss: Option<f64>,
    phase_done: bool,
) -> CheckpointMeta {
    CheckpointMeta {
        format: FORMAT_VERSION,
        net: config.net.clone(),
        phase: phase.name.to_string(),
        epoch,
        accuracy,
        loss,
        phase_done,
        run: run.clone(),
    }
}

/// Creates the run folder and its `run.json`, or checks that an existing one holds this run.
fn prepare_folder(config: &RunConfig, out: &Path) -> Result<()> {
    let io = |path: &Path, what: &str, e: std::io::Error| NetError::Io {
        path: path.to_path_buf(),
        what: what.into(),
        source: e,
    };
    let file = out.join(RUN_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let existing: RunFile = serde_json::from_str(&text).map_err(|e| NetError::Checkpoint {
                path: file.clone(),
                why: format!("not a dynsim run description ({e})"),
            })?;
            if existing.run != *config {
                let theirs = serde_json::to_string(&existing.run).unwrap_or_default();
                return Err(NetError::Config(format!(
                    "{} holds a run with another configuration ({theirs}); choose another --out folder, or rerun with that configuration to resume it",
                    out.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if out.exists() && std::fs::read_dir(out).map_err(|e| io(out, "listing", e))?.next().is_some() {
                return Err(NetError::Config(format!(
                    "{} exists and is not a dynsim run folder (no {RUN_FILE}); choose an empty or new folder",
                    out.display()
                )));
            }
            std::fs::create_dir_all(out.join("checkpoints")).map_err(|e| io(out, "creating", e))?;
            let json = serde_json::to_vec_pretty(&RunFile { format: FORMAT_VERSION, run: config.clone() })
                .map_err(|e| NetError::Config(e.to_string()))?;
            checkpoint::write_atomic(&file, &json)?;
        }
        Err(e) => return Err(io(&file, "reading", e)),
    }
    std::fs::create_dir_all(out.join("checkpoints")).map_err(|e| io(out, "creating", e))?;
    // Temporary files of writes a killed run left (`checkpoint::write_atomic` names them
    // `.<name>.tmp-<pid>`): never read, so removed before training resumes.
    for dir in [out.to_path_buf(), out.join("checkpoints")] {
        let entries = std::fs::read_dir(&dir).map_err(|e| io(&dir, "listing", e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                std::fs::remove_file(e.path()).map_err(|err| io(&e.path(), "removing the leftover", err))?;
            }
        }
    }
    Ok(())
}
