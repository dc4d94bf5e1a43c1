//! `dynsim train`, `dynsim record` and `dynsim forward`: the seed study's networks
//! (dynsim-nets) from the command line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use dynsim_nets::checkpoint::{self, CheckpointMeta};
use dynsim_nets::record::{record, Window};
use dynsim_nets::train::{self, Outcome, RunConfig};
use dynsim_nets::{Activation, Arch, Batch, DType, Device, NetConfig, Rule, Task, Tensor};
use dynsim_store::keys::parse_assignment;
use dynsim_store::{ArrayRecording, IngestOptions, KeyValue, Keys, Store};
use dynsim_testcases::compositional::{checkpoint_keys, CheckpointAt, Group};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::output::println;
use crate::storecmd::StoreArg;

/// The network flags shared by `train` and `forward`.
#[derive(Debug, Args, Clone, Default)]
pub struct NetFlags {
    /// Architecture: leaky_rnn, leaky_gru or mamba.
    #[arg(long)]
    arch: Option<String>,
    /// Nonlinearity of the RNN / GRU: relu, leaky_relu, softplus, tanh.
    #[arg(long)]
    activation: Option<String>,
    /// Hidden units of the RNN / GRU.
    #[arg(long)]
    hidden: Option<usize>,
    /// Mamba's model width.
    #[arg(long)]
    d_model: Option<usize>,
    /// Mamba's layers.
    #[arg(long)]
    layers: Option<usize>,
}

/// A training run's settings as a TOML file (`--config`); every field is optional, flags
/// override the file, and what neither gives takes the study's value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainFile {
    arch: Option<String>,
    activation: Option<String>,
    hidden: Option<usize>,
    d_model: Option<usize>,
    layers: Option<usize>,
    lr: Option<f64>,
    batch: Option<usize>,
    l2: Option<f64>,
    pretrain_rules: Option<Vec<String>>,
    train_rules: Option<Vec<String>>,
    frozen: Option<bool>,
    seed: Option<u64>,
    max_epochs: Option<usize>,
    samples_per_rule: Option<usize>,
    eval_per_rule: Option<usize>,
    stop_accuracy: Option<f64>,
    dtype: Option<String>,
}

/// Arguments of `dynsim train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Settings file (TOML: arch, activation, hidden, d_model, layers, lr, batch, l2,
    /// pretrain_rules, train_rules, frozen, seed, max_epochs, samples_per_rule,
    /// eval_per_rule, stop_accuracy, dtype); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    net: NetFlags,
    /// Adam's learning rate (default 0.001).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Samples per batch (default 64).
    #[arg(long)]
    batch: Option<usize>,
    /// Weight of the sum of Frobenius norms in the loss (default 1e-4).
    #[arg(long, allow_negative_numbers = true)]
    l2: Option<f64>,
    /// Pretraining rules, comma-separated (e.g. pdm,anti_pdm,pdm_delay); none by default.
    #[arg(long, value_delimiter = ',')]
    pretrain_rules: Option<Vec<String>>,
    /// Training rules, comma-separated (default anti_pdm_delay).
    #[arg(long, value_delimiter = ',')]
    train_rules: Option<Vec<String>>,
    /// Train only the input weights in the training phase (after pretraining, if any;
    /// without pretraining the other weights keep their random initialisation).
    #[arg(long)]
    frozen: bool,
    /// Seed of the weights and the training samples (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Epochs per phase at most (default 50).
    #[arg(long)]
    max_epochs: Option<usize>,
    /// Training samples per rule and epoch (default 8000).
    #[arg(long)]
    samples_per_rule: Option<usize>,
    /// Evaluation samples per rule (default 2000).
    #[arg(long)]
    eval_per_rule: Option<usize>,
    /// Stop a phase once every rule's accuracy exceeds this (default 0.99).
    #[arg(long)]
    stop_accuracy: Option<f64>,
    /// f32 (default, as the study) or f64.
    #[arg(long)]
    dtype: Option<String>,
    /// The run folder: run.json and checkpoints/. Rerunning the same command resumes.
    #[arg(long)]
    out: PathBuf,
}

fn rules(names: &[String], flag: &str) -> Result<Vec<Rule>> {
    names
        .iter()
        .filter(|n| !n.trim().is_empty())
        .map(|n| Rule::parse(n.trim()).with_context(|| format!("--{flag}")))
        .collect()
}

fn net_config(flags: &NetFlags, file: &TrainFile) -> Result<NetConfig> {
    let arch_name = flags
        .arch
        .clone()
        .or(file.arch.clone())
        .context("--arch is required (leaky_rnn, leaky_gru or mamba), in the flags or the --config file")?;
    let arch = Arch::parse(&arch_name)?;
    Ok(match arch {
        Arch::Mamba => {
            NetConfig::mamba(flags.d_model.or(file.d_model).unwrap_or(8), flags.layers.or(file.layers).unwrap_or(1))
        }
        _ => {
            let act = flags.activation.clone().or(file.activation.clone()).unwrap_or_else(|| "relu".into());
            NetConfig::recurrent(arch, Activation::parse(&act)?, flags.hidden.or(file.hidden).unwrap_or(128))
        }
    })
}

fn run_config(a: &TrainArgs) -> Result<RunConfig> {
    let file: TrainFile = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("{} is not a valid run configuration", p.display()))?
        }
        None => TrainFile::default(),
    };
    let mut c = RunConfig::study(net_config(&a.net, &file)?);
    c.lr = a.lr.or(file.lr).unwrap_or(c.lr);
    c.batch = a.batch.or(file.batch).unwrap_or(c.batch);
    c.l2 = a.l2.or(file.l2).unwrap_or(c.l2);
    if let Some(r) = a.pretrain_rules.clone().or(file.pretrain_rules.clone()) {
        c.pretrain_rules = rules(&r, "pretrain-rules")?;
    }
    if let Some(r) = a.train_rules.clone().or(file.train_rules.clone()) {
        c.train_rules = rules(&r, "train-rules")?;
    }
    c.frozen = a.frozen || file.frozen.unwrap_or(false);
    c.seed = a.seed.or(file.seed).unwrap_or(c.seed);
    c.max_epochs = a.max_epochs.or(file.max_epochs).unwrap_or(c.max_epochs);
    c.samples_per_rule = a.samples_per_rule.or(file.samples_per_rule).unwrap_or(c.samples_per_rule);
    c.eval_per_rule = a.eval_per_rule.or(file.eval_per_rule).unwrap_or(c.eval_per_rule);
    c.stop_accuracy = a.stop_accuracy.or(file.stop_accuracy).unwrap_or(c.stop_accuracy);
    c.dtype = a.dtype.clone().or(file.dtype.clone()).unwrap_or(c.dtype);
    c.validate()?;
    Ok(c)
}

/// `dynsim train`.
pub fn run_train(a: TrainArgs) -> Result<()> {
    let config = run_config(&a)?;
    let cancel = crate::progress::cancel_on_signal()?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut epoch_seen = (String::new(), 0usize);
    let mut on = |p: &train::Progress| {
        if (p.phase.to_string(), p.epoch) != epoch_seen {
            epoch_seen = (p.phase.to_string(), p.epoch);
            bar.set_length(p.batches as u64);
            bar.reset_eta();
        }
        bar.set_position(p.batch as u64);
        let perf = if p.perf_min.is_nan() { "-".to_string() } else { format!("{:.3}", p.perf_min) };
        bar.set_message(format!("{} epoch {}/{} loss {:.4} perf_min {perf}", p.phase, p.epoch, p.max_epochs, p.loss));
    };
    let start = Instant::now();
    // One network trains on one thread (its per-step products are too small to split); run
    // several `dynsim train` at once to use more cores.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().context("a one-thread pool")?;
    let outcome = pool.install(|| train::train(&config, &a.out, &Device::Cpu, &mut on, &cancel))?;
    bar.finish_and_clear();
    match outcome {
        Outcome::Stopped => bail!(
            "interrupted; the checkpoints in {} are complete; rerun the same command to resume",
            a.out.join("checkpoints").display()
        ),
        Outcome::Done(paths) => {
            let last = paths.last().context("the run wrote no checkpoint")?;
            let (_, meta) = checkpoint::read(last, &Device::Cpu)?;
            let meta = meta.context("the last checkpoint has no metadata")?;
            println(&format!(
                "{} checkpoints in {} ({:.0} s); last: {} epoch {}, accuracy {}",
                paths.len(),
                a.out.join("checkpoints").display(),
                start.elapsed().as_secs_f64(),
                meta.phase,
                meta.epoch,
                meta.accuracy.iter().map(|(r, x)| format!("{r} {x:.3}")).collect::<Vec<_>>().join(", ")
            ))?;
        }
    }
    Ok(())
}

/// Arguments of `dynsim record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The run folder written by `dynsim train`.
    #[arg(long)]
    run: PathBuf,
    /// Which checkpoints: all, or last.
    #[arg(long, default_value = "all")]
    epochs: String,
    /// The task whose fixed test trials are run.
    #[arg(long, default_value = "anti_pdm_delay")]
    task: String,
    /// The steps kept: whole, a period (fixation, stimulus, delay, decision) or a step range
    /// START..END.
    #[arg(long, default_value = "whole")]
    window: String,
    /// Test trials (the first N of the task's fixed test set; the study: 200).
    #[arg(long, default_value_t = 200)]
    trials: usize,
    #[command(flatten)]
    store: StoreArg,
    /// An extra key for every recording, NAME=VALUE (repeatable; wins over the derived keys).
    #[arg(long = "key", value_name = "NAME=VALUE")]
    keys: Vec<String>,
}

/// The `group` key of a run: the compositional study's group name when its curriculum is one
/// of the study's (`master`, `pretrain_basic_frozen`, ...: AntiPDMDelay as the target, see
/// `Group::of`), so `dynsim record` and `dynsim testcase compositional` label the same network
/// alike; otherwise the curriculum as text: the pretraining rules joined by `+` (or `none`),
/// then `->` and the training rules, with `+frozen` when only the input weights trained on
/// them (e.g. `pdm->anti_pdm_delay+frozen`).
pub fn curriculum_group(run: &RunConfig) -> String {
    if let Some(g) = Group::of(run) {
        return g.name().into();
    }
    let names = |rules: &[Rule]| rules.iter().map(|r| r.name()).collect::<Vec<_>>().join("+");
    let pre = if run.pretrain_rules.is_empty() { "none".to_string() } else { names(&run.pretrain_rules) };
    let mut g = format!("{pre}->{}", names(&run.train_rules));
    if run.frozen {
        g.push_str("+frozen");
    }
    g
}

/// `dynsim record`.
pub fn run_record(a: RecordArgs) -> Result<()> {
    let rule = Rule::parse(&a.task)?;
    if a.trials == 0 {
        bail!("--trials must be at least 1");
    }
    let all = train::checkpoints(&a.run)?;
    if all.is_empty() {
        bail!(
            "{} has no checkpoints (checkpoints/*.safetensors); train it first with dynsim train --out {}",
            a.run.display(),
            a.run.display()
        );
    }
    let chosen: Vec<PathBuf> = match a.epochs.as_str() {
        "all" => all.clone(),
        "last" => all.last().cloned().into_iter().collect(),
        other => bail!("--epochs {other}: give all or last"),
    };
    let mut extra = Keys::new();
    for k in &a.keys {
        let (name, value) = parse_assignment(k).with_context(|| format!("--key {k}"))?;
        extra.insert(name, value);
    }
    let window = Window::parse(&a.window)?;
    // The window is checked before any checkpoint runs.
    window.steps(&rule, &Batch::test(&rule, 0..1)?.trials[0])?;
    // Last epoch of each phase, for `progress`.
    let mut last_epoch = std::collections::HashMap::new();
    for p in &all {
        let meta = checkpoint::read_meta(p)?;
        let meta = meta.with_context(|| format!("{} has no dynsim metadata", p.display()))?;
        let e = last_epoch.entry(meta.phase.clone()).or_insert(0usize);
        *e = (*e).max(meta.epoch);
    }
    // One commit per checkpoint, so memory holds one recording at a time (a Mamba d16 run of 50
    // epochs would otherwise hold 7 GB); a rerun after an interruption adds only what is missing.
    let (store, _) = Store::open_or_init(&a.store.store)?;
    let (mut added, mut present) = (0, 0);
    let bar = ProgressBar::new(chosen.len() as u64);
    for path in &chosen {
        let (net, meta) = checkpoint::load(path, DType::F64, &Device::Cpu)?;
        let rec = record(&net, &rule, &window, a.trials)?;
        let run: RunConfig = serde_json::from_value(meta.run.clone())
            .with_context(|| format!("{}: the run configuration in its metadata does not parse", path.display()))?;
        let last = last_epoch.get(&meta.phase).copied().unwrap_or(0);
        let keys = record_keys(&meta, &run, rule, &a.window, last, a.trials, &extra);
        let recording = ArrayRecording {
            values: rec.values,
            shape: rec.shape,
            keys,
            source: format!(
                "dynsim record: {}, {} test trials 0..{}, window {} (steps {}..{})",
                path.display(),
                rule.name(),
                a.trials,
                a.window,
                rec.steps.start,
                rec.steps.end
            ),
        };
        let report = store.ingest_arrays(vec![recording], &IngestOptions::default(), &mut |_| {})?;
        added += report.added.len();
        present += report.already_present.len();
        bar.inc(1);
    }
    bar.finish_and_clear();
    println(&format!("{added} recordings added to {} ({present} already there)", a.store.store.display()))?;
    Ok(())
}

/// The keys of a recorded checkpoint: the shared scheme of
/// `dynsim_testcases::compositional::checkpoint_keys` (model, config, group, seed (the run's),
/// run, phase, checkpoint, progress, task, trials), then `window`, the hyper-parameters
/// (`activation`, `hidden` or `d_model`, `layers`; `lr`, `batch`) and the user's `--key`s.
fn record_keys(
    meta: &CheckpointMeta,
    run: &RunConfig,
    rule: Rule,
    window: &str,
    last_epoch: usize,
    trials: usize,
    extra: &Keys,
) -> Keys {
    let at = CheckpointAt { epoch: meta.epoch, last_epoch };
    let mut k = checkpoint_keys(run, &curriculum_group(run), run.seed, &meta.phase, at, rule, trials);
    let net = &run.net;
    match net.arch {
        Arch::Mamba => {
            k.insert("d_model".into(), KeyValue::Int(net.d_model as i64));
            k.insert("layers".into(), KeyValue::Int(net.n_layers as i64));
        }
        _ => {
            k.insert("activation".into(), KeyValue::Str(net.activation.name().into()));
            k.insert("hidden".into(), KeyValue::Int(net.hidden as i64));
        }
    }
    k.insert("lr".into(), KeyValue::Float(run.lr));
    k.insert("batch".into(), KeyValue::Int(run.batch as i64));
    k.insert("window".into(), KeyValue::Str(window.into()));
    for (name, v) in extra {
        k.insert(name.clone(), v.clone());
    }
    k
}

/// Arguments of `dynsim forward`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Weights (safetensors, PyTorch names); a dynsim checkpoint carries its architecture,
    /// any other file needs --arch and the sizes.
    #[arg(long)]
    checkpoint: PathBuf,
    #[command(flatten)]
    net: NetFlags,
    /// Inputs, batch x time x n_inputs (.npy, float32 or float64).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the recorded states (.npy, batch x time x width).
    #[arg(long)]
    states: Option<PathBuf>,
    /// Where to write the logits (.npy, batch x time x n_outputs).
    #[arg(long)]
    logits: Option<PathBuf>,
}

/// `dynsim forward`.
pub fn run_forward(a: ForwardArgs) -> Result<()> {
    if a.states.is_none() && a.logits.is_none() {
        bail!("nothing to write: give --states FILE and/or --logits FILE");
    }
    let net = if a.net.arch.is_some() {
        let config = net_config(&a.net, &TrainFile::default())?;
        checkpoint::load_with(&a.checkpoint, config, DType::F64, &Device::Cpu)?
    } else {
        checkpoint::load(&a.checkpoint, DType::F64, &Device::Cpu)?.0
    };
    let input = dynsim_store::read_npy(&a.input)?.into_f64();
    let shape = input.shape().to_vec();
    let n_in = net.config().n_inputs;
    if shape.len() != 3 || shape[2] != n_in {
        bail!(
            "{}: inputs must be batch x time x {n_in} (the PDM family's 7 channels: fixation, stim1, stim2 and the 4 rule cues); got shape {shape:?}",
            a.input.display()
        );
    }
    if let Some(i) = input.iter().position(|v| !v.is_finite()) {
        bail!(
            "{}: value {} (flat index {i}) is not finite",
            a.input.display(),
            input.iter().nth(i).copied().unwrap_or(f64::NAN)
        );
    }
    let x =
        Tensor::from_vec(input.iter().copied().collect::<Vec<f64>>(), (shape[0], shape[1], shape[2]), &Device::Cpu)?;
    let out = net.forward(&x, a.states.is_some())?;
    let write = |t: &Tensor, path: &Path| -> Result<()> {
        let dims = t.dims().to_vec();
        let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let arr = ndarray::ArrayD::from_shape_vec(dims, v).context("shaping the output")?;
        dynsim_store::write_npy(path, arr.view())?;
        Ok(())
    };
    if let Some(p) = &a.logits {
        write(&out.logits, p)?;
    }
    if let (Some(p), Some(s)) = (&a.states, &out.states) {
        write(s, p)?;
    }
    Ok(())
}
