//! Training: Adam against its formula, learning PDM, frozen weights, checkpoints, resume.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use dynsim_nets::checkpoint;
use dynsim_nets::train::{self, Adam, Outcome, RunConfig};
use dynsim_nets::{Activation, Arch, DType, Device, NetConfig, Network, Rule, Tensor};

use crate::common::values;

fn small_run(arch: Arch) -> RunConfig {
    let net = match arch {
        Arch::Mamba => NetConfig::mamba(8, 1),
        a => NetConfig::recurrent(a, Activation::Relu, 16),
    };
    let mut c = RunConfig::study(net);
    c.batch = 16;
    c.samples_per_rule = 32;
    c.eval_per_rule = 32;
    c.max_epochs = 2;
    c.seed = 5;
    c
}

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn adam_follows_pytorch_formula() {
    // One parameter, three steps with known gradients: compare with the closed form.
    let net =
        Network::init(NetConfig::recurrent(Arch::LeakyRnn, Activation::Tanh, 2), 1, DType::F64, &Device::Cpu).unwrap();
    let (_, var) = net.params()[2].clone(); // bias, 2 values
    let mut adam = Adam::new(vec![("bias".into(), var.clone())], 0.1).unwrap();
    let mut p = values(var.as_tensor());
    let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
    for (t, g) in [[0.5, -2.0], [0.1, 0.3], [-1.0, 4.0]].iter().enumerate() {
        // d(sum(bias * g))/d bias = g
        let gt = Tensor::new(&g[..], &Device::Cpu).unwrap();
        let loss = (var.as_tensor() * &gt).unwrap().sum_all().unwrap();
        adam.step(&loss.backward().unwrap()).unwrap();
        let t = (t + 1) as i32;
        for k in 0..2 {
            m[k] = 0.9 * m[k] + 0.1 * g[k];
            v[k] = 0.999 * v[k] + 0.001 * g[k] * g[k];
            let mh = m[k] / (1.0 - 0.9f64.powi(t));
            let vh = v[k] / (1.0 - 0.999f64.powi(t));
            p[k] -= 0.1 * mh / (vh.sqrt() + 1e-8);
        }
        let got = values(var.as_tensor());
        for k in 0..2 {
            assert!((got[k] - p[k]).abs() < 1e-14, "step {t}: {} vs {}", got[k], p[k]);
        }
    }
    assert_eq!(adam.steps(), 3);
}

#[test]
fn a_small_network_learns_pdm() {
    // Coherence-0 trials have no right answer (both stimuli are equal), so a perfect observer
    // scores 0.5 on them and the decision-step accuracy over all trials tops out near 0.9.
    let dir = tempfile::tempdir().unwrap();
    let mut c = RunConfig::study(NetConfig::recurrent(Arch::LeakyRnn, Activation::Relu, 64));
    c.train_rules = vec![Rule::Pdm];
    c.lr = 0.01;
    c.batch = 32;
    c.samples_per_rule = 2048;
    c.eval_per_rule = 256;
    c.max_epochs = 24;
    // Stops once the decision accuracy over all trials (ceiling about 0.9) passes 0.86.
    c.stop_accuracy = 0.86;
    c.seed = 3;
    let stop = AtomicBool::new(false);
    let out = train::train(&c, dir.path(), &Device::Cpu, &mut |_| {}, &stop).unwrap();
    let Outcome::Done(paths) = out else { panic!("not stopped") };
    let (net, meta) = checkpoint::load(paths.last().unwrap(), DType::F32, &Device::Cpu).unwrap();
    let by_coh = train::accuracy_by_coherence(&net, Rule::Pdm, 400).unwrap();
    // Coherence 6.4 needs integration over the whole stimulus that a 64-unit network trained for
    // seconds does not reach; the criterion is taken on the clear signals (12.8 and up), with
    // 6.4 above chance.
    let clear: Vec<f64> = by_coh.iter().filter(|(c, _)| *c >= 12.8).map(|(_, a)| *a).collect();
    let mean = clear.iter().sum::<f64>() / clear.len() as f64;
    assert!(mean >= 0.9, "accuracy at coherence >= 12.8: {mean:.3} ({by_coh:?}); per-epoch {:?}", meta.accuracy);
    let weak = by_coh.iter().find(|(c, _)| *c == 6.4).unwrap().1;
    assert!(weak > 0.6, "coherence 6.4 above chance: {weak} ({by_coh:?})");
    let zero = by_coh.iter().find(|(c, _)| *c == 0.0).unwrap().1;
    assert!((zero - 0.5).abs() < 0.2, "coherence 0 is a coin flip: {zero}");
}

/// Frozen without pretraining (the study's `master_frozen`): the recurrent and output weights
/// stay at their random initialisation, bit for bit; only the input weights learn.
#[test]
fn frozen_without_pretraining_keeps_the_initial_weights() {
    for arch in [Arch::LeakyRnn, Arch::Mamba] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = small_run(arch);
        c.frozen = true;
        let stop = AtomicBool::new(false);
        let Outcome::Done(paths) = train::train(&c, dir.path(), &Device::Cpu, &mut |_| {}, &stop).unwrap() else {
            panic!()
        };
        assert_eq!(paths.len(), 3, "train-000..002, no pretraining");
        let init = dynsim_nets::Network::init(c.net.clone(), c.seed, c.dtype().unwrap(), &Device::Cpu).unwrap();
        let end = checkpoint::read(paths.last().unwrap(), &Device::Cpu).unwrap().0;
        let inputs = train::input_parameters(&c.net);
        for (name, var) in init.params() {
            let (a, b) = (values(var.as_tensor()), values(&end[name]));
            let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert_eq!(same, !inputs.contains(name), "{}: {name}", arch.name());
        }
    }
}

#[test]
fn frozen_training_changes_only_the_input_weights() {
    for arch in Arch::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut c = small_run(arch);
        c.pretrain_rules = vec![Rule::Pdm, Rule::AntiPdm];
        c.frozen = true;
        let stop = AtomicBool::new(false);
        let Outcome::Done(paths) = train::train(&c, dir.path(), &Device::Cpu, &mut |_| {}, &stop).unwrap() else {
            panic!()
        };
        let names: Vec<String> = paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            ["pretrain-000", "pretrain-001", "pretrain-002", "train-000", "train-001", "train-002"]
                .map(|n| format!("{n}.safetensors"))
        );
        let read = |name: &str| checkpoint::read(&dir.path().join("checkpoints").join(name), &Device::Cpu).unwrap().0;
        let start = read("train-000.safetensors");
        let end = read("train-002.safetensors");
        assert_eq!(values(&start[&c.net.parameters()[0].name]).len(), values(&end[&c.net.parameters()[0].name]).len());
        let inputs = train::input_parameters(&c.net);
        for spec in c.net.parameters() {
            let (a, b) = (values(&start[&spec.name]), values(&end[&spec.name]));
            if inputs.contains(&spec.name) {
                assert_ne!(a, b, "{}: {} trains", arch.name(), spec.name);
            } else {
                let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{}: {} must stay bit-identical", arch.name(), spec.name);
            }
        }
        // Pretraining trains everything.
        let p0 = read("pretrain-000.safetensors");
        let p2 = read("pretrain-002.safetensors");
        for spec in c.net.parameters() {
            if spec.name.ends_with("A_log") || spec.name.ends_with(".D") || spec.name.contains("norm") {
                continue; // may barely move in two epochs of 2 batches, but still must not be frozen
            }
            assert_ne!(values(&p0[&spec.name]), values(&p2[&spec.name]), "{}: {} pretrains", arch.name(), spec.name);
        }
    }
}

#[test]
fn checkpoints_round_trip_bit_exactly_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_run(Arch::LeakyGru);
    let stop = AtomicBool::new(false);
    let Outcome::Done(paths) = train::train(&c, dir.path(), &Device::Cpu, &mut |_| {}, &stop).unwrap() else {
        panic!()
    };
    let last = paths.last().unwrap();
    let (net, meta) = checkpoint::load(last, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(meta.phase, "train");
    assert_eq!(meta.epoch, 2);
    assert!(meta.phase_done);
    assert_eq!(meta.accuracy.len(), 1);
    let run: RunConfig = serde_json::from_value(meta.run.clone()).unwrap();
    assert_eq!(run, c);
    // Save again and compare bytes: the format is stable and lossless.
    let again = dir.path().join("again.safetensors");
    checkpoint::save(&net, &meta, &again).unwrap();
    assert_eq!(std::fs::read(last).unwrap(), std::fs::read(&again).unwrap());
    // Names and shapes are PyTorch's.
    let (tensors, _) = checkpoint::read(last, &Device::Cpu).unwrap();
    let want: HashMap<String, Vec<usize>> = c.net.parameters().into_iter().map(|p| (p.name, p.shape)).collect();
    assert_eq!(tensors.len(), want.len());
    for (n, t) in &tensors {
        assert_eq!(t.dims(), want[n].as_slice(), "{n}");
        assert_eq!(t.dtype(), DType::F32);
    }
}

/// Trains `c` into `dir`, setting the stop flag after the `batches`-th batch.
fn train_stopped_after(c: &RunConfig, dir: &std::path::Path, batches: usize) -> Outcome {
    let stop = AtomicBool::new(false);
    let mut n = 0;
    let mut progress = |_: &train::Progress| {
        n += 1;
        if n == batches {
            stop.store(true, Ordering::SeqCst);
        }
    };
    train::train(c, dir, &Device::Cpu, &mut progress, &stop).unwrap()
}

#[test]
fn a_stopped_run_resumes_to_the_same_files() {
    for arch in [Arch::LeakyRnn, Arch::Mamba] {
        let mut c = small_run(arch);
        c.pretrain_rules = vec![Rule::PdmDelay];
        let whole = tempfile::tempdir().unwrap();
        let no = AtomicBool::new(false);
        train::train(&c, whole.path(), &Device::Cpu, &mut |_| {}, &no).unwrap();
        // Stop at several points: mid-epoch in pretraining, at a phase boundary, mid-training.
        for stop_after in [1usize, 4, 7] {
            let part = tempfile::tempdir().unwrap();
            assert_eq!(train_stopped_after(&c, part.path(), stop_after), Outcome::Stopped);
            let resumed = train::train(&c, part.path(), &Device::Cpu, &mut |_| {}, &no).unwrap();
            assert!(matches!(resumed, Outcome::Done(_)));
            let (a, b) = (files(whole.path()), files(part.path()));
            assert_eq!(
                a.iter().map(|f| &f.0).collect::<Vec<_>>(),
                b.iter().map(|f| &f.0).collect::<Vec<_>>(),
                "{} stopped after {stop_after} batches: same files",
                arch.name()
            );
            for (x, y) in a.iter().zip(&b) {
                assert!(x.1 == y.1, "{} stopped after {stop_after} batches: {} differs", arch.name(), x.0);
            }
        }
    }
}

#[test]
fn bad_settings_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let no = AtomicBool::new(false);
    let cases: Vec<(RunConfig, &str)> = vec![
        (
            {
                let mut c = small_run(Arch::LeakyRnn);
                c.net.hidden = 0;
                c
            },
            "hidden",
        ),
        (
            {
                let mut c = small_run(Arch::LeakyRnn);
                c.lr = 0.0;
                c
            },
            "learning rate",
        ),
        (
            {
                let mut c = small_run(Arch::LeakyRnn);
                c.lr = -1.0;
                c
            },
            "learning rate",
        ),
        (
            {
                let mut c = small_run(Arch::LeakyRnn);
                c.batch = 0;
                c
            },
            "batch",
        ),
        (
            {
                let mut c = small_run(Arch::Mamba);
                c.net.n_layers = 0;
                c
            },
            "layer",
        ),
        (
            {
                let mut c = small_run(Arch::LeakyRnn);
                c.dtype = "f16".into();
                c
            },
            "dtype",
        ),
        (
            {
                let mut c = small_run(Arch::LeakyRnn);
                c.train_rules.clear();
                c
            },
            "rule",
        ),
    ];
    for (c, word) in cases {
        let err = train::train(&c, &out, &Device::Cpu, &mut |_| {}, &no).unwrap_err().to_string();
        assert!(err.contains(word), "{err}");
        assert!(!out.exists(), "nothing written for a bad config ({err})");
    }
    // Another configuration into an existing run folder is refused, and the folder untouched.
    let c = small_run(Arch::LeakyRnn);
    train::train(&c, &out, &Device::Cpu, &mut |_| {}, &no).unwrap();
    let before = files(&out);
    let mut other = c.clone();
    other.seed += 1;
    let err = train::train(&other, &out, &Device::Cpu, &mut |_| {}, &no).unwrap_err().to_string();
    assert!(err.contains("another configuration"), "{err}");
    assert_eq!(before, files(&out));
}

#[test]
fn foreign_truncated_and_mismatched_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_run(Arch::LeakyRnn);
    let no = AtomicBool::new(false);
    let Outcome::Done(paths) = train::train(&c, dir.path(), &Device::Cpu, &mut |_| {}, &no).unwrap() else { panic!() };
    let good = std::fs::read(paths.last().unwrap()).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let err = checkpoint::load(&truncated, DType::F32, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("truncated.safetensors"), "{err}");
    let foreign = dir.path().join("foreign.safetensors");
    std::fs::write(&foreign, b"PK\x03\x04 not a safetensors file at all").unwrap();
    let err = checkpoint::load(&foreign, DType::F32, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("foreign.safetensors") && err.contains("not a safetensors"), "{err}");
    // A leaky RNN checkpoint loaded as a GRU or Mamba: the error names the tensor and shape.
    let gru = NetConfig::recurrent(Arch::LeakyGru, Activation::Relu, 16);
    let err = checkpoint::load_with(paths.last().unwrap(), gru, DType::F32, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("weight_ih") && err.contains("[48, 7]"), "{err}");
    let err = checkpoint::load_with(paths.last().unwrap(), NetConfig::mamba(8, 1), DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("embedding.weight") && err.contains("missing"), "{err}");
}

#[test]
fn record_keeps_the_window_of_the_fixed_test_trials() {
    use dynsim_nets::record::{record, Window};
    for config in [NetConfig::recurrent(Arch::LeakyGru, Activation::Tanh, 5), NetConfig::mamba(8, 1)] {
        let net = Network::init(config.clone(), 2, DType::F64, &Device::Cpu).unwrap();
        let whole = record(&net, &Rule::AntiPdmDelay, &Window::Whole, 3).unwrap();
        assert_eq!(whole.shape, [3, 350, config.state_width()]);
        let stim = record(&net, &Rule::AntiPdmDelay, &Window::parse("stimulus").unwrap(), 3).unwrap();
        assert_eq!((stim.shape, stim.steps.clone()), ([3, 200, config.state_width()], 25..225));
        let range = record(&net, &Rule::AntiPdmDelay, &Window::parse("300..350").unwrap(), 3).unwrap();
        assert_eq!(range.shape[1], 50);
        // The windows are slices of the whole recording, trial by trial.
        let w = config.state_width();
        for t in 0..3 {
            for s in 0..200 {
                let a = &stim.values[(t * 200 + s) * w..(t * 200 + s + 1) * w];
                let b = &whole.values[(t * 350 + s + 25) * w..(t * 350 + s + 26) * w];
                assert_eq!(a, b);
            }
        }
        // The same trials for every network: the recording depends only on the weights.
        let again = record(&net, &Rule::AntiPdmDelay, &Window::Whole, 3).unwrap();
        assert_eq!(whole, again);
    }
    let net =
        Network::init(NetConfig::recurrent(Arch::LeakyRnn, Activation::Relu, 4), 2, DType::F64, &Device::Cpu).unwrap();
    for (w, needle) in
        [("delay", "fixation, stimulus, decision"), ("10..500", "START < END <= 220"), ("5..x", "not a step")]
    {
        let err = Window::parse(w).and_then(|w| record(&net, &Rule::Pdm, &w, 2)).unwrap_err().to_string();
        assert!(err.contains(needle), "{w}: {err}");
    }
}

/// Temporary files a killed write left (`.<name>.tmp-<pid>`) are removed when the run is
/// trained again, so a resumed run folder holds exactly the files of an uninterrupted one.
#[test]
fn leftover_temporary_files_are_removed_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_run(Arch::LeakyRnn);
    let stop = AtomicBool::new(false);
    train::train(&c, dir.path(), &Device::Cpu, &mut |_| {}, &stop).unwrap();
    let before = files(dir.path());
    let leftovers =
        [dir.path().join("checkpoints/.train-002.safetensors.tmp-4242"), dir.path().join(".run.json.tmp-4242")];
    for f in &leftovers {
        std::fs::write(f, b"partial").unwrap();
    }
    train::train(&c, dir.path(), &Device::Cpu, &mut |_| {}, &stop).unwrap();
    for f in &leftovers {
        assert!(!f.exists(), "{} was left", f.display());
    }
    assert_eq!(files(dir.path()), before);
}

/// A kill after a checkpoint is written and before the previous optimiser state is removed
/// leaves that state behind; resuming removes it, so the folder ends as an uninterrupted run's.
/// (The CLI's SIGKILL test hit this window once in CI.)
#[test]
fn a_stale_optimiser_state_is_removed_on_resume() {
    let mut c = small_run(Arch::LeakyRnn);
    c.max_epochs = 3;
    let no = AtomicBool::new(false);
    let whole = tempfile::tempdir().unwrap();
    train::train(&c, whole.path(), &Device::Cpu, &mut |_| {}, &no).unwrap();
    let part = tempfile::tempdir().unwrap();
    // Two batches per epoch: stopping after the fifth batch keeps checkpoints 0..=2.
    assert_eq!(train_stopped_after(&c, part.path(), 5), Outcome::Stopped);
    let ckpts = part.path().join("checkpoints");
    assert!(ckpts.join("train-002.safetensors").exists() && !ckpts.join("train-003.safetensors").exists());
    let stale = ckpts.join("train-001.optim.safetensors");
    assert!(!stale.exists());
    std::fs::copy(ckpts.join("train-002.optim.safetensors"), &stale).unwrap();
    train::train(&c, part.path(), &Device::Cpu, &mut |_| {}, &no).unwrap();
    assert!(!stale.exists(), "the stale optimiser state was left");
    let (a, b) = (files(whole.path()), files(part.path()));
    assert_eq!(a.iter().map(|f| &f.0).collect::<Vec<_>>(), b.iter().map(|f| &f.0).collect::<Vec<_>>());
    for (x, y) in a.iter().zip(&b) {
        assert!(x.1 == y.1, "{} differs", x.0);
    }
}
